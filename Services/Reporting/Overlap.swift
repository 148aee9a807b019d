import Foundation
import RootcausesModel

extension ReportingOperations {
    /// Bounds of totals whose reporters' figures may overlap (catalogue `overlap: possible`).
    ///
    /// A point is one indicator, country and period. Where two or more reporters gave figures
    /// for a point and nobody has deduplicated them, the point's true value lies between the
    /// largest single reporter's figure (what it alone proves) and their sum (no overlap at all).
    /// A row's bounds add its points' up: its value stays the sum, its `lower` counts each open
    /// point at its largest reporter. Rows split by reporter or by cell, or filtered to chosen
    /// reporters or cells, are plain sums: the overlap is between all reporters of a whole figure.
    struct OverlapBounds: Sendable {
        struct Point: Sendable {
            var indicator: Indicator
            var country: String
            var periodStart: String
            var periodEnd: String
            var sum: Decimal = 0
            var largest: Decimal = 0
            var reporters = 0
            /// The deduplication in force as of the read's seq, if any.
            var adjustment: ReportingQueries.Adjustment?

            /// The point's figure: deduplicated where resolved (a custom figure held between the
            /// bounds the data gives now), the sum where not.
            var resolved: Decimal {
                guard let adjustment else { return sum }
                switch adjustment.method {
                case "max": return largest
                case "custom":
                    let custom = (try? Decimal.decode(postgresText: adjustment.value ?? "")) ?? sum
                    return Swift.min(Swift.max(custom, largest), sum)
                default: return sum
                }
            }

            /// Two or more reporters and no adjustment: the figure is an upper bound.
            var isOpen: Bool { adjustment == nil && reporters > 1 }
        }

        let groupBy: [ReportingQueries.GroupKey]
        /// The seq the bounds are as of.
        let asOfSeq: Int64
        /// Points that are open or adjusted: the ones that move a row's value or bounds.
        let points: [Point]
        /// For each row key (``rowKey(groupBy:value:)``) that has points, their indexes in
        /// ``points``: a row finds its points in one look-up. Matching every point against every
        /// row, copying each, was a third of reporting's time for a total by indicator and country.
        private let pointsByRow: [String: [Int]]

        /// `nil` when no row of the request can have bounds. `asOfSeq` `nil` reads at the current
        /// watermark, pinned as `totals` pins it (compare ``asOfSeq`` with the totals' seq).
        init?(
            _ request: TotalsRequest,
            filters: ReportingQueries.Filters,
            asOfSeq: Int64?,
            catalogue: Catalogue,
            queries: ReportingQueries
        ) async throws {
            let splitByCell = request.groupBy.contains { if case .dimension = $0 { true } else { false } }
            guard !request.groupBy.contains(.reporter), !splitByCell, request.dimensions.isEmpty,
                request.reporters == nil
            else { return nil }
            try await self.init(
                groupBy: request.groupBy,
                filters: filters,
                asOfSeq: asOfSeq,
                catalogue: catalogue,
                queries: queries
            )
        }

        /// Bounds for rows grouped by `groupBy` (never by reporter or cell) of all reporters'
        /// whole figures; `nil` when no indicator of the filters may overlap.
        init?(
            groupBy: [ReportingQueries.GroupKey],
            filters: ReportingQueries.Filters,
            asOfSeq: Int64?,
            catalogue: Catalogue,
            queries: ReportingQueries
        ) async throws {
            let overlapping = catalogue.indicators.filter {
                $0.overlap == .possible && (filters.indicators?.contains($0.code) ?? true)
            }
            guard !overlapping.isEmpty else { return nil }
            // Only points where two or more reporters meet: one aggregate over the rollups' period
            // rows (the per-reporter totals machinery made a plain total four times slower).
            var points: [String: Point] = [:]
            let (pinned, found) = try await queries.overlapPoints(
                indicators: overlapping.map(\.code),
                filters: filters,
                asOfSeq: asOfSeq
            )
            for row in found {
                guard let indicator = catalogue.indicator(row.indicator) else { continue }
                let key = Self.pointKey(row.indicator, row.country, row.periodStart, row.periodEnd)
                points[key] = Point(
                    indicator: indicator,
                    country: row.country,
                    periodStart: row.periodStart,
                    periodEnd: row.periodEnd,
                    sum: try Decimal.decode(postgresText: row.sum),
                    largest: try Decimal.decode(postgresText: row.largest),
                    reporters: row.reporters
                )
            }
            for adjustment in try await queries.adjustments(indicators: overlapping.map(\.code), asOfSeq: pinned) {
                let key = Self.pointKey(
                    adjustment.indicator,
                    adjustment.country,
                    adjustment.periodStart,
                    adjustment.periodEnd
                )
                points[key]?.adjustment = adjustment
            }
            self.groupBy = groupBy
            self.asOfSeq = pinned
            self.points = points.values.filter { $0.isOpen || $0.adjustment != nil }
            var pointsByRow: [String: [Int]] = [:]
            for (index, point) in self.points.enumerated() {
                guard let key = Self.rowKey(groupBy: groupBy, value: { Self.value(of: point, for: $0) }) else {
                    continue
                }
                pointsByRow[key, default: []].append(index)
            }
            self.pointsByRow = pointsByRow
        }

