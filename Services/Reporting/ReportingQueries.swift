import Foundation
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol
import RootcausesStorage

/// Reporting's SQL, all in one place. Totals and fact sheets read only the rollups (and their
/// earlier states, for a past `as_of_seq`), never the raw values; `history` reads the stored
/// versions of one submission.
struct ReportingQueries: Sendable {
    /// Where reads go: the primary, or a hot standby.
    let pool: PostgresPool
    /// The primary, when `pool` may be a standby: the one write (`publish`) goes there, and a
    /// read as of a time waits until the standby has replayed what the primary had numbered.
    let primary: PostgresPool?
    /// The catalogue's lists the totals statements use, as SQL array literals, made once.
    let catalogueArrays: CatalogueArrays

    /// Constants of the process, so spliced into the SQL text rather than bound: a generic plan
    /// then knows how many indicators there are (bound, it guessed 10 rows for 36 and re-read
    /// the list once per totals row), and the text of a statement still never changes.
    struct CatalogueArrays: Sendable {
        var codes: String
        var pillars: String
        var units: String
        /// Indicators aggregated as `latest`.
        var latest: String

        init(_ catalogue: Catalogue) {
            // A string literal of the array's text form (units and pillars are free text).
            func text(_ values: [String]) -> String { PostgresQuery.literal(values.postgresText ?? "{}") + "::text[]" }
            codes = text(catalogue.indicators.map(\.code))
            pillars = text(catalogue.indicators.map(\.pillar))
            units = text(catalogue.indicators.map(\.unit))
            latest = text(catalogue.indicators.filter { $0.timeAggregation == .latest }.map(\.code))
        }
    }

    init(pool: PostgresPool, primary: PostgresPool?, catalogue: Catalogue) {
        self.pool = pool
        self.primary = primary
        self.catalogueArrays = CatalogueArrays(catalogue)
    }

    /// A key the totals can be grouped by. Each maps to fixed column names, never to input text.
    enum GroupKey: Hashable, Sendable {
        case indicator, country, reporter, pillar, period
        /// A disaggregation dimension of the catalogue, by its index there.
        case dimension(Int)

        /// The keys that are not dimensions, by their names in a request.
        static let fixed: [(name: String, key: GroupKey)] = [
            ("indicator", .indicator), ("country", .country), ("reporter", .reporter), ("pillar", .pillar),
            ("period", .period),
        ]

        /// Every name a request may group by: the fixed keys, then the catalogue's dimensions.
        static func names(in catalogue: Catalogue) -> [String] {
            fixed.map(\.name) + catalogue.dimensions.map(\.name)
        }

        /// The key named `name` in a request: a fixed key or one of the catalogue's dimensions.
        static func named(_ name: String, catalogue: Catalogue) -> GroupKey? {
            fixed.first { $0.name == name }?.key
                ?? catalogue.dimensions.firstIndex { $0.name == name }.map(GroupKey.dimension)
        }

        var columns: [String] {
            switch self {
            case .indicator: ["indicator"]
            case .country: ["country"]
            case .reporter: ["reporter"]
            case .pillar: ["pillar"]
            case .period: ["period_start", "period_end"]
            case .dimension(let index): ["dimension_\(index)"]
            }
        }
    }

    struct Filters: Sendable {
        var indicators: [String]?
        var countries: [String]?
        var reporters: [String]?
        /// Periods that lie within [from, to].
        var from: Day?
        var to: Day?
        /// Periods that started on or before this day (fact sheets).
        var startedBy: Day?
        /// Per dimension index, the values a cell must have.
        var dimensions: [Int: [String]] = [:]
        /// The answer as it stood once every submission up to this seq was applied, and no later
        /// one; `nil`: the applied watermark, read in the same statement (one round trip).
        var asOfSeq: Int64?
    }

    /// Totals rows and the seq they are pinned to (`nil` when there were no rows and the
    /// statement chose the seq: only a non-empty answer says which it was).
    struct Totals: Sendable {
        var rows: [TotalRow]
        var asOfSeq: Int64?
    }

    struct TotalRow: Sendable {
        /// Group key columns; a dimension a value's cell does not have is `nil`.
        var keys: [String: String?]
        /// The exact total, as PostgreSQL spells it.
        var value: String
        var submissions: Int
        var estimate: Bool
    }

    /// The applied watermark: every submission with seq <= it is in the rollups.
    func appliedSeq() async throws -> Int64 {
        try await pool.withConnection(idempotent: true) { connection in
            let query: PostgresQuery = "SELECT min(applied_seq) AS applied FROM \(Storage.Table.aggregationPartitions)"
            return try connection.query(query).first?.decode(column: "applied", as: Int64?.self) ?? 0
        }
    }

    /// The newest seq numbered at or before `time` (0 when none was), and whether `time` is
    /// later than the server's clock. On a standby with a primary configured, first waits (until
    /// `deadline`) for the standby to replay everything the primary had numbered by now.
    func newestSeq(
        numberedBy time: Timestamp,
        deadline: ContinuousClock.Instant
    ) async throws -> (
        seq: Int64, isFuture: Bool
    ) {
        if let primary {
            // A batch being numbered holds the counter's row until its commit, and its time may
            // already be at or before `time`: wait for it on the primary, then for the standby
            // to have replayed up to the primary's WAL position after it.
            // The wait for the counter's lock is bounded by what is left of the read's time.
            let remaining = max(1, Int((deadline - ContinuousClock.now) / .milliseconds(1)))
            let position: String
            do {
                position = try await primary.withConnection(idempotent: true) { connection in
                    try connection.transaction { connection in
                        try connection.query(
                            "SELECT set_config('lock_timeout', \("\(remaining)ms"), true)" as PostgresQuery
                        )
                        try connection.query("SELECT wait_for_numbering()" as PostgresQuery)
                        return try connection.query("SELECT pg_current_wal_lsn()::text AS position" as PostgresQuery)
                            .first?.decode(column: "position", as: String.self) ?? "0/0"
                    }
                }
            } catch let error as PostgresError where error.sqlState == "55P03" {
                throw ProtocolError(
                    .notReady,
                    "a batch of submissions being numbered on the primary did not commit in time; retry later"
                )
            }
            try await waitForReplay(of: position, deadline: deadline)
        }
        return try await pool.withConnection(idempotent: true) { connection in
            if primary == nil {
                // The same wait, on the one database (the function returns at once on a standby,
                // which replays commits whole and in order).
                try connection.query("SELECT wait_for_numbering()" as PostgresQuery)
            }
            // Seqs and their times rise together: the last index entry at or before `time` has the newest seq.
            let query: PostgresQuery = """
                SELECT coalesce(greatest((
                           SELECT seq FROM \(Storage.Table.submissions)
                           WHERE seq IS NOT NULL AND sequenced_at <= \(time.rfc3339)::timestamptz
                           ORDER BY sequenced_at DESC, seq DESC LIMIT 1
                       ), (
                           -- Deduplications take seqs of the same counter.
                           SELECT seq FROM \(Storage.Table.deduplications)
                           WHERE made_at <= \(time.rfc3339)::timestamptz
                           ORDER BY made_at DESC, seq DESC LIMIT 1
                       )), 0) AS seq,
                       \(time.rfc3339)::timestamptz > now() AS future
                """
            guard let row = try connection.query(query).first else {
                throw PostgresError(code: .unexpectedResult, message: "no row for the seq of a time")
            }
            return (try row.decode(column: "seq", as: Int64.self), try row.decode(column: "future", as: Bool.self))
        }
    }

