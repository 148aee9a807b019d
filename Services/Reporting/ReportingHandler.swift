import Foundation
import Logging
import RootcausesJSON
import RootcausesModel
import RootcausesProtocol
import RootcausesService

/// Answers `indicators`, `totals` and `factsheet`, each optionally after waiting for `min_seq`.
struct ReportingHandler: RequestHandler {
    let serviceName = "reporting"
    let operations = ["indicators", "totals", "factsheet"]
    let catalogue: Catalogue
    let template: FactSheetTemplate
    let queries: ReportingQueries

    static let defaultTimeoutMilliseconds: Int64 = 5_000
    static let maximumTimeoutMilliseconds: Int64 = 60_000

    func handle(_ request: Request, logger: Logger) async throws(ProtocolError) -> [(String, JSON)] {
        // Check the request fully, listing every problem, before waiting on anything.
        var problems: [Problem] = []
        let wait = readWait(request.body, problems: &problems)
        let work: Work
        switch request.op {
        case "indicators": work = .indicators
        case "totals": work = readTotals(request.body, problems: &problems)
        default: work = readFactSheet(request.body, problems: &problems)
        }
        guard problems.isEmpty else { throw invalid(problems) }
        do {
            let applied = try await waitForApplied(minSeq: wait.minSeq, timeoutMilliseconds: wait.timeout)
            var fields: [(String, JSON)] = [("applied_seq", .int(applied))]
            switch work {
            case .indicators:
                fields += catalogue.json.objectValue ?? []
            case .totals(var filters, let groupBy):
                // Pin the answer to what was applied when the read started: reproducible with as_of_seq.
                filters.asOfSeq = filters.asOfSeq ?? applied
                fields.append(("as_of_seq", .int(filters.asOfSeq!)))
                let rows = try await queries.totals(filters: filters, groupBy: groupBy, catalogue: catalogue)
                fields.append(("rows", .array(rows.map { totalsRow($0, groupBy: groupBy) })))
            case .factSheet(let date, let json, let asOf):
                // Pinned to what was applied when the read started; asking again with the same
                // date and as_of_seq gives the same fact sheet, whatever arrived since.
                let pinned = asOf ?? applied
                let series = try await queries.seriesTotals(through: date, asOfSeq: pinned, catalogue: catalogue)
                fields.append(("as_of_seq", .int(pinned)))
                let sheet = template.render(date: date, catalogue: catalogue) { placeholder in
                    total(of: placeholder, in: series)
                }
                if json {
                    fields.append(("format", "json"))
                    fields += sheet.json.objectValue ?? []
                } else {
                    fields += [("format", "markdown"), ("text", .string(sheet.markdown))]
                }
            }
            return fields
        } catch {
            throw protocolError(for: error, logger: logger)
        }
    }

    private enum Work {
        case indicators
        case totals(ReportingQueries.Filters, [ReportingQueries.GroupKey])
        case factSheet(Day, json: Bool, asOfSeq: Int64?)
    }

    // MARK: - Reading requests

    private func invalid(_ problems: [Problem]) -> ProtocolError {
        ProtocolError(.invalidRequest, "\(problems[0].path): \(problems[0].message)", details: problems.map(\.json))
    }

    private func readWait(_ body: JSON, problems: inout [Problem]) -> (minSeq: Int64?, timeout: Int64) {
        var minSeq: Int64?
        if let field = body["min_seq"], !field.isNull {
            if let value = field.int64Value {
                if value >= 0 { minSeq = value } else {
                    problems.append(Problem(path: "min_seq", code: "invalid", message: "'min_seq' must not be negative"))
                }
            } else {
                problems.append(Problem(path: "min_seq", code: "wrong_type", message: "'min_seq' must be an integer"))
            }
        }
        var timeout = Self.defaultTimeoutMilliseconds
        if let field = body["timeout_ms"], !field.isNull {
            if let value = field.int64Value, (0...Self.maximumTimeoutMilliseconds).contains(value) { timeout = value } else {
                problems.append(Problem(path: "timeout_ms", code: "invalid",
                    message: "'timeout_ms' must be an integer from 0 to \(Self.maximumTimeoutMilliseconds)"))
            }
        }
        if let field = body["as_of_seq"], !field.isNull {
            if let value = field.int64Value, value >= 0 {
                // Answering as of a seq needs everything up to it applied.
                minSeq = max(minSeq ?? 0, value)
            } else {
                problems.append(Problem(path: "as_of_seq", code: field.int64Value == nil ? "wrong_type" : "invalid",
                    message: "'as_of_seq' must be a non-negative integer"))
            }
        }
        return (minSeq, timeout)
    }

