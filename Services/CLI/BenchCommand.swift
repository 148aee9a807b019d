import ArgumentParser
import Foundation
import Logging
import NIOCore
import RootcausesJSON
import RootcausesLocalStack
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol
import RootcausesService
import RootcausesStorage
import RootcausesTransport

/// Measures the quality bars: durable intake throughput against a raw COPY into the same
/// tables, and the lag from an acknowledgement to the value being visible in reports.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure intake throughput against raw COPY, and ack-to-visible lag, on a local stack.",
        discussion:
            "Starts PostgreSQL and the three services like 'demo' does (in a fresh database 'rootcauses_bench'), prints figures, and shuts down. Everything runs on this machine, so the figures include the services and PostgreSQL sharing its cores."
    )

    @OptionGroup var stackOptions: StackOptions

    @Option(help: "Submissions in the throughput run.") var submissions: Int = 2000
    @Option(help: "Values per submission (distinct cells, up to 10,000).") var values: Int = 50
    @Option(help: "Concurrent intake connections.") var clients: Int = 16
    @Option(
        help:
            "Requests kept in flight on each intake connection of the throughput runs (the next is sent as each is answered); the lag runs' load connection sends rounds of this many."
    )
    var window: Int = 4
    @Option(name: .customLong("lag-samples"), help: "Ack-to-visible samples, taken while a background load runs.")
    var lagSamples: Int = 300

    @Option(
        name: .customLong("catch-up"),
        help:
            "Aggregation instance counts to time catching up the whole stored backlog with, comma-separated (e.g. 1,2,4); empty to skip."
    )
    var catchUp: String = "1,2,4"

    @Option(
        name: .customLong("read-sizes"),
        help:
            "Stored-value counts to time reads at, comma-separated (the data is grown with COPY between them); empty to skip."
    )
    var readSizes: String = "1000000,10000000"

    // 1,000: the p99 of 200 requests is their second slowest, one scheduling hiccup of a shared
    // machine away from any figure (a fact sheet at 10 M values: 5.5 ms from 200 requests, 2.9 ms
    // from 1,000, in two runs of one build).
    @Option(
        name: .customLong("read-samples"),
        help: "Timed requests per read shape (the p99 is the tenth slowest of 1,000)."
    )
    var readSamples: Int = 1000

    @Flag(name: .customLong("skip-intake"), help: "Skip the intake throughput, lag and catch-up runs.")
    var skipIntake = false

    @Flag(help: "Print each figure as one JSON object a line ({\"figure\":…}), for scripts.")
    var json = false

    @Option(help: "Connections subscribed to live totals on one reporting process; 0 to skip.")
    var subscribers: Int = 1000

    @Option(name: .customLong("subscription-changes"), help: "Changes timed from ack to every subscriber's event.")
    var subscriptionChanges: Int = 30

    @Option(
        name: .customLong("subscription-queries"),
        help: "Distinct queries the subscribers watch, comma-separated runs (1: all watch one number)."
    )
    var subscriptionQueries: String = "1,10"

    func run() async throws {
        try await BenchOutput.$json.withValue(json) { try await measureAll() }
    }

    private func measureAll() async throws {
        guard submissions > 0, values > 0, values <= 10_000, clients > 0, window > 0, lagSamples > 0 else {
            throw ValidationError("counts must be positive, and --values at most 10000")
        }
        guard (0...1000).contains(subscribers), subscriptionChanges > 0 else {
            throw ValidationError(
                "--subscribers takes 0 to 1000 (reporting serves 1,024 connections); --subscription-changes a positive count"
            )
        }
        if subscribers > 0 { SubscriptionBench.raiseOpenFileLimit() }
        let queryCounts = try subscriptionQueries.split(separator: ",").map { text -> Int in
            guard let count = Int(text.trimmingCharacters(in: .whitespaces)), (1...20).contains(count) else {
                throw ValidationError(
                    "--subscription-queries takes counts from 1 to 20, comma-separated, not '\(text)'"
                )
            }
            return count
        }
        let instanceCounts = try catchUp.split(separator: ",").map { text -> Int in
            guard let count = Int(text.trimmingCharacters(in: .whitespaces)), (1...16).contains(count) else {
                throw ValidationError("--catch-up takes instance counts from 1 to 16, comma-separated, not '\(text)'")
            }
            return count
        }
        let sizes = try readSizes.split(separator: ",").map { text -> Int in
            guard let size = Int(text.trimmingCharacters(in: .whitespaces)), size > 0 else {
                throw ValidationError("--read-sizes takes positive value counts, comma-separated, not '\(text)'")
            }
            return size
        }
        let cataloguePath = findShippedFile("catalogue.json") ?? "Deploy/config/catalogue.json"
        let catalogue = try Catalogue.load(path: cataloguePath)
        let workload = BenchWorkload(catalogue: catalogue, values: values)
        guard workload.distinctCells >= values else {
            throw ValidationError("the catalogue has only \(workload.distinctCells) distinct cells")
        }

        var options = stackOptions
        if options.dataDirectory == ".rootcauses" { options.dataDirectory = ".rootcauses/bench" }
        let database = "rootcauses_bench_\(Int(Date().timeIntervalSince1970))"
        var running = try await LocalStack.start(options: options, ports: (0, 0, 0), database: database, log: progress)
        do {
            if !skipIntake {
                try await measure(running: running, workload: workload)
                for count in instanceCounts { try await measureCatchUp(stack: running.stack, instances: count) }
            }
            if subscribers > 0 {
                for queries in queryCounts {
                    try await SubscriptionBench(
                        stack: running.stack,
                        catalogue: catalogue,
                        subscribers: subscribers,
                        queries: queries,
                        changes: subscriptionChanges
                    ).run()
                }
            }
            if !sizes.isEmpty {
                if !skipIntake {
                    // The intake and lag runs leave their rows behind (about 0.9 M values by
                    // default, one reporter and quarter): the reads get a database of their own,
                    // so each size holds only the read bench's data, spread as it is meant to be.
                    await running.stop(log: progress)
                    running = try await LocalStack.start(
                        options: options,
                        ports: (0, 0, 0),
                        database: database + "_reads",
                        log: progress
                    )
                }
                // Reads are timed with one aggregation instance, as a small deployment runs.
                for process in running.stack.aggregations.dropFirst() where process.isRunning { await process.stop() }
                if running.stack.aggregations.first?.isRunning == false {
                    try await running.stack.startAggregation(index: 0)
                }
                try await ReadBench(stack: running.stack, catalogue: catalogue, samples: readSamples).run(sizes: sizes)
            }
        } catch {
            await running.stop(log: progress)
            throw error
        }
        await running.stop(log: progress)
    }

    private func measure(running: LocalStack, workload: BenchWorkload) async throws {
        let stack = running.stack
        let totalValues = submissions * values
        progress(
            "workload: \(submissions) submissions x \(values) values = \(totalValues) values; \(clients) connections, \(window) in flight each"
        )

        // Durable intake (every answer after its commit) against a raw COPY of the same rows into
        // the same tables, in one durable transaction. Each intake run comes right after a COPY
        // run, and is measured against it: both meet the tables as earlier runs left them (an
        // autovacuum of the rows of all the runs before, say, which ran during intake's runs when
        // every COPY ran first). Five pairs a figure, since a single run of a second or less
        // swings by about ten points on a shared 2-core machine: the median counts.
        var copyRates: [Double] = []
        func pairedWithCopy(
            _ intakeRun: (Int) async throws -> Double
        ) async throws -> (
            rates: RepeatedRuns, shares: RepeatedRuns
        ) {
            var rates: [Double] = []
            let shares = try await RepeatedRuns.measure { run in
                let copyRate =
                    Double(totalValues) / (try await rawCopy(databaseURL: stack.databaseURL, workload: workload))
                copyRates.append(copyRate)
                let rate = try await intakeRun(run)
                rates.append(rate)
                return rate / copyRate
            }
            return (RepeatedRuns(inOrder: rates), shares)
        }
        /// "61% of raw COPY (the median of 5 runs' ratios to the COPY run before each; 55% to
        /// 66%)", and the figures' JSON: the median ratio, not the median rate over the median
        /// COPY.
        func shareText(_ shares: RepeatedRuns) -> String {
            String(
                format:
                    "%.0f%% of raw COPY (the median of %d runs' ratios to the COPY run before each; %.0f%% to %.0f%%)",
                100 * shares.median,
                shares.inOrder.count,
                100 * shares.lowest,
                100 * shares.highest
            )
        }
        func shareFields(_ shares: RepeatedRuns) -> [(String, JSON)] {
            [
                ("share_of_raw_copy", BenchOutput.number(shares.median, decimals: 3)),
                ("runs_share_of_raw_copy_in_order", .array(shares.inOrder.map { BenchOutput.number($0, decimals: 3) })),
            ]
        }

        // 1. With aggregation applying beside intake on the same cores (the whole system on one
        //    machine). Aggregation applies each run's backlog before the next starts.
        var drainSeconds = 0.0
        let beside = try await pairedWithCopy { run in
            let (rate, seq) = try await timeIntake(stack: stack, workload: workload, prefix: "bench-\(run)")
            drainSeconds = try await drain(stack: stack, through: seq)
            return rate
        }

        // 2. With aggregation stopped, as when it runs on other machines: intake's own path.
        //    Aggregation then applies the backlog before the lag run.
        for process in stack.aggregations where process.isRunning { await process.stop() }
        var aloneSeq: Int64 = 0
        let alone = try await pairedWithCopy { run in
            let (rate, seq) = try await timeIntake(stack: stack, workload: workload, prefix: "alone-\(run)")
            aloneSeq = seq
            return rate
        }
        try await stack.startAggregation(index: 0)

        let copies = RepeatedRuns(inOrder: copyRates)
        BenchOutput.figure(
            "raw_copy",
            String(
                format:
                    "raw COPY into submissions + submission_values: %d values in %.2f s = %.0f values/s (median of %d runs, one right before each intake run below; %.0f to %.0f)",
                totalValues,
                Double(totalValues) / copies.median,
                copies.median,
                copyRates.count,
                copies.lowest,
                copies.highest
            ),
            [
                ("values", .int(Int64(totalValues))),
                ("seconds", BenchOutput.number(Double(totalValues) / copies.median)),
                ("values_per_second", BenchOutput.number(copies.median, decimals: 0)),
            ]
        )
        let intakeRate = beside.rates.median
        BenchOutput.figure(
            "intake",
            String(
                format: "intake, acked after commit: %d values in %.2f s = %.0f values/s (%.0f submissions/s) = ",
                totalValues,
                Double(totalValues) / intakeRate,
                intakeRate,
                intakeRate / Double(values)
            ) + shareText(beside.shares),
            [
                ("values", .int(Int64(totalValues))), ("seconds", BenchOutput.number(Double(totalValues) / intakeRate)),
                ("values_per_second", BenchOutput.number(intakeRate, decimals: 0)),
                ("submissions_per_second", BenchOutput.number(intakeRate / Double(values), decimals: 0)),
            ] + shareFields(beside.shares)
        )
        BenchOutput.figure(
            "drain",
            String(
                format: "aggregation drained the backlog %.2f s after the last ack (of the last run)",
                drainSeconds
            ),
            [("seconds", BenchOutput.number(drainSeconds))]
        )
        let aloneRate = alone.rates.median
        BenchOutput.figure(
            "intake_alone",
            String(format: "intake alone (aggregation stopped, as on other machines): %.0f values/s = ", aloneRate)
                + shareText(alone.shares),
            [("values_per_second", BenchOutput.number(aloneRate, decimals: 0))] + shareFields(alone.shares)
        )

        _ = try await drain(stack: stack, through: aloneSeq)

        // 3. Ack-to-visible lag while one connection keeps intake busy: with one submission
        //    at a time, then `window` pipelined (intake works on them together: a heavier load).
        for depth in Set([1, window]).sorted() {
            try await measureLag(stack: stack, workload: workload, depth: depth, printMemory: depth == window)
        }
    }

    /// Ack-to-visible lag of probe submissions on their own connection while another keeps
    /// `depth` submissions in flight.
    private func measureLag(stack: ServiceStack, workload: BenchWorkload, depth: Int, printMemory: Bool) async throws {
        let reporting = try await stack.reportingClient()
        let load = Task {
            let intake = try await stack.intakeClient()
            var i = 0
            while !Task.isCancelled {
                let requests = (0..<depth).map { k in
                    submitRequest(
                        benchSubmission(
                            "load-\(depth)-\(i)-\(k)",
                            values: workload.cells(ofSubmission: i * depth + k)
                        )
                    )
                }
                do {
                    _ = try await intake.pipeline(requests)
                } catch {
                    await intake.close()
                    throw error
                }
                i += 1
            }
            await intake.close()
        }
        let prober = try await stack.intakeClient()
        var lags: [Double] = []
        for i in 0..<lagSamples {
            let probe = benchSubmission(
                "probe-\(depth)-\(i)",
                values: [["indicator": "firms_supported", "country": "HN", "value": 1]]
            )
            let acked = try await prober.expectOK(submitRequest(probe))
            let ackTime = ContinuousClock.now
            let seq = acked["seq"]!.int64Value!
            _ = try await reporting.expectOK([
                "op": "totals", "indicator": "firms_supported", "min_seq": .int(seq), "timeout_ms": 30_000,
            ])
            lags.append((ContinuousClock.now - ackTime).seconds * 1000)
        }
        if printMemory { printServiceMemory(stack, when: "under the intake load") }
        load.cancel()
        _ = try? await load.value
        await prober.close()
        await reporting.close()
        lags.sort()
        func percentile(_ p: Double) -> Double { lags[min(lags.count - 1, Int(Double(lags.count) * p))] }
        BenchOutput.figure(
            "lag",
            String(
                format:
                    "ack-to-visible lag, %d in flight on the load connection (%d samples, read through reporting with min_seq): p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms",
                depth,
                lags.count,
                percentile(0.5),
                percentile(0.95),
                percentile(0.99),
                lags.last!
            ),
            [
                ("load_in_flight", .int(Int64(depth))),
                ("samples", .int(Int64(lags.count))), ("p50_ms", BenchOutput.number(percentile(0.5))),
                ("p95_ms", BenchOutput.number(percentile(0.95))), ("p99_ms", BenchOutput.number(percentile(0.99))),
                ("max_ms", BenchOutput.number(lags.last!)),
            ]
        )
    }

    /// Submits the workload (`submissions` of it, ids starting with `prefix`) over `clients`
    /// connections with `window` requests in flight each; returns values per second and the
    /// newest seq acknowledged. The request lines are made before the clock starts: the
    /// client's own JSON work is not intake's.
    private func timeIntake(
        stack: ServiceStack,
        workload: BenchWorkload,
        prefix: String
    ) async throws -> (valuesPerSecond: Double, newestSeq: Int64) {
        let lines = (0..<submissions).map { i in
            var line = ByteBuffer(
                string: submitRequest(benchSubmission("\(prefix)-\(i)", values: workload.cells(ofSubmission: i)))
                    .serialized
            )
            line.writeInteger(UInt8(ascii: "\n"))
            return line
        }
        let (submissions, clients, window) = (self.submissions, self.clients, self.window)
        guard let token = stack.adminToken else { throw CLIError("the bench stack has no admin key") }
        let (host, port) = try parseAddress(stack.intakeAddress)
        // Every connection's outcome, so that those made are closed when another failed.
        let outcomes = await withTaskGroup(of: Result<IntakeLoad, any Error>.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    do {
                        return .success(
                            try await IntakeLoad.connect(host: host, port: port, token: token, tls: stack.clientTLS)
                        )
                    } catch {
                        return .failure(error)
                    }
                }
            }
            return await group.reduce(into: [Result<IntakeLoad, any Error>]()) { $0.append($1) }
        }
        let connections = outcomes.compactMap { try? $0.get() }
        if connections.count < outcomes.count {
            for intake in connections { await intake.close() }
            for case .failure(let error) in outcomes { throw error }
        }
        let started = ContinuousClock.now
        let newestSeq: Int64
        do {
            newestSeq = try await withThrowingTaskGroup(of: Int64.self) { group in
                for (client, intake) in connections.enumerated() {
                    // `window` requests in flight all along: the next is sent as each is answered.
                    let mine = stride(from: client, to: submissions, by: clients).map { lines[$0] }
                    group.addTask { try await intake.run(mine, window: window) }
                }
                return try await group.reduce(0) { max($0, $1) }
            }
        } catch {
            for intake in connections { await intake.close() }
            throw error
        }
        let seconds = (ContinuousClock.now - started).seconds
        for intake in connections { await intake.close() }
        return (Double(submissions * values) / seconds, newestSeq)
    }

    /// Waits until aggregation applied every seq through `seq`; returns how long that took
    /// (after the last acknowledgement, when called right after a run).
    private func drain(stack: ServiceStack, through seq: Int64) async throws -> Double {
        let drainStart = ContinuousClock.now
        let reporting = try await stack.reportingClient()
        _ = try await reporting.expectOK([
            "op": "totals", "indicator": "firms_supported", "min_seq": .int(seq), "timeout_ms": 60_000,
        ])
        await reporting.close()
        return (ContinuousClock.now - drainStart).seconds
    }

    /// Times `instances` aggregation processes applying the whole stored backlog from scratch:
    /// they start and divide the partitions first, then the aggregates and watermarks are reset
    /// in one transaction, and the clock runs until every partition is applied again.
    private func measureCatchUp(stack: ServiceStack, instances: Int) async throws {
        let logger = Logger(label: "bench")
        // Exactly `instances` aggregation processes, on the stack's first ports.
        for process in stack.aggregations where process.isRunning { await process.stop() }
        for index in 0..<instances {
            if index < stack.aggregations.count {
                try await stack.startAggregation(index: index)
            } else {
                try await stack.addAggregation()
            }
        }
        let first = try await stack.aggregationClient(0)
        do {
            try await timeCatchUp(stack: stack, instances: instances, watching: first, logger: logger)
        } catch {
            await first.close()
            throw error
        }
        await first.close()
    }

    private func timeCatchUp(
        stack: ServiceStack,
        instances: Int,
        watching first: ProtocolClient,
        logger: Logger
    ) async throws {
        func owners() async throws -> [Int] {
            let status = try await first.expectOK(["op": "status"])
            return (status["instances"]?.arrayValue ?? []).map { $0["partitions"]?.arrayValue?.count ?? 0 }
        }
        var held: [Int] = []
        for _ in 0..<200 {
            held = try await owners()
            // Balanced: everyone live, all partitions owned, nobody above a fair share.
            let fairShare = (Storage.aggregationPartitions + instances - 1) / instances
            if held.count == instances, held.reduce(0, +) == Storage.aggregationPartitions,
                held.allSatisfy({ $0 <= fairShare })
            {
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let backlog = try await PostgresConnection.withConnection(conninfo: stack.databaseURL, logger: logger) {
            connection in
            try connection.transaction { connection in
                try connection.execute(
                    "TRUNCATE \(Storage.Table.rollups.rawValue), \(Storage.Table.rollupVersions.rawValue), \(Storage.Table.overlapPoints.rawValue)"
                )
                try connection.query(
                    "UPDATE \(Storage.Table.aggregationPartitions) SET applied_seq = 0" as PostgresQuery
                )
            }
            return try storedValueCount(on: connection)
        }
        let started = ContinuousClock.now
        for index in 0..<instances {
            let client = try await stack.aggregationClient(index)
            _ = try await client.expectOK(["op": "nudge"])
            await client.close()
        }
        while true {
            let status = try await first.expectOK(["op": "status"])
            if status["backlog"] == 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let seconds = (ContinuousClock.now - started).seconds
        BenchOutput.figure(
            "catch_up",
            String(
                format:
                    "aggregation catch-up of %d values with %d instance%@: %.2f s = %.0f values/s; partitions held: %@",
                backlog,
                instances,
                instances == 1 ? "" : "s",
                seconds,
                Double(backlog) / seconds,
                held.map(String.init).joined(separator: ", ")
            ),
            [
                ("values", .int(Int64(backlog))), ("instances", .int(Int64(instances))),
                ("seconds", BenchOutput.number(seconds)),
                ("values_per_second", BenchOutput.number(Double(backlog) / seconds, decimals: 0)),
                ("partitions_held", .array(held.map { .int(Int64($0)) })),
            ]
        )
    }

    /// Inserts the same rows intake would, with COPY, in one transaction; returns seconds (the
    /// COPY and its commit, not the making of its text). Cleans up after.
    private func rawCopy(databaseURL: String, workload: BenchWorkload) async throws -> Double {
        let logger = Logger(label: "bench")
        let submissions = self.submissions
        // Negative ids keep these rows apart from real ones; they get no seq, so nothing aggregates them.
        var submissionLines: [String] = []
        var valueLines: [String] = []
        submissionLines.reserveCapacity(submissions)
        valueLines.reserveCapacity(submissions * values)
        for i in 1...submissions {
            let cells = workload.cells(ofSubmission: i - 1)
            submissionLines.append(
                "-\(i)\tBENCH\tcopy-\(i)\tFY2022Q1\t2021-10-01\t2021-12-31\t\\N\t\(cells.count)\tx\n"
            )
            for (ordinal, cell) in cells.enumerated() {
                let cellKey = SubmissionValidator.cellKey(
                    (cell["disaggregation"]?.objectValue ?? []).map { ($0.0, $0.1.stringValue ?? "") }
                )
                valueLines.append(
                    "-\(i)\t\(ordinal)\t\(cell["indicator"]!.stringValue!)\t\(cell["country"]!.stringValue!)\t\(cellKey)\t\(cell["value"]!.numberLiteral!)\tf\n"
                )
            }
        }
        let (submissionsTable, valuesTable) = (
            Storage.Table.submissions.rawValue, Storage.Table.submissionValues.rawValue
        )
        let (submissionRows, valueRows) = (submissionLines, valueLines)
        return try await PostgresConnection.withConnection(
            conninfo: databaseURL,
            applicationName: "rootcauses-bench",
            logger: logger
        ) { connection in
            let start = ContinuousClock.now
            try connection.transaction { connection in
                try connection.copyIn(
                    "COPY \(submissionsTable) (id, reporter, submission_id, period, period_start, period_end, activity, value_count, content_digest) FROM STDIN",
                    lines: submissionRows
                )
                try connection.copyIn(
                    "COPY \(valuesTable) (submission, ordinal, indicator, country, cell, value, estimate) FROM STDIN",
                    lines: valueRows
                )
            }
            let seconds = (ContinuousClock.now - start).seconds
            try connection.transaction { connection in
                try connection.query(
                    "DELETE FROM \(Storage.Table.submissionValues) WHERE submission < 0" as PostgresQuery
                )
                try connection.query("DELETE FROM \(Storage.Table.submissions) WHERE id < 0" as PostgresQuery)
            }
            // Leave no dead rows behind for the intake run to wade through.
            try connection.execute("VACUUM ANALYZE \(submissionsTable), \(valuesTable)")
            return seconds
        }
    }
}

/// Repeated runs of one measure, in the order they ran: a single run of a second or less on a
/// shared 2-core machine swings by ±10 points, so the median counts, and the range is printed
/// beside it. Five runs, not three: with three, the medians of whole bench runs still differed by
/// up to 8 points.
struct RepeatedRuns {
    static let count = 5
    let inOrder: [Double]
    var median: Double {
        let sorted = inOrder.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
    var lowest: Double { inOrder.min()! }
    var highest: Double { inOrder.max()! }

    /// Runs `run` `count` times (given 1, 2, …), one after the other.
    static func measure(_ run: (Int) async throws -> Double) async throws -> RepeatedRuns {
        var results: [Double] = []
        for index in 1...count { results.append(try await run(index)) }
        return RepeatedRuns(inOrder: results)
    }
}

/// What the intake bench submits: every submission starts with one `firms_supported` cell (the
/// lag probes read that number), then `values - 1` distinct cells of the indicators
/// disaggregated by sex and age, whole (indicator, country) groups of ten cells in a row. Each
/// submission takes the next cells of the list, so the load spreads over all eleven such
/// indicators, and so over the aggregation partitions, as real reports from several agencies do.
/// (Every submission once carried the same 50 cells of three indicators: at most three
/// partitions had work, and a second aggregation instance could only get in the first's way.)
struct BenchWorkload: Sendable {
    private let first: JSON = ["indicator": "firms_supported", "country": "SV", "value": 1]
    /// Groups of one (indicator, country), taking the indicators in turn.
    private let rest: [JSON]
    private let values: Int

    init(catalogue: Catalogue, values: Int) {
        let sexes = catalogue.dimensions.first { $0.name == "sex" }?.values ?? []
        let ages = catalogue.dimensions.first { $0.name == "age" }?.values ?? []
        let indicators = catalogue.indicators.filter { Set($0.dimensions) == ["sex", "age"] && !$0.isMoney }
        var cells: [JSON] = []
        let rounds = indicators.map(\.countries.count).max() ?? 0
        for round in 0..<rounds {
            for indicator in indicators where round < indicator.countries.count {
                for sex in sexes {
                    for age in ages {
                        cells.append([
                            "indicator": .string(indicator.code), "country": .string(indicator.countries[round]),
                            "value": .int(cells.count % 97 + 1),
                            "disaggregation": ["sex": .string(sex), "age": .string(age)],
                        ])
                    }
                }
            }
        }
        self.rest = cells
        self.values = values
    }

    /// How many distinct cells a submission can hold.
    var distinctCells: Int { rest.count + 1 }

    /// The cells of the `index`th submission (from 0).
    func cells(ofSubmission index: Int) -> [JSON] {
        let count = values - 1
        guard count > 0, !rest.isEmpty else { return [first] }
        let start = (index * count) % rest.count
        return [first] + (0..<count).map { rest[(start + $0) % rest.count] }
    }
}

/// A USAID submission for FY2022Q1 with these values.
private func benchSubmission(_ id: String, values: [JSON]) -> JSON {
    ["submission_id": .string(id), "reporter": "USAID", "period": "FY2022Q1", "values": .array(values)]
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// How `bench` prints its figures: a sentence each on a terminal, or with `--json` one JSON
/// object a line (`{"figure":"intake",…}`), for scripts that track them.
enum BenchOutput {
    @TaskLocal static var json = false

    static func figure(_ name: String, _ text: String, _ fields: [(String, JSON)]) {
        if json {
            print(JSON.object([("figure", .string(name))] + fields).serialized)
        } else {
            print(text)
        }
    }

    /// A measured figure for JSON, to `decimals` places.
    static func number(_ value: Double, decimals: Int = 2) -> JSON {
        .number(String(format: "%.\(decimals)f", value))
    }
}