    /// Totals grouped by `groupBy`, as of `filters.asOfSeq`. Indicators aggregated as `latest`
    /// count only each series' latest period (among those that match), unless grouped by period.
    ///
    /// Without a dimension in `groupBy` or the filters, the rows that hold all cells of a key
    /// together are read (each submission counted once); with one, the cells themselves, and a
    /// value whose cell lacks the dimension (the whole, or other dimensions) has `nil` for it.
    func totals(filters: Filters, groupBy: [GroupKey], catalogue: Catalogue) async throws -> Totals {
        // Never add up different units: without an indicator key, the unit is a key too.
        let groupColumns = groupBy.flatMap(\.columns) + (groupBy.contains(.indicator) ? [] : ["unit"])
        let select =
            (groupColumns.map { "\($0)::text AS \($0)" } + [
                "sum(value)::text AS value", "sum(submissions) AS submissions", "sum(estimates) > 0 AS estimate",
            ])
            .joined(separator: ", ")
        let groupClause =
            groupColumns.isEmpty
            ? ""
            : "GROUP BY " + groupColumns.joined(separator: ", ") + " ORDER BY " + groupColumns.joined(separator: ", ")
        let byCell = !filters.dimensions.isEmpty || groupBy.contains { if case .dimension = $0 { true } else { false } }
        // Rows of all periods together serve reads that take every period (docs/ROLLUPS.md).
        let allPeriods =
            !groupBy.contains(.period) && filters.from == nil && filters.to == nil
            && (filters.startedBy.map { $0 >= Day.today() } ?? true)
        // Each dimension's value in a cell ('age=15-19;sex=female'), or NULL when it has none. The
        // patterns (made of the catalogue's names, escaped) and the filter values are bound; only
        // dimension indexes are spliced in.
        let patterns = catalogue.dimensions.map {
            "(?:^|;)" + NSRegularExpression.escapedPattern(for: $0.name) + "=([^;]*)"
        }
        let wanted = filters.dimensions.flatMap { index, values in values.map { "\(index)=\($0)" } }
        var dimensionColumns = ""
        var dimensionFilter = ""
        for index in catalogue.dimensions.indices {
            dimensionColumns +=
                byCell
                ? ", substring(p.cell FROM d.patterns[\(index + 1)]) AS dimension_\(index)"
                : ", NULL::text AS dimension_\(index)"
            if filters.dimensions[index] != nil {
                dimensionFilter += " AND ('\(index)=' || dimension_\(index)) = ANY(d.wanted)"
            }
        }
        let latestCodes = catalogueArrays.latest
        let (from, to, startedBy) = (filters.from?.description, filters.to?.description, filters.startedBy?.description)
        // The shape of the read is in the SQL text, the values are parameters: each shape's
        // generic plan is then as good as a custom one (it can use the partial indexes on the
        // constants), and PostgreSQL keeps it instead of planning every read (~1.3 ms of the
        // 2.3 ms this statement took at 10 M values).
        let allCells = "'\(Storage.allCells)'::text"
        let seriesStart = "'\(Storage.allPeriods.start)'::date"
        let allPeriodsSQL = allPeriods ? "true" : "false"
        let pinned = filters.asOfSeq
        let query: PostgresQuery = """
            WITH pin AS MATERIALIZED (
                SELECT coalesce(\(pinned)::bigint, min(applied_seq)) AS seq FROM \(Storage.Table.aggregationPartitions)
            ), dimensions AS (
                SELECT \(patterns)::text[] AS patterns, \(wanted)::text[] AS wanted
            ), ahead AS (
                -- Partitions applied beyond the as-of seq: their rows changed since are read as they were then.
                SELECT coalesce(array_agg(partition), '{}') AS partitions
                FROM \(Storage.Table.aggregationPartitions) WHERE applied_seq > (SELECT seq FROM pin)
            ), stale AS (
                -- Series whose rows of all periods changed after the as-of seq (they keep no past
                -- states): their period rows are read instead.
                SELECT DISTINCT r.indicator, r.country, r.reporter
                FROM \(Storage.Table.rollups) r, ahead
                WHERE r.period_start = \(unescaped: seriesStart) AND \(unescaped: allPeriodsSQL)
                  AND r.partition = ANY(ahead.partitions) AND r.changed_seq > (SELECT seq FROM pin)
            ), matching AS (
                SELECT r.key_id, r.partition, r.indicator, r.country, r.reporter, r.period_start, r.period_end, r.cell,
                       r.value, r.submissions, r.estimates, r.changed_seq
                FROM \(Storage.Table.rollups) r
                WHERE r.period_start = \(unescaped: seriesStart) AND \(unescaped: allPeriodsSQL)
                  AND r.created_seq <= (SELECT seq FROM pin)
                  AND (r.indicator, r.country, r.reporter) NOT IN (SELECT * FROM stale)
                  AND \(filter: filters.indicators, { "r.indicator = ANY(\($0)::text[])" })
                  AND \(filter: filters.countries, { "r.country = ANY(\($0)::text[])" })
                  AND \(filter: filters.reporters, { "r.reporter = ANY(\($0)::text[])" })
                  AND r.cell \(unescaped: byCell ? "<>" : "=") \(unescaped: allCells)
                UNION ALL
                SELECT r.key_id, r.partition, r.indicator, r.country, r.reporter, r.period_start, r.period_end, r.cell,
                       r.value, r.submissions, r.estimates, r.changed_seq
                FROM \(Storage.Table.rollups) r
                WHERE r.period_start <> \(unescaped: seriesStart)
                  AND r.created_seq <= (SELECT seq FROM pin)
                  AND \(unescaped: allPeriods
                      // The EXISTS is decided once, before any row: nothing stale, no scan.
                      ? "(EXISTS (SELECT 1 FROM stale) AND (r.indicator, r.country, r.reporter) IN (SELECT * FROM stale))"
                      : "true")
                  AND \(filter: filters.indicators, { "r.indicator = ANY(\($0)::text[])" })
                  AND \(filter: filters.countries, { "r.country = ANY(\($0)::text[])" })
                  AND \(filter: filters.reporters, { "r.reporter = ANY(\($0)::text[])" })
                  AND \(filter: from, { "r.period_start >= \($0)::date" })
                  AND \(filter: to, { "r.period_end <= \($0)::date" })
                  AND \(filter: startedBy, { "r.period_start <= \($0)::date" })
                  -- All cells together always (they decide a latest series' period); the cells themselves when asked for.
                  AND \(unescaped: byCell ? "true" : "r.cell = \(allCells)")
            ), keys AS (
                -- Changed after the as-of seq in a partition applied beyond it: read as it was then.
                SELECT m.*, m.partition = ANY(ahead.partitions) AND m.changed_seq > (SELECT seq FROM pin) AS ahead
                FROM matching m, ahead
            ), present AS (
                SELECT indicator, country, reporter, period_start, period_end, cell, value, submissions, estimates
                FROM keys WHERE NOT ahead AND submissions > 0
                UNION ALL
                SELECT k.indicator, k.country, k.reporter, k.period_start, k.period_end, k.cell, v.value, v.submissions, v.estimates
                FROM keys k
                CROSS JOIN LATERAL (
                    SELECT value, submissions, estimates FROM \(Storage.Table.rollupVersions) v
                    WHERE v.key_id = k.key_id AND v.seq <= (SELECT seq FROM pin)
                    ORDER BY v.seq DESC LIMIT 1
                ) v
                WHERE k.ahead AND v.submissions > 0
            ), recent AS (
                SELECT indicator, country, reporter, period_start, period_end
                FROM (
                    SELECT indicator, country, reporter, period_start, period_end,
                           rank() OVER (PARTITION BY indicator, country, reporter ORDER BY period_end DESC, period_start DESC) AS recency
                    FROM present
                    WHERE cell = \(unescaped: allCells) AND indicator = ANY(\(unescaped: latestCodes))
                      AND period_start <> \(unescaped: seriesStart)
                ) ranked
                WHERE recency = 1
            ), counted AS (
                SELECT p.*, cat.pillar, cat.unit\(unescaped: dimensionColumns)
                FROM present p
                CROSS JOIN dimensions d
                JOIN unnest(\(unescaped: catalogueArrays.codes), \(unescaped: catalogueArrays.pillars),
                            \(unescaped: catalogueArrays.units)) AS cat (indicator, pillar, unit)
                  ON cat.indicator = p.indicator
                WHERE p.cell \(unescaped: byCell ? "<>" : "=") \(unescaped: allCells)
                  -- A latest series counts its newest period only: rows of all periods hold just that.
                  AND (\(unescaped: groupBy.contains(.period) ? "true" : "false")
                       OR p.period_start = \(unescaped: seriesStart)
                       OR NOT (p.indicator = ANY(\(unescaped: latestCodes)))
                       OR (p.indicator, p.country, p.reporter, p.period_start, p.period_end) IN (SELECT * FROM recent))
            )
            SELECT \(unescaped: select), min(pin.seq) AS pinned_seq
            FROM counted, dimensions d, pin
            WHERE true\(unescaped: dimensionFilter)
            \(unescaped: groupClause)
            """
        let rows = try await pool.withConnection(idempotent: true) { connection in try connection.query(query) }
        var asOfSeq = filters.asOfSeq
        let totals = try rows.compactMap { row -> TotalRow? in
            // An aggregate over no rows gives one row of NULLs: that is "no data", not a zero.
            guard let value = try row.decode(column: "value", as: String?.self) else { return nil }
            var keys: [String: String?] = [:]
            for column in groupColumns { keys[column] = try row.decode(column: column, as: String?.self) }
            asOfSeq = try row.decode(column: "pinned_seq", as: Int64?.self) ?? asOfSeq
            return TotalRow(
                keys: keys,
                value: value,
                submissions: try row.decode(column: "submissions", as: Int.self),
                estimate: try row.decode(column: "estimate", as: Bool?.self) ?? false
            )
        }
        return Totals(rows: totals, asOfSeq: asOfSeq)
    }

