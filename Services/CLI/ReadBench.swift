import Foundation
import Logging
import RootcausesJSON
import RootcausesLocalStack
import RootcausesModel
import RootcausesPostgres
import RootcausesStorage
import RootcausesTransport

/// The read half of `bench`: loads the database to each size, lets aggregation build the
/// rollups, and times `totals` and `factsheet` at the current watermark and as of past seqs,
/// beside plain SQL sums over the raw values.
struct ReadBench {
    let stack: ServiceStack
    let catalogue: Catalogue
    /// Timed requests per query shape.
    let samples: Int
    let logger = Logger(label: "bench")

    /// Runs the read benchmark at each size (total stored values), growing the data between them.
    func run(sizes: [Int]) async throws {
        let generator = BenchData(catalogue: catalogue)
        var stored = try await storedValues()
        var nextSubmission = 0
        for size in sizes.sorted() {
            if stored < size {
                progress("loading \(size - stored) values with COPY (bench data, seqs assigned as intake would)")
                let started = ContinuousClock.now
                let loaded = try await load(values: size - stored, generator: generator, from: &nextSubmission)
                progress(
                    String(format: "loaded %d values in %.1f s", loaded, (ContinuousClock.now - started).seconds)
                )
                stored += loaded
            }
            let (applySeconds, applied) = try await waitForAggregation()
            try await settle()
            BenchOutput.figure(
                "reads_loaded",
                String(
                    format: "reads at %d stored values (%d submissions); aggregation applied the load in %.1f s",
                    stored,
                    applied,
                    applySeconds
                ),
                [
                    ("stored_values", .int(Int64(stored))), ("submissions", .int(applied)),
                    ("apply_seconds", BenchOutput.number(applySeconds)),
                ]
            )
            try await measure(appliedSeq: applied)
            try await measureExplain()
            try await plainSQL()
            printServiceMemory(stack, when: "after the reads at \(stored) values")
        }
    }

    // MARK: - Measuring

    private func measure(appliedSeq: Int64) async throws {
        let reporting = try await stack.reportingClient()
        defer { Task { await reporting.close() } }
        let indicator = catalogue.indicators.first { $0.code == "jobs_created" }?.code ?? catalogue.indicators[0].code
        let shapes: [(String, JSON)] = [
            ("totals, no grouping", ["op": "totals"]),
            ("totals by indicator and country", ["op": "totals", "group_by": ["indicator", "country"]]),
            (
                "totals by period, one indicator",
                ["op": "totals", "indicator": .string(indicator), "group_by": ["period"]]
            ),
            ("totals by sex, one indicator", ["op": "totals", "indicator": .string(indicator), "group_by": ["sex"]]),
            ("factsheet (json)", ["op": "factsheet", "format": "json"]),
        ]
        let pasts: [(String, Int64?)] = [
            ("current", nil),
            ("as of 1,000 submissions back", max(1, appliedSeq - 1000)),
            ("as of half the history back", max(1, appliedSeq / 2)),
        ]
        for (when, asOf) in pasts {
            for (name, request) in shapes {
                var timed = request
                if let asOf { timed = timed.setting("as_of_seq", to: .int(asOf)) }
                var times: [Double] = []
                var size = 0
                // Two untimed requests warm the caches and the plan.
                for _ in 0..<2 { size = try await reporting.expectOK(timed).serialized.utf8.count }
                for _ in 0..<samples {
                    let started = ContinuousClock.now
                    _ = try await reporting.expectOK(timed)
                    times.append((ContinuousClock.now - started).seconds * 1000)
                }
                times.sort()
                BenchOutput.figure(
                    "read",
                    String(
                        format: "  %@, %@: p50 %.2f ms, p99 %.2f ms (%d requests; answer %d bytes)",
                        name,
                        when,
                        percentile(times, 0.5),
                        percentile(times, 0.99),
                        samples,
                        size
                    ),
                    [
                        ("shape", .string(name)), ("when", .string(when)),
                        ("p50_ms", BenchOutput.number(percentile(times, 0.5))),
                        ("p99_ms", BenchOutput.number(percentile(times, 0.99))), ("requests", .int(Int64(samples))),
                        ("answer_bytes", .int(Int64(size))),
                    ]
                )
            }
        }
    }

