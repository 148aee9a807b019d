import Foundation
import RootcausesJSON
import RootcausesPostgres
import RootcausesTesting
import RootcausesTransport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// Live totals: `subscribe` answers at once, then pushes events as the answer changes.
    @Suite struct SubscriptionTests {
        static func jobs(_ id: String, _ amount: Int, country: String = "HN") -> JSON {
            submitRequest(
                submission(id, period: "FY2023Q1", values: [value("jobs_created", country, .int(Int64(amount)))])
            )
        }

        /// The events already received, waiting until `done` holds for one or `timeout` passes.
        static func collect(
            _ client: ProtocolClient,
            timeout: Duration = .seconds(10),
            until done: @escaping @Sendable (JSON) -> Bool
        ) async -> [JSON] {
            await withTaskGroup(of: [JSON]?.self) { group in
                group.addTask {
                    var seen: [JSON] = []
                    for await event in client.events {
                        seen.append(event)
                        if done(event) { return seen }
                    }
                    return seen
                }
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first ?? []
            }
        }

        @Test func eventsFollowTheAcknowledgementInSeqOrderWithTheNewRows() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let watcher = try await stack.reportingClient()
                let ack = try await watcher.expectOK([
                    "op": "subscribe", "id": "jobs", "indicator": "jobs_created", "group_by": ["country"],
                ])
                #expect(ack["subscription"] == "jobs")
                #expect(ack["rows"] == [])
                let quiet = try await watcher.expectOK([
                    "op": "subscribe", "id": 7, "indicator": "police_trained",
                ])
                #expect(quiet["rows"] == [])

                var last: Int64 = 0
                for i in 1...5 {
                    let answer = try await intake.expectOK(Self.jobs("USAID-S-\(i)", 100 * i))
                    last = try #require(answer["seq"]?.int64Value)
                }
                let target = last
                let events = await Self.collect(watcher) { ($0["as_of_seq"]?.int64Value ?? 0) >= target }
                #expect(!events.isEmpty)
                // Every event is the jobs subscription's (the police total never changed), with
                // no `ok`, in seq order, each a state the data was in; the last is the newest.
                for event in events {
                    #expect(event["id"] == "jobs")
                    #expect(event["event"] == "totals")
                    #expect(event["ok"] == nil)
                }
                let seqs = events.compactMap { $0["as_of_seq"]?.int64Value }
                #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count)
                let final = try #require(events.last)
                #expect(final["as_of_seq"]?.int64Value == last)
                #expect(final["rows"]?[0]?["country"] == "HN")
                #expect(final["rows"]?[0]?["value"] == 1500)
                // The same as a totals read at that seq.
                let read = try await watcher.expectOK([
                    "op": "totals", "indicator": "jobs_created", "group_by": ["country"], "as_of_seq": .int(last),
                ])
                #expect(read["rows"] == final["rows"])
                // Answers on the same connection still match their requests.
                let pong = try await watcher.expectOK(["op": "ping", "id": "p"])
                #expect(pong["pong"] == true)
            }
        }

        @Test func unsubscribeEndsTheEventsAndBadSubscriptionsAreRefused() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let watcher = try await stack.reportingClient()
                _ = try await watcher.expectOK(["op": "subscribe", "id": "a", "indicator": "jobs_created"])
                let duplicate = try await watcher.request(["op": "subscribe", "id": "a", "indicator": "jobs_created"])
                #expect(duplicate["error"]?["details"]?[0]?["code"] == "duplicate_subscription")
                let noID = try await watcher.request(["op": "subscribe", "indicator": "jobs_created"])
                #expect(noID["error"]?["code"] == "invalid_request")
                let pinned = try await watcher.request(["op": "subscribe", "id": "b", "as_of_seq": 3])
                #expect(pinned["error"]?["details"]?[0]?["path"] == "as_of_seq")
                let csv = try await watcher.request(["op": "subscribe", "id": "c", "format": "csv"])
                #expect(csv["error"]?["details"]?[0]?["path"] == "format")

                let gone = try await watcher.expectOK(["op": "unsubscribe", "id": 2, "subscription": "a"])
                #expect(gone["status"] == "unsubscribed")
                let again = try await watcher.request(["op": "unsubscribe", "subscription": "a"])
                #expect(again["error"]?["details"]?[0]?["code"] == "unknown_subscription")

                let answer = try await intake.expectOK(Self.jobs("USAID-U-1", 10))
                let seq = try #require(answer["seq"]?.int64Value)
                // Applied, and well past a poll: nothing came.
                _ = try await watcher.expectOK(["op": "totals", "min_seq": .int(seq)])
                let events = await Self.collect(watcher, timeout: .milliseconds(500)) { _ in true }
                #expect(events.isEmpty)
            }
        }

        /// A client that stops reading is sent the latest state when it reads again, not every
        /// intermediate one, and holds up nobody else.
        @Test func aSubscriberThatStopsReadingGetsTheLatestStateAndDelaysNoOne() async throws {
            try await withServiceStack(metrics: true) { stack in
                let intake = try await stack.intakeClient()
                _ = try await submitSample(through: intake)
                // Large events: every series of the sample by period.
                let query: JSON = [
                    "op": "subscribe", "id": "all",
                    "group_by": ["indicator", "country", "reporter", "period"],
                ]
                let slow = try RawLineClient(address: stack.reportingAddress, receiveBuffer: 4096)
                defer { slow.close() }
                try slow.send(["op": "auth", "token": .string(stack.adminToken ?? "")])
                #expect(try slow.readLine()["ok"] == true)
                try slow.send(query)
                let ack = try slow.readLine()
                #expect(ack["ok"] == true)
                let ackSize = ack.serialized.utf8.count
                #expect(ackSize > 50_000)

                let brisk = try await stack.reportingClient()
                _ = try await brisk.expectOK(query)

                var last: Int64 = 0
                let changes = 40
                for i in 1...changes {
                    let answer = try await intake.expectOK(Self.jobs("USAID-L-\(i)", i))
                    last = try #require(answer["seq"]?.int64Value)
                }
                // The reader that keeps reading is current while the other still reads nothing.
                let target = last
                let current = await Self.collect(brisk) { ($0["as_of_seq"]?.int64Value ?? 0) >= target }
                #expect(current.last?["as_of_seq"]?.int64Value == last)

                // Now the slow one reads: what was written while it slept, then the latest state.
                var events: [JSON] = []
                while events.last?["as_of_seq"]?.int64Value != last {
                    events.append(try slow.readLine(timeout: .seconds(10)))
                }
                #expect(events.allSatisfy { $0["id"] == "all" && $0["event"] == "totals" })
                #expect(events.count < changes, "a stalled reader was sent every state: \(events.count)")
                let final = try #require(events.last)
                #expect(final["rows"] == current.last?["rows"])
                let seqs = events.compactMap { $0["as_of_seq"]?.int64Value }
                #expect(seqs == seqs.sorted())
            }
        }

        /// Revoking a key ends its subscriptions at their next change, with an `ended` event.
        @Test func aRevokedKeysSubscriptionEnds() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let key = try await intake.expectOK(["op": "keys_create", "scopes": ["read"], "label": "dashboard"])
                let token = try #require(key["token"]?.stringValue)
                let dashboard = try await stack.reportingClient(token: token)
                _ = try await dashboard.expectOK(["op": "subscribe", "id": "d", "indicator": "jobs_created"])
                _ = try await intake.expectOK(["op": "keys_revoke", "key_id": key["key_id"] ?? .null])
                _ = try await intake.expectOK(Self.jobs("USAID-R-1", 5))
                let events = await Self.collect(dashboard) { $0["event"] == "ended" }
                #expect(events.last?["event"] == "ended")
                #expect(events.last?["reason"] == "revoked")
                #expect(events.allSatisfy { $0["event"] != "totals" })

                // A subscribe refused because the key was revoked leaves nothing behind.
                let other = try await intake.expectOK(["op": "keys_create", "scopes": ["read"], "label": "other"])
                let late = try await stack.reportingClient(token: try #require(other["token"]?.stringValue))
                _ = try await intake.expectOK(["op": "keys_revoke", "key_id": other["key_id"] ?? .null])
                let refused = try await late.request(["op": "subscribe", "id": "late", "indicator": "jobs_created"])
                #expect(refused["error"]?["code"] == "unauthenticated")
                let answer = try await intake.expectOK(Self.jobs("USAID-R-2", 6))
                let seq = try #require(answer["seq"]?.int64Value)
                let reader = try await stack.reportingClient()
                _ = try await reader.expectOK(["op": "totals", "min_seq": .int(seq)])
                let after = await Self.collect(late, timeout: .milliseconds(500)) { _ in true }
                #expect(after.isEmpty, "\(after)")
            }
        }

        @Test func aDisconnectedSubscriberIsForgotten() async throws {
            try await withServiceStack(metrics: true) { stack in
                let metrics = try #require(stack.metricsAddress("reporting"))
                func open() async throws -> Double? {
                    sample(try await httpGet(metrics, "/metrics").body, "rootcauses_subscriptions_open")
                }
                let first = try await stack.reportingClient()
                let second = try await stack.reportingClient()
                _ = try await first.expectOK(["op": "subscribe", "id": 1, "indicator": "jobs_created"])
                _ = try await first.expectOK(["op": "subscribe", "id": 2, "indicator": "firms_supported"])
                _ = try await second.expectOK(["op": "subscribe", "id": 1, "indicator": "jobs_created"])
                #expect(try await open() == 3)
                await first.close()
                var remaining = try await open()
                let deadline = ContinuousClock.now + .seconds(5)
                while remaining != 1, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                    remaining = try await open()
                }
                #expect(remaining == 1)
                // The other connection's subscription still works.
                let intake = try await stack.intakeClient()
                let answer = try await intake.expectOK(Self.jobs("USAID-D-1", 5))
                let seq = try #require(answer["seq"]?.int64Value)
                let events = await Self.collect(second) { ($0["as_of_seq"]?.int64Value ?? 0) >= seq }
                #expect(events.last?["id"] == 1)
            }
        }

        /// Reads waiting for `min_seq` and the subscriptions learn of every applied pass from
        /// PostgreSQL (migration 14), also after the listening session was cut: with reporting's
        /// own look at the watermark an hour apart, nothing else could answer them in time.
        @Test func readsAndSubscriptionsHearEveryAppliedPass() async throws {
            try await withServiceStack(environment: ["ROOTCAUSES_WATERMARK_POLL_MS": "3600000"]) { stack in
                let intake = try await stack.intakeClient()
                let reader = try await stack.reportingClient()
                let watcher = try await stack.reportingClient()
                /// The pids of reporting's listening sessions that have listened (last query: LISTEN).
                func listeners() async throws -> [Int] {
                    try await PostgresConnection.withConnection(
                        conninfo: stack.databaseURL,
                        logger: .init(label: "tests")
                    ) { connection in
                        try connection.query(
                            """
                            SELECT pid FROM pg_stat_activity
                            WHERE application_name = 'rootcauses-reporting-listener' AND datname = current_database()
                              AND state = 'idle' AND query LIKE 'LISTEN%'
                            """
                        ).map { try $0.decode(column: "pid", as: Int.self) }
                    }
                }
                /// Waits for one listening session other than `previous`; returns its pid.
                func newListener(besides previous: Int? = nil) async throws -> Int? {
                    let deadline = ContinuousClock.now + .seconds(20)
                    while ContinuousClock.now < deadline {
                        if let pid = try await listeners().first(where: { $0 != previous }) { return pid }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    return nil
                }
                let first = try #require(try await newListener())
                _ = try await watcher.expectOK(["op": "subscribe", "id": "jobs", "indicator": "jobs_created"])
                var total = 0
                func submitAndRead(_ round: Int) async throws {
                    total += round
                    let seq = try #require(
                        try await intake.expectOK(Self.jobs("USAID-heard-\(round)", round))["seq"]?.int64Value
                    )
                    let answer = try await reader.expectOK([
                        "op": "totals", "indicator": "jobs_created", "min_seq": .int(seq), "timeout_ms": 15_000,
                    ])
                    #expect(answer["rows"]?[0]?["value"] == .int(Int64(total)))
                    let events = await Self.collect(watcher, timeout: .seconds(15)) {
                        ($0["as_of_seq"]?.int64Value ?? 0) >= seq
                    }
                    #expect(events.last?["rows"]?[0]?["value"] == .int(Int64(total)))
                }
                for round in 1...3 { try await submitAndRead(round) }
                // Cut the listening session: once another listens, passes are heard again.
                try await PostgresConnection.withConnection(conninfo: stack.databaseURL, logger: .init(label: "tests"))
                {
                    _ = try $0.query("SELECT pg_terminate_backend(\(first))")
                }
                #expect(try await newListener(besides: first) != nil)
                for round in 4...6 { try await submitAndRead(round) }
                await intake.close()
                await reader.close()
                await watcher.close()
            }
        }
    }
}