    /// One stored version of a submission, for `history`.
    struct Version: Sendable, PostgresRowDecodable {
        var id: Int64
        var seq: Int64
        var submissionID: String
        var period: String
        var activity: String?
        var receivedAt: String
        /// The version after this one, if any: its seq and whether it is a retraction.
        var supersededBySeq: Int64?
        var supersededByRetraction: Bool?
        var supersededAt: String?
        var reason: String?
        /// The API keys that sent this version and the one that superseded it (`nil` before keys).
        var keyID: String?
        var supersededByKeyID: String?
        var values: [VersionValue] = []

        init(postgresRow row: PostgresRow) throws {
            id = try row.decode(column: "id")
            seq = try row.decode(column: "seq")
            submissionID = try row.decode(column: "submission_id")
            period = try row.decode(column: "period")
            activity = try row.decode(column: "activity")
            receivedAt = try row.decode(column: "received_at")
            supersededBySeq = try row.decode(column: "superseded_by_seq")
            supersededByRetraction = try row.decode(column: "superseded_by_retraction")
            supersededAt = try row.decode(column: "superseded_at")
            reason = try row.decode(column: "reason")
            keyID = try row.decode(column: "key_id")
            supersededByKeyID = try row.decode(column: "superseded_by_key_id")
        }
    }

    struct VersionValue: Sendable, PostgresRowDecodable {
        var submission: Int64
        var indicator: String
        var country: String
        var cell: String
        var value: String
        var estimate: Bool