    /// Pages of 100 of `explain`: the first page of a row, pages deep into it (following the
    /// cursors, as a user clicking through), a `latest` indicator's number and a fact sheet number.
    private func measureExplain() async throws {
        let reporting = try await stack.reportingClient()
        defer { Task { await reporting.close() } }
        let summed = catalogue.indicators.first { $0.code == "jobs_created" } ?? catalogue.indicators[0]
        let snapshot = catalogue.indicators.first { $0.timeAggregation == .latest } ?? summed
        let country = summed.countries.last ?? "HN"
        let row: JSON = [
            "op": "explain", "indicator": .string(summed.code), "group_by": ["country"],
            "row": ["country": .string(country)], "limit": 100,
        ]
        let shapes: [(String, JSON)] = [
            ("explain, first page of \(summed.code) in \(country)", row),
            (
                "explain, \(snapshot.code) (latest)",
                ["op": "explain", "indicator": .string(snapshot.code), "limit": 100]
            ),
            (
                "explain, the fact sheet number of \(summed.code)",
                [
                    "op": "explain", "indicator": .string(summed.code), "date": .string(Day.today().description),
                    "limit": 100,
                ]
            ),
        ]
        func report(_ name: String, _ times: [Double], _ size: Int) {
            let sorted = times.sorted()
            BenchOutput.figure(
                "explain",
                String(
                    format: "  %@: p50 %.2f ms, p99 %.2f ms (%d requests; answer %d bytes)",
                    name,
                    percentile(sorted, 0.5),
                    percentile(sorted, 0.99),
                    sorted.count,
                    size
                ),
                [
                    ("shape", .string(name)), ("p50_ms", BenchOutput.number(percentile(sorted, 0.5))),
                    ("p99_ms", BenchOutput.number(percentile(sorted, 0.99))), ("requests", .int(Int64(sorted.count))),
                    ("answer_bytes", .int(Int64(size))),
                ]
            )
        }
        for (name, request) in shapes {
            var size = 0
            for _ in 0..<2 { size = try await reporting.expectOK(request).serialized.utf8.count }
            var times: [Double] = []
            for _ in 0..<samples {
                let started = ContinuousClock.now
                _ = try await reporting.expectOK(request)
                times.append((ContinuousClock.now - started).seconds * 1000)
            }
            report(name, times, size)
        }
        // Clicking through: each next page, timed, for as many pages as samples (or the row has).
        var times: [Double] = []
        var size = 0
        var page = try await reporting.expectOK(row)
        while times.count < samples, let cursor = page["next_cursor"]?.stringValue {
            let started = ContinuousClock.now
            page = try await reporting.expectOK(row.setting("cursor", to: .string(cursor)))
            times.append((ContinuousClock.now - started).seconds * 1000)
            size = page.serialized.utf8.count
        }
        report("explain, next pages of \(summed.code) in \(country)", times, size)
    }

    /// The same sums straight over the raw values, for comparison (no corrections, no latest rule).
    private func plainSQL() async throws {
        let queries: [(String, String)] = [
            (
                "plain SQL sum over the raw values",
                "SELECT sum(value) FROM \(Storage.Table.submissionValues.rawValue)"
            ),
            (
                "plain SQL sum by indicator and country",
                "SELECT indicator, country, sum(value) FROM \(Storage.Table.submissionValues.rawValue) GROUP BY 1, 2"
            ),
        ]
        try await PostgresConnection.withConnection(conninfo: stack.databaseURL, logger: logger) { connection in
            for (name, sql) in queries {
                var times: [Double] = []
                _ = try connection.query(PostgresQuery(unsafeSQL: sql))
                for _ in 0..<5 {
                    let started = ContinuousClock.now
                    _ = try connection.query(PostgresQuery(unsafeSQL: sql))
                    times.append((ContinuousClock.now - started).seconds * 1000)
                }
                times.sort()
                BenchOutput.figure(
                    "plain_sql",
                    String(
                        format: "  %@: median %.0f ms, max %.0f ms (5 runs)",
                        name,
                        percentile(times, 0.5),
                        times.last!
                    ),
                    [
                        ("shape", .string(name)), ("median_ms", BenchOutput.number(percentile(times, 0.5))),
                        ("max_ms", BenchOutput.number(times.last!)),
                    ]
                )
            }
        }
    }

    // MARK: - Loading

    private func storedValues() async throws -> Int {
        try await PostgresConnection.withConnection(conninfo: stack.databaseURL, logger: logger) { connection in
            try storedValueCount(on: connection)
        }
    }

