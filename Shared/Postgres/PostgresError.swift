/// An error from the database layer, carrying PostgreSQL's SQLSTATE when the server sent one.
///
/// Like postgres-nio's errors, the kind of failure is an extensible `Code` rather than an enum,
/// so new kinds can be added without breaking callers that switch over the known ones.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case connectionFailed, connectionLost, server, unexpectedResult, copyFailed, poolShutDown, invalidParameter,
                decodingFailed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No connection could be opened.
        public static let connectionFailed = Code(.connectionFailed)
        /// An open connection broke while in use.
        public static let connectionLost = Code(.connectionLost)
        /// The server rejected a statement; see `sqlState`.
        public static let server = Code(.server)
        /// The server answered with something this layer did not expect.
        public static let unexpectedResult = Code(.unexpectedResult)
        /// A COPY could not send its data.
        public static let copyFailed = Code(.copyFailed)
        /// The pool has been shut down.
        public static let poolShutDown = Code(.poolShutDown)
        /// A parameter or the SQL text cannot be sent (it holds a NUL character).
        public static let invalidParameter = Code(.invalidParameter)
        /// A value in a result could not be decoded as the type asked for: the column is missing,
        /// it is NULL where the type has no NULL, or its text is not a value of that type.
        public static let decodingFailed = Code(.decodingFailed)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The server's message, or libpq's.
    public var message: String
    /// The five-character SQLSTATE, when the server sent one (for example `23505`).
    public var sqlState: String?
    /// The server's DETAIL field, if any.
    public var detail: String?

    public init(code: Code, message: String, sqlState: String? = nil, detail: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
    }

    /// True when the failure means the database is unreachable or going away, so the work
    /// was not done and may be retried later.
    public var isConnectionProblem: Bool {
        if code == .connectionFailed || code == .connectionLost || code == .poolShutDown { return true }
        guard let state = sqlState else { return false }
        // 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown, cannot connect now.
        return state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03"
    }

    /// True for a unique-constraint violation (SQLSTATE 23505).
    public var isUniqueViolation: Bool { sqlState == "23505" }

    public var description: String {
        var text = "PostgreSQL \(code): \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += " — \(detail)" }
        return text
    }
}
