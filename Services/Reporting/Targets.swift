import Foundation
import RootcausesModel

extension ReportingOperations {
    /// Which rows of a totals answer have a target, and what it is. A target is an agency's for
    /// one indicator, country and fiscal year, so a row has one when it is one fiscal year
    /// exactly (`period_from` and `period_to`, not grouped by period), one indicator and one
    /// reporter (a group key or a filter of one), no disaggregation, and the reporter set a
    /// target for every country of the row (its key, the country filter, or all the indicator's
    /// countries): the sum of those.
    struct TargetScope: Sendable {
        let request: TotalsRequest
        let catalogue: Catalogue
        /// The current targets of the fiscal year, by reporter, indicator and country.
        let targets: [String: Decimal]

        /// `nil` when no row of the request can have a target.
        init?(_ request: TotalsRequest, catalogue: Catalogue, queries: ReportingQueries) async throws {
            guard let from = request.from, let to = request.to, !request.groupBy.contains(.period),
                request.dimensions.isEmpty,
                !request.groupBy.contains(where: { if case .dimension = $0 { true } else { false } }),
                from.start == Day(year: to.end.year - 1, month: 10, day: 1),
                to.end == Day(year: to.end.year, month: 9, day: 30)
            else { return nil }
            self.request = request
            self.catalogue = catalogue
            var targets: [String: Decimal] = [:]
            for target in try await queries.targets(fiscalYear: to.end.year) {
                targets[Self.key(target.reporter, target.indicator, target.country)] = try Decimal.decode(
                    postgresText: target.value
                )
            }
            self.targets = targets
        }

        private static func key(_ reporter: String, _ indicator: String, _ country: String) -> String {
            "\(reporter)\u{1F}\(indicator)\u{1F}\(country)"
        }

        /// The row's target and the share of it achieved (value over target, to four decimal
        /// places; `nil` for a target of zero), or `nil` when the row has no target.
        func target(of row: ReportingQueries.TotalRow) -> (target: Decimal, achieved: Decimal?)? {
            func one(_ key: String, _ filter: [String]?) -> String? {
                if let value = row.keys[key] ?? nil { return value }
                guard let filter, filter.count == 1 else { return nil }
                return filter[0]
            }
            guard let code = one("indicator", request.indicators(in: catalogue)),
                let indicator = catalogue.indicator(code),
                let reporter = one("reporter", request.reporters)
            else { return nil }
            // A filtered country the indicator does not apply to holds no values and takes no target.
            let countries =
                (row.keys["country"] ?? nil).map { [$0] }
                ?? request.countries.map { $0.filter(indicator.countries.contains) } ?? indicator.countries
            guard !countries.isEmpty else { return nil }
            var sum = Decimal(0)
            for country in countries {
                guard let target = targets[Self.key(reporter, code, country)] else { return nil }
                sum += target
            }
            guard sum > 0, let value = try? Decimal.decode(postgresText: row.value) else { return (sum, nil) }
            var share = value / sum
            var rounded = Decimal()
            NSDecimalRound(&rounded, &share, 4, .plain)
            return (sum, rounded)
        }
    }
}
