import Foundation
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol
import RootcausesService

/// The numbers a fact sheet for one date is filled from, all pinned to one seq.
struct FactSheetInputs: Sendable {
    /// One totals row (indicator, country, reporter) and its exact value.
    struct Series: Sendable {
        var row: ReportingQueries.TotalRow
        var exact: Decimal

        var country: String { (row.keys["country"] ?? nil) ?? "" }
        var reporter: String { (row.keys["reporter"] ?? nil) ?? "" }
    }

    let date: Day
    let asOfSeq: Int64
    let byIndicator: [String: [Series]]
    let overlaps: ReportingOperations.OverlapBounds?
    /// Share-achieved placeholders' results and targets, by placeholder source.
    let shares: [String: NumberTotal]

    /// The exact total behind a placeholder: deduplicated where reporters' figures overlap and
    /// a deduplication resolved them, with a lower bound where one did not.
    func total(of placeholder: FactSheetPlaceholder) -> NumberTotal {
        if let share = shares[placeholder.source] { return share }
        return total(of: placeholder, countries: placeholder.countries)
    }

    /// The same total over only `countries` (a chart's split by country).
    func total(of placeholder: FactSheetPlaceholder, countries: [String]?) -> NumberTotal {
        var number = NumberTotal(exact: 0, estimate: false, submissionCount: 0)
        for series in rows(of: placeholder, countries: countries) {
            number.exact += series.exact
            number.estimate = number.estimate || series.row.estimate
            number.submissionCount += series.row.submissions
        }
        // Overlap is between reporters: a number of named reporters is their own sum.
        if placeholder.reporters == nil, let overlaps {
            let (taken, openOverlap) = overlaps.adjustment(indicator: placeholder.indicator, countries: countries)
            number.exact -= taken
            number.lower = openOverlap.map { number.exact - $0 }
        }
        return number
    }

    /// The rows (one per country and reporter) a placeholder adds up.
    func rows(of placeholder: FactSheetPlaceholder, countries: [String]? = nil) -> [Series] {
        let countries = countries ?? placeholder.countries
        return (byIndicator[placeholder.indicator] ?? []).filter {
            (countries?.contains($0.country) ?? true) && (placeholder.reporters?.contains($0.reporter) ?? true)
        }
    }
}

/// A fact sheet with what a reader of the HTML edition sees beside it: a chart per highlight
/// and, for every number, the figures it is made of.
struct FactSheetDocument: Sendable {
    /// The charted figure as a fact sheet dated at the end of a fiscal quarter would have said it.
    struct QuarterPoint: Sendable {
        /// `FY2022 Q1`.
        var label: String
        /// The day it is counted to: the quarter's last day, or the fact sheet's date.
        var through: Day
        var value: Decimal
        /// The value is an upper bound (reporters' figures may overlap).
        var upperBound: Bool
        var estimate: Bool
    }

    /// The charted figure's part in one country.
    struct CountryPart: Sendable {
        var code: String
        var name: String
        var value: Decimal
        var upperBound: Bool
        var estimate: Bool
    }

    /// A highlight's chart: its first figure that is a total (a share of a target is not charted).
    struct Chart: Sendable {
        var number: FactSheet.Number
        var indicator: Indicator
        var quarters: [QuarterPoint]
        var countries: [CountryPart]
    }

    /// Everything behind one number: the `explain` answer for it, as a reader needs it.
    struct Explanation: Sendable {
        var number: FactSheet.Number
        var indicator: Indicator
        /// Per country and reporter, the figures added up.
        var rows: [FactSheetInputs.Series]
        /// Where reporters' figures for the same people may overlap: resolved or still open.
        var overlaps: [ReportingOperations.OverlapBounds.Point]
        /// The stored values behind it (first page of `explain`), counted or not.
        var entries: [ReportingQueries.ExplainEntry]
        /// More values than `entries` shows: the `explain` op pages through them all.
        var hasMoreEntries: Bool
    }

    static let entriesShown = 100
    /// Three fiscal years: each point is a fact sheet's worth of reading.
    static let quartersShown = 12