        init(postgresRow row: PostgresRow) throws {
            submission = try row.decode(column: "submission")
            indicator = try row.decode(column: "indicator")
            country = try row.decode(column: "country")
            cell = try row.decode(column: "cell")
            value = try row.decode(column: "value")
            estimate = try row.decode(column: "estimate")
        }
    }

    /// The whole correction chain through the reporter's submission `submissionID`, oldest
    /// first, each version with its values; empty when there is no such submission.
    func history(reporter: String, submissionID: String) async throws -> [Version] {
        let chain: PostgresQuery = """
            WITH RECURSIVE earlier AS (
                SELECT id, replaces, 0 AS depth FROM \(Storage.Table.submissions)
                WHERE reporter = \(reporter) AND submission_id = \(submissionID) AND kind = 'submission'
                UNION ALL
                SELECT s.id, s.replaces, earlier.depth - 1
                FROM \(Storage.Table.submissions) s JOIN earlier ON s.id = earlier.replaces
            ), later AS (
                SELECT id, 0 AS depth FROM \(Storage.Table.submissions)
                WHERE reporter = \(reporter) AND submission_id = \(submissionID) AND kind = 'submission'
                UNION ALL
                SELECT s.id, later.depth + 1
                FROM \(Storage.Table.submissions) s JOIN later ON s.replaces = later.id
            ), chain AS (
                SELECT id, depth FROM earlier UNION SELECT id, depth FROM later
            )
            SELECT s.id, s.seq, s.submission_id, s.period, s.activity,
                   to_char(s.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS received_at,
                   n.seq AS superseded_by_seq, n.kind = 'retraction' AS superseded_by_retraction,
                   to_char(n.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS superseded_at, n.reason,
                   s.api_key_id AS key_id, n.api_key_id AS superseded_by_key_id
            FROM chain
            JOIN \(Storage.Table.submissions) s USING (id)
            LEFT JOIN \(Storage.Table.submissions) n ON n.replaces = s.id
            WHERE s.kind = 'submission'
            ORDER BY chain.depth
            """
        return try await pool.withConnection(idempotent: true) { connection in
            var versions = try connection.query(chain).decode(Version.self)
            guard !versions.isEmpty else { return [] }
            let values: PostgresQuery = """
                SELECT submission, indicator, country, cell, value::text AS value, estimate
                FROM \(Storage.Table.submissionValues)
                WHERE submission = ANY(\(versions.map(\.id))::bigint[])
                ORDER BY submission, ordinal
                """
            let byVersion = Dictionary(
                grouping: try connection.query(values).decode(VersionValue.self),
                by: \.submission
            )
            for index in versions.indices { versions[index].values = byVersion[versions[index].id] ?? [] }
            return versions
        }
    }
}

// MARK: - Publications

extension ReportingQueries {
    /// A published fact sheet's record: what reproduces it, without the document.
    struct Publication: Sendable, Equatable, PostgresRowDecodable {
        var id: String
        var date: String
        var asOfSeq: Int64
        var templateDigest: String
        var publishedAt: String
        /// The API key that published it (`nil` before keys).
        var keyID: String?

        init(postgresRow row: PostgresRow) throws {
            keyID = try row.decode(column: "key_id")
            id = try row.decode(column: "publication_id")
            date = try row.decode(column: "fact_sheet_date")
            asOfSeq = try row.decode(column: "as_of_seq")
            templateDigest = try row.decode(column: "template_digest")
            publishedAt = try row.decode(column: "published_at")
        }
    }

    /// What `publish` found: the publication stored under the id (new, or there before), and
    /// for one there before, whether it came from the same template text.
    struct PublishOutcome: Sendable {
        var publication: Publication
        var inserted: Bool
        var sameTemplate: Bool
    }

    /// The columns of a publication record, times in UTC as `history` writes them.
    private static let publicationColumns = """
        publication_id, fact_sheet_date::text AS fact_sheet_date, as_of_seq, template_digest,
        to_char(published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS published_at,
        api_key_id AS key_id
        """

    /// Stores a published fact sheet under `id`, unless the id is taken: then the one stored.
    func publish(
        id: String,
        date: Day,
        asOfSeq: Int64,
        templateSource: String,
        markdown: String,
        json: String,
        keyID: String?
    ) async throws -> PublishOutcome {
        let columns = Self.publicationColumns
        let query: PostgresQuery = """
            WITH new AS (
                INSERT INTO \(Storage.Table.publications)
                    (publication_id, fact_sheet_date, as_of_seq, template_digest, markdown, sheet_json, api_key_id)
                VALUES (\(id), \(date.description)::date, \(asOfSeq)::bigint,
                        encode(sha256(convert_to(\(templateSource)::text, 'UTF8')), 'hex'),
                        \(markdown), \(json), \(keyID))
                ON CONFLICT (publication_id) DO NOTHING
                RETURNING \(unescaped: columns), true AS inserted, true AS same_template
            )
            SELECT * FROM new
            UNION ALL
            SELECT \(unescaped: columns), false, template_digest = encode(sha256(convert_to(\(templateSource)::text, 'UTF8')), 'hex')
            FROM \(Storage.Table.publications)
            WHERE publication_id = \(id) AND NOT EXISTS (SELECT 1 FROM new)
            """
        return try await (primary ?? pool).withConnection(idempotent: true) { connection in
            // Twice at most: an insert of the same id that commits while this statement runs is
            // neither inserted here nor visible to it; the next statement sees it.
            for _ in 0..<2 {
                if let row = try connection.query(query).first {
                    return PublishOutcome(
                        publication: try row.decode(Publication.self),
                        inserted: try row.decode(column: "inserted", as: Bool.self),
                        sameTemplate: try row.decode(column: "same_template", as: Bool.self)
                    )
                }
            }
            throw PostgresError(code: .unexpectedResult, message: "a publication was neither stored nor found")
        }
    }

    /// Waits until `pool`'s database has replayed the WAL up to `position` (at once on a primary).
    func waitForReplay(of position: String, deadline: ContinuousClock.Instant) async throws {
        var pause = Duration.milliseconds(2)
        while true {
            let replayed = try await pool.withConnection(idempotent: true) { connection in
                let query: PostgresQuery = """
                    SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= \(position)::pg_lsn AS replayed,
                           coalesce(pg_last_wal_replay_lsn()::text, '') AS at
                    """
                let row = try connection.query(query).first
                return (
                    try row?.decode(column: "replayed", as: Bool.self) ?? false,
                    try row?.decode(column: "at", as: String.self) ?? ""
                )
            }
            if replayed.0 { return }
            guard ContinuousClock.now < deadline else {
                throw ProtocolError(
                    .notReady,
                    "the standby this service reads has not replayed the primary's changes up to \(position) yet (at \(replayed.1)); retry later",
                    details: [["wal_position": .string(position), "replayed": .string(replayed.1)]]
                )
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(20))
        }
    }

