import RootcausesJSON

/// A protocol error code, as sent in `error.code`.
///
/// A struct rather than an enum so that new codes can be added without breaking clients
/// that switch over the known ones (clients treat unknown codes like `internal`).
public struct ErrorCode: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// The line is not a JSON object.
    public static let badJSON = ErrorCode("bad_json")
    /// The line is longer than the server's limit; the rest of it was discarded.
    public static let lineTooLong = ErrorCode("line_too_long")
    /// `op` names no operation of this service.
    public static let unknownOp = ErrorCode("unknown_op")
    /// `hello` asked for a protocol version the server does not speak.
    public static let unsupportedProtocol = ErrorCode("unsupported_protocol")
    /// Missing or mistyped fields.
    public static let invalidRequest = ErrorCode("invalid_request")
    /// A well-formed submission breaks the catalogue's rules; one detail per problem.
    public static let validationFailed = ErrorCode("validation_failed")
    /// The same submission_id was already used with different content.
    public static let conflict = ErrorCode("conflict")
    /// The database cannot be reached; nothing was stored; safe to retry.
    public static let unavailable = ErrorCode("unavailable")
    /// A read's `min_seq` was not aggregated in time.
    public static let notReady = ErrorCode("not_ready")
    /// The server is at a limit (connections, or input held for unfinished lines); retry later.
    public static let overloaded = ErrorCode("overloaded")
    /// The op needs a key: send `auth` with a valid token first (or the key was revoked, or
    /// the token is not valid).
    public static let unauthenticated = ErrorCode("unauthenticated")
    /// The connection's key may not do this (its scope, or another reporter's data).
    public static let forbidden = ErrorCode("forbidden")
    /// Too many failed `auth` attempts from this address; retry after `retry_after_ms`.
    public static let throttled = ErrorCode("throttled")
    /// A client spoke plain text to a port that speaks TLS; the connection is closed.
    public static let tlsRequired = ErrorCode("tls_required")
    /// An unexpected fault on the server.
    public static let `internal` = ErrorCode("internal")

    /// Every code this build sends, for metrics labelled by code.
    public static let all: [ErrorCode] = [
        .badJSON, .lineTooLong, .unknownOp, .unsupportedProtocol, .invalidRequest, .validationFailed, .conflict,
        .unavailable, .notReady, .overloaded, .unauthenticated, .forbidden, .throttled, .tlsRequired, .internal,
    ]
}

/// An error answer: code, message and details, as the envelope carries them.
public struct ProtocolError: Error, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var details: [JSON]

    public init(_ code: ErrorCode, _ message: String, details: [JSON] = []) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }

    public var json: JSON {
        ["code": .string(code.rawValue), "message": .string(message), "details": .array(details)]
    }
}
