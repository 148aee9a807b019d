import Foundation
import RootcausesModel
import RootcausesPostgres

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
        try await pool.withConnection { connection in
            try connection.query("SELECT min(applied_seq) AS applied FROM aggregation_partitions").first?.int64("applied") ?? 0
        }
    }

    /// Totals grouped by `groupBy`. Indicators aggregated as `latest` count only each series'
    /// latest period in range, unless grouped by period.
    func totals(filters: Filters, groupBy: [GroupKey], catalogue: Catalogue) async throws -> [TotalRow] {
        // Never add up different units: without an indicator key, the unit is a key too.
        let groupColumns = groupBy.flatMap(\.columns) + (groupBy.contains(.indicator) ? [] : ["unit"])
        let select = groupColumns.map { "\($0)::text AS \($0)" }
        let groupClause = groupColumns.isEmpty ? "" : "GROUP BY " + groupColumns.joined(separator: ", ") + " ORDER BY " + groupColumns.joined(separator: ", ")
        let sql = """
            WITH filtered AS (
                SELECT c.*,
                       rank() OVER (PARTITION BY c.indicator, c.country, c.reporter
                                    ORDER BY c.period_end DESC, c.period_start DESC) AS recency
                FROM aggregate_contributions c
                WHERE ($1::text[] IS NULL OR c.indicator = ANY($1::text[]))
                  AND ($2::text[] IS NULL OR c.country = ANY($2::text[]))
                  AND ($3::text[] IS NULL OR c.reporter = ANY($3::text[]))
                  AND ($4::date IS NULL OR c.period_start >= $4::date)
                  AND ($5::date IS NULL OR c.period_end <= $5::date)
                  AND ($11::bigint IS NULL OR c.seq <= $11::bigint)
            ), counted AS (
                SELECT f.*, p.pillar, p.unit
                FROM filtered f
                JOIN unnest($6::text[], $7::text[], $10::text[]) AS p (indicator, pillar, unit) ON p.indicator = f.indicator
                WHERE f.recency = 1 OR NOT (f.indicator = ANY($8::text[])) OR $9::boolean
            )
            SELECT \((select + ["sum(value)::text AS value", "count(DISTINCT seq) AS submissions", "bool_or(estimate) AS estimate"]).joined(separator: ", "))
            FROM counted
            \(groupClause)
            """
        let latestCodes = catalogue.indicators.filter { $0.timeAggregation == .latest }.map(\.code)
        let parameters: [any PostgresEncodable] = [
            filters.indicators, filters.countries, filters.reporters,
            filters.from?.description, filters.to?.description,
            catalogue.indicators.map(\.code), catalogue.indicators.map(\.pillar),
            latestCodes, groupBy.contains(.period), catalogue.indicators.map(\.unit), filters.asOfSeq,
        ]
        let rows = try await pool.withConnection { connection in try connection.query(sql, parameters) }
        return rows.compactMap { row in
            // An aggregate over no rows gives one row of NULLs: that is "no data", not a zero.
            guard let value = row["value"] else { return nil }
            var keys: [String: String] = [:]
            for column in groupColumns { keys[column] = row[column] ?? "" }
            return TotalRow(keys: keys, value: value, submissions: row.int("submissions") ?? 0, estimate: row.bool("estimate") ?? false)
        }
    }

    struct SeriesTotal: Sendable {
        var indicator: String
        var country: String
        var reporter: String
        var value: Decimal
        var estimate: Bool
        var submissions: [Int64]
    }

    /// Per series (indicator, country, reporter), the total over periods that started by `date`
    /// (latest-period only for `latest` indicators), with the seqs behind it.
    func seriesTotals(through date: Day, asOfSeq: Int64?, catalogue: Catalogue) async throws -> [SeriesTotal] {
        let latestCodes = catalogue.indicators.filter { $0.timeAggregation == .latest }.map(\.code)
        let rows = try await pool.withConnection { connection in
            try connection.query("""
                SELECT indicator, country, reporter, sum(value)::text AS value, bool_or(estimate) AS estimate,
                       array_agg(DISTINCT seq ORDER BY seq)::text AS seqs
                FROM (
                    SELECT c.*, rank() OVER (PARTITION BY c.indicator, c.country, c.reporter
                                             ORDER BY c.period_end DESC, c.period_start DESC) AS recency
                    FROM aggregate_contributions c
                    WHERE c.period_start <= $1::date AND ($3::bigint IS NULL OR c.seq <= $3::bigint)
                ) f
                WHERE f.recency = 1 OR NOT (f.indicator = ANY($2::text[]))
                GROUP BY indicator, country, reporter
                """, [date.description, latestCodes, asOfSeq])
        }
        return rows.map { row in
            let seqs = row.string("seqs").trimmingCharacters(in: CharacterSet(charactersIn: "{}"))
                .split(separator: ",").compactMap { Int64($0) }
            return SeriesTotal(
                indicator: row.string("indicator"), country: row.string("country"), reporter: row.string("reporter"),
                value: Decimal(string: row.string("value")) ?? 0, estimate: row.bool("estimate") ?? false, submissions: seqs)
        }
    }
}