    /// Every publication, oldest first.
    func publications() async throws -> [Publication] {
        try await pool.withConnection(idempotent: true) { connection in
            let query: PostgresQuery = """
                SELECT \(unescaped: Self.publicationColumns) FROM \(Storage.Table.publications)
                ORDER BY published_at, publication_id
                """
            return try connection.query(query).decode(Publication.self)
        }
    }

    /// A published document exactly as stored, or `nil` when there is none with this id.
    func publishedDocument(id: String) async throws -> (publication: Publication, markdown: String, json: String)? {
        try await pool.withConnection(idempotent: true) { connection in
            let query: PostgresQuery = """
                SELECT \(unescaped: Self.publicationColumns), markdown, sheet_json
                FROM \(Storage.Table.publications) WHERE publication_id = \(id)
                """
            guard let row = try connection.query(query).first else { return nil }
            return (
                try row.decode(Publication.self),
                try row.decode(column: "markdown", as: String.self),
                try row.decode(column: "sheet_json", as: String.self)
            )
        }
    }

    /// A version stored between two seqs that touched a fact sheet number.
    struct Change: Sendable, PostgresRowDecodable {
        var seq: Int64
        /// A submission's reporter and id (`nil` for a deduplication).
        var reporter: String?
        var submissionID: String?
        /// `submission`, `replacement`, `retraction` or `deduplication`.
        var kind: String
        /// The seq of the version (or adjustment) a correction superseded.
        var targetSeq: Int64?
        var reason: String?
        /// A deduplication's id and method.
        var adjustmentID: String?
        var method: String?

        init(postgresRow row: PostgresRow) throws {
            seq = try row.decode(column: "seq")
            reporter = try row.decode(column: "reporter")
            submissionID = try row.decode(column: "submission_id")
            kind = try row.decode(column: "kind")
            targetSeq = try row.decode(column: "target_seq")
            reason = try row.decode(column: "reason")
            adjustmentID = try row.decode(column: "adjustment_id")
            method = try row.decode(column: "method")
        }
    }

    /// The versions with a seq in (`after`, `through`] that touch a fact sheet number dated
    /// `date`: a submission with a value for `indicator` (in `countries`, from `reporters`; `nil`
    /// for all) in a period started by then, or a correction of one. The first `limit` by seq,
    /// and how many there are.
    func changes(
        after: Int64,
        through: Int64,
        indicator: String,
        countries: [String]?,
        reporters: [String]?,
        date: Day,
        limit: Int
    ) async throws -> (count: Int, first: [Change]) {
        let query: PostgresQuery = """
            WITH touched AS (
                SELECT s.seq, s.reporter, s.submission_id,
                       CASE WHEN s.kind = 'retraction' THEN 'retraction'
                            WHEN s.replaces IS NOT NULL THEN 'replacement' ELSE 'submission' END AS kind,
                       t.seq AS target_seq, s.reason, NULL::text AS adjustment_id, NULL::text AS method
                FROM \(Storage.Table.submissions) s
                LEFT JOIN \(Storage.Table.submissions) t ON t.id = s.replaces
                WHERE s.seq > \(after)::bigint AND s.seq <= \(through)::bigint
                  AND \(filter: reporters, { "s.reporter = ANY(\($0)::text[])" })
                  AND (s.period_start <= \(date.description)::date OR t.period_start <= \(date.description)::date)
                  AND (EXISTS (SELECT 1 FROM \(Storage.Table.submissionValues) v
                               WHERE v.submission = s.id AND v.indicator = \(indicator)
                                 AND \(filter: countries, { "v.country = ANY(\($0)::text[])" }))
                       OR EXISTS (SELECT 1 FROM \(Storage.Table.submissionValues) v
                                  WHERE v.submission = s.replaces AND v.indicator = \(indicator)
                                    AND \(filter: countries, { "v.country = ANY(\($0)::text[])" })))
                UNION ALL
                -- Deduplications of the indicator (they resolve all reporters' figures).
                SELECT d.seq, NULL, NULL, 'deduplication', r.seq, d.reason, d.adjustment_id, d.method
                FROM \(Storage.Table.deduplications) d
                LEFT JOIN \(Storage.Table.deduplications) r ON r.id = d.replaces
                WHERE d.seq > \(after)::bigint AND d.seq <= \(through)::bigint AND \(unescaped: reporters == nil ? "true" : "false")
                  AND d.indicator = \(indicator) AND d.period_start <= \(date.description)::date
                  AND \(filter: countries, { "d.country = ANY(\($0)::text[])" })
            )
            SELECT *, count(*) OVER () AS total FROM touched ORDER BY seq LIMIT \(limit)::bigint
            """
        return try await pool.withConnection(idempotent: true) { connection in
            let rows = try connection.query(query)
            let total = try rows.first?.decode(column: "total", as: Int.self) ?? 0
            return (total, try rows.decode(Change.self))
        }
    }
}

// MARK: - Explain

extension ReportingQueries {
    /// The values one totals row (or fact sheet number) is made of: its filters narrowed by the
    /// row's keys.
    struct ExplainSelection: Sendable {
        /// Always a list: the indicators the filters, pillars, row and unit leave.
        var indicators: [String]
        var countries: [String]?
        var reporters: [String]?
        var from: Day?
        var to: Day?
        var startedBy: Day?
        /// The row's period, when the totals were grouped by period.
        var period: (start: Day, end: Day)?
        /// Per dimension index, the values a cell must have (a filter or the row's key).
        var dimensionValues: [Int: [String]] = [:]
        /// Dimensions a cell must not have (the row's key is null).
        var dimensionsAbsent: [Int] = []
        /// Grouped by period: a `latest` series counts its newest submission in every period.
        var perPeriod: Bool
    }

    /// Where a page starts: after this value, in the order (indicator, country, submission, cell).
    struct ExplainCursor: Sendable, Equatable {
        var indicator: String
        var country: String
        var submission: Int64
        var cell: String
    }

