import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesModel
import RootcausesTransport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Live totals under load: `subscribers` connections to one reporting process, each with one
/// subscription, spread over `queries` distinct queries (one: a dashboard's number everyone
/// watches; ten: each query read once per change), and `changes` submissions that each change
/// every query. For each change, the time from intake's ack to each subscriber's first event
/// at or past the ack's seq. The subscribers run in this process, on the same cores as the
/// services and PostgreSQL: their reading is in the figure too.
struct SubscriptionBench {
    let stack: ServiceStack
    let catalogue: Catalogue
    let subscribers: Int
    let queries: Int
    let changes: Int

    /// Per subscriber, the newest event's seq and when each seq was first seen.
    private final class Arrivals: Sendable {
        struct Seen {
            var newest: Int64 = -1
            var times: [(seq: Int64, at: ContinuousClock.Instant)] = []
        }
        let seen: Mutex<[Seen]>
        init(count: Int) { seen = Mutex(Array(repeating: Seen(), count: count)) }

        func record(_ index: Int, seq: Int64) {
            let now = ContinuousClock.now
            seen.withLock {
                $0[index].newest = max($0[index].newest, seq)
                $0[index].times.append((seq, now))
            }
        }

        func allReached(_ seq: Int64) -> Bool { seen.withLock { $0.allSatisfy { $0.newest >= seq } } }

        /// When each subscriber first saw a seq at or past `seq`.
        func firstTimes(atLeast seq: Int64) -> [ContinuousClock.Instant] {
            seen.withLock { all in all.compactMap { seen in seen.times.first { $0.seq >= seq }?.at } }
        }
    }

    func run() async throws {
        let indicators = catalogue.indicators.filter { !$0.isMoney && $0.countries.contains("HN") }
            .prefix(queries).map(\.code)
        progress(
            "subscriptions: \(subscribers) connections to reporting, one subscription each over \(indicators.count) queries"
        )
        var clients: [ProtocolClient] = []
        for i in 0..<subscribers {
            let client = try await stack.reportingClient()
            _ = try await client.expectOK([
                "op": "subscribe", "id": "bench", "indicator": .string(indicators[i % indicators.count]),
                "group_by": ["country"],
            ])
            clients.append(client)
        }
        let arrivals = Arrivals(count: subscribers)
        let subscribed = clients
        let readers = Task {
            await withDiscardingTaskGroup { group in
                for (index, client) in subscribed.enumerated() {
                    group.addTask {
                        for await event in client.events {
                            if let seq = event["as_of_seq"]?.int64Value { arrivals.record(index, seq: seq) }
                        }
                    }
                }
            }
        }
        let intake = try await stack.intakeClient()
        var latencies: [Double] = []
        // Per change, the first subscriber's latency: aggregation, the watermark poll and the
        // reads, before the fan-out.
        var firsts: [Double] = []
        for change in 0..<changes {
            // A new value each time: for a series that counts its latest figure, the same value
            // again would change nothing (and rightly push nothing).
            let values: [JSON] = indicators.map {
                ["indicator": .string($0), "country": "HN", "value": .int(Int64(change + 1))]
            }
            let submission: JSON = [
                "submission_id": .string("subscription-bench-\(queries)-\(change)"), "reporter": "USAID",
                "period": "FY2022Q1",
                "values": .array(values),
            ]
            let ack = try await intake.expectOK(submitRequest(submission))
            let ackTime = ContinuousClock.now
            let seq = try ack["seq"]?.int64Value ?? { throw CLIError("intake's ack has no seq") }()
            let deadline = ackTime + .seconds(30)
            while !arrivals.allReached(seq) {
                guard ContinuousClock.now < deadline else {
                    let behind = arrivals.seen.withLock { all in all.indices.filter { all[$0].newest < seq } }
                    throw CLIError(
                        "\(behind.count) of \(subscribers) subscribers did not see seq \(seq) within 30 s (the first: \(behind.prefix(5).map { indicators[$0 % indicators.count] }))"
                    )
                }
                try await Task.sleep(for: .milliseconds(1))
            }
            // An event can beat the ack to this process: it counts as 0.
            let round = arrivals.firstTimes(atLeast: seq).map { max(0, (($0 - ackTime).seconds) * 1000) }
            latencies += round
            firsts.append(round.min() ?? 0)
        }
        printServiceMemory(stack, when: "with \(subscribers) subscribers")
        for client in clients { await client.close() }
        await intake.close()
        await readers.value
        latencies.sort()
        firsts.sort()
        BenchOutput.figure(
            "subscriptions",
            String(
                format:
                    "subscriptions: %d subscribers of %d queries on one reporting process, %d changes (%d events): ack to event p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms; the first subscriber of a change p50 %.1f ms",
                subscribers,
                indicators.count,
                changes,
                latencies.count,
                percentile(latencies, 0.5),
                percentile(latencies, 0.95),
                percentile(latencies, 0.99),
                latencies.last ?? 0,
                firsts[firsts.count / 2]
            ),
            [
                ("subscribers", .int(Int64(subscribers))), ("queries", .int(Int64(indicators.count))),
                ("changes", .int(Int64(changes))), ("events", .int(Int64(latencies.count))),
                ("p50_ms", BenchOutput.number(percentile(latencies, 0.5))),
                ("p95_ms", BenchOutput.number(percentile(latencies, 0.95))),
                ("p99_ms", BenchOutput.number(percentile(latencies, 0.99))),
                ("max_ms", BenchOutput.number(latencies.last ?? 0)),
                ("first_subscriber_p50_ms", BenchOutput.number(firsts[firsts.count / 2])),
            ]
        )
    }

    /// A thousand connections need more descriptors than a default soft limit of 1,024 allows;
    /// raised before the services start, so that they inherit it.
    static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max
        else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    }
}
