import CLibPQ
import Logging
import NIOConcurrencyHelpers
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One libpq connection.
///
/// Every method blocks the calling thread: call them from a thread pool
/// (`PostgresPool` does), never from an event loop. A connection serves one task at a time;
/// the lock only guards against accidental concurrent use, which libpq does not support.
///
/// `@unchecked Sendable`: the `PGconn` handle (an `OpaquePointer`) and the mutable state are only
/// touched with `lock` held, and libpq allows a connection to move between threads as long as
/// one thread at a time uses it.
public final class PostgresConnection: @unchecked Sendable {
    private let handle: OpaquePointer
    private let lock = NIOLock()
    private let noticeSink: NoticeSink
    private var closed = false
    /// SQL text to the statement prepared for it on this connection.
    private var preparedStatements: [String: PreparedStatement] = [:]
    /// Statements prepared so far (they are named by it) and uses so far (the clock of `lastUse`).
    private var statementsPrepared = 0
    private var statementUses: UInt64 = 0
    /// When the plans cached for this session's prepared statements were last thrown away.
    private var plansDiscardedAt = ContinuousClock.now

    private struct PreparedStatement {
        let name: String
        var lastUse: UInt64
    }

    /// The most statements a connection keeps prepared; past it, the least recently used is
    /// deallocated. Statements whose text carries their shape (which filters a read has) are
    /// many, and each keeps its plan in the server's memory for the session.
    public static let maximumPreparedStatements = 256

    /// How PostgreSQL plans this connection's prepared statements (`plan_cache_mode`).
    public enum PlanCacheMode: String, Sendable {
        /// Planned for their actual parameters at every execution. The default: a generic plan
        /// made while the tables were small stayed in use as they grew (aggregation, whose
        /// tables grow by the second, fell minutes behind).
        case forceCustom = "force_custom_plan"
        /// PostgreSQL's own choice: after five custom plans, a generic plan is kept when its
        /// estimated cost is no worse than theirs, until ANALYZE or DDL invalidates it. For
        /// reads whose planning costs more than their execution.
        case automatic = "auto"
        /// One generic plan per statement, made at its first execution and again after ANALYZE
        /// or DDL. Only for statements whose text carries their shape (which filters, which
        /// branch), values alone being parameters: their generic plans are as good as custom
        /// ones, which `automatic` cannot tell when a parameter is a list of unknown length.
        case forceGeneric = "force_generic_plan"
    }