    /// `as_of_seq`, when given and valid.
    private func asOfSeq(_ body: JSON) -> Int64? {
        guard let value = body["as_of_seq"]?.int64Value, value >= 0 else { return nil }
        return value
    }

    /// A filter given as a string or a list of strings.
    private func stringList(_ body: JSON, _ key: String, problems: inout [Problem]) -> [String]? {
        guard let field = body[key], !field.isNull else { return nil }
        if let one = field.stringValue { return [one] }
        if let many = field.arrayValue {
            var result: [String] = []
            for (i, element) in many.enumerated() {
                if let text = element.stringValue { result.append(text) } else {
                    problems.append(Problem(path: "\(key)[\(i)]", code: "wrong_type", message: "must be a string, not \(element.kindName)"))
                }
            }
            return result
        }
        problems.append(Problem(path: key, code: "wrong_type", message: "'\(key)' must be a string or a list of strings"))
        return nil
    }

    private func readTotals(_ body: JSON, problems: inout [Problem]) -> Work {
        func checkEach(_ values: [String]?, _ key: String, _ exists: (String) -> Bool, _ what: String) {
            for (i, value) in (values ?? []).enumerated() where !exists(value) {
                problems.append(Problem(path: "\(key)[\(i)]", code: "invalid", message: "'\(value)' is not \(what) in the catalogue"))
            }
        }
        let indicators = stringList(body, "indicator", problems: &problems)
        checkEach(indicators, "indicator", { catalogue.indicator($0) != nil }, "an indicator")
        let countries = stringList(body, "country", problems: &problems)
        checkEach(countries, "country", catalogue.hasCountry, "a country")
        let reporters = stringList(body, "reporter", problems: &problems)
        checkEach(reporters, "reporter", catalogue.hasReporter, "a reporter")
        let pillars = stringList(body, "pillar", problems: &problems)
        checkEach(pillars, "pillar", catalogue.hasPillar, "a pillar")
        func period(_ key: String) -> Period? {
            guard let field = body[key], !field.isNull else { return nil }
            guard let text = field.stringValue, let period = Period.parse(text) else {
                problems.append(Problem(path: key, code: "invalid",
                    message: "'\(key)' must be a period: 2023, 2023Q1, 2023-01, FY2023 or FY2023Q1"))
                return nil
            }
            return period
        }
        let from = period("period_from")
        let to = period("period_to")
        var groupBy: [ReportingQueries.GroupKey] = []
        if let field = body["group_by"], !field.isNull {
            if let list = field.arrayValue {
                for (i, element) in list.enumerated() {
                    if let name = element.stringValue, let key = ReportingQueries.GroupKey(rawValue: name) {
                        if !groupBy.contains(key) { groupBy.append(key) }
                    } else {
                        problems.append(Problem(path: "group_by[\(i)]", code: "invalid",
                            message: "group_by takes indicator, country, reporter, pillar or period"))
                    }
                }
            } else {
                problems.append(Problem(path: "group_by", code: "wrong_type", message: "'group_by' must be a list"))
            }
        }
        var indicatorFilter = indicators
        if let pillars {
            let inPillars = catalogue.indicators.filter { pillars.contains($0.pillar) }.map(\.code)
            indicatorFilter = indicatorFilter.map { codes in codes.filter(inPillars.contains) } ?? inPillars
        }
        return .totals(
            ReportingQueries.Filters(
                indicators: indicatorFilter, countries: countries, reporters: reporters, from: from?.start, to: to?.end,
                asOfSeq: asOfSeq(body)),
            groupBy)
    }

