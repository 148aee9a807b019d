import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesPostgres
import RootcausesProtocol
import RootcausesStorage
import RootcausesTesting
import RootcausesTransport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    @Suite struct FailureTests {
        /// Many small submissions over a few indicators, with the totals they must add up to.
        static func workload(
            count: Int,
            prefix: String,
            corrections: Bool = false
        ) -> (requests: [JSON], totals: [String: Int]) {
            let indicators = [
                "firms_supported", "smuggling_arrests", "police_trained", "humanitarian_usd", "youth_gang_resistance",
            ]
            var totals: [String: Int] = [:]
            var requests: [JSON] = []
            // Per submission: its reporter and values, to correct it later.
            var sent: [(reporter: String, period: String, values: [(String, String, Int)])] = []
            func body(_ id: String, _ reporter: String, _ period: String, _ values: [(String, String, Int)]) -> JSON {
                submission(id, reporter: reporter, period: period, values: values.map { value($0.0, $0.1, .int($0.2)) })
            }
            for i in 0..<count {
                var values: [(String, String, Int)] = []
                for (k, indicator) in indicators.enumerated() where (i + k) % 2 == 0 || k == 0 {
                    values.append((indicator, ["SV", "GT", "HN"][(i + k) % 3], (i * 37 + k * 11) % 900 + 1))
                }
                let reporter = ["USAID", "STATE", "DHS"][i % 3]
                let period = "FY2022Q\(i % 4 + 1)"
                for (indicator, _, amount) in values { totals[indicator, default: 0] += amount }
                sent.append((reporter, period, values))
                requests.append(submitRequest(body("\(prefix)-\(i)", reporter, period, values)))
                guard corrections, i >= 10 else { continue }
                if i % 10 == 5 {
                    // Replace an earlier submission: its values leave, the new ones (one more each) enter.
                    let target = sent[i - 5]
                    let fixed = target.values.map { ($0.0, $0.1, $0.2 + 1) }
                    for (indicator, _, amount) in target.values { totals[indicator, default: 0] -= amount }
                    for (indicator, _, amount) in fixed { totals[indicator, default: 0] += amount }
                    requests.append(
                        submitRequest(
                            body("\(prefix)-\(i - 5)-fix", target.reporter, target.period, fixed)
                                .setting("replaces", to: .string("\(prefix)-\(i - 5)"))
                        )
                    )
                } else if i % 10 == 8 {
                    // Retract an earlier one (never one replaced above: those end in 0).
                    let target = sent[i - 7]
                    for (indicator, _, amount) in target.values { totals[indicator, default: 0] -= amount }
                    requests.append([
                        "op": "retract", "reporter": .string(target.reporter),
                        "submission_id": .string("\(prefix)-\(i - 7)"), "reason": "reported in error",
                    ])
                }
            }
            return (requests, totals)
        }

        /// Sends `requests` in pipelined chunks of 20, pausing `pause` between chunks; returns the
        /// highest seq acknowledged.
        static func feed(_ requests: [JSON], to intake: ProtocolClient, pause: Duration = .zero) async throws -> Int64 {
            var last: Int64 = 0
            for chunk in stride(from: 0, to: requests.count, by: 20) {
                let answers = try await intake.pipeline(Array(requests[chunk..<min(chunk + 20, requests.count)]))
                for answer in answers { last = max(last, answer["seq"]?.int64Value ?? 0) }
                if pause > .zero { try await Task.sleep(for: pause) }
            }
            return last
        }

        static func expectTotals(_ stack: ServiceStack, minSeq: Int64, _ expected: [String: Int]) async throws {
            let reporting = try await stack.reportingClient()
            let answer = try await reporting.expectOK([
                "op": "totals", "group_by": ["indicator"], "min_seq": .int(minSeq), "timeout_ms": 30_000,
            ])
            #expect(rowsByKey(answer, keys: ["indicator"]) == expected.mapValues(String.init))
            await reporting.close()
        }

        @Test func unavailableWhilePostgresIsDownAndRecoveryAfter() async throws {
            let cluster = try await TestDatabase.privateCluster()
            // Stopped at the end of the test, and by the exit watcher if the test process dies.
            do {
                try await withServiceStack(databaseURL: cluster.url(database: "postgres")) { stack in
                    let intake = try await stack.intakeClient()
                    let reporting = try await stack.reportingClient()
                    let aggregation = try await stack.aggregationClient()
                    let before = try await intake.expectOK(
                        submitRequest(submission("pg-1", values: [value("firms_supported", "HN", 3)]))
                    )
                    #expect(before["seq"] == 1)

                    try await cluster.kill()
                    let down = try await intake.request(
                        submitRequest(submission("pg-2", values: [value("firms_supported", "HN", 4)]), id: "d")
                    )
                    #expect(down.errorCode == "unavailable")
                    #expect(down["id"] == "d")
                    let read = try await reporting.request(["op": "totals"])
                    #expect(read.errorCode == "unavailable")
                    #expect(try await aggregation.request(["op": "status"]).errorCode == "unavailable")
                    // Keys are checked in the database too: a new connection cannot authenticate.
                    let newcomer = try await ProtocolClient.connect(address: stack.reportingAddress)
                    let auth = try await newcomer.request(["op": "auth", "token": .string(stack.adminToken ?? "")])
                    #expect(auth.errorCode == "unavailable")
                    await newcomer.close()
                    // The services themselves stay up and answer what needs no database.
                    #expect(try await intake.request(["op": "ping"])["ok"] == true)

                    try await cluster.restart()
                    // The same connections work again; the submission that failed was not stored, so it is new.
                    var retried: JSON = .null
                    for _ in 0..<50 {
                        retried = try await intake.request(
                            submitRequest(submission("pg-2", values: [value("firms_supported", "HN", 4)]))
                        )
                        if retried["ok"] == true { break }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    #expect(retried["status"] == "accepted")
                    #expect(retried["seq"] == 2)
                    let totals = try await reporting.expectOK(["op": "totals", "min_seq": 2, "timeout_ms": 20_000])
                    #expect(totals["rows"]?[0]?["value"] == 7)
                    await intake.close()
                    await reporting.close()
                    await aggregation.close()
                }
            } catch {
                try? await cluster.kill()
                throw error
            }
            try await cluster.kill()
        }

        @Test func killingAggregationMidStreamNeverLosesOrDoubleCounts() async throws {
            try await withServiceStack { stack in
                // Small batches, so a SIGKILL lands between and inside many apply transactions.
                await stack.aggregations[0].killNow()
                try await stack.startAggregation(index: 0, extra: ["--batch-size", "3"])
                let (requests, totals) = Self.workload(count: 400, prefix: "kill")
                let intake = try await stack.intakeClient()
                let feeder = Task { try await Self.feed(requests, to: intake) }
                for round in 0..<5 {
                    try await Task.sleep(for: .milliseconds(150 + 40 * round))
                    await stack.aggregations[0].killNow()
                    try await stack.startAggregation(index: 0, extra: ["--batch-size", "3"])
                }
                let last = try await feeder.value
                #expect(last == 400)
                try await Self.expectTotals(stack, minSeq: last, totals)
                await intake.close()
            }
        }

        @Test func twoAggregationInstancesShareTheWorkWithoutDoubleCounting() async throws {
            try await withServiceStack { stack in
                try await stack.addAggregation()
                let (requests, totals) = Self.workload(count: 300, prefix: "two")
                // Nudge both instances: intake only knows the first, so nudge the second by hand as we go.
                let intake = try await stack.intakeClient()
                let second = try await stack.aggregationClient(1)
                var last: Int64 = 0
                for chunk in stride(from: 0, to: requests.count, by: 25) {
                    let answers = try await intake.pipeline(Array(requests[chunk..<min(chunk + 25, requests.count)]))
                    last = answers.compactMap { $0["seq"]?.int64Value }.max() ?? last
                    _ = try await second.expectOK(["op": "nudge", "seq": .int(last)])
                }
                try await Self.expectTotals(stack, minSeq: last, totals)
                for index in 0..<2 {
                    let client = try await stack.aggregationClient(index)
                    let status = try await client.expectOK(["op": "status"])
                    #expect(status["applied_seq"] == .int(last))
                    #expect(status["latest_seq"] == .int(last))
                    #expect(status["backlog"] == 0)
                    #expect(status["partitions"] == 64)
                    await client.close()
                }
                await intake.close()
                await second.close()
            }
        }

        @Test func sigtermLetsTheRequestInFlightFinish() async throws {
            let url = try await TestDatabase.create()
            let logs = "/tmp/rootcauses-tests-\(getpid())/logs/sigterm"
            let stack = try ServiceStack(databaseURL: url, logDirectory: logs)
            try await stack.start()
            do {
                let intake = try await stack.intakeClient()
                let (requests, _) = Self.workload(count: 50, prefix: "term")
                let inFlight = Task { try await intake.pipeline(requests) }
                try await Task.sleep(for: .milliseconds(30))
                let statuses = await stack.stop()
                #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
                // Whatever was answered was stored; nothing was answered that was not.
                let answered = (try? await inFlight.value) ?? []
                let acknowledged = answered.filter { $0["ok"] == true }.count
                let stored = try await PostgresConnection.withConnection(conninfo: url, logger: .init(label: "tests")) {
                    try $0.query("SELECT count(*) AS n FROM submissions" as PostgresQuery).first?.decode(
                        column: "n",
                        as: Int.self
                    ) ?? -1
                }
                #expect(stored >= acknowledged)
                #expect(stored <= 50)
                await intake.close()
            } catch {
                await stack.stop()
                throw error
            }
        }
    }
}

