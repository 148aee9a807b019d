import Foundation
import RootcausesModel
import RootcausesPostgres
import RootcausesStorage

/// Reporting's SQL, all in one place. Reads only the aggregates, never the raw values.
struct ReportingQueries: Sendable {
    let pool: PostgresPool

    /// A dimension the totals can be grouped by, mapped to fixed column names (never input text).
    enum GroupKey: String, CaseIterable, Sendable {
        case indicator, country, reporter, pillar, period

        var columns: [String] {
            self == .period ? ["period_start", "period_end"] : [rawValue]
        }
    }

    struct Filters: Sendable {
        var indicators: [String]?
        var countries: [String]?
        var reporters: [String]?
        var from: Day?
        var to: Day?
        /// Count only submissions with seq up to this one (a reproducible answer).
        var asOfSeq: Int64?
    }

    struct TotalRow: Sendable {
        var keys: [String: String]
        var value: String
        var submissions: Int
        var estimate: Bool
    }

    /// The applied watermark: every submission with seq <= it is in the aggregates.
    func appliedSeq() async throws -> Int64 {
        try await pool.withConnection(idempotent: true) { connection in
            let query: PostgresQuery = "SELECT min(applied_seq) AS applied FROM \(Storage.Table.aggregationPartitions)"
            return try connection.query(query).first?.decode(column: "applied", as: Int64?.self) ?? 0
        }
    }

    /// Totals grouped by `groupBy`. Indicators aggregated as `latest` count only each series'
    /// latest period in range, unless grouped by period.
    func totals(filters: Filters, groupBy: [GroupKey], catalogue: Catalogue) async throws -> [TotalRow] {
        // Never add up different units: without an indicator key, the unit is a key too.
        // Column names come from GroupKey's fixed names, never from input text.
        let groupColumns = groupBy.flatMap(\.columns) + (groupBy.contains(.indicator) ? [] : ["unit"])
        let select =
            (groupColumns.map { "\($0)::text AS \($0)" } + [
                "sum(value)::text AS value", "count(DISTINCT seq) AS submissions", "bool_or(estimate) AS estimate",
            ])
            .joined(separator: ", ")
        let groupClause =
            groupColumns.isEmpty
            ? ""
            : "GROUP BY " + groupColumns.joined(separator: ", ") + " ORDER BY " + groupColumns.joined(separator: ", ")
        let latestCodes = catalogue.indicators.filter { $0.timeAggregation == .latest }.map(\.code)
        let from = filters.from?.description
        let to = filters.to?.description
        // A filter that is NULL matches everything; each is bound where it is used.
        let query: PostgresQuery = """
            WITH filtered AS (
                SELECT c.*,
                       rank() OVER (PARTITION BY c.indicator, c.country, c.reporter
                                    ORDER BY c.period_end DESC, c.period_start DESC) AS recency
                FROM \(Storage.Table.aggregateContributions) c
                WHERE (\(filters.indicators)::text[] IS NULL OR c.indicator = ANY(\(filters.indicators)::text[]))
                  AND (\(filters.countries)::text[] IS NULL OR c.country = ANY(\(filters.countries)::text[]))
                  AND (\(filters.reporters)::text[] IS NULL OR c.reporter = ANY(\(filters.reporters)::text[]))
                  AND (\(from)::date IS NULL OR c.period_start >= \(from)::date)
                  AND (\(to)::date IS NULL OR c.period_end <= \(to)::date)
                  AND (\(filters.asOfSeq)::bigint IS NULL OR c.seq <= \(filters.asOfSeq)::bigint)
            ), counted AS (
                SELECT f.*, p.pillar, p.unit
                FROM filtered f
                JOIN unnest(\(catalogue.indicators.map(\.code))::text[], \(catalogue.indicators.map(\.pillar))::text[],
                            \(catalogue.indicators.map(\.unit))::text[]) AS p (indicator, pillar, unit)
                  ON p.indicator = f.indicator
                WHERE f.recency = 1 OR NOT (f.indicator = ANY(\(latestCodes)::text[])) OR \(groupBy.contains(.period))::boolean
            )
            SELECT \(unescaped: select)
            FROM counted
            \(unescaped: groupClause)
            """
        let rows = try await pool.withConnection(idempotent: true) { connection in try connection.query(query) }
        return try rows.compactMap { row in
            // An aggregate over no rows gives one row of NULLs: that is "no data", not a zero.
            guard let value = try row.decode(column: "value", as: String?.self) else { return nil }
            var keys: [String: String] = [:]
            for column in groupColumns { keys[column] = try row.decode(column: column, as: String?.self) ?? "" }
            return TotalRow(
                keys: keys,
                value: value,
                submissions: try row.decode(column: "submissions", as: Int.self),
                estimate: try row.decode(column: "estimate", as: Bool?.self) ?? false
            )
        }
    }

    struct SeriesTotal: Sendable, PostgresRowDecodable {
        var indicator: String
        var country: String
        var reporter: String
        var value: Decimal
        var estimate: Bool
        var submissions: [Int64]

        init(postgresRow row: PostgresRow) throws {
            indicator = try row.decode(column: "indicator")
            country = try row.decode(column: "country")
            reporter = try row.decode(column: "reporter")
            value = try row.decode(column: "value")
            estimate = try row.decode(column: "estimate", as: Bool?.self) ?? false
            submissions = try row.decode(column: "seqs")
        }
    }

    /// Per series (indicator, country, reporter), the total over periods that started by `date`
    /// (latest-period only for `latest` indicators), with the seqs behind it.
    func seriesTotals(through date: Day, asOfSeq: Int64?, catalogue: Catalogue) async throws -> [SeriesTotal] {
        let latestCodes = catalogue.indicators.filter { $0.timeAggregation == .latest }.map(\.code)
        let query: PostgresQuery = """
            SELECT indicator, country, reporter, sum(value)::text AS value, bool_or(estimate) AS estimate,
                   array_agg(DISTINCT seq ORDER BY seq) AS seqs
            FROM (
                SELECT c.*, rank() OVER (PARTITION BY c.indicator, c.country, c.reporter
                                         ORDER BY c.period_end DESC, c.period_start DESC) AS recency
                FROM \(Storage.Table.aggregateContributions) c
                WHERE c.period_start <= \(date.description)::date AND (\(asOfSeq)::bigint IS NULL OR c.seq <= \(asOfSeq)::bigint)
            ) f
            WHERE f.recency = 1 OR NOT (f.indicator = ANY(\(latestCodes)::text[]))
            GROUP BY indicator, country, reporter
            """
        return try await pool.withConnection(idempotent: true) { connection in
            try connection.query(query).decode(SeriesTotal.self)
        }
    }
}
