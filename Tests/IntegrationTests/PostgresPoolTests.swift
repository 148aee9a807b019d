import Logging
import RootcausesPostgres
import RootcausesTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// The pool against a real server: dead connections, retries, waiting, shutting down.
    @Suite struct PostgresPoolTests {
        static let logger = Logger(label: "tests")

        /// Ends `pid`'s session from another connection and waits until it is gone.
        static func terminate(backend pid: Int32, url: String) throws {
            let killer = try PostgresConnection(conninfo: url, applicationName: "tests-killer", logger: logger)
            defer { killer.close() }
            try killer.query("SELECT pg_terminate_backend(\(pid))" as PostgresQuery)
            for _ in 0..<200 {
                let left = try killer.query(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = \(pid)" as PostgresQuery
                )
                if try left.first?.decode(column: "n", as: Int.self) == 0 { return }
                usleep(10_000)
            }
            Issue.record("backend \(pid) did not go away")
        }

        /// A listening session gets what other sessions notify once they commit, with its
        /// payload; a wait with nothing sent ends empty; a wait on a session the server ended
        /// throws `connectionLost` instead of waiting forever.
        @Test func aListeningSessionReceivesNotifications() async throws {
            let url = try await TestDatabase.create()
            let listener = try PostgresConnection(conninfo: url, applicationName: "tests-listener", logger: Self.logger)
            defer { listener.close() }
            let sender = try PostgresConnection(conninfo: url, applicationName: "tests-sender", logger: Self.logger)
            defer { sender.close() }
            try listener.execute("LISTEN tests_channel")
            #expect(try listener.notifications(waitingUpTo: .milliseconds(50)).isEmpty)
            // Inside a transaction nothing is sent before COMMIT; the same notification twice arrives once.
            try sender.transaction { connection in
                try connection.query("SELECT pg_notify('tests_channel', 'seq 7')" as PostgresQuery)
                try connection.query("SELECT pg_notify('tests_channel', 'seq 7')" as PostgresQuery)
                try connection.query("SELECT pg_notify('other_channel', 'not ours')" as PostgresQuery)
                #expect(try listener.notifications(waitingUpTo: .milliseconds(50)).isEmpty)
            }
            var arrived: [PostgresNotification] = []
            for _ in 0..<100 where arrived.isEmpty {
                arrived = try listener.notifications(waitingUpTo: .milliseconds(100))
            }
            #expect(
                arrived == [
                    PostgresNotification(channel: "tests_channel", payload: "seq 7", senderPID: sender.backendPID)
                ]
            )
            #expect(try listener.notifications(waitingUpTo: .milliseconds(50)).isEmpty)
            try Self.terminate(backend: listener.backendPID, url: url)
            #expect {
                for _ in 0..<100 { _ = try listener.notifications(waitingUpTo: .milliseconds(100)) }
            } throws: { ($0 as? PostgresError)?.code == .connectionLost }
        }

        @Test func aConnectionTheServerClosedWhileIdleIsReplaced() async throws {
            let url = try await TestDatabase.create()
            let pool = PostgresPool(conninfo: url, maximumConnections: 2, applicationName: "tests", logger: Self.logger)
            let first = try await pool.withConnection { $0.backendPID }
            try Self.terminate(backend: first, url: url)
            // Not marked idempotent: the dead connection must be noticed before the statement is sent.
            let (second, one) = try await pool.withConnection { connection in
                (
                    connection.backendPID,
                    try connection.query("SELECT 1 AS one" as PostgresQuery).first?.decode(column: "one", as: Int.self)
                )
            }
            #expect(one == 1)
            #expect(second != first)
            await pool.shutdown()
        }

        @Test func idempotentWorkRunsOnceMoreWhenAReusedConnectionDiesUnderIt() async throws {
            let url = try await TestDatabase.create()
            let pool = PostgresPool(conninfo: url, maximumConnections: 2, applicationName: "tests", logger: Self.logger)
            _ = try await pool.withConnection { $0.backendPID }  // one idle connection to reuse
            let attempts = AttemptCounter()
            let value = try await pool.withConnection(idempotent: true) { connection in
                if attempts.increment() == 1 { try Self.terminate(backend: connection.backendPID, url: url) }
                return try connection.query("SELECT 41 + 1 AS n" as PostgresQuery).first?.decode(
                    column: "n",
                    as: Int.self
                )
            }
            #expect(value == 42)
            #expect(attempts.value == 2)

            // Work that may not run twice fails instead, with a connection problem (→ unavailable).
            _ = try await pool.withConnection { $0.backendPID }
            let error = await #expect(throws: PostgresError.self) {
                try await pool.withConnection { connection in
                    try Self.terminate(backend: connection.backendPID, url: url)
                    return try connection.query("SELECT 1" as PostgresQuery).count
                }
            }
            #expect(error?.isConnectionProblem == true)
            // And the pool is fine afterwards.
            #expect(try await pool.withConnection { try $0.query("SELECT 1" as PostgresQuery).count } == 1)
            await pool.shutdown()
        }

        @Test func aCancelledWaiterStopsWaiting() async throws {
            let url = try await TestDatabase.create()
            let pool = PostgresPool(conninfo: url, maximumConnections: 1, applicationName: "tests", logger: Self.logger)
            let holder = Task { try await pool.withConnection { _ in usleep(1_500_000) } }
            try await Task.sleep(for: .milliseconds(200))
            let waiter = Task { try await pool.withConnection { _ in 1 } }
            try await Task.sleep(for: .milliseconds(100))
            let started = ContinuousClock.now
            waiter.cancel()
            await #expect(throws: CancellationError.self) { try await waiter.value }
            #expect(ContinuousClock.now - started < .milliseconds(500))
            _ = try await holder.value
            // The slot the cancelled waiter gave up is not lost.
            #expect(try await pool.withConnection { _ in 2 } == 2)
            await pool.shutdown()
        }

        @Test func thePoolsConnectionsPlanAsTheyWereAsked() async throws {
            let url = try await TestDatabase.create()
            func mode(_ pool: PostgresPool) async throws -> String? {
                try await pool.withConnection { connection in
                    try connection.query("SELECT current_setting('plan_cache_mode') AS mode" as PostgresQuery)
                        .first?.decode(column: "mode", as: String.self)
                }
            }
            // nil: the default, aggregation's (every execution planned for its values); intake's
            // auto (PostgreSQL may keep a generic plan); reporting's one generic plan per statement.
            let cases: [(PostgresConnection.PlanCacheMode?, String)] = [
                (nil, "force_custom_plan"), (.automatic, "auto"), (.forceGeneric, "force_generic_plan"),
            ]
            for (asked, expected) in cases {
                let pool =
                    asked.map {
                        PostgresPool(
                            conninfo: url,
                            maximumConnections: 1,
                            applicationName: "tests",
                            planCacheMode: $0,
                            logger: Self.logger
                        )
                    }
                    ?? PostgresPool(conninfo: url, maximumConnections: 1, applicationName: "tests", logger: Self.logger)
                #expect(try await mode(pool) == expected)
                await pool.shutdown()
            }
        }

        @Test func aConnectionKeepsABoundedNumberOfPreparedStatements() async throws {
            let url = try await TestDatabase.create()
            let connection = try PostgresConnection(conninfo: url, applicationName: "tests", logger: Self.logger)
            defer { connection.close() }
            let limit = PostgresConnection.maximumPreparedStatements
            func run(_ index: Int) throws -> Int? {
                try connection.query(PostgresQuery(unsafeSQL: "SELECT \(index) AS n")).first?.decode(
                    column: "n",
                    as: Int.self
                )
            }
            for index in 0..<(limit + 40) { #expect(try run(index) == index) }
            // Statements texts shaped by their filters are many: the oldest were deallocated.
            let prepared = try connection.query("SELECT count(*)::integer AS n FROM pg_prepared_statements")
                .first?.decode(column: "n", as: Int.self)
            #expect(prepared == limit)
            // One of the deallocated ones is prepared again when it comes back.
            #expect(try run(0) == 0)
            #expect(try run(limit + 39) == limit + 39)
        }

        @Test func asAServiceThePoolWorksBeforeRunAndClosesWhenCancelled() async throws {
            let url = try await TestDatabase.create()
            let pool = PostgresPool(conninfo: url, maximumConnections: 1, applicationName: "tests", logger: Self.logger)
            #expect(try await pool.withConnection { try $0.query("SELECT 1" as PostgresQuery).count } == 1)
            let running = Task { try await pool.run() }
            #expect(try await pool.withConnection { try $0.query("SELECT 1" as PostgresQuery).count } == 1)
            running.cancel()
            try await running.value
            let error = await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in 1 } }
            #expect(error?.code == .poolShutDown)
        }
    }
}

/// A counter a `@Sendable` closure can bump.
private final class AttemptCounter: Sendable {
    private let count = Mutex(0)
    func increment() -> Int {
        count.withLock {
            $0 += 1
            return $0
        }
    }
    var value: Int { count.withLock { $0 } }
}