extension Integration.FailureTests {
    @Test func anUnexpectedDatabaseFaultIsInternalAndTheConnectionStaysUsable() async throws {
        let url = try await TestDatabase.create()
        try await withServiceStack(databaseURL: url) { stack in
            // Break the schema under the running service: not a connection problem, so 'internal'.
            let pool = PostgresPool(
                conninfo: url,
                maximumConnections: 1,
                applicationName: "tests",
                logger: .init(label: "tests")
            )
            try await pool.withConnection { try $0.execute("DROP TABLE rollup_versions") }
            await pool.shutdown()
            let reporting = try await stack.reportingClient()
            let answer = try await reporting.request(["op": "totals", "id": "broken"])
            #expect(answer.errorCode == "internal")
            #expect(answer["id"] == "broken")
            #expect(answer["error"]?["message"]?.stringValue?.contains("rollup_versions") == false)
            #expect(try await reporting.request(["op": "ping"])["ok"] == true)
            await reporting.close()
        }
    }

    @Test func servicesStartingTogetherMigrateTheSchemaOnce() async throws {
        let url = try await TestDatabase.create()
        let logs = "/tmp/rootcauses-tests-\(getpid())/logs/migrate"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        // Six services at the same instant against an empty database.
        var processes: [(ManagedProcess, Int)] = []
        for (i, name) in ["aggregation", "aggregation", "reporting", "reporting", "intake", "intake"].enumerated() {
            let port = try freeTCPPort()
            processes.append(
                (
                    try ManagedProcess(
                        name: "\(name)-\(i)",
                        executable: ServiceStack.defaultBinDirectory + "/" + name,
                        arguments: ["--listen", "127.0.0.1:\(port)", "--database-url", url],
                        logPath: "\(logs)/\(name)-\(i).log"
                    ), port
                )
            )
        }
        defer { for (process, _) in processes { Task { await process.stop() } } }
        for (process, port) in processes {
            var answered = false
            for _ in 0..<300 where !answered {
                #expect(process.isRunning, "\(process.name) exited: \(process.logTail())")
                if !process.isRunning { break }
                if let client = try? await ProtocolClient.connect(host: "127.0.0.1", port: port) {
                    answered = (try? await client.request(["op": "ping"]))?["ok"] == true
                    await client.close()
                }
                if !answered { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(answered, "\(process.name) never answered")
        }
        let pool = PostgresPool(
            conninfo: url,
            maximumConnections: 1,
            applicationName: "tests",
            logger: .init(label: "tests")
        )
        let versions = try await pool.withConnection { try $0.query("SELECT version FROM schema_migrations").count }
        let partitions = try await pool.withConnection {
            try $0.query("SELECT partition FROM aggregation_partitions").count
        }
        await pool.shutdown()
        #expect(versions == Schema.currentVersion)  // every migration once
        #expect(partitions == 64)
        for (process, _) in processes { #expect(await process.stop() == 0) }
    }
}

extension Integration.FailureTests {
    /// After a PostgreSQL restart the pools hold connections the server closed. They must be
    /// noticed before use: the first request on each service succeeds (it used to answer
    /// `unavailable` once per pooled connection).
    @Test func firstRequestsAfterAPostgresRestartSucceed() async throws {
        let cluster = try await TestDatabase.privateCluster()
        do {
            try await withServiceStack(databaseURL: cluster.url(database: "postgres")) { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                // Several connections per pool: concurrent clients, each with requests in flight.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for client in 0..<4 {
                        group.addTask {
                            let intake = try await stack.intakeClient()
                            let reporting = try await stack.reportingClient()
                            let submissions = (0..<4).map { i in
                                submitRequest(
                                    submission("warm-\(client)-\(i)", values: [value("firms_supported", "HN", 1)])
                                )
                            }
                            for answer in try await intake.pipeline(submissions) {
                                #expect(answer["status"] == "accepted")
                            }
                            for answer in try await reporting.pipeline(Array(repeating: ["op": "totals"], count: 4)) {
                                #expect(answer["ok"] == true)
                            }
                            await intake.close()
                            await reporting.close()
                        }
                    }
                    try await group.waitForAll()
                }

                try await cluster.stop()
                try await cluster.restart()

                let totals = try await reporting.request(["op": "totals", "id": "first-read"])
                #expect(totals["ok"] == true, "\(totals)")
                let stored = try await intake.request(
                    submitRequest(submission("after-restart", values: [value("firms_supported", "HN", 5)]))
                )
                #expect(stored["status"] == "accepted", "\(stored)")
                #expect(stored["seq"] == 17)
                let again = try await reporting.expectOK(["op": "totals", "min_seq": 17, "timeout_ms": 20_000])
                #expect(again["rows"]?[0]?["value"] == 21)
                await intake.close()
                await reporting.close()
            }
        } catch {
            try? await cluster.kill()
            throw error
        }
        try await cluster.kill()
    }
}
