import Foundation
import Logging
import RootcausesJSON
import RootcausesLocalStack
import RootcausesPostgres
import RootcausesTesting
import RootcausesTransport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// Reporting on a read replica: a real primary, a real hot standby made with
    /// `pg_basebackup` and streaming from it, and reporting processes reading the standby.
    @Suite struct ReplicaTests {
        /// Starts a reporting process reading `databaseURL` (its log in `logDirectory`), and
        /// waits until it answers.
        static func startReporting(
            name: String,
            databaseURL: String,
            primaryURL: String?,
            logDirectory: String
        ) async throws -> (ManagedProcess, String) {
            let port = try freeTCPPort()
            var environment = ["DATABASE_URL": databaseURL]
            if let primaryURL { environment["ROOTCAUSES_PRIMARY_DATABASE_URL"] = primaryURL }
            let process = try ManagedProcess(
                name: name,
                executable: ServiceStack.defaultBinDirectory + "/reporting",
                arguments: ["--listen", "127.0.0.1:\(port)"],
                environment: environment,
                logPath: logDirectory + "/\(name).log"
            )
            try await process.waitUntilServing(port: port)
            return (process, "127.0.0.1:\(port)")
        }

        /// `url` with another port.
        static func url(_ url: String, port: Int) -> String {
            var components = URLComponents(string: url)!
            components.port = port
            return components.string!
        }

        @Test func reportingOnAStandbyReadsItsOwnWritesAndPublishesThroughThePrimary() async throws {
            let primary = try await TestDatabase.privateCluster()
            let standbyDirectory = primary.dataDirectory + "-standby"
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            let setup = try PostgresConnection(conninfo: primary.url(), applicationName: "replica-test", logger: logger)
            try setup.execute("CREATE DATABASE rootcauses")
            setup.close()
            let standby = try await primary.makeStandby(dataDirectory: standbyDirectory)
            try standby.stopWhenProcessExits(getpid(), removing: standbyDirectory)
            defer { Task { try? await standby.stop() } }

            let probe = try PostgresConnection(conninfo: standby.url(), applicationName: "replica-test", logger: logger)
            #expect(
                try probe.query("SELECT pg_is_in_recovery() AS standby" as PostgresQuery).first?
                    .decode(column: "standby", as: Bool.self) == true
            )
            probe.close()

            try await withServiceStack(databaseURL: primary.url(database: "rootcauses")) { stack in
                let primaryReportingURL = stack.serviceDatabaseURL("reporting")
                let standbyReportingURL = Self.url(primaryReportingURL, port: standby.port)
                let (replica, replicaAddress) = try await Self.startReporting(
                    name: "reporting-standby",
                    databaseURL: standbyReportingURL,
                    primaryURL: primaryReportingURL,
                    logDirectory: stack.logDirectory
                )
                let (readOnly, readOnlyAddress) = try await Self.startReporting(
                    name: "reporting-standby-alone",
                    databaseURL: standbyReportingURL,
                    primaryURL: nil,
                    logDirectory: stack.logDirectory
                )
                defer {
                    kill(replica.pid, SIGKILL)
                    kill(readOnly.pid, SIGKILL)
                }
                let token = try #require(stack.adminToken)
                let onStandby = try await ProtocolClient.connect(address: replicaAddress, token: token)
                let alone = try await ProtocolClient.connect(address: readOnlyAddress, token: token)
                let onPrimary = try await stack.reportingClient()
                let intake = try await stack.intakeClient()

                let ready = try await onStandby.request(["op": "ready"])
                #expect(ready["ready"] == true)
                #expect(ready["standby"] == true)

                // Each write is read back at once on the standby with min_seq: the read waits
                // for aggregation and for the standby to replay it.
                var lastSeq: Int64 = 0
                for (index, submitted) in try sampleSubmissions().prefix(30).enumerated() {
                    let answer = try await intake.request(["op": "submit", "submission": submitted])
                    #expect(answer["ok"] == true)
                    lastSeq = answer["seq"]?.int64Value ?? lastSeq
                    guard index % 10 == 9 else { continue }
                    let query: JSON = [
                        "op": "totals", "group_by": ["indicator", "country"], "min_seq": .int(lastSeq),
                        "timeout_ms": 30_000,
                    ]
                    let fromStandby = try await onStandby.request(query)
                    let fromPrimary = try await onPrimary.request(query)
                    #expect(fromStandby["ok"] == true)
                    #expect((fromStandby["applied_seq"]?.int64Value ?? 0) >= lastSeq)
                    #expect(fromStandby["rows"] == fromPrimary["rows"])
                }

                // A read as of a time waits for the primary's numbering, then for the replay.
                let asOf: JSON = [
                    "op": "totals", "indicator": "jobs_created", "as_of": .string(Self.now()), "timeout_ms": 30_000,
                ]
                let timedStandby = try await onStandby.request(asOf)
                let timedPrimary = try await onPrimary.request(asOf)
                #expect(timedStandby["ok"] == true)
                #expect(timedStandby["as_of_seq"] == timedPrimary["as_of_seq"])
                #expect(timedStandby["rows"] == timedPrimary["rows"])
                // Without a primary, the standby answers it too (no lock to wait for there).
                #expect(try await alone.request(asOf)["ok"] == true)

                // A standby that lags: replay paused, a new submission on the primary. A read as of
                // now on the standby cannot be exact yet: not_ready, with the WAL positions, and
                // the right answer once the replay resumes.
                let superuser = try PostgresConnection(
                    conninfo: standby.url(database: "rootcauses"),
                    applicationName: "replica-test",
                    logger: logger
                )
                defer { superuser.close() }
                try superuser.query("SELECT pg_wal_replay_pause()" as PostgresQuery)
                let late = try await intake.request([
                    "op": "submit",
                    "submission": submission("replica-late", values: [value("jobs_created", "HN", 7)]),
                ])
                try #require(late["ok"] == true)
                let lateSeq = try #require(late["seq"]?.int64Value)
                _ = try await onPrimary.request(["op": "indicators", "min_seq": .int(lateSeq), "timeout_ms": 30_000])
                let afterLate: JSON = [
                    "op": "totals", "indicator": "jobs_created", "as_of": .string(Self.now(offset: 0)),
                    "timeout_ms": 300,
                ]
                let lagging = try await onStandby.request(afterLate)
                #expect(lagging.errorCode == "not_ready")
                #expect(lagging["error"]?["details"]?[0]?["wal_position"]?.stringValue != nil)
                try superuser.query("SELECT pg_wal_replay_resume()" as PostgresQuery)
                var caughtUp = afterLate
                caughtUp = caughtUp.setting("timeout_ms", to: 30_000)
                let resumed = try await onStandby.request(caughtUp)
                let fromPrimary = try await onPrimary.request(caughtUp)
                #expect(resumed["ok"] == true)
                #expect((resumed["as_of_seq"]?.int64Value ?? 0) >= lateSeq)
                #expect(resumed["as_of_seq"] == fromPrimary["as_of_seq"])
                #expect(resumed["rows"] == fromPrimary["rows"])

                // publish writes to the primary; the standby then lists it.
                let published = try await onStandby.request([
                    "op": "publish", "publication_id": "replica-1", "date": "2023-02-06", "min_seq": .int(lastSeq),
                    "timeout_ms": 30_000,
                ])
                #expect(published["ok"] == true)
                var listed = false
                for _ in 0..<100 {
                    let list = try await onStandby.request(["op": "published"])
                    if (list["publications"]?.arrayValue ?? []).contains(where: { $0["publication_id"] == "replica-1" })
                    {
                        listed = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(listed)
                let onPrimaryList = try await onPrimary.request(["op": "published"])
                #expect(
                    (onPrimaryList["publications"]?.arrayValue ?? []).contains { $0["publication_id"] == "replica-1" }
                )
                // Without a primary, publish says what is missing.
                let refused = try await alone.request([
                    "op": "publish", "publication_id": "replica-2", "date": "2023-02-06",
                ])
                #expect(refused.errorCode == "unavailable")
                #expect(refused["error"]?["message"]?.stringValue?.contains("--primary-database-url") == true)

                // intake writes: pointed at the standby it refuses to start, and says why.
                let wrongIntake = try ManagedProcess(
                    name: "intake-on-standby",
                    executable: ServiceStack.defaultBinDirectory + "/intake",
                    arguments: ["--listen", "127.0.0.1:\(try freeTCPPort())"],
                    environment: ["DATABASE_URL": Self.url(stack.serviceDatabaseURL("intake"), port: standby.port)],
                    logPath: stack.logDirectory + "/intake-on-standby.log"
                )
                for _ in 0..<300 where wrongIntake.isRunning { try await Task.sleep(for: .milliseconds(100)) }
                #expect(!wrongIntake.isRunning)
                #expect(await wrongIntake.stop() != 0)
                #expect(wrongIntake.logTail().contains("hot standby"))

                // Reporting listens for applied passes on the primary; alone, on a standby that
                // cannot LISTEN, it says so once, polls, and warns of nothing.
                let aloneLog = readOnly.logTail(lines: 10_000)
                #expect(aloneLog.components(separatedBy: "cannot listen for notifications").count == 2)
                #expect(!aloneLog.contains("not listening for notifications"))
                #expect(!replica.logTail(lines: 10_000).contains("listen for notifications"))
                // Listening on the primary: the stack's reporting and the standby's with a primary.
                let listeners = try PostgresConnection(
                    conninfo: primary.url(database: "rootcauses"),
                    applicationName: "replica-test",
                    logger: logger
                )
                defer { listeners.close() }
                let listening = try listeners.query(
                    """
                    SELECT count(*) AS n FROM pg_stat_activity
                    WHERE application_name = 'rootcauses-reporting-listener' AND query LIKE 'LISTEN%'
                    """ as PostgresQuery
                ).first?.decode(column: "n", as: Int.self)
                #expect(listening == 2)

                for client in [onStandby, alone, onPrimary, intake] { await client.close() }
                #expect(await replica.stop() == 0)
                #expect(await readOnly.stop() == 0)
            }
            try await standby.stop()
            try await primary.stop()
        }

        /// Now, `offset` seconds ago, as RFC 3339 with milliseconds.
        static func now(offset: TimeInterval = 1) -> String {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.string(from: Date().addingTimeInterval(-offset))
        }
    }
}
