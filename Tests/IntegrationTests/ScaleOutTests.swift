import AggregationService
import Foundation
import NIOConcurrencyHelpers
import RootcausesJSON
import RootcausesLocalStack
import RootcausesPostgres
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    /// Aggregation instances divide the 64 partitions through leases in PostgreSQL: a new one is
    /// handed a share, a killed one's share is taken once its lease runs out, and no ownership
    /// move loses or repeats work, corrections (replacements, retractions) included.
    @Suite struct ScaleOutTests {
        /// The instances that answered `status` and who owned partitions, as seen from every
        /// live instance while the test runs.
        final class Owners: Sendable {
            let seen = NIOLockedValueBox<[String: Int]>([:])

            func record(_ status: JSON) {
                for instance in status["instances"]?.arrayValue ?? [] {
                    guard let name = instance["instance"]?.stringValue else { continue }
                    let owned = instance["partitions"]?.arrayValue?.count ?? 0
                    seen.withLockedValue { $0[name] = max($0[name] ?? 0, owned) }
                }
            }
        }

        static func watch(_ stack: ServiceStack, indices: [Int], into owners: Owners) async {
            for index in indices {
                guard let client = try? await stack.aggregationClient(index) else { continue }
                if let status = try? await client.request(["op": "status"]), status["ok"] == true {
                    owners.record(status)
                }
                await client.close()
            }
        }

        @Test func threeInstancesUnderLoadWithOneKilledAndOneStartedMidway() async throws {
            // Short leases, so the killed instance's partitions move within the test.
            try await withServiceStack(environment: ["ROOTCAUSES_LEASE_MS": "1500"]) { stack in
                try await stack.addAggregation()
                try await stack.addAggregation()
                let (requests, totals) = FailureTests.workload(count: 600, prefix: "scale", corrections: true)
                let intake = try await stack.intakeClient()
                let owners = Owners()
                let feeder = Task { try await FailureTests.feed(requests, to: intake, pause: .milliseconds(20)) }
                // Three instances share the work...
                try await Task.sleep(for: .milliseconds(600))
                await Self.watch(stack, indices: [0, 1, 2], into: owners)
                // ...one dies without a word, and another joins.
                await stack.aggregations[1].killNow()
                let joined = try await stack.addAggregation()
                for _ in 0..<8 {
                    try await Task.sleep(for: .milliseconds(400))
                    await Self.watch(stack, indices: [0, 2, joined], into: owners)
                }
                let last = try await feeder.value
                #expect(last == Int64(requests.count))  // every submission, replacement and retraction stored
                try await FailureTests.expectTotals(stack, minSeq: last, totals)

                // Once the dead one's leases ran out, the three live instances hold all 64.
                var held: [String: Int] = [:]
                for _ in 0..<50 {
                    await Self.watch(stack, indices: [0, 2, joined], into: owners)
                    let client = try await stack.aggregationClient(0)
                    let status = try await client.expectOK(["op": "status"])
                    await client.close()
                    held = [:]
                    for instance in status["instances"]?.arrayValue ?? [] {
                        held[instance["instance"]?.stringValue ?? ""] = instance["partitions"]?.arrayValue?.count ?? 0
                    }
                    if held.count == 3, held.values.reduce(0, +) == 64, held.values.allSatisfy({ $0 >= 20 }) { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(held.count == 3, "live instances: \(held)")
                #expect(held.values.reduce(0, +) == 64, "partitions held: \(held)")
                #expect(held.values.allSatisfy { $0 >= 20 }, "an unfair share: \(held)")
                // Every instance that ran, the killed one and the late one included, held partitions.
                let everyone = owners.seen.withLockedValue { $0 }
                #expect(everyone.count == 4, "instances seen: \(everyone)")
                #expect(everyone.values.allSatisfy { $0 > 0 }, "instances seen: \(everyone)")
                await intake.close()
                // The killed slot is started again, so the stack stops cleanly.
                try await stack.startAggregation(index: 1)
            }
        }

        /// One instance runs its passes in lanes, at once, each over the partitions whose number
        /// leaves the lane's index when divided by the lanes: every lane applies its own part
        /// (no partition in two lanes), and the totals are exactly the acknowledged values,
        /// replacements and retractions included.
        @Test func anInstanceRunsConcurrentPassesOverDisjointPartitions() async throws {
            try await withServiceStack { stack in
                // The first instance gives its partitions up as it stops; the new one takes all.
                await stack.aggregations[0].stop()
                let added = try await stack.addAggregation(
                    extra: ["--concurrent-passes", "4", "--log-level", "debug", "--log-format", "json"]
                )
                let (requests, totals) = FailureTests.workload(count: 400, prefix: "lanes", corrections: true)
                let intake = try await stack.intakeClient()
                let last = try await FailureTests.feed(requests, to: intake, pause: .milliseconds(5))
                #expect(last == Int64(requests.count))
                try await FailureTests.expectTotals(stack, minSeq: last, totals)

                // Each pass of a lane, from its debug line: the lane, its partitions, and when it ran.
                var partitionsByLane: [Int: Set<Int>] = [:]
                var passes: [(lane: Int, start: Double, end: Double)] = []
                let timestamps = ISO8601DateFormatter()
                timestamps.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                for line in stack.aggregations[added].logTail(lines: 1_000_000).split(separator: "\n") {
                    guard let entry = try? JSONParser.parse(String(line)), entry["message"] == "applied submissions",
                        let lane = entry["lane"]?.stringValue.flatMap({ Int($0) }),
                        let listed = entry["partitions"]?.stringValue,
                        let logged = entry["time"]?.stringValue.flatMap({ timestamps.date(from: $0) }),
                        let seconds = entry["duration"]?.stringValue?.split(separator: " ").first.flatMap({ Double($0) }
                        )
                    else { continue }
                    let partitions = listed.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
                    partitionsByLane[lane, default: []].formUnion(partitions)
                    let end = logged.timeIntervalSince1970
                    passes.append((lane, end - seconds, end))
                }
                #expect(partitionsByLane.keys.sorted() == [0, 1, 2, 3], "lanes that applied: \(partitionsByLane.keys)")
                for (lane, partitions) in partitionsByLane {
                    #expect(partitions.allSatisfy { $0 % 4 == lane }, "lane \(lane) worked on \(partitions.sorted())")
                }
                #expect(partitionsByLane.values.reduce(0) { $0 + $1.count } == 64)
                // The lanes ran at once: some passes of different lanes overlapped in time.
                let overlapping = passes.contains { one in
                    passes.contains { other in
                        other.lane != one.lane && other.start < one.end && one.start < other.end
                    }
                }
                #expect(overlapping, "\(passes.count) passes, none of two lanes at once")
                await intake.close()
                // The stopped slot is started again, so the stack stops cleanly.
                try await stack.startAggregation(index: 0)
            }
        }

        /// A heartbeat never waits for a partition that a pass holds (here a transaction of the
        /// test's own stands in for a long pass): the instance keeps beating while its other
        /// lane's partitions are locked, and the held partition is applied once it is let go.
        /// (Waiting, the first lane's heartbeat stood still behind the other lane's passes.)
        @Test func heartbeatsGoOnWhileAPassHoldsAPartition() async throws {
            try await withServiceStack { stack in
                let aggregation = try await stack.aggregationClient(0)
                func heartbeatAt() async throws -> String {
                    let status = try await aggregation.expectOK(["op": "status"])
                    return try #require(status["instances"]?.arrayValue?.first?["heartbeat_at"]?.stringValue)
                }
                let holder = try PostgresConnection(conninfo: stack.databaseURL, logger: .init(label: "tests"))
                defer { holder.close() }
                try holder.execute("BEGIN")
                _ = try holder.query(
                    "SELECT partition FROM aggregation_partitions WHERE partition = 1 FOR UPDATE" as PostgresQuery
                )
                let before = try await heartbeatAt()
                // The stack heartbeats every 200 ms: well over a beat, with the row held throughout.
                try await Task.sleep(for: .milliseconds(1_500))
                let during = try await heartbeatAt()
                try holder.execute("ROLLBACK")
                #expect(during > before, "no heartbeat since \(before) while partition 1 was held")

                // Let go, the held partition is applied with the rest.
                let intake = try await stack.intakeClient()
                let body = submission("held-1", period: "2022Q1", values: [value("firms_supported", "HN", .int(7))])
                let seq = try #require(try await intake.expectOK(submitRequest(body))["seq"]?.int64Value)
                let reporting = try await stack.reportingClient()
                let answer = try await reporting.expectOK([
                    "op": "totals", "indicator": "firms_supported", "min_seq": .int(seq), "timeout_ms": 10_000,
                ])
                #expect(answer["rows"]?.arrayValue?.first?["value"] == .int(7))
                await intake.close()
                await reporting.close()
                await aggregation.close()
            }
        }

        /// Each concurrent pass holds a database connection, and one more must stay free for
        /// heartbeats and `status` (a pool of one is shared by one pass): a setting that leaves
        /// none is refused before anything starts, and the default fits a small pool.
        @Test func concurrentPassesNeedAConnectionToSpare() async throws {
            let resolve = AggregationOperations.concurrentPasses(requested:databaseConnections:)
            #expect(resolve(nil, 8) == 2)
            #expect(resolve(nil, 2) == 1)
            #expect(resolve(nil, 1) == 1)
            #expect(resolve(7, 8) == 7)
            #expect(resolve(1, 2) == 1)
            #expect(resolve(1, 1) == 1)
            #expect(resolve(8, 8) == nil)
            #expect(resolve(2, 2) == nil)
            #expect(resolve(0, 8) == nil)
            for (passes, connections, most) in [("0", "8", 7), ("8", "8", 7), ("2", "2", 1)] {
                // No database and any free port: refused or not, it must not wait for either.
                let ran = try await runProgram(
                    ServiceStack.defaultBinDirectory + "/aggregation",
                    [
                        "--concurrent-passes", passes, "--db-connections", connections,
                        "--database-url", "postgresql://127.0.0.1:1/none", "--listen", "127.0.0.1:0",
                    ]
                )
                #expect(ran.status != 0)
                #expect(
                    ran.output.contains(
                        "--concurrent-passes must be from 1 to \(most): one less than --db-connections (\(connections)), or 1"
                    ),
                    "\(ran.output)"
                )
            }
        }

        /// An instance intake was never told of (scaled out later) applies every commit at
        /// once: it listens for numberings. Its poll is an hour away, so only the notification
        /// can wake it in time; a read waiting for the seq would otherwise answer `not_ready`.
        /// The listening session is cut once too: the listener reconnects by itself.
        @Test func anInstanceIntakeWasNotToldOfAppliesAtOnce() async throws {
            try await withServiceStack { stack in
                // The first instance gives its partitions up as it stops; the new one takes all.
                await stack.aggregations[0].stop()
                let added = try await stack.addAggregation(extra: ["--poll-interval-ms", "3600000"])
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                func submitAndRead(_ id: String, _ firms: Int) async throws -> JSON {
                    let body = submission(
                        id,
                        period: "2022Q1",
                        values: [value("firms_supported", "HN", .int(Int64(firms)))]
                    )
                    let seq = try #require(try await intake.expectOK(submitRequest(body))["seq"]?.int64Value)
                    return try await reporting.expectOK([
                        "op": "totals", "indicator": "firms_supported", "min_seq": .int(seq), "timeout_ms": 10_000,
                    ])
                }
                var total = 0
                for i in 1...3 {
                    total += i
                    let answer = try await submitAndRead("heard-\(i)", i)
                    #expect(answer["rows"]?.arrayValue?.first?["value"] == .int(Int64(total)))
                }
                // Cut the listening session: the next commits are heard once it reconnected.
                let terminated = try await PostgresConnection.withConnection(
                    conninfo: stack.databaseURL,
                    logger: .init(label: "tests")
                ) { connection in
                    try connection.query(
                        """
                        SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                        WHERE application_name = 'rootcauses-aggregation-listener' AND datname = current_database()
                        """ as PostgresQuery
                    ).first?.decode(column: "n", as: Int.self) ?? 0
                }
                #expect(terminated == 1)
                for i in 4...6 {
                    total += i
                    let answer = try await submitAndRead("heard-\(i)", i)
                    #expect(answer["rows"]?.arrayValue?.first?["value"] == .int(Int64(total)))
                }
                #expect(stack.aggregations[added].isRunning)
                await intake.close()
                await reporting.close()
                // The stopped slot is started again, so the stack stops cleanly.
                try await stack.startAggregation(index: 0)
            }
        }
    }
}