    /// One stored value behind a number, and what became of it as of the pinned seq.
    struct ExplainEntry: Sendable, PostgresRowDecodable {
        var indicator: String
        var country: String
        var submission: Int64
        var cell: String
        var value: String
        var estimate: Bool
        var seq: Int64
        var reporter: String
        var submissionID: String
        /// The API key that sent the value's submission (`nil` before keys).
        var keyID: String?
        var period: String
        var periodStart: String
        var periodEnd: String
        var supersededSeq: Int64?
        var supersededByRetraction: Bool?
        var supersededBy: String?
        var supersededReason: String?
        var newerSeq: Int64?
        var newerSubmissionID: String?
        var recentStart: String?
        var recentEnd: String?
        var latest: Bool

        init(postgresRow row: PostgresRow) throws {
            indicator = try row.decode(column: "indicator")
            country = try row.decode(column: "country")
            submission = try row.decode(column: "submission")
            cell = try row.decode(column: "cell")
            value = try row.decode(column: "value")
            estimate = try row.decode(column: "estimate")
            seq = try row.decode(column: "seq")
            reporter = try row.decode(column: "reporter")
            submissionID = try row.decode(column: "submission_id")
            keyID = try row.decode(column: "key_id")
            period = try row.decode(column: "period")
            periodStart = try row.decode(column: "period_start")
            periodEnd = try row.decode(column: "period_end")
            supersededSeq = try row.decode(column: "superseded_seq")
            supersededByRetraction = try row.decode(column: "superseded_by_retraction")
            supersededBy = try row.decode(column: "superseded_by")
            supersededReason = try row.decode(column: "superseded_reason")
            newerSeq = try row.decode(column: "newer_seq")
            newerSubmissionID = try row.decode(column: "newer_submission_id")
            recentStart = try row.decode(column: "recent_start")
            recentEnd = try row.decode(column: "recent_end")
            latest = try row.decode(column: "latest")
        }

        var cursor: ExplainCursor {
            ExplainCursor(indicator: indicator, country: country, submission: submission, cell: cell)
        }
    }