    var sheet: FactSheet
    var asOfSeq: Int64
    /// By highlight index; highlights without a total have none.
    var charts: [Int: Chart]
    /// One per number, in order of appearance.
    var explanations: [Explanation]
}

extension ReportingOperations {
    /// The fact sheet for `date` with its charts and explanations, every figure read as of the
    /// same seq.
    func factSheetDocument(date: Day, read: ReadConsistency) async throws -> (applied: Int64, FactSheetDocument) {
        let (applied, inputs) = try await factSheetInputs(date: date, read: read)
        let sheet = template.render(date: date, catalogue: catalogue, total: inputs.total(of:))
        // The quarters' figures as of the same seq (applied already: no wait).
        var pinned = read
        pinned.minSeq = nil
        pinned.asOf = nil
        pinned.asOfSeq = inputs.asOfSeq

        var charted: [Int: FactSheet.Number] = [:]
        for (index, highlight) in sheet.highlights.enumerated() {
            charted[index] = highlight.numbers.first { $0.placeholder.achievedFiscalYear == nil }
        }
        // The quarters from the first that holds a period any charted figure counts, to the date's.
        let chartedIndicators = Set(charted.values.map(\.placeholder.indicator))
        let periods = try await queries.totals(
            filters: ReportingQueries.Filters(
                indicators: Array(chartedIndicators),
                startedBy: date,
                asOfSeq: inputs.asOfSeq
            ),
            groupBy: [.period],
            catalogue: catalogue
        )
        let firstStart = periods.rows.compactMap { ($0.keys["period_start"] ?? nil).flatMap { Day(iso: $0) } }.min()
        var quarterInputs: [(label: String, through: Day, inputs: FactSheetInputs)] = []
        if let firstStart {
            // Cumulative figures: the first quarter shown counts everything before it too.
            for quarter in Self.fiscalQuarters(from: firstStart, through: date).suffix(FactSheetDocument.quartersShown)
            {
                let through = min(quarter.period.end, date)
                let atQuarter =
                    through == date
                    ? inputs : try await factSheetInputs(date: through, read: pinned, sharesAchieved: false).inputs
                quarterInputs.append((quarter.label, through, atQuarter))
            }
        }

        var charts: [Int: FactSheetDocument.Chart] = [:]
        for (index, number) in charted {
            guard let indicator = catalogue.indicator(number.placeholder.indicator) else { continue }
            let placeholder = number.placeholder
            let quarters = quarterInputs.map { quarter in
                let total = quarter.inputs.total(of: placeholder)
                return FactSheetDocument.QuarterPoint(
                    label: quarter.label,
                    through: quarter.through,
                    value: total.exact,
                    upperBound: total.lower != nil,
                    estimate: total.estimate
                )
            }
            let countries = (placeholder.countries ?? indicator.countries).map { code in
                let total = inputs.total(of: placeholder, countries: [code])
                return FactSheetDocument.CountryPart(
                    code: code,
                    name: catalogue.countries.first { $0.code == code }?.name ?? code,
                    value: total.exact,
                    upperBound: total.lower != nil,
                    estimate: total.estimate
                )
            }
            charts[index] = FactSheetDocument.Chart(
                number: number,
                indicator: indicator,
                quarters: quarters,
                countries: countries
            )
        }

        var explanations: [FactSheetDocument.Explanation] = []
        for number in sheet.numbers {
            let placeholder = number.placeholder
            guard let indicator = catalogue.indicator(placeholder.indicator) else { continue }
            let selection = ReportingQueries.ExplainSelection(
                indicators: [indicator.code],
                countries: placeholder.countries,
                reporters: placeholder.reporters,
                from: placeholder.achievedFiscalYear.map { Day(year: $0 - 1, month: 10, day: 1) },
                to: placeholder.achievedFiscalYear.map { Day(year: $0, month: 9, day: 30) },
                startedBy: date,
                perPeriod: false
            )
            let entries = try await queries.explain(
                selection,
                asOfSeq: inputs.asOfSeq,
                after: nil,
                limit: FactSheetDocument.entriesShown + 1,
                catalogue: catalogue
            )
            // A share of a target adds up the reporter's figures of its fiscal year only.
            var rows = inputs.rows(of: placeholder)
            if placeholder.achievedFiscalYear != nil {
                rows = try await queries.totals(
                    filters: ReportingQueries.Filters(
                        indicators: [indicator.code],
                        countries: placeholder.countries ?? indicator.countries,
                        reporters: placeholder.reporters,
                        from: selection.from,
                        to: selection.to,
                        startedBy: date,
                        asOfSeq: inputs.asOfSeq
                    ),
                    groupBy: [.indicator, .country, .reporter],
                    catalogue: catalogue
                ).rows.map { FactSheetInputs.Series(row: $0, exact: try Decimal.decode(postgresText: $0.value)) }
            }
            explanations.append(
                FactSheetDocument.Explanation(
                    number: number,
                    indicator: indicator,
                    rows: rows,
                    overlaps: placeholder.reporters == nil
                        ? inputs.overlaps?.points(indicator: indicator.code, countries: placeholder.countries) ?? []
                        : [],
                    entries: Array(entries.prefix(FactSheetDocument.entriesShown)),
                    hasMoreEntries: entries.count > FactSheetDocument.entriesShown
                )
            )
        }
        return (
            applied,
            FactSheetDocument(sheet: sheet, asOfSeq: inputs.asOfSeq, charts: charts, explanations: explanations)
        )
    }

