import Foundation
import Logging
import RootcausesJSON
import RootcausesLocalStack
import RootcausesPostgres
import RootcausesService
import RootcausesStorage
import RootcausesTesting
import RootcausesTransport
import Testing

/// A request on a service's metrics port over a plain socket (HTTP/1.0, so the server closes
/// when done): status and body. Not URLSession, which would follow any proxy set in the
/// environment, even for loopback.
func httpGet(_ address: String, _ path: String, method: String = "GET") async throws -> (status: Int, body: String) {
    let descriptor = try connectedSocket(address) { descriptor in
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
    defer { close(descriptor) }
    let request = Array("\(method) \(path) HTTP/1.0\r\nHost: \(address)\r\n\r\n".utf8)
    guard write(descriptor, request, request.count) == request.count else { throw LaunchError("write failed") }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = read(descriptor, &buffer, buffer.count)
        if count <= 0 { break }
        response += buffer[0..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let headerEnd = text.range(of: "\r\n\r\n") else { throw LaunchError("no HTTP answer: \(text)") }
    let statusLine = text[..<headerEnd.lowerBound].split(separator: "\r\n").first ?? ""
    let status = statusLine.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return (status, String(text[headerEnd.upperBound...]))
}

/// The value of one Prometheus sample line, `name{labels} value`, from `/metrics` text.
func sample(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

extension Integration {
    /// What operators and orchestrators see: `health` and `ready` on the protocol, `/metrics`,
    /// `/healthz` and `/readyz` on the metrics port, JSON logs carrying the client's request id.
    @Suite struct OperationsTests {
        @Test func healthAndReadyAnswerWithoutAKeyOnEveryService() async throws {
            try await withServiceStack { stack in
                for address in [stack.intakeAddress, stack.reportingAddress, stack.aggregationAddresses[0]] {
                    // No token: probes have none.
                    let client = try await ProtocolClient.connect(address: address)
                    defer { Task { await client.close() } }
                    let hello = try await client.request(["op": "hello", "id": 1])
                    let ops = hello["ops"]?.arrayValue?.compactMap(\.stringValue) ?? []
                    #expect(ops.contains("health") && ops.contains("ready"))
                    let health = try await client.request(["op": "health", "id": "h"])
                    #expect(health["ok"] == true)
                    #expect(health["status"] == "live")
                    #expect(health["service"] == hello["service"])
                    #expect(health["version"]?.stringValue == rootcausesVersion)
                    #expect((health["uptime_seconds"]?.int64Value ?? -1) >= 0)
                    let ready = try await client.request(["op": "ready", "id": "r"])
                    #expect(ready["ok"] == true)
                    #expect(ready["ready"] == true)
                    #expect(ready["schema_version"]?.int64Value == Int64(Schema.currentVersion))
                    #expect(ready["expected_schema_version"]?.int64Value == Int64(Schema.currentVersion))
                    #expect(ready["standby"] == false)
                    #expect(ready["reason"] == nil)
                }
            }
        }

        @Test func readinessNamesAnUnreachableDatabaseAndASchemaOfAnotherBuild() async throws {
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            // Nothing listens on port 1.
            let nowhere = PostgresPool(
                conninfo: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
                maximumConnections: 1,
                applicationName: "readiness-test",
                logger: logger
            )
            let unreachable = await HealthChecks(service: "reporting", pool: nowhere, logger: logger).readiness()
            await nowhere.shutdown()
            #expect(unreachable.ready == false)
            #expect(unreachable.reason?.contains("cannot be reached") == true)
            // libpq's message (host, port, role) is for the log, not for anonymous callers.
            #expect(unreachable.reason?.contains("127.0.0.1") == false)
            #expect(unreachable.reason?.contains("port") == false)
            #expect(unreachable.json["ready"] == false)

            let url = try await TestDatabase.create()
            let pool = PostgresPool(
                conninfo: url,
                maximumConnections: 1,
                applicationName: "readiness-test",
                logger: logger
            )
            let empty = await HealthChecks(service: "intake", pool: pool, logger: logger).readiness()
            #expect(empty.ready == false)
            #expect(empty.schemaVersion == nil)
            #expect(empty.standby == false)
            #expect(empty.reason?.contains("not migrated") == true)
            // A database migrated by a newer build (a rolling upgrade half done): this one is not ready.
            try await pool.withConnection { connection in
                try Schema.migrate(connection, logger: logger)
                let newer = Schema.currentVersion + 1
                try connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(newer), 'from a newer build')"
                        as PostgresQuery
                )
            }
            let ahead = await HealthChecks(service: "intake", pool: pool, logger: logger).readiness()
            #expect(ahead.ready == false)
            #expect(ahead.schemaVersion == Schema.currentVersion + 1)
            #expect(ahead.reason?.contains("this build needs \(Schema.currentVersion)") == true)
            try await pool.withConnection { connection in
                let newer = Schema.currentVersion + 1
                try connection.query("DELETE FROM schema_migrations WHERE version = \(newer)" as PostgresQuery)
            }
            let current = await HealthChecks(service: "intake", pool: pool, logger: logger).readiness()
            #expect(current == Readiness(ready: true, schemaVersion: Schema.currentVersion, standby: false))
            await pool.shutdown()
        }

        /// The upgrade order of docs/OPERATIONS.md: a new build started before the schema is
        /// migrated waits (its role may not migrate) instead of exiting, and serves once
        /// `provision` has migrated.
        @Test func aServiceOnAnOlderSchemaWaitsForProvisionThenServes() async throws {
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            let url = try await TestDatabase.create()
            let secret = try #require(URLComponents(string: url)?.password)
            var passwords: [DatabaseRoles.Role: String] = [:]
            for role in DatabaseRoles.Role.allCases {
                passwords[role] = DatabaseRoles.password(of: role, derivedFrom: secret)
            }
            let superuser = try PostgresConnection(conninfo: url, applicationName: "upgrade-test", logger: logger)
            defer { superuser.close() }
            try DatabaseRoles.provision(on: superuser, passwords: passwords, logger: logger)
            // The database as an older release left it: the newest migration not applied.
            try superuser.query(
                "DELETE FROM schema_migrations WHERE version = \(Schema.currentVersion)" as PostgresQuery
            )
            var intakeURL = URLComponents(string: url)!
            intakeURL.user = DatabaseRoles.Role.intake.rawValue
            intakeURL.password = passwords[.intake]
            let port = try freeTCPPort()
            let logs = "/tmp/rootcauses-tests-\(getpid())/logs/upgrade"
            try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
            let intake = try ManagedProcess(
                name: "intake-new-build",
                executable: ServiceStack.defaultBinDirectory + "/intake",
                arguments: ["--listen", "127.0.0.1:\(port)"],
                environment: ["DATABASE_URL": intakeURL.string!],
                logPath: logs + "/intake.log"
            )
            defer { kill(intake.pid, SIGKILL) }
            try await Task.sleep(for: .seconds(3))
            #expect(intake.isRunning, "\(intake.logTail())")
            #expect(intake.logTail().contains("waiting for rootcauses provision"))
            #expect((try? await ProtocolClient.connect(address: "127.0.0.1:\(port)")) == nil)

            try DatabaseRoles.provision(on: superuser, passwords: passwords, logger: logger)
            // The grants commit with the migration: the newest migration's record and the grant
            // on the newest table were written by one transaction, so no service saw the new
            // schema version without its grants.
            let sameTransaction = try superuser.query(
                """
                SELECT (SELECT xmin FROM schema_migrations WHERE version = \(Schema.currentVersion))::text
                     = (SELECT xmin FROM pg_class WHERE oid = 'overlap_points'::regclass)::text AS same
                """ as PostgresQuery
            ).first?.decode(column: "same", as: Bool.self)
            #expect(sameTransaction == true)
            var ready: JSON = .null
            for _ in 0..<100 {
                if let client = try? await ProtocolClient.connect(address: "127.0.0.1:\(port)") {
                    ready = (try? await client.request(["op": "ready"])) ?? .null
                    await client.close()
                    if ready["ok"] == true { break }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(ready["ready"] == true)
            #expect(ready["schema_version"]?.int64Value == Int64(Schema.currentVersion))
            #expect(await intake.stop() == 0)
        }

        @Test func metricsPortServesPrometheusTextAndProbesAfterTraffic() async throws {
            try await withServiceStack(metrics: true) { stack in
                let intake = try await stack.intakeClient()
                defer { Task { await intake.close() } }
                let submissions = Array(try sampleSubmissions().prefix(20))
                let answers = try await intake.pipeline(
                    submissions.map { ["op": "submit", "submission": $0] as JSON }
                )
                #expect(answers.allSatisfy { $0["ok"] == true })
                let lastSeq = answers.compactMap { $0["seq"]?.int64Value }.max() ?? 0
                // A refused submission and an op that does not exist are counted by their codes.
                let refused = try await intake.request(["op": "submit", "submission": ["reporter": "USAID"]])
                #expect(refused.errorCode == "invalid_request")
                let unknown = try await intake.request(["op": "no_such_op"])
                #expect(unknown.errorCode == "unknown_op")

                let reporting = try await stack.reportingClient()
                defer { Task { await reporting.close() } }
                let totals = try await reporting.request([
                    "op": "totals", "indicator": "jobs_created", "min_seq": .int(lastSeq), "timeout_ms": 30_000,
                ])
                #expect(totals["ok"] == true)

                let intakeMetrics = try #require(stack.metricsAddress("intake"))
                let (status, text) = try await httpGet(intakeMetrics, "/metrics")
                #expect(status == 200)
                #expect(sample(text, #"rootcauses_requests_total{op="submit",code="ok"}"#) == 20)
                #expect(sample(text, #"rootcauses_requests_total{op="submit",code="invalid_request"}"#) == 1)
                #expect(sample(text, #"rootcauses_requests_total{op="unknown",code="unknown_op"}"#) == 1)
                #expect(sample(text, #"rootcauses_requests_total{op="auth",code="ok"}"#) ?? 0 >= 1)
                #expect(sample(text, #"rootcauses_request_duration_seconds_count{op="submit"}"#) == 21)
                #expect(sample(text, #"rootcauses_request_duration_seconds_bucket{op="submit",le="+Inf"}"#) == 21)
                // Every submission went through a group commit.
                let committed = sample(text, "rootcauses_intake_group_commit_submissions_sum") ?? 0
                #expect(committed == 20)
                #expect((sample(text, "rootcauses_intake_group_commit_values_sum") ?? 0) > 20)
                #expect((sample(text, #"rootcauses_db_pool_wait_seconds_count{pool="main"}"#) ?? 0) >= 1)
                #expect(sample(text, #"rootcauses_db_pool_connections_max{pool="main"}"#) == 8)
                #expect((sample(text, "rootcauses_connections") ?? 0) >= 1)
                #expect(
                    sample(text, #"rootcauses_build_info{service="intake",version="\#(rootcausesVersion)"}"#) == 1
                )
                // Counters exist, at zero, for every op and code from the start.
                #expect(sample(text, #"rootcauses_requests_total{op="retract",code="conflict"}"#) == 0)

                let reportingMetrics = try #require(stack.metricsAddress("reporting"))
                let reportingText = try await httpGet(reportingMetrics, "/metrics").body
                #expect(sample(reportingText, #"rootcauses_requests_total{op="totals",code="ok"}"#) == 1)

                // Aggregation: all 64 partitions held by the one instance, and no backlog once
                // the sampler has looked (every 2 s) after the work was applied.
                let aggregationMetrics = try #require(stack.metricsAddress("aggregation-0"))
                var aggregationText = ""
                for _ in 0..<40 {
                    aggregationText = try await httpGet(aggregationMetrics, "/metrics").body
                    if sample(aggregationText, "rootcauses_aggregation_backlog_submissions") == 0,
                        sample(aggregationText, "rootcauses_aggregation_partitions_held") == 64
                    {
                        break
                    }
                    try await Task.sleep(for: .milliseconds(250))
                }
                #expect(sample(aggregationText, "rootcauses_aggregation_backlog_submissions") == 0)
                #expect(sample(aggregationText, "rootcauses_aggregation_lag_seconds") == 0)
                #expect(sample(aggregationText, "rootcauses_aggregation_partitions_held") == 64)
                #expect(
                    (sample(aggregationText, "rootcauses_aggregation_partition_seqs_applied_total") ?? 0)
                        >= Double(lastSeq)
                )

                // Probes.
                let live = try await httpGet(intakeMetrics, "/healthz")
                #expect(live.status == 200)
                #expect(try JSONParser.parse(live.body)["status"] == "live")
                let ready = try await httpGet(reportingMetrics, "/readyz")
                #expect(ready.status == 200)
                #expect(try JSONParser.parse(ready.body)["ready"] == true)
                #expect(try await httpGet(intakeMetrics, "/nothing").status == 404)
                #expect(try await httpGet(intakeMetrics, "/metrics", method: "POST").status == 405)
            }
        }

        @Test func anIdleAggregationInstanceRunsNoPasses() async throws {
            try await withServiceStack(metrics: true) { stack in
                let address = try #require(stack.metricsAddress("aggregation-0"))
                func metrics() async throws -> (held: Double?, passes: Double) {
                    let text = try await httpGet(address, "/metrics").body
                    return (
                        sample(text, "rootcauses_aggregation_partitions_held"),
                        sample(text, "rootcauses_aggregation_pass_duration_seconds_count") ?? 0
                    )
                }
                // The instance has looked for work: it holds its partitions.
                for _ in 0..<100 where try await metrics().held != 64 { try await Task.sleep(for: .milliseconds(100)) }
                try #require(try await metrics().held == 64)
                // A pass costs ~10 ms of planning: with nothing to apply, the 200 ms polls run none.
                let idle = try await metrics().passes
                try await Task.sleep(for: .milliseconds(1500))
                #expect(try await metrics().passes == idle)
                // Work is still found: a submission is applied by a pass.
                let intake = try await stack.intakeClient()
                defer { Task { await intake.close() } }
                let accepted = try await intake.expectOK(["op": "submit", "submission": try sampleSubmissions()[0]])
                let reporting = try await stack.reportingClient()
                defer { Task { await reporting.close() } }
                _ = try await reporting.expectOK([
                    "op": "totals", "min_seq": try #require(accepted["seq"]), "timeout_ms": 10_000,
                ])
                // (The pass is counted just after its commit, which the read may beat.)
                for _ in 0..<50 where try await metrics().passes == idle {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(try await metrics().passes > idle)
            }
        }

        @Test func backlogMetricShowsWorkAStoppedInstanceHolds() async throws {
            // Long leases: the stopped instance keeps its partitions for the whole test.
            try await withServiceStack(environment: ["ROOTCAUSES_LEASE_MS": "30000"], metrics: true) { stack in
                let second = try await stack.addAggregation()
                let address = try #require(stack.metricsAddress("aggregation-\(second)"))
                // Wait for the split: each instance holds half of the 64 partitions.
                var held: Double?
                for _ in 0..<100 {
                    held = sample(try await httpGet(address, "/metrics").body, "rootcauses_aggregation_partitions_held")
                    if held == 32 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                try #require(held == 32)
                let first = try #require(stack.aggregations.first)
                try #require(kill(first.pid, SIGSTOP) == 0)
                defer { kill(first.pid, SIGCONT) }
                let intake = try await stack.intakeClient()
                defer { Task { await intake.close() } }
                let submissions = Array(try sampleSubmissions().prefix(40))
                let answers = try await intake.pipeline(submissions.map { ["op": "submit", "submission": $0] as JSON })
                #expect(answers.allSatisfy { $0["ok"] == true })
                // The running instance applies its half; the other half waits for the stopped one,
                // and every instance reports the global backlog.
                var backlog: Double = 0
                var lag: Double = 0
                for _ in 0..<60 {
                    let text = try await httpGet(address, "/metrics").body
                    backlog = sample(text, "rootcauses_aggregation_backlog_submissions") ?? 0
                    lag = sample(text, "rootcauses_aggregation_lag_seconds") ?? 0
                    if backlog > 0 && lag > 0 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(backlog > 0)
                #expect(lag > 0)
                // The running instance's own half is applied within a pass; what remains after
                // a few samples is the stopped instance's, and it leaves once that one resumes.
                try await Task.sleep(for: .seconds(3))
                let later = try await httpGet(address, "/metrics").body
                #expect((sample(later, "rootcauses_aggregation_backlog_submissions") ?? 0) > 0)
                #expect((sample(later, "rootcauses_aggregation_lag_seconds") ?? 0) >= 1)
                kill(first.pid, SIGCONT)
                var drained = false
                for _ in 0..<100 {
                    if sample(try await httpGet(address, "/metrics").body, "rootcauses_aggregation_backlog_submissions")
                        == 0
                    {
                        drained = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(drained)
            }
        }

        @Test func jsonLogsCarryTheClientsRequestID() async throws {
            try await withServiceStack(environment: ["ROOTCAUSES_LOG_FORMAT": "json", "LOG_LEVEL": "debug"]) { stack in
                let intake = try await stack.intakeClient()
                let refused = try await intake.request([
                    "op": "submit", "id": "trace-me-42", "submission": ["reporter": "USAID"],
                ])
                #expect(refused["id"] == "trace-me-42")
                #expect(refused.errorCode == "invalid_request")
                await intake.close()
                let logPath = try #require(stack.intake?.logPath)
                var lines: [JSON] = []
                for _ in 0..<20 {
                    let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                    // Complete lines only: the last may be being written.
                    let complete = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                    lines = try complete.filter { !$0.isEmpty }.map { try JSONParser.parse(String($0)) }
                    if lines.contains(where: { $0["request_id"] == "trace-me-42" }) { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(!lines.isEmpty)
                for line in lines {
                    #expect(line["time"]?.stringValue?.hasSuffix("Z") == true)
                    #expect(line["level"]?.stringValue != nil)
                    #expect(line["logger"] == "rootcauses.intake")
                    #expect(line["message"]?.stringValue != nil)
                }
                let traced = try #require(lines.first { $0["request_id"] == "trace-me-42" })
                #expect(traced["op"] == "submit")
                #expect(traced["code"] == "invalid_request")
                #expect(traced["level"] == "debug")
                #expect(traced["key"]?.stringValue != nil)
            }
        }
    }
}
