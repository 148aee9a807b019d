import Logging
import RootcausesJSON

/// What a handler gets besides its decoded request.
public struct RequestContext: Sendable {
    /// The service's logger, with the request's `op` (and the peer) in its metadata.
    public var logger: Logger
    /// The connection's key; `nil` only for open ops sent before `auth`.
    public var identity: Identity?
    /// The connection's pushed lines (subscriptions); `nil` in process.
    public var events: (any EventSink)?
    /// Whether the request's key is still valid, asked again later by work that outlives the
    /// request (a subscription stops when its key is revoked). Always true without a key.
    public var keyStillValid: @Sendable () async throws -> Bool
    /// For an op declared `overlapping`: lets the connection start on its next request before
    /// this one is answered. Call it once what must happen in request order is done (a write is
    /// queued behind the connection's earlier ones); calling it again does nothing. Answers
    /// still go out in request order. Elsewhere it does nothing.
    public var admitNext: @Sendable () -> Void
    /// For an op declared `overlapping`: waits until every earlier request of the connection is
    /// answered, for a handler whose answer depends on their effects (a dry run looks for a
    /// submission a moment ago). Elsewhere it returns at once: earlier requests are answered.
    public var earlierRequestsAnswered: @Sendable () async -> Void

    public init(
        logger: Logger,
        identity: Identity? = nil,
        events: (any EventSink)? = nil,
        keyStillValid: @escaping @Sendable () async throws -> Bool = { true },
        admitNext: @escaping @Sendable () -> Void = {},
        earlierRequestsAnswered: @escaping @Sendable () async -> Void = {}
    ) {
        self.logger = logger
        self.identity = identity
        self.events = events
        self.keyStillValid = keyStillValid
        self.admitNext = admitNext
        self.earlierRequestsAnswered = earlierRequestsAnswered
    }

    /// The connection's key, for handlers of ops that need one (the responder has checked it).
    public func requireIdentity() throws -> Identity {
        guard let identity else { throw ProtocolError(.unauthenticated, "this op needs a key: send auth first") }
        return identity
    }
}

/// The fields of a successful answer, in order, after `id` and `ok`.
public typealias AnswerFields = [(String, JSON)]

/// A request body an op decodes with a `FieldReader`, collecting every problem.
///
/// `decode` reads all fields it can and reports the rest; it returns `nil` only when it could
/// not build a value, and then it has reported why. A request with any reported problem is
/// answered `invalid_request` with all of them, before the handler runs.
public protocol OperationInput: Sendable {
    static func decode(from reader: FieldReader) -> Self?
}

/// For ops that take no fields besides `op` and `id`.
public struct NoInput: OperationInput {
    public init() {}
    public static func decode(from reader: FieldReader) -> NoInput? { NoInput() }
}

/// One op of a service, declared once: its name, what it needs of the key, how its request is
/// decoded, and its handler.
public struct Operation: Sendable {
    public let name: String
    /// What the connection's key must allow; checked by the responder before decoding.
    public let access: Access
    /// Whether the connection may read and start its next request while this one is still
    /// being answered, from the moment its handler calls `RequestContext.admitNext` (a write
    /// op, once its write is queued in order). Other ops are barriers: they start once every
    /// earlier request is answered, and the next request starts once they are done. An
    /// overlapping handler must not depend on the connection's state: no `events` (their
    /// after-answer actions would follow another request's answer).
    public let overlapping: Bool
    private let run: @Sendable (JSON, RequestContext) async throws -> AnswerFields

    /// Declares op `name`: requests are decoded as `Input`, then answered by `handler`.
    /// The handler throws `ProtocolError` for answers such as `conflict`; anything else it
    /// throws is mapped by the server (database unreachable: `unavailable`, else `internal`).
    public init<Input: OperationInput>(
        _ name: String,
        _ input: Input.Type = Input.self,
        access: Access,
        overlapping: Bool = false,
        handler: @escaping @Sendable (Input, RequestContext) async throws -> AnswerFields
    ) {
        self.init(name, access: access, overlapping: overlapping, decode: Input.decode(from:), handler: handler)
    }

    /// Declares op `name` with its own decoding, for requests whose checks need the service's
    /// data (names that must exist in the catalogue), so that every problem is still listed at once.
    public init<Input: Sendable>(
        _ name: String,
        access: Access,
        overlapping: Bool = false,
        decode: @escaping @Sendable (FieldReader) -> Input?,
        handler: @escaping @Sendable (Input, RequestContext) async throws -> AnswerFields
    ) {
        self.name = name
        self.access = access
        self.overlapping = overlapping
        self.run = { body, context in
            let reader = FieldReader(body)
            let decoded = decode(reader)
            guard reader.problems.isEmpty, let decoded else {
                throw ProtocolError.invalidRequest(
                    reader.problems.isEmpty
                        ? [Problem(path: "", code: "invalid", message: "the request could not be read")]
                        : reader.problems
                )
            }
            return try await handler(decoded, context)
        }
    }

    /// Decodes `body` and runs the handler.
    public func respond(to body: JSON, context: RequestContext) async throws -> AnswerFields {
        try await run(body, context)
    }
}

/// The ops of one service. `hello` and `ping` belong to every service and are answered by
/// the `Responder`; a registry holds the rest, each declared once.
public struct OperationRegistry: Sendable {
    /// `intake`, `aggregation` or `reporting`, as `hello` reports it.
    public let service: String
    public let operations: [Operation]
    private let byName: [String: Operation]

    public init(service: String, _ operations: [Operation]) {
        var byName: [String: Operation] = [:]
        for operation in operations {
            precondition(!Responder.builtInOperations.contains(operation.name), "\(operation.name) is built in")
            precondition(
                byName.updateValue(operation, forKey: operation.name) == nil,
                "op \(operation.name) declared twice"
            )
        }
        self.service = service
        self.operations = operations
        self.byName = byName
    }

    /// Every op a client may send, as `hello` lists them.
    public var names: [String] { Responder.builtInOperations + operations.map(\.name) }

    public subscript(name: String) -> Operation? { byName[name] }
}
