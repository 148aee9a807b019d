import Foundation
import RootcausesModel

/// One reporter's results as an IATI activity file (IATI standard 2.03): one activity for the
/// reporter's part of the Root Causes Strategy, one `result` per indicator, one `period` per
/// reporting period, one `actual` per country and disaggregation cell (as IATI `dimension`s),
/// estimates marked by a comment. Validates against the IATI 2.03 activity schema (the tests
/// check it with xmllint).
///
/// Written as text rather than with an XML library: the document is a fixed shape of a few
/// elements, every text and attribute goes through `escape`, and Foundation's XMLDocument is
/// not available on Linux without FoundationXML's libxml2 dependency.
struct IATIActivityFile {
    struct Actual {
        var country: String
        var cell: [(String, String)]
        var value: String
        var estimate: Bool
    }

    let reporter: (code: String, name: String)
    let catalogue: Catalogue
    /// Indicator code to period to actuals.
    var results: [String: [Period: [Actual]]] = [:]

    init(reporter: (code: String, name: String), catalogue: Catalogue) {
        self.reporter = reporter
        self.catalogue = catalogue
    }

    mutating func add(indicator: String, period: Period, actual: Actual) {
        results[indicator, default: [:]][period, default: []].append(actual)
    }

    /// The XML document, UTF-8, with its declaration.
    func xml(generatedAt: String) -> String {
        let identifier = "US-ROOTCAUSES-\(reporter.code)"
        let periods = results.values.flatMap(\.keys)
        let countries = Set(results.values.flatMap { $0.values.flatMap { $0.map(\.country) } }).sorted()
        var lines = [
            #"<?xml version="1.0" encoding="UTF-8"?>"#,
            #"<iati-activities version="2.03" generated-datetime="\#(generatedAt)">"#,
            #" <iati-activity last-updated-datetime="\#(generatedAt)" default-currency="USD" xml:lang="en">"#,
            "  <iati-identifier>\(escape(identifier))</iati-identifier>",
            #"  <reporting-org ref="\#(escape(identifier))" type="10"><narrative>\#(escape(reporter.name))</narrative></reporting-org>"#,
            "  <title><narrative>U.S. Strategy for Addressing the Root Causes of Migration in Central America: results reported by \(escape(reporter.name))</narrative></title>",
            #"  <description type="1"><narrative>Results \#(escape(reporter.name)) reported to Rootcauses, totalled per indicator, period, country and disaggregation.</narrative></description>"#,
            #"  <participating-org role="4" type="10"><narrative>\#(escape(reporter.name))</narrative></participating-org>"#,
            #"  <activity-status code="2"/>"#,
        ]
        if let first = periods.map(\.start).min() {
            lines.append(#"  <activity-date type="2" iso-date="\#(first)"/>"#)
        } else {
            lines.append(#"  <activity-date type="1" iso-date="\#(generatedAt.prefix(10))"/>"#)
        }
        for country in countries { lines.append(#"  <recipient-country code="\#(escape(country))"/>"#) }
        for indicator in catalogue.indicators where results[indicator.code] != nil {
            let name = escape(indicator.name)
            lines += [
                #"  <result type="1">"#,
                "   <title><narrative>\(name)</narrative></title>",
                #"   <indicator measure="1">"#,
                "    <title><narrative>\(name)</narrative></title>",
                "    <description><narrative>\(escape(indicator.code)), in \(escape(indicator.unit))</narrative></description>",
            ]
            for (period, actuals) in (results[indicator.code] ?? [:]).sorted(by: {
                ($0.key.start, $0.key.end) < ($1.key.start, $1.key.end)
            }) {
                lines += [
                    "    <period>",
                    #"     <period-start iso-date="\#(period.start)"/>"#,
                    #"     <period-end iso-date="\#(period.end)"/>"#,
                ]
                for actual in actuals {
                    lines.append(#"     <actual value="\#(escape(actual.value))">"#)
                    lines.append(#"      <dimension name="country" value="\#(escape(actual.country))"/>"#)
                    for (name, value) in actual.cell {
                        lines.append(#"      <dimension name="\#(escape(name))" value="\#(escape(value))"/>"#)
                    }
                    if actual.estimate { lines.append("      <comment><narrative>estimate</narrative></comment>") }
                    lines.append("     </actual>")
                }
                lines.append("    </period>")
            }
            lines += ["   </indicator>", "  </result>"]
        }
        lines += [" </iati-activity>", "</iati-activities>", ""]
        return lines.joined(separator: "\n")
    }

    /// Now, as IATI's dateTime attributes want it (UTC, to the second).
    static func now() -> String { ISO8601DateFormatter().string(from: Date()) }

    private func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
