import Logging
import RootcausesJSON
import Synchronization

/// Turns request lines into answers for one service: parses the envelope, answers `hello`,
/// `ping` and `auth`, checks the connection's key against what the op needs, finds the op in the
/// registry, runs it, and maps every error to the envelope in one place for all services.
///
/// It knows nothing of sockets, so a service's ops can be driven in process (tests do) with
/// exactly the answers a client would get over TCP; the connection's state is a `Session`.
public struct Responder: Sendable {
    /// Ops every service answers, open to connections that have not authenticated (but `auth`
    /// itself is throttled per peer).
    public static let builtInOperations = ["hello", "ping", "auth"]

    public let registry: OperationRegistry
    /// The build's version, reported by `hello`.
    public let version: String
    private let authenticator: any Authenticator
    private let mapError: @Sendable (any Error, Logger) -> ProtocolError
    private let metrics: RequestMetrics

    /// `mapError` turns an error a handler threw that is not a `ProtocolError` into the answer
    /// (a database that cannot be reached is `unavailable`); by default everything is `internal`.
    public init(
        registry: OperationRegistry,
        version: String,
        authenticator: any Authenticator,
        mapError: @escaping @Sendable (any Error, Logger) -> ProtocolError = Responder.internalError
    ) {
        self.registry = registry
        self.version = version
        self.authenticator = authenticator
        self.mapError = mapError
        self.metrics = RequestMetrics(ops: registry.names)
    }

    /// The answer to one line; `nil` for a blank line, which is ignored.
    public func respond<Line: Collection<UInt8>>(
        to line: Line,
        session: inout Session,
        logger: Logger
    ) async -> JSON? {
        await begin(line, session: &session, logger: logger).value
    }