/// A blocking line client over a plain socket whose receive buffer is set small before it
/// connects: the server's writes to it stall as soon as it stops reading.
final class RawLineClient {
    private let descriptor: Int32
    private var buffered: [UInt8] = []

    init(address: String, receiveBuffer: Int32) throws {
        descriptor = try connectedSocket(address) { descriptor in
            var size = receiveBuffer
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    func send(_ request: JSON) throws {
        let bytes = Array((request.serialized + "\n").utf8)
        guard write(descriptor, bytes, bytes.count) == bytes.count else { throw ClientError("write failed") }
    }

    func readLine(timeout: Duration = .seconds(10)) throws -> JSON {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let newline = buffered.firstIndex(of: 0x0A) {
                let line = Array(buffered[..<newline])
                buffered.removeFirst(newline + 1)
                return try JSONParser.parse(line)
            }
            guard ContinuousClock.now < deadline else { throw ClientError("no line within \(timeout)") }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) >= 0 else { throw ClientError("poll failed") }
            guard poller.revents != 0 else { continue }
            let count = read(descriptor, &chunk, chunk.count)
            guard count > 0 else { throw ClientError("the server closed the connection") }
            buffered += chunk[0..<count]
        }
    }

    func close() {
        Glibc.close(descriptor)
    }
}