    /// Up to `limit` values of `selection` after `cursor`, as of `asOfSeq` (which must be
    /// applied), each with what superseded it, if anything: a correction, a newer submission for
    /// the same period of a `latest` series, or (a `latest` series read over periods) a later
    /// period. Every stored version up to the seq is listed, counted or not.
    func explain(
        _ selection: ExplainSelection,
        asOfSeq: Int64,
        after cursor: ExplainCursor?,
        limit: Int,
        catalogue: Catalogue
    ) async throws -> [ExplainEntry] {
        let patterns = catalogue.dimensions.map {
            "(?:^|;)" + NSRegularExpression.escapedPattern(for: $0.name) + "=([^;]*)"
        }
        let wanted = selection.dimensionValues.flatMap { index, values in values.map { "\(index)=\($0)" } }
        // Each constrained dimension has one of the wanted values; each absent one is missing.
        // Plain conditions (only dimension indexes spliced in): a subquery per value hid from
        // the planner that the index order serves the page, and it sorted the whole range.
        var dimensionConditions = ""
        for index in selection.dimensionValues.keys.sorted() {
            dimensionConditions +=
                " AND ('\(index)=' || substring(v.cell FROM d.patterns[\(index + 1)])) = ANY(d.wanted)"
        }
        for index in selection.dimensionsAbsent.sorted() {
            dimensionConditions += " AND substring(v.cell FROM d.patterns[\(index + 1)]) IS NULL"
        }
        let (from, to, startedBy) = (
            selection.from?.description, selection.to?.description, selection.startedBy?.description
        )
        let (periodStart, periodEnd) = (selection.period?.start.description, selection.period?.end.description)
        let start = cursor ?? ExplainCursor(indicator: "", country: "", submission: Int64.min, cell: "")
        // Every (indicator, country) the selection allows, each read as its own ordered index
        // range: with the countries as a list on the index's second column, PostgreSQL 15 reads
        // the indicator's whole range in order and filters (50 ms for a page at 1 M values).
        var pairs: (indicators: [String], countries: [String]) = ([], [])
        for code in selection.indicators {
            for country in catalogue.indicator(code)?.countries ?? []
            where selection.countries?.contains(country) ?? true {
                pairs.indicators.append(code)
                pairs.countries.append(country)
            }
        }
        let query: PostgresQuery = """
            WITH dimensions AS MATERIALIZED (
                SELECT \(patterns)::text[] AS patterns, \(wanted)::text[] AS wanted
            ), pairs AS (
                SELECT indicator, country FROM unnest(\(pairs.indicators)::text[], \(pairs.countries)::text[]) AS p (indicator, country)
                WHERE (indicator, country) >= (\(start.indicator)::text, \(start.country)::text)
            ), candidates AS MATERIALIZED (
                SELECT c.* FROM pairs p
                CROSS JOIN LATERAL (
                SELECT v.indicator, v.country, v.submission, v.cell, v.value::text AS value, v.estimate,
                       s.seq, s.reporter, s.submission_id, s.period,
                       s.period_start, s.period_end, s.api_key_id
                FROM \(Storage.Table.submissionValues) v
                CROSS JOIN dimensions d
                -- Each value's submission looked up by id (OFFSET 0 keeps it a lookup): joined as
                -- tables, the planner merged with a scan of every submission to fill a page of 5.
                CROSS JOIN LATERAL (
                    SELECT s.seq, s.reporter, s.submission_id, s.period, s.period_start, s.period_end, s.api_key_id
                    FROM \(Storage.Table.submissions) s
                    WHERE s.id = v.submission
                      AND s.kind = 'submission' AND s.seq <= \(asOfSeq)::bigint
                      AND \(filter: selection.reporters, { "s.reporter = ANY(\($0)::text[])" })
                      AND \(filter: from, { "s.period_start >= \($0)::date" })
                      AND \(filter: to, { "s.period_end <= \($0)::date" })
                      AND \(filter: startedBy, { "s.period_start <= \($0)::date" })
                      AND \(filter: periodStart, { "s.period_start = \($0)::date" })
                      AND \(filter: periodEnd, { "s.period_end = \($0)::date" })
                    OFFSET 0
                ) s
                WHERE v.indicator = p.indicator AND v.country = p.country
                  AND (v.indicator, v.country, v.submission, v.cell)
                      > (\(start.indicator)::text, \(start.country)::text, \(start.submission)::bigint, \(start.cell)::text)
                  \(unescaped: dimensionConditions)
                ORDER BY v.submission, v.cell
                LIMIT \(limit)::bigint
                ) c
                ORDER BY c.indicator, c.country, c.submission, c.cell
                LIMIT \(limit)::bigint
            ), series AS (
                SELECT DISTINCT indicator, country, reporter FROM candidates
                WHERE indicator = ANY(\(unescaped: catalogueArrays.latest)) AND \(unescaped: selection.perPeriod ? "false" : "true")
            ), recent AS (
                -- A latest series read over periods counts its newest period with data as of the
                -- seq, among those the filters allow: what totals ranks, from the same rows.
                SELECT se.indicator, se.country, se.reporter, r.period_start, r.period_end
                FROM series se
                CROSS JOIN LATERAL (
                    SELECT r.period_start, r.period_end
                    FROM \(Storage.Table.rollups) r
                    LEFT JOIN LATERAL (
                        SELECT pv.submissions FROM \(Storage.Table.rollupVersions) pv
                        WHERE pv.key_id = r.key_id AND pv.seq <= \(asOfSeq)::bigint
                        ORDER BY pv.seq DESC LIMIT 1
                    ) past ON r.changed_seq > \(asOfSeq)::bigint
                    WHERE r.indicator = se.indicator AND r.country = se.country AND r.reporter = se.reporter
                      -- Constants, not parameters: they match the partial index rollups_period_points.
                      AND r.cell = '\(unescaped: Storage.allCells)'::text
                      AND r.period_start <> '\(unescaped: Storage.allPeriods.start)'::date
                      AND r.created_seq <= \(asOfSeq)::bigint
                      AND \(filter: from, { "r.period_start >= \($0)::date" })
                      AND \(filter: to, { "r.period_end <= \($0)::date" })
                      AND \(filter: startedBy, { "r.period_start <= \($0)::date" })
                      AND CASE WHEN r.changed_seq > \(asOfSeq)::bigint THEN coalesce(past.submissions, 0)
                               ELSE r.submissions END > 0
                    ORDER BY r.period_end DESC, r.period_start DESC
                    LIMIT 1
                ) r
            ), newest AS (
                -- Per snapshot series, period and cell on the page, the newest current submission
                -- as of the seq: a latest series counts only that one. Read once for the page from
                -- the values of its (indicator, country) pairs (few for a snapshot: one per
                -- reporter and period), not once per value.
                SELECT DISTINCT ON (wv.indicator, wv.country, w.reporter, w.period_start, w.period_end, wv.cell)
                       wv.indicator, wv.country, w.reporter, w.period_start, w.period_end, wv.cell,
                       w.seq, w.submission_id
                FROM (SELECT DISTINCT indicator, country FROM candidates
                      WHERE indicator = ANY(\(unescaped: catalogueArrays.latest))) k
                JOIN \(Storage.Table.submissionValues) wv ON wv.indicator = k.indicator AND wv.country = k.country
                CROSS JOIN LATERAL (
                    SELECT w.seq, w.submission_id, w.reporter, w.period_start, w.period_end
                    FROM \(Storage.Table.submissions) w
                    WHERE w.id = wv.submission AND w.kind = 'submission' AND w.seq <= \(asOfSeq)::bigint
                      AND NOT EXISTS (
                          SELECT 1 FROM \(Storage.Table.submissions) n
                          WHERE n.replaces = w.id AND n.seq <= \(asOfSeq)::bigint
                      )
                    OFFSET 0
                ) w
                ORDER BY wv.indicator, wv.country, w.reporter, w.period_start, w.period_end, wv.cell, w.seq DESC
            )
            SELECT c.indicator, c.country, c.submission, c.cell, c.value, c.estimate, c.seq, c.reporter,
                   c.submission_id, c.api_key_id AS key_id, c.period, c.period_start::text AS period_start, c.period_end::text AS period_end,
                   sup.seq AS superseded_seq, sup.kind = 'retraction' AS superseded_by_retraction,
                   sup.submission_id AS superseded_by, sup.reason AS superseded_reason,
                   newer.seq AS newer_seq, newer.submission_id AS newer_submission_id,
                   rc.period_start::text AS recent_start, rc.period_end::text AS recent_end,
                   c.indicator = ANY(\(unescaped: catalogueArrays.latest)) AS latest
            FROM candidates c
            LEFT JOIN LATERAL (
                SELECT n.seq, n.kind, n.submission_id, n.reason FROM \(Storage.Table.submissions) n
                WHERE n.replaces = c.submission AND n.seq <= \(asOfSeq)::bigint
            ) sup ON true
            LEFT JOIN newest newer
              ON newer.indicator = c.indicator AND newer.country = c.country AND newer.reporter = c.reporter
             AND newer.period_start = c.period_start AND newer.period_end = c.period_end AND newer.cell = c.cell
             AND newer.seq > c.seq
            LEFT JOIN recent rc ON rc.indicator = c.indicator AND rc.country = c.country AND rc.reporter = c.reporter
            ORDER BY c.indicator, c.country, c.submission, c.cell
            """
        return try await pool.withConnection(idempotent: true) { connection in
            try connection.query(query).decode(ExplainEntry.self)
        }
    }
}

// MARK: - Targets

extension ReportingQueries {
    /// The current targets of a fiscal year (few: one per agency, indicator and country).
    func targets(
        fiscalYear: Int
    ) async throws -> [(reporter: String, indicator: String, country: String, value: String)] {
        try await pool.withConnection(idempotent: true) { connection in
            let query: PostgresQuery = """
                SELECT reporter, indicator, country, value::text AS value FROM \(Storage.Table.targets)
                WHERE fiscal_year = \(fiscalYear)::integer AND current
                """
            return try connection.query(query).map { row in
                (
                    try row.decode(column: "reporter", as: String.self),
                    try row.decode(column: "indicator", as: String.self),
                    try row.decode(column: "country", as: String.self),
                    try row.decode(column: "value", as: String.self)
                )
            }
        }
    }
}

// MARK: - Deduplications

extension ReportingQueries {
    /// A deduplication adjustment in force as of a seq.
    struct Adjustment: Sendable, PostgresRowDecodable {
        var adjustmentID: String
        var seq: Int64
        var indicator: String
        var country: String
        var period: String
        var periodStart: String
        var periodEnd: String
        var method: String
        var value: String?
        var reason: String?
        /// The API key that made it (`nil` before keys).
        var keyID: String?