    /// Starts answering one line, and returns once the connection may start its next request:
    /// with the answer, or for an overlapping op that let the connection go on (see
    /// `Operation.overlapping`), with the task that will give it.
    public func begin<Line: Collection<UInt8>>(
        _ line: Line,
        session: inout Session,
        logger: Logger
    ) async -> PendingAnswer {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return .ready(nil) }
        let request: Request
        switch Request.parse(line: line) {
        case .success(let parsed): request = parsed
        case .failure(let rejection):
            metrics.record(op: RequestMetrics.unknownOp, code: rejection.error.code.rawValue, duration: .zero)
            return .ready(Response.failure(id: rejection.id, rejection.error))
        }
        return await begin(request, session: &session, logger: logger)
    }

    /// The answer to one parsed request.
    public func respond(to request: Request, session: inout Session, logger: Logger) async -> JSON {
        // `begin` answers a parsed request with JSON, never with nil.
        await begin(request, session: &session, logger: logger).value ?? .null
    }

    /// Starts answering one parsed request (see `begin(_:session:logger:)`).
    public func begin(_ request: Request, session: inout Session, logger: Logger) async -> PendingAnswer {
        // Any other request is a barrier: it starts once every earlier one is answered, so
        // that it sees their effects (and `auth` never changes the key under a write).
        if registry[request.op]?.overlapping != true { await session.earlierRequestsAnswered() }
        var logger = logger
        logger[metadataKey: "op"] = "\(request.op)"
        // The client's id follows the request through every log line it causes.
        if let id = Self.requestID(request.id) { logger[metadataKey: "request_id"] = "\(id)" }
        if let key = session.identity?.keyID { logger[metadataKey: "key"] = "\(key)" }
        let started = ContinuousClock.now
        let checked: Checked
        do {
            checked = try await answer(request, session: &session, logger: logger)
        } catch {
            return .ready(finish(request, .failure(error), started: started, logger: logger))
        }
        switch checked {
        case .answered(let fields):
            return .ready(finish(request, .success(fields), started: started, logger: logger))
        case .overlapping(let operation, var context):
            // The handler runs on: the connection goes on once it admits the next request (or
            // has answered), and the task's answer is written in its turn.
            let admission = Admission()
            context.admitNext = { admission.open() }
            let task = Task { [self] in
                defer { admission.open() }
                do {
                    let fields = try await operation.respond(to: request.body, context: context)
                    return finish(request, .success(fields), started: started, logger: logger)
                } catch {
                    return finish(request, .failure(error), started: started, logger: logger)
                }
            }
            await admission.wait()
            return .pending(task)
        }
    }

    /// The envelope for a handler's result, with its metrics and log line.
    private func finish(
        _ request: Request,
        _ result: Result<AnswerFields, any Error>,
        started: ContinuousClock.Instant,
        logger: Logger
    ) -> JSON {
        let code: ErrorCode?
        let response: JSON
        switch result {
        case .success(let fields):
            response = Response.success(id: request.id, fields)
            code = nil
        case .failure(let error as ProtocolError):
            response = Response.failure(id: request.id, error)
            code = error.code
        case .failure(let error):
            let mapped = mapError(error, logger)
            response = Response.failure(id: request.id, mapped)
            code = mapped.code
        }
        let duration = ContinuousClock.now - started
        metrics.record(op: request.op, code: code?.rawValue ?? "ok", duration: duration)
        if let code {
            logger.debug("request refused", metadata: ["code": "\(code)", "duration": "\(duration)"])
        } else {
            logger.trace("request answered", metadata: ["duration": "\(duration)"])
        }
        return response
    }

    /// The client's `id` as log metadata: a string or a number as written, at most 128
    /// characters, control characters replaced (an id must not forge or bloat log lines); `nil`
    /// when absent.
    public static func requestID(_ id: JSON) -> String? {
        guard let text = id.stringValue ?? id.numberLiteral else { return nil }
        let limit = 128
        var cleaned = String(
            String.UnicodeScalarView(
                text.unicodeScalars.prefix(limit).map { $0.properties.generalCategory == .control ? "?" : $0 }
            )
        )
        if text.unicodeScalars.count > limit { cleaned += "…" }
        return cleaned
    }

    /// What `answer` found: the answer, or an overlapping op whose checks passed, to run.
    private enum Checked {
        case answered(AnswerFields)
        case overlapping(Operation, RequestContext)
    }

    private func answer(_ request: Request, session: inout Session, logger: Logger) async throws -> Checked {
        switch request.op {
        case "hello":
            return .answered(try hello(request))
        case "ping":
            return .answered([("pong", true)])
        case "auth":
            return .answered(try await authenticate(request, session: &session, logger: logger))
        default:
            guard let operation = registry[request.op] else {
                throw ProtocolError(
                    .unknownOp,
                    "'\(request.op)' is not an operation of \(registry.service)",
                    details: [["supported": .array(registry.names.map(JSON.string))]]
                )
            }
            let authenticator = self.authenticator
            let identity = session.identity
            let context = RequestContext(
                logger: logger,
                identity: identity,
                events: session.events,
                keyStillValid: {
                    guard let identity else { return true }
                    return try await authenticator.isValid(identity)
                },
                earlierRequestsAnswered: operation.overlapping ? session.earlierRequestsAnswered : { @Sendable in }
            )
            guard operation.access != .open else {
                return .answered(try await operation.respond(to: request.body, context: context))
            }
            guard let identity = session.identity else {
                throw ProtocolError(
                    .unauthenticated,
                    "'\(request.op)' needs a key: send {\"op\":\"auth\",\"token\":\"…\"} first",
                    details: [["needs": .string(operation.access.rawValue)]]
                )
            }
            guard identity.allows(operation.access) else {
                throw ProtocolError(
                    .forbidden,
                    "this key (\(identity.scopes.sorted().map(\.rawValue).joined(separator: ", "))) may not send '\(request.op)': it needs \(operation.access.rawValue)",
                    details: [["needs": .string(operation.access.rawValue), "key_id": .string(identity.keyID)]]
                )
            }
            if operation.access == .read {
                // A read changes nothing: the key is checked beside it, and a revoked key's
                // answer is thrown away.
                async let stillValid = authenticator.isValid(identity)
                let answer: Result<AnswerFields, any Error>
                do { answer = .success(try await operation.respond(to: request.body, context: context)) } catch {
                    answer = .failure(error)
                }
                guard try await stillValid else { throw revoked(identity, session: &session, logger: logger) }
                return .answered(try answer.get())
            }
            guard try await authenticator.isValid(identity) else {
                throw revoked(identity, session: &session, logger: logger)
            }
            // Everything that reads or changes the session is done: the handler may overlap.
            if operation.overlapping { return .overlapping(operation, context) }
            return .answered(try await operation.respond(to: request.body, context: context))
        }
    }

    /// `{"op":"auth","token":"…"}`: the connection acts as the token's key from now on.
    private func authenticate(_ request: Request, session: inout Session, logger: Logger) async throws -> AnswerFields {
        let reader = FieldReader(request.body)
        let token = reader.string("token", required: true)
        guard reader.problems.isEmpty, let token else { throw ProtocolError.invalidRequest(reader.problems) }
        // A failed attempt leaves the connection with no key, whatever it had before.
        session.identity = nil
        let identity = try await authenticator.authenticate(token: token, peer: session.peer)
        session.identity = identity
        logger.debug("authenticated", metadata: ["key": "\(identity.keyID)"])
        return [
            ("key_id", .string(identity.keyID)),
            ("reporter", identity.reporter.map(JSON.string) ?? .null),
            ("scopes", .array(identity.scopes.sorted().map { .string($0.rawValue) })),
        ]
    }

    private func revoked(_ identity: Identity, session: inout Session, logger: Logger) -> ProtocolError {
        session.identity = nil
        logger.notice("request refused: the connection's key was revoked", metadata: ["key": "\(identity.keyID)"])
        return ProtocolError(
            .unauthenticated,
            "the key \(identity.keyID) was revoked; authenticate with another key",
            details: [["key_id": .string(identity.keyID), "code": "revoked"]]
        )
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
            // Every op but hello, ping and auth needs a key (protocol 3).
            ("auth", "token"),
        ]
    }

    /// Maps any error to `internal`, logging it: the client learns nothing of the server's insides.
    public static func internalError(_ error: any Error, logger: Logger) -> ProtocolError {
        logger.error("request failed", metadata: ["error": "\(error)"])
        return ProtocolError(.internal, "the server failed to answer this request; see its log")
    }
}

/// An answer, or the task working it out for an overlapping op (see `Operation.overlapping`).
public enum PendingAnswer: Sendable {
    /// `nil` for a blank line, which gets no answer.
    case ready(JSON?)
    case pending(Task<JSON, Never>)

    /// The answer, once there is one.
    public var value: JSON? {
        get async {
            switch self {
            case .ready(let answer): return answer
            case .pending(let task): return await task.value
            }
        }
    }
}

/// A gate opened once, for one waiter: an overlapping op's connection waits at it until the
/// handler admits the next request or ends.
final class Admission: Sendable {
    private enum State {
        case closed
        case waiting(CheckedContinuation<Void, Never>)
        case open
    }
    private let state = Mutex(State.closed)

    /// Opens the gate; later calls do nothing.
    func open() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state = .open }
            if case .waiting(let continuation) = state { return continuation }
            return nil
        }
        waiter?.resume()
    }

    /// Returns once the gate is open.
    func wait() async {
        await withCheckedContinuation { continuation in
            let openAlready = state.withLock { state -> Bool in
                guard case .closed = state else { return true }
                state = .waiting(continuation)
                return false
            }
            if openAlready { continuation.resume() }
        }
    }
}