    /// COPYs bench submissions with their seqs, in transactions of about 200,000 values, the
    /// way intake numbers them (under the counter's row lock, in commit order).
    private func load(values wanted: Int, generator: BenchData, from next: inout Int) async throws -> Int {
        var loaded = 0
        while loaded < wanted {
            var chunkValues = 0
            var batch: [BenchData.Submission] = []
            while chunkValues < 200_000, loaded + chunkValues < wanted {
                let submission = generator.submission(next)
                next += 1
                batch.append(submission)
                chunkValues += submission.values.count
            }
            let drafts = batch
            let submissionsTable = Storage.Table.submissions.rawValue
            let valuesTable = Storage.Table.submissionValues.rawValue
            try await PostgresConnection.withConnection(conninfo: stack.databaseURL, logger: logger) { connection in
                try connection.transaction { connection in
                    let counter = try connection.query(
                        "UPDATE \(Storage.Table.seqCounter) SET last_seq = last_seq + \(Int64(drafts.count))::bigint RETURNING last_seq"
                            as PostgresQuery
                    )
                    let lastSeq = try counter.first?.decode(column: "last_seq", as: Int64.self) ?? 0
                    let ids = try connection.query(
                        "SELECT nextval('submissions_id_seq') AS first, setval('submissions_id_seq', nextval('submissions_id_seq') + \(Int64(drafts.count))::bigint) AS last"
                            as PostgresQuery
                    )
                    let firstID = try ids.first?.decode(column: "first", as: Int64.self) ?? 0
                    let firstSeq = lastSeq - Int64(drafts.count) + 1
                    var submissionLines: [String] = []
                    var valueLines: [String] = []
                    for (offset, draft) in drafts.enumerated() {
                        let id = firstID + Int64(offset)
                        submissionLines.append(
                            "\(id)\t\(firstSeq + Int64(offset))\t\(draft.reporter)\tbench-read-\(draft.number)\t\(draft.period.label)\t\(draft.period.start)\t\(draft.period.end)\t\(draft.values.count)\tbench\n"
                        )
                        for (ordinal, value) in draft.values.enumerated() {
                            valueLines.append(
                                "\(id)\t\(ordinal)\t\(value.indicator)\t\(value.country)\t\(value.cell)\t\(value.value)\tf\n"
                            )
                        }
                    }
                    _ = try connection.copyIn(
                        "COPY \(submissionsTable) (id, seq, reporter, submission_id, period, period_start, period_end, value_count, content_digest) FROM STDIN",
                        lines: submissionLines
                    )
                    _ = try connection.copyIn(
                        "COPY \(valuesTable) (submission, ordinal, indicator, country, cell, value, estimate) FROM STDIN",
                        lines: valueLines
                    )
                }
            }
            loaded += chunkValues
        }
        return loaded
    }