    /// The U.S. fiscal quarters (October to December is Q1 of the next year's FY) that hold any
    /// day from `start` through `end`.
    static func fiscalQuarters(from start: Day, through end: Day) -> [(label: String, period: Period)] {
        func quarter(of day: Day) -> (year: Int, quarter: Int) {
            (day.month >= 10 ? day.year + 1 : day.year, (day.month + 2) % 12 / 3 + 1)
        }
        var (year, number) = quarter(of: start)
        let last = quarter(of: end)
        var result: [(String, Period)] = []
        while (year, number) <= last {
            if let period = Period.parse("FY\(year)Q\(number)") { result.append(("FY\(year) Q\(number)", period)) }
            (year, number) = number == 4 ? (year + 1, 1) : (year, number + 1)
        }
        return result
    }
}

extension ReportingOperations {
    /// `factsheet` with `format: html`: the fact sheet, its charts and its explanations as one
    /// file. A published fact sheet is drawn again from its date and seq, and given only if
    /// its words come out exactly as published (the template may have changed since).
    func htmlFactSheet(_ request: FactSheetRequest) async throws -> AnswerFields {
        var date = request.date ?? Day.today()
        var read = request.read
        var published: (publication: ReportingQueries.Publication, markdown: String)?
        if let id = request.publishedID {
            guard let stored = try await queries.publishedDocument(id: id) else {
                throw unknownPublication(id, path: "published_id")
            }
            guard let day = Day(iso: stored.publication.date, years: 1...9999) else {
                throw PostgresError(code: .unexpectedResult, message: "publication \(id) has no valid date")
            }
            date = day
            read.asOfSeq = stored.publication.asOfSeq
            published = (stored.publication, stored.markdown)
        }
        let (applied, document) = try await factSheetDocument(date: date, read: read)
        var fields: AnswerFields = [("applied_seq", .int(applied))]
        if let published {
            guard document.sheet.markdown == published.markdown else {
                throw ProtocolError(
                    .conflict,
                    "publication '\(published.publication.id)' was filled from another fact sheet template; its HTML cannot be drawn again; ask for format markdown or json, which are stored as published",
                    details: [["code": "template_changed"]]
                )
            }
            fields += publicationFields(published.publication)
        } else {
            fields.append(("as_of_seq", .int(document.asOfSeq)))
        }
        let html = FactSheetHTML(document: document, catalogue: catalogue, version: rootcausesVersion).render()
        fields += [("format", "html"), ("text", .string(html))]
        return fields
    }
}
