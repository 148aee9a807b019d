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
        }

        let groupBy: [ReportingQueries.GroupKey]
        /// Only points where the figures may overlap: two or more reporters.
        let openPoints: [Point]

        /// `nil` when no row of the request can have bounds.
        init?(
            _ request: TotalsRequest,
            filters: ReportingQueries.Filters,
            asOfSeq: Int64,
            catalogue: Catalogue,
            queries: ReportingQueries
        ) async throws {
            let splitByCell = request.groupBy.contains { if case .dimension = $0 { true } else { false } }
            guard !request.groupBy.contains(.reporter), !splitByCell, request.dimensions.isEmpty,
                request.reporters == nil
            else { return nil }
            let overlapping = catalogue.indicators.filter {
                $0.overlap == .possible && (filters.indicators?.contains($0.code) ?? true)
            }
            guard !overlapping.isEmpty else { return nil }
            var pointFilters = filters
            pointFilters.indicators = overlapping.map(\.code)
            pointFilters.asOfSeq = asOfSeq
            // Per point and reporter, from the same rollups and the same as-of rules as the totals.
            let rows = try await queries.totals(
                filters: pointFilters,
                groupBy: [.indicator, .country, .reporter, .period],
                catalogue: catalogue
            ).rows
            var points: [String: Point] = [:]
            for row in rows {
                guard let code = row.keys["indicator"] ?? nil, let indicator = catalogue.indicator(code),
                    let country = row.keys["country"] ?? nil, let start = row.keys["period_start"] ?? nil,
                    let end = row.keys["period_end"] ?? nil
                else { continue }
                let value = try Decimal.decode(postgresText: row.value)
                let key = "\(code)\u{1F}\(country)\u{1F}\(start)\u{1F}\(end)"
                var point =
                    points[key] ?? Point(indicator: indicator, country: country, periodStart: start, periodEnd: end)
                point.sum += value
                point.largest = max(point.largest, value)
                point.reporters += 1
                points[key] = point
            }
            groupBy = request.groupBy
            openPoints = points.values.filter { $0.reporters > 1 }
        }

        /// The row's lower bound, or `nil` when every figure behind it is exact.
        func lowerBound(of row: ReportingQueries.TotalRow) -> Decimal? {
            guard let value = try? Decimal.decode(postgresText: row.value) else { return nil }
            var overlap = Decimal(0)
            var open = false
            for point in openPoints where contains(row, point) {
                overlap += point.sum - point.largest
                open = true
            }
            return open ? value - overlap : nil
        }

        /// Whether the point is part of the row: it matches each of the row's keys.
        private func contains(_ row: ReportingQueries.TotalRow, _ point: Point) -> Bool {
            if let unit = row.keys["unit"] ?? nil, unit != point.indicator.unit { return false }
            for key in groupBy {
                switch key {
                case .indicator: if row.keys["indicator"] != .some(point.indicator.code) { return false }
                case .country: if row.keys["country"] != .some(point.country) { return false }
                case .pillar: if row.keys["pillar"] != .some(point.indicator.pillar) { return false }
                case .period:
                    if row.keys["period_start"] != .some(point.periodStart)
                        || row.keys["period_end"] != .some(point.periodEnd)
                    {
                        return false
                    }
                case .reporter, .dimension: return false
                }
            }
            return true
        }
    }
}