    /// Nudges every aggregation instance and waits until all partitions reach the newest seq.
    private func waitForAggregation() async throws -> (seconds: Double, applied: Int64) {
        let started = ContinuousClock.now
        for index in stack.aggregations.indices where stack.aggregations[index].isRunning {
            let client = try await stack.aggregationClient(index)
            _ = try await client.expectOK(["op": "nudge"])
            await client.close()
        }
        let first = try await stack.aggregationClient(stack.aggregations.firstIndex { $0.isRunning } ?? 0)
        defer { Task { await first.close() } }
        while true {
            let status = try await first.expectOK(["op": "status"])
            if status["backlog"] == 0, let applied = status["applied_seq"]?.int64Value {
                return ((ContinuousClock.now - started).seconds, applied)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Leaves the database as it settles after a bulk load, before reads are timed: vacuumed,
    /// analyzed, and checkpointed. Without the CHECKPOINT, the one the load's WAL had started ran
    /// through the reads (35 s of writes at 10 M values), taking the disk and a share of the two
    /// cores from them. Only a superuser or a member of `pg_checkpoint` may take one: on an
    /// operator's database as another role, the reads go on without it, and say so.
    private func settle() async throws {
        let checkpointed = try await PostgresConnection.withConnection(conninfo: stack.databaseURL, logger: logger) {
            connection -> Bool in
            try connection.execute(
                "VACUUM ANALYZE \(Storage.Table.rollups.rawValue), \(Storage.Table.rollupVersions.rawValue), \(Storage.Table.submissions.rawValue), \(Storage.Table.submissionValues.rawValue)"
            )
            let allowed =
                try connection.query(
                    """
                    SELECT rolsuper OR CASE WHEN to_regrole('pg_checkpoint') IS NULL THEN false
                                            ELSE pg_has_role(current_user, 'pg_checkpoint', 'member') END AS allowed
                    FROM pg_roles WHERE rolname = current_user
                    """ as PostgresQuery
                ).first?.decode(column: "allowed", as: Bool.self) ?? false
            guard allowed else { return false }
            try connection.execute("CHECKPOINT")
            return true
        }
        if !checkpointed {
            progress("no CHECKPOINT before the reads (the role may not take one): a checkpoint may run beside them")
        }
    }
}

/// Deterministic bench data shaped like the real thing: each reporter reports its own share of
/// the catalogue's indicators, for every country, in every cell of the indicator's dimensions;
/// quarter after quarter over twelve fiscal years, each quarter's reports arriving before the
/// next one's; many submissions per reporter and quarter (partners' activities: about 10 M
/// values fill the twelve years), but `latest` snapshots only once per reporter and quarter.
struct BenchData: Sendable {
    struct Value: Sendable {
        var indicator: String
        var country: String
        var cell: String
        var value: Int
    }

    struct Submission: Sendable {
        var number: Int
        var reporter: String
        var period: Period
        var values: [Value]
    }

    let reporters: [String]
    let quarters: [Period]
    /// Per reporter: its indicators' cells, split into sums and snapshots.
    let sums: [[(indicator: String, country: String, cell: String)]]
    let snapshots: [[(indicator: String, country: String, cell: String)]]

    init(catalogue: Catalogue) {
        reporters = catalogue.reporters.map(\.code)
        // FY2015Q1 (October 2014) to FY2026Q4.
        quarters = (0..<48).map { q in
            let month = 10 + 3 * q
            let start = Day(year: 2014 + (month - 1) / 12, month: (month - 1) % 12 + 1, day: 1)
            let endMonth = (month + 1) % 12 + 1
            let endYear = 2014 + (month + 1) / 12
            return Period(start: start, end: Day(year: endYear, month: endMonth, day: 1).endOfMonth)
        }
        var sums = Array(repeating: [(indicator: String, country: String, cell: String)](), count: reporters.count)
        var snapshots = sums
        for (index, indicator) in catalogue.indicators.enumerated() {
            var cells = [""]
            for name in indicator.dimensions.sorted() {
                let values = catalogue.dimensions.first { $0.name == name }?.values ?? []
                cells = cells.flatMap { prefix in
                    values.map { prefix.isEmpty ? "\(name)=\($0)" : "\(prefix);\(name)=\($0)" }
                }
            }
            let reporter = index % reporters.count
            for country in indicator.countries {
                for cell in cells {
                    if indicator.timeAggregation == .latest {
                        snapshots[reporter].append((indicator.code, country, cell))
                    } else {
                        sums[reporter].append((indicator.code, country, cell))
                    }
                }
            }
        }
        self.sums = sums
        self.snapshots = snapshots
    }

    /// Submissions per reporter and quarter.
    static let perQuarter = 580

    /// Submission number `n`: reporters in turn, quarter after quarter.
    func submission(_ n: Int) -> Submission {
        let reporter = n % reporters.count
        let round = n / reporters.count
        let quarter = (round / Self.perQuarter) % quarters.count
        let firstOfItsQuarter = round % Self.perQuarter == 0
        var cells = sums[reporter]
        if firstOfItsQuarter || cells.isEmpty { cells += snapshots[reporter] }
        if cells.isEmpty { cells = sums.first { !$0.isEmpty } ?? [] }
        let values = cells.enumerated().map { offset, cell in
            Value(indicator: cell.indicator, country: cell.country, cell: cell.cell, value: (n &* 7 &+ offset) % 97 + 1)
        }
        return Submission(number: n, reporter: reporters[reporter], period: quarters[quarter], values: values)
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Resident and peak memory of each service process, from /proc.
func printServiceMemory(_ stack: ServiceStack, when: String) {
    var parts: [String] = []
    var fields: [(String, JSON)] = [("when", .string(when))]
    for process in stack.processes where process.isRunning {
        guard let status = try? String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8) else {
            continue
        }
        func megabytes(_ name: String) -> Double {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Double(Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
        }
        let (resident, peak) = (megabytes("VmRSS"), megabytes("VmHWM"))
        parts.append(String(format: "%@ %.0f MB (peak %.0f MB)", process.name, resident, peak))
        fields.append(
            (
                process.name,
                ["rss_mb": BenchOutput.number(resident, decimals: 0), "peak_mb": BenchOutput.number(peak, decimals: 0)]
            )
        )
    }
    BenchOutput.figure("memory", "memory \(when): " + parts.joined(separator: ", "), fields)
}

/// Values of committed submissions (those with a seq): what aggregation has to apply.
func storedValueCount(on connection: PostgresConnection) throws -> Int {
    let query: PostgresQuery = """
        SELECT count(*) AS n FROM \(Storage.Table.submissionValues) v
        JOIN \(Storage.Table.submissions) s ON s.id = v.submission WHERE s.seq IS NOT NULL
        """
    return try connection.query(query).first?.decode(column: "n", as: Int.self) ?? 0
}