    /// Opens a connection. `conninfo` is a `postgresql://` URL or a `key=value` string.
    public init(
        conninfo: String,
        applicationName: String = "rootcauses",
        planCacheMode: PlanCacheMode = .forceCustom,
        logger: Logger
    ) throws(PostgresError) {
        // Defaults first: settings spelled in the URL win over them. JIT is off: it compiled
        // for a second on short statements whose row estimates were poor (seen on aggregation).
        // Keepalives from this side too: a server that vanished without a word (a partition, a
        // dead host) is noticed in about a minute, not after the system's two hours; that
        // matters most to a session that only waits (aggregation's listener).
        let keywords = [
            "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
            "application_name", "options", "dbname",
        ]
        let values = [
            "5", "1", "30", "10", "3", applicationName,
            // A client that vanishes mid-transaction must not hold locks (the seq counter) for long.
            "-c jit=off -c plan_cache_mode=\(planCacheMode.rawValue) -c idle_in_transaction_session_timeout=60000 -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
            conninfo,
        ]
        let connection: OpaquePointer? = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection)).trimmingTrailingWhitespace()
            PQfinish(connection)
            throw PostgresError(code: .connectionFailed, message: message)
        }
        self.handle = connection
        self.noticeSink = NoticeSink(logger: logger)
        // Route NOTICE and WARNING messages to the logger instead of stderr.
        PQsetNoticeProcessor(
            connection,
            { context, message in
                guard let context, let message else { return }
                let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
                sink.logger.notice(
                    "postgres notice",
                    metadata: ["message": "\(String(cString: message).trimmingTrailingWhitespace())"]
                )
            },
            Unmanaged.passUnretained(noticeSink).toOpaque()
        )
    }

    deinit {
        if !closed { PQfinish(handle) }
    }

    /// Closes the connection; later calls fail with `connectionLost`.
    public func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            PQfinish(handle)
        }
    }

    /// True while the connection is open and usable.
    public var isHealthy: Bool {
        lock.withLock { !closed && PQstatus(handle) == CONNECTION_OK }
    }

    /// Tells whether a connection that sat idle in a pool can still be used, without blocking.
    ///
    /// A server that shut down or restarted (or ended the session: `pg_terminate_backend`,
    /// `idle_session_timeout`) sent a FATAL error and closed the socket. libpq only notices once
    /// it reads the close, and `PQconsumeInput` alone reads the error message but leaves the
    /// status at `CONNECTION_OK` (it routes an error that arrives while idle to the notice
    /// processor). So: an idle session expects nothing from the server, and any pending input
    /// (the error, the close, or anything unexpected) means the connection is not reused.
    public func isAliveAfterIdle() -> Bool {
        lock.withLock {
            guard !closed, PQstatus(handle) == CONNECTION_OK, PQtransactionStatus(handle) == PQTRANS_IDLE else {
                return false
            }
            let socket = PQsocket(handle)
            guard socket >= 0 else { return false }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 0)
            if ready == 0 { return true }  // nothing pending: alive
            // Read what is there (and, for a closed socket, let libpq see the close) so the
            // FATAL message reaches the log through the notice processor before we drop it.
            if PQconsumeInput(handle) == 1 { _ = PQisBusy(handle) }
            return false
        }
    }

    /// The server's process id for this session (useful in logs and tests).
    public var backendPID: Int32 { lock.withLock { PQbackendPID(handle) } }

    /// Runs one statement; its interpolated values are sent as parameters, never spliced in.
    ///
    /// ```swift
    /// let rows = try connection.query("SELECT seq FROM submissions WHERE reporter = \(reporter)" as PostgresQuery)
    /// ```
    /// The statement is prepared on this connection the first time its SQL text is seen and
    /// reused after that.
    @discardableResult
    public func query(_ query: PostgresQuery) throws -> PostgresRows {
        try lock.withLock { () throws -> PostgresRows in
            try ensureOpen()
            let texts = try checkedTexts(query)
            let name = try preparedName(for: query.sql, parameterCount: texts.count)
            let result: OpaquePointer? = withOptionalCStrings(texts) { pointers in
                PQexecPrepared(handle, name, Int32(texts.count), pointers, nil, nil, 0)
            }
            return try consume(result)
        }
    }

    /// Sends several statements at once (libpq pipeline mode) and reads their results: one
    /// network round trip for all of them. The server runs them in order; after the first
    /// failure the rest are skipped, and that failure is thrown. Inside an explicit transaction
    /// (`BEGIN` first) a failure leaves it aborted: the caller rolls back.
    public func pipeline(_ queries: [PostgresQuery]) throws -> [PostgresRows] {
        try lock.withLock { () throws -> [PostgresRows] in
            try ensureOpen()
            let allTexts = try queries.map { try checkedTexts($0) }
            // Preparing is a round trip of its own and not allowed in pipeline mode: do it first.
            let names = try zip(queries, allTexts).map { query, texts in
                try preparedName(for: query.sql, parameterCount: texts.count)
            }
            guard PQenterPipelineMode(handle) == 1 else { throw connectionError() }
            var sent = 0
            var sendFailure: PostgresError?
            for (name, texts) in zip(names, allTexts) {
                let ok = withOptionalCStrings(texts) { pointers in
                    PQsendQueryPrepared(handle, name, Int32(texts.count), pointers, nil, nil, 0)
                }
                if ok != 1 {
                    sendFailure = PostgresError(code: .connectionLost, message: lastErrorMessage())
                    break
                }
                sent += 1
            }
            if PQpipelineSync(handle) != 1, sendFailure == nil {
                sendFailure = PostgresError(code: .connectionLost, message: lastErrorMessage())
            }
            // Read every result up to the sync point, even after a failure, so the connection
            // is left clean for the next command.
            var results: [PostgresRows] = []
            var firstError: PostgresError? = sendFailure
            var synced = sendFailure != nil && sent == 0
            var guardCount = 0
            while !synced {
                guard let result = PQgetResult(handle) else {
                    // End of one statement's results; a dead connection also ends here.
                    if PQstatus(handle) != CONNECTION_OK {
                        firstError = firstError ?? connectionError()
                        break
                    }
                    guardCount += 1
                    if guardCount > queries.count * 2 + 4 { break }
                    continue
                }
                let status = PQresultStatus(result)
                switch status {
                case PGRES_PIPELINE_SYNC:
                    synced = true
                    PQclear(result)
                case PGRES_PIPELINE_ABORTED:
                    PQclear(result)
                default:
                    do {
                        results.append(try consume(result))  // consume clears the result
                    } catch let error as PostgresError {
                        firstError = firstError ?? error
                    }
                }
            }
            if PQexitPipelineMode(handle) != 1 && firstError == nil {
                firstError = PostgresError(
                    code: .unexpectedResult,
                    message: "could not leave pipeline mode: \(lastErrorMessage())"
                )
            }
            if let firstError { throw firstError }
            return results
        }
    }

    /// Runs one or more statements without parameters (for schema scripts and transaction control).
    ///
    /// `sql` is sent as is: build it from constants only (quote names with
    /// `PostgresQuery.quoteIdentifier`).
    public func execute(_ sql: String) throws {
        try lock.withLock { () throws in
            try ensureOpen()
            try checkNoNUL(sql)
            _ = try consume(PQexec(handle, sql))
        }
    }

    /// How long ago the plans PostgreSQL caches for this session's prepared statements were
    /// last thrown away (``discardCachedPlans()``), or the session opened.
    public var cachedPlansAge: Duration {
        lock.withLock { ContinuousClock.now - plansDiscardedAt }
    }

    /// Throws away every plan cached for this session's prepared statements (`DISCARD PLANS`):
    /// they stay prepared, and each is planned again, for the tables as they are now, at its
    /// next use.
    public func discardCachedPlans() throws {
        try execute("DISCARD PLANS")
        lock.withLock { plansDiscardedAt = .now }
    }

    /// The notifications that arrive within `timeout` on the channels this session listens to
    /// (after `execute("LISTEN …")`): those already read, else the first batch to arrive, else
    /// none once `timeout` has passed.
    ///
    /// Blocks the calling thread, and holds the connection, while it waits: listen on a
    /// connection of its own, never on a pooled one (a pool would see the pending notifications
    /// as input from a dead session). A session that is not listening simply waits out `timeout`.
    public func notifications(waitingUpTo timeout: Duration) throws -> [PostgresNotification] {
        try lock.withLock { () throws -> [PostgresNotification] in
            try ensureOpen()
            // What TLS has decrypted already is invisible to poll(2): read it first (libpq's
            // sockets do not block, so this only takes what is there).
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(code: .connectionLost, message: lastErrorMessage())
            }
            var arrived = takeNotifications()
            guard arrived.isEmpty else { return arrived }
            let socket = PQsocket(handle)
            guard socket >= 0 else { throw connectionError() }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(clamping: timeout.wholeMilliseconds)
            let ready = poll(&descriptor, 1, max(0, milliseconds))
            // Timed out or interrupted: nothing yet (the caller asks again). Any other failure
            // is thrown, never taken for a timeout the caller would retry at once, forever.
            if ready == 0 || (ready < 0 && errno == EINTR) { return [] }
            guard ready > 0 else {
                throw PostgresError(code: .connectionLost, message: "poll failed: errno \(errno)")
            }
            // Reads what came: notifications, or the error and close of a session that ended.
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(code: .connectionLost, message: lastErrorMessage())
            }
            arrived = takeNotifications()
            // Readable and nothing to read but a close: the server went away.
            if arrived.isEmpty, PQstatus(handle) != CONNECTION_OK {
                throw PostgresError(code: .connectionLost, message: lastErrorMessage())
            }
            return arrived
        }
    }

    /// The notifications libpq has read and not handed out yet.
    private func takeNotifications() -> [PostgresNotification] {
        var arrived: [PostgresNotification] = []
        while let notification = PQnotifies(handle) {
            arrived.append(
                PostgresNotification(
                    channel: String(cString: notification.pointee.relname),
                    payload: notification.pointee.extra.map { String(cString: $0) } ?? "",
                    senderPID: notification.pointee.be_pid
                )
            )
            PQfreemem(notification)
        }
        return arrived
    }

    /// The SCRAM-SHA-256 verifier of `password` for `user`, computed here (libpq's
    /// `PQencryptPasswordConn`): `ALTER ROLE … PASSWORD` can then carry the verifier, so the
    /// clear password never reaches the server's logs or statistics.
    public func scramVerifier(password: String, user: String) throws -> String {
        try lock.withLock { () throws in
            try ensureOpen()
            guard let encrypted = PQencryptPasswordConn(handle, password, user, "scram-sha-256") else {
                throw connectionError()
            }
            defer { PQfreemem(encrypted) }
            return String(cString: encrypted)
        }
    }

    /// Runs `body` inside a transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body(self)
            // COMMIT of a transaction that already failed answers ROLLBACK, not an error.
            let tag = try query("COMMIT" as PostgresQuery).commandTag
            guard tag == "COMMIT" else {
                throw PostgresError(
                    code: .server,
                    message: "the transaction was rolled back (\(tag)) instead of committed"
                )
            }
            return value
        } catch {
            if isHealthy { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// Streams rows into a table with `COPY ... FROM STDIN` (text format).
    ///
    /// `lines` are already-escaped lines (see `postgresCopyEscape`), each ending in `\n`.
    /// Returns the number of rows copied.
    @discardableResult
    public func copyIn(_ sql: String, lines: [String]) throws -> Int {
        try copyIn(sql) { send in
            var batch = [UInt8]()
            batch.reserveCapacity(64 * 1024)
            for line in lines {
                batch.append(contentsOf: line.utf8)
                if batch.count >= 60 * 1024 {
                    guard send(batch[...]) else { return }
                    batch.removeAll(keepingCapacity: true)
                }
            }
            _ = send(batch[...])
        }
    }

    /// Copies `rows` into a table with `COPY ... FROM STDIN` (text format); returns the number
    /// of rows copied. Inside a transaction, a failure leaves it aborted: the caller rolls back.
    @discardableResult
    public func copyIn(_ sql: String, rows: PostgresCopyRows) throws -> Int {
        try copyIn(sql) { send in
            let chunk = 60 * 1024
            var start = 0
            while start < rows.bytes.count {
                let end = min(start + chunk, rows.bytes.count)
                guard send(rows.bytes[start..<end]) else { return }
                start = end
            }
        }
    }

    /// Starts `COPY … FROM STDIN`, lets `feed` send the data (its `send` answers false once
    /// sending failed: stop then), ends the copy and reads its result.
    private func copyIn(_ sql: String, feed: (_ send: (ArraySlice<UInt8>) -> Bool) -> Void) throws -> Int {
        try lock.withLock { () throws -> Int in
            try ensureOpen()
            guard let start = PQexec(handle, sql) else { throw connectionError() }
            let status = PQresultStatus(start)
            guard status == PGRES_COPY_IN else {
                defer { PQclear(start) }
                throw resultError(start)
            }
            PQclear(start)
            var failure: PostgresError?
            feed { bytes in
                guard failure == nil else { return false }
                guard !bytes.isEmpty else { return true }
                let sent = bytes.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
                }
                if sent != 1 { failure = PostgresError(code: .copyFailed, message: lastErrorMessage()) }
                return failure == nil
            }
            let endStatus =
                failure == nil ? PQputCopyEnd(handle, nil) : PQputCopyEnd(handle, "client could not send data")
            if endStatus != 1, failure == nil {
                failure = PostgresError(code: .copyFailed, message: lastErrorMessage())
            }
            // Drain every result before the next command, as libpq requires.
            var outcome: Result<Int, PostgresError> = .success(0)
            while let result = PQgetResult(handle) {
                if PQresultStatus(result) == PGRES_COMMAND_OK {
                    let tuples = String(cString: PQcmdTuples(result))
                    outcome = .success(Int(tuples) ?? 0)
                } else {
                    outcome = .failure(resultError(result))
                }
                PQclear(result)
            }
            // The server's own error says most (a shutdown's SQLSTATE, say); a connection that
            // died while sending is a lost connection, which callers may retry elsewhere.
            if case .failure(let serverError) = outcome { throw serverError }
            if let failure { throw PQstatus(handle) == CONNECTION_OK ? failure : connectionError() }
            return try outcome.get()
        }
    }

    // MARK: - Internals (call with the lock held)

    /// The name of this connection's prepared statement for `sql`, preparing it the first time:
    /// statements run again and again (every submission, every read) are parsed once, and
    /// planned once where `plan_cache_mode` lets PostgreSQL keep a generic plan.
    private func preparedName(for sql: String, parameterCount: Int) throws -> String {
        statementUses += 1
        if let known = preparedStatements[sql] {
            preparedStatements[sql]?.lastUse = statementUses
            return known.name
        }
        if preparedStatements.count >= Self.maximumPreparedStatements,
            let oldest = preparedStatements.min(by: { $0.value.lastUse < $1.value.lastUse })
        {
            // The statements of a pipeline being prepared were just used: never the oldest.
            _ = try consume(PQexec(handle, "DEALLOCATE \(oldest.value.name)"))
            preparedStatements[oldest.key] = nil
        }
        statementsPrepared += 1
        let name = "rootcauses_\(statementsPrepared)"
        _ = try consume(PQprepare(handle, name, sql, Int32(parameterCount), nil))
        preparedStatements[sql] = PreparedStatement(name: name, lastUse: statementUses)
        return name
    }

    /// Parameters as C strings must not hold NUL: libpq would cut them short, silently
    /// storing (and hashing) less than was given. PostgreSQL text cannot hold NUL anyway.
    private func checkedTexts(_ query: PostgresQuery) throws(PostgresError) -> [String?] {
        try checkNoNUL(query.sql)
        let texts = query.binds.texts
        for (i, text) in texts.enumerated() where text?.utf8.contains(0) == true {
            throw PostgresError(
                code: .invalidParameter,
                message: "parameter $\(i + 1) contains a NUL character, which PostgreSQL text cannot hold"
            )
        }
        return texts
    }

    /// SQL cut short at a NUL (a quoted identifier holding one, say) would run something else.
    private func checkNoNUL(_ sql: String) throws(PostgresError) {
        if sql.utf8.contains(0) {
            throw PostgresError(code: .invalidParameter, message: "the SQL text contains a NUL character")
        }
    }

    /// True when no transaction is open (a connection in any other state must not be reused).
    public var isIdle: Bool {
        lock.withLock {
            !closed && PQstatus(handle) == CONNECTION_OK && PQtransactionStatus(handle) == PQTRANS_IDLE
                && PQpipelineStatus(handle) == PQ_PIPELINE_OFF
        }
    }

    private func ensureOpen() throws(PostgresError) {
        guard !closed else { throw PostgresError(code: .connectionLost, message: "connection is closed") }
        if PQstatus(handle) != CONNECTION_OK {
            throw PostgresError(code: .connectionLost, message: lastErrorMessage())
        }
    }

    private func lastErrorMessage() -> String {
        String(cString: PQerrorMessage(handle)).trimmingTrailingWhitespace()
    }

    private func connectionError() -> PostgresError {
        PostgresError(
            code: PQstatus(handle) == CONNECTION_OK ? .unexpectedResult : .connectionLost,
            message: lastErrorMessage()
        )
    }

    private func resultError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let pointer = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: pointer)
        }
        let message = field("M") ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingWhitespace()
        let sqlState = field("C")
        let lost = PQstatus(handle) != CONNECTION_OK
        return PostgresError(
            code: lost && sqlState == nil ? .connectionLost : .server,
            message: message.isEmpty ? lastErrorMessage() : message,
            sqlState: sqlState,
            detail: field("D")
        )
    }

    private func consume(_ result: OpaquePointer?) throws(PostgresError) -> PostgresRows {
        guard let result else { throw connectionError() }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            let tuples = String(cString: PQcmdTuples(result))
            return PostgresRows(
                columns: [],
                rows: [],
                affectedRows: Int(tuples) ?? 0,
                commandTag: String(cString: PQcmdStatus(result))
            )
        case PGRES_TUPLES_OK:
            let rowCount = Int(PQntuples(result))
            let columnCount = Int(PQnfields(result))
            var columns = [String]()
            columns.reserveCapacity(columnCount)
            for c in 0..<columnCount { columns.append(String(cString: PQfname(result, Int32(c)))) }
            var rows = [[String?]]()
            rows.reserveCapacity(rowCount)
            for r in 0..<rowCount {
                var row = [String?]()
                row.reserveCapacity(columnCount)
                for c in 0..<columnCount {
                    if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                        row.append(nil)
                    } else {
                        row.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                    }
                }
                rows.append(row)
            }
            return PostgresRows(
                columns: columns,
                rows: rows,
                affectedRows: rowCount,
                commandTag: String(cString: PQcmdStatus(result))
            )
        default:
            throw resultError(result)
        }
    }
}

extension PostgresConnection {
    /// Opens a connection, runs `body` with it on a thread of `NIOThreadPool.singleton` (libpq
    /// blocks), and closes it: for one-off work, such as a CLI command or a test's setup,
    /// that needs no pool.
    public static func withConnection<T: Sendable>(
        conninfo: String,
        applicationName: String = "rootcauses",
        logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive {
            let connection = try PostgresConnection(
                conninfo: conninfo,
                applicationName: applicationName,
                logger: logger
            )
            defer { connection.close() }
            return try body(connection)
        }
    }
}

/// Holds the logger the C notice callback writes to; kept alive by the connection.
private final class NoticeSink: Sendable {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    withOptionalCStrings(strings.map { Optional($0) }) { pointers in
        pointers.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: strings.count + 1) { body($0) }
    }
}

/// Calls `body` with a NULL-terminated array of C strings (NULL entries for `nil`).
private func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    var owned: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0) } }
    owned.append(nil)
    defer { for pointer in owned { free(pointer) } }
    return owned.withUnsafeBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { body($0) }
    }
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        var scalars = Substring(self)
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