        /// The key of the row a point or a row belongs to under `groupBy`: its values of the
        /// group keys, and its unit when rows are not split by indicator (a row never adds up
        /// units). `nil` under a split by reporter or cell: such rows are plain sums.
        private static func rowKey(groupBy: [ReportingQueries.GroupKey], value: (String) -> String) -> String? {
            var key = groupBy.contains(.indicator) ? "" : value("unit")
            for group in groupBy {
                switch group {
                case .indicator: key += "\u{1F}" + value("indicator")
                case .country: key += "\u{1F}" + value("country")
                case .pillar: key += "\u{1F}" + value("pillar")
                case .period: key += "\u{1F}" + value("period_start") + "\u{1F}" + value("period_end")
                case .reporter, .dimension: return nil
                }
            }
            return key
        }

        /// A point's value of a row's column, as the totals spell it.
        private static func value(of point: Point, for column: String) -> String {
            switch column {
            case "unit": point.indicator.unit
            case "indicator": point.indicator.code
            case "country": point.country
            case "pillar": point.indicator.pillar
            case "period_start": point.periodStart
            case "period_end": point.periodEnd
            default: ""
            }
        }

        /// The indexes in ``points`` of the points that are part of the row.
        private func touching(_ row: ReportingQueries.TotalRow) -> [Int] {
            guard !pointsByRow.isEmpty,
                let key = Self.rowKey(groupBy: groupBy, value: { (row.keys[$0] ?? nil) ?? "" })
            else { return [] }
            return pointsByRow[key] ?? []
        }

        /// A point's identity: indicator, country and period dates.
        private static func pointKey(_ indicator: String, _ country: String, _ start: String, _ end: String) -> String {
            "\(indicator)\u{1F}\(country)\u{1F}\(start)\u{1F}\(end)"
        }

        /// The row's value deduplicated where resolved, and its lower bound where any figure
        /// behind it is still open (`nil`: the value is exact).
        func bounds(of row: ReportingQueries.TotalRow) -> (value: Decimal, lower: Decimal?)? {
            // Most rows touch no point: they are not decoded at all.
            let touching = touching(row)
            guard !touching.isEmpty, let sum = try? Decimal.decode(postgresText: row.value) else { return nil }
            var value = sum
            var overlap = Decimal(0)
            var open = false
            for point in touching.lazy.map({ points[$0] }) {
                value -= point.sum - point.resolved
                if point.isOpen {
                    overlap += point.sum - point.largest
                    open = true
                }
            }
            return (value, open ? value - overlap : nil)
        }

        /// For a fact sheet number (one indicator, some countries, all reporters): what the
        /// deduplications take off its sum, and its lower bound below the deduplicated figure
        /// where points are still open (`nil`: it is exact).
        func adjustment(indicator: String, countries: [String]?) -> (taken: Decimal, openOverlap: Decimal?) {
            var taken = Decimal(0)
            var overlap: Decimal?
            for point in points where point.indicator.code == indicator && (countries?.contains(point.country) ?? true)
            {
                taken += point.sum - point.resolved
                if point.isOpen { overlap = (overlap ?? 0) + point.sum - point.largest }
            }
            return (taken, overlap)
        }

        /// Every point behind a fact sheet number where reporters' figures meet, resolved or
        /// open, by country and period (a document drawn twice must come out the same).
        func points(indicator: String, countries: [String]?) -> [Point] {
            points.filter {
                $0.indicator.code == indicator && (countries?.contains($0.country) ?? true)
                    && ($0.adjustment != nil || $0.isOpen)
            }.sorted { ($0.country, $0.periodStart, $0.periodEnd) < ($1.country, $1.periodStart, $1.periodEnd) }
        }

        /// The adjustments in force behind the row, each with the point's figures.
        func adjustments(in row: ReportingQueries.TotalRow) -> [Point] {
            touching(row).map { points[$0] }.filter { $0.adjustment != nil }
        }
    }
}