    private func readFactSheet(_ body: JSON, problems: inout [Problem]) -> Work {
        var json = false
        if let field = body["format"], !field.isNull {
            switch field.stringValue {
            case "markdown": json = false
            case "json": json = true
            default: problems.append(Problem(path: "format", code: "invalid", message: "'format' must be \"markdown\" or \"json\""))
            }
        }
        var date = Day.today()
        if let field = body["date"], !field.isNull {
            if let text = field.stringValue, let day = Day(iso: text) { date = day } else {
                problems.append(Problem(path: "date", code: "invalid", message: "'date' must be a day written YYYY-MM-DD"))
            }
        }
        return .factSheet(date, json: json, asOfSeq: asOfSeq(body))
    }

    // MARK: - Answers

    /// Waits until every submission up to `minSeq` is aggregated, polling the watermark.
    private func waitForApplied(minSeq: Int64?, timeoutMilliseconds: Int64) async throws -> Int64 {
        var applied = try await queries.appliedSeq()
        guard let minSeq, applied < minSeq else { return applied }
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(timeoutMilliseconds))
        var pause = Duration.milliseconds(2)
        while applied < minSeq {
            guard ContinuousClock.now < deadline else {
                throw ProtocolError(.notReady,
                    "submissions up to seq \(minSeq) are not all aggregated yet (applied through \(applied)); retry later",
                    details: [["min_seq": .int(minSeq), "applied_seq": .int(applied)]])
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(50))
            applied = try await queries.appliedSeq()
        }
        return applied
    }

    private func totalsRow(_ row: ReportingQueries.TotalRow, groupBy: [ReportingQueries.GroupKey]) -> JSON {
        var members: [(String, JSON)] = []
        for key in groupBy {
            switch key {
            case .period:
                let start = Day(iso: row.keys["period_start"] ?? "")
                let end = Day(iso: row.keys["period_end"] ?? "")
                if let start, let end { members.append(("period", .string(Period(start: start, end: end).label))) }
                members.append(("period_start", .string(row.keys["period_start"] ?? "")))
                members.append(("period_end", .string(row.keys["period_end"] ?? "")))
            case .indicator:
                let code = row.keys["indicator"] ?? ""
                members.append(("indicator", .string(code)))
                if let unit = catalogue.indicator(code)?.unit { members.append(("unit", .string(unit))) }
            default:
                members.append((key.rawValue, .string(row.keys[key.rawValue] ?? "")))
            }
        }
        if let unit = row.keys["unit"] { members.append(("unit", .string(unit))) }
        members.append(("value", .number(canonicalNumber(row.value))))
        members.append(("submissions", .int(row.submissions)))
        members.append(("estimate", .bool(row.estimate)))
        return .object(members)
    }

    private func total(of placeholder: FactSheetPlaceholder, in series: [ReportingQueries.SeriesTotal]) -> NumberTotal {
        var exact = Decimal(0)
        var estimate = false
        var seqs = Set<Int64>()
        for entry in series where entry.indicator == placeholder.indicator
            && (placeholder.countries?.contains(entry.country) ?? true)
            && (placeholder.reporters?.contains(entry.reporter) ?? true)
        {
            exact += entry.value
            estimate = estimate || entry.estimate
            seqs.formUnion(entry.submissions)
        }
        return NumberTotal(exact: exact, estimate: estimate, submissions: seqs.sorted())
    }
}

/// PostgreSQL's numeric text without insignificant trailing zeros (`12.50` becomes `12.5`).
func canonicalNumber(_ text: String) -> String {
    guard text.contains(".") else { return text }
    var trimmed = Substring(text)
    while trimmed.hasSuffix("0") { trimmed.removeLast() }
    if trimmed.hasSuffix(".") { trimmed.removeLast() }
    return String(trimmed)
}