        init(postgresRow row: PostgresRow) throws {
            keyID = try row.decode(column: "key_id")
            adjustmentID = try row.decode(column: "adjustment_id")
            seq = try row.decode(column: "seq")
            indicator = try row.decode(column: "indicator")
            country = try row.decode(column: "country")
            period = try row.decode(column: "period")
            periodStart = try row.decode(column: "period_start")
            periodEnd = try row.decode(column: "period_end")
            method = try row.decode(column: "method")
            value = try row.decode(column: "value")
            reason = try row.decode(column: "reason")
        }
    }

    /// The adjustments of `indicators` in force as of `asOfSeq`: made by then and not replaced by then.
    func adjustments(indicators: [String], asOfSeq: Int64) async throws -> [Adjustment] {
        try await pool.withConnection(idempotent: true) { connection in
            let query: PostgresQuery = """
                SELECT d.adjustment_id, d.seq, d.indicator, d.country, d.period, d.period_start::text AS period_start,
                       d.period_end::text AS period_end, d.method, d.value::text AS value, d.reason,
                       d.api_key_id AS key_id
                FROM \(Storage.Table.deduplications) d
                WHERE d.indicator = ANY(\(indicators)::text[]) AND d.seq <= \(asOfSeq)::bigint
                  AND NOT EXISTS (
                      SELECT 1 FROM \(Storage.Table.deduplications) r WHERE r.replaces = d.id AND r.seq <= \(asOfSeq)::bigint
                  )
                """
            return try connection.query(query).decode(Adjustment.self)
        }
    }
}

// MARK: - Overlap

extension ReportingQueries {
    /// A point (indicator, country, period) where two or more reporters gave figures.
    struct OverlapPoint: Sendable {
        var indicator: String
        var country: String
        var periodStart: String
        var periodEnd: String
        var sum: String
        var largest: String
        var reporters: Int
    }

    /// One row of the points query: the seq it read as of, and a point unless there is none.
    private struct PinnedOverlapPoint: PostgresRowDecodable {
        var asOfSeq: Int64
        var point: OverlapPoint?

        init(postgresRow row: PostgresRow) throws {
            asOfSeq = try row.decode(column: "as_of_seq")
            guard let indicator: String = try row.decode(column: "indicator") else { return }
            point = OverlapPoint(
                indicator: indicator,
                country: try row.decode(column: "country"),
                periodStart: try row.decode(column: "period_start"),
                periodEnd: try row.decode(column: "period_end"),
                sum: try row.decode(column: "sum"),
                largest: try row.decode(column: "largest"),
                reporters: try row.decode(column: "reporters")
            )
        }
    }

    /// The points of `indicators` within the filters' countries and periods where two or more
    /// reporters had figures as of `asOfSeq` (which must be applied; `nil`: the current
    /// watermark, pinned as `totals` pins it): their sum and largest, and the seq they are as of.
    /// Read at the points registered in `overlap_points` by then, from the rollups' rows of all
    /// cells per period, a row changed since the seq as it was then, as totals read them.
    func overlapPoints(
        indicators: [String],
        filters: Filters,
        asOfSeq: Int64?
    ) async throws -> (asOfSeq: Int64, points: [OverlapPoint]) {
        let (from, to, startedBy) = (filters.from?.description, filters.to?.description, filters.startedBy?.description)
        let query: PostgresQuery = """
            WITH pin AS MATERIALIZED (
                SELECT coalesce(\(asOfSeq)::bigint, min(applied_seq)) AS seq FROM \(Storage.Table.aggregationPartitions)
            ), shared AS (
                -- The points two or more reporters had rows for by the seq (registered as they met,
                -- migration 15): the period rows of the other points, most of them, are never read.
                SELECT o.indicator, o.country, o.period_start, o.period_end FROM \(Storage.Table.overlapPoints) o
                WHERE o.indicator = ANY(\(indicators)::text[]) AND o.shared_seq <= (SELECT seq FROM pin)
                  AND \(filter: filters.countries, { "o.country = ANY(\($0)::text[])" })
                  AND \(filter: from, { "o.period_start >= \($0)::date" })
                  AND \(filter: to, { "o.period_end <= \($0)::date" })
                  AND \(filter: startedBy, { "o.period_start <= \($0)::date" })
            ), figures AS (
                -- A row changed since the seq is read as it was then; the others as they are. (The
                -- look-ups sit in the CASE: a lateral join ran one per row, changed or not.)
                SELECT r.indicator, r.country, r.period_start, r.period_end,
                       CASE WHEN r.changed_seq > (SELECT seq FROM pin) THEN (
                           SELECT v.value FROM \(Storage.Table.rollupVersions) v
                           WHERE v.key_id = r.key_id AND v.seq <= (SELECT seq FROM pin) ORDER BY v.seq DESC LIMIT 1
                       ) ELSE r.value END AS value,
                       CASE WHEN r.changed_seq > (SELECT seq FROM pin) THEN coalesce((
                           SELECT v.submissions FROM \(Storage.Table.rollupVersions) v
                           WHERE v.key_id = r.key_id AND v.seq <= (SELECT seq FROM pin) ORDER BY v.seq DESC LIMIT 1
                       ), 0) ELSE r.submissions END AS submissions
                FROM shared s JOIN \(Storage.Table.rollups) r
                  ON r.indicator = s.indicator AND r.country = s.country
                 AND r.period_start = s.period_start AND r.period_end = s.period_end
                -- Constants, not parameters: they match the partial index rollups_period_points.
                WHERE r.cell = '*' AND r.period_start <> '-infinity' AND r.created_seq <= (SELECT seq FROM pin)
            ), points AS (
                SELECT indicator, country, period_start::text AS period_start, period_end::text AS period_end,
                       sum(value)::text AS sum, max(value)::text AS largest, count(*)::integer AS reporters
                FROM figures WHERE submissions > 0
                GROUP BY indicator, country, period_start, period_end
                HAVING count(*) > 1
            )
            -- One row with the seq and no point when there is none.
            SELECT pin.seq AS as_of_seq, points.* FROM pin LEFT JOIN points ON true
            """
        let rows = try await pool.withConnection(idempotent: true) { connection in
            try connection.query(query).decode(PinnedOverlapPoint.self)
        }
        guard let pinned = rows.first?.asOfSeq else {
            throw PostgresError(code: .unexpectedResult, message: "the overlap points query answered no row")
        }
        return (pinned, rows.compactMap(\.point))
    }
}
