import Logging
import RootcausesJSON

/// Turns request lines into answers for one service: parses the envelope, answers `hello`
/// and `ping`, finds the op in the registry, runs it, and maps every error to the envelope
/// in one place for all services.
///
/// It knows nothing of sockets, so a service's ops can be driven in process (tests do) with
/// exactly the answers a client would get over TCP.
public struct Responder: Sendable {
    /// Ops every service answers.
    public static let builtInOperations = ["hello", "ping"]

    public let registry: OperationRegistry
    /// The build's version, reported by `hello`.
    public let version: String
    private let mapError: @Sendable (any Error, Logger) -> ProtocolError

    /// `mapError` turns an error a handler threw that is not a `ProtocolError` into the answer
    /// (a database that cannot be reached is `unavailable`); by default everything is `internal`.
    public init(
        registry: OperationRegistry,
        version: String,
        mapError: @escaping @Sendable (any Error, Logger) -> ProtocolError = Responder.internalError
    ) {
        self.registry = registry
        self.version = version
        self.mapError = mapError
    }

    /// The answer to one line; `nil` for a blank line, which is ignored.
    public func respond<Line: Collection<UInt8>>(to line: Line, logger: Logger) async -> JSON? {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
        let request: Request
        switch Request.parse(line: line) {
        case .success(let parsed): request = parsed
        case .failure(let rejection): return Response.failure(id: rejection.id, rejection.error)
        }
        return await respond(to: request, logger: logger)
    }

    /// The answer to one parsed request.
    public func respond(to request: Request, logger: Logger) async -> JSON {
        var logger = logger
        logger[metadataKey: "op"] = "\(request.op)"
        do {
            return Response.success(id: request.id, try await answer(request, logger: logger))
        } catch let error as ProtocolError {
            return Response.failure(id: request.id, error)
        } catch {
            return Response.failure(id: request.id, mapError(error, logger))
        }
    }

    private func answer(_ request: Request, logger: Logger) async throws -> AnswerFields {
        switch request.op {
        case "hello":
            return try hello(request)
        case "ping":
            return [("pong", true)]
        default:
            guard let operation = registry[request.op] else {
                throw ProtocolError(
                    .unknownOp,
                    "'\(request.op)' is not an operation of \(registry.service)",
                    details: [["supported": .array(registry.names.map(JSON.string))]]
                )
            }
            return try await operation.respond(to: request.body, context: RequestContext(logger: logger))
        }
    }

    private func hello(_ request: Request) throws -> AnswerFields {
        let reader = FieldReader(request.body)
        let asked = reader.integer("protocol")
        guard reader.problems.isEmpty else {
            throw ProtocolError(
                .invalidRequest,
                "'protocol' must be an integer version number",
                details: reader.problems.map(\.json)
            )
        }
        if let asked, asked != Int64(protocolVersion) {
            throw ProtocolError(
                .unsupportedProtocol,
                "this server speaks protocol version \(protocolVersion)",
                details: [["supported": [.int(protocolVersion)]]]
            )
        }
        return [
            ("service", .string(registry.service)),
            ("protocol", .int(protocolVersion)),
            ("version", .string(version)),
            ("ops", .array(registry.names.map(JSON.string))),
        ]
    }

    /// Maps any error to `internal`, logging it: the client learns nothing of the server's insides.
    public static func internalError(_ error: any Error, logger: Logger) -> ProtocolError {
        logger.error("request failed", metadata: ["error": "\(error)"])
        return ProtocolError(.internal, "the server failed to answer this request; see its log")
    }
}
