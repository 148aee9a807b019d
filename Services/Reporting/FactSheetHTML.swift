import Foundation
import Plot
import RootcausesJSON
import RootcausesModel

/// The fact sheet as one self-contained HTML file: inline CSS and SVG, no script, nothing
/// fetched. Readable on a phone (one column below 40em), printable (highlights kept whole), and
/// every number links to the section that says what it is made of.
///
/// Built with Plot's node tree, which escapes text; attribute values are all ours (ids, classes,
/// coordinates) and still go through ``attribute(_:_:)``, which escapes them, because Plot does not.
struct FactSheetHTML {
    typealias Content = Node<HTML.BodyContext>

    let document: FactSheetDocument
    let catalogue: Catalogue
    let version: String

    /// The whole document, UTF-8.
    func render() -> String {
        let sheet = document.sheet
        let html = HTML(
            .lang(.english),
            .head(
                .encoding(.utf8),
                .viewport(.accordingToDevice),
                .element(named: "title", text: sheet.title),
                .style(Self.css)
            ),
            .body(
                .element(
                    named: "main",
                    nodes: [
                        element("header", [("id", "top")], [element("h1", [], [text(sheet.title)])])
                    ]
                        + sheet.preambleParagraphs.map { paragraph($0, class: paragraphClass($0)) }
                        + [legend()]
                        + [
                            element(
                                "ul",
                                [("class", "highlights")],
                                sheet.highlights.enumerated().map { highlight($1, index: $0) }
                            )
                        ]
                        + sheet.closingParagraphs.map { paragraph($0) }
                        + [explanations(), footer()]
                )
            )
        )
        return html.render()
    }

    // MARK: - The fact sheet

    private func paragraphClass(_ paragraph: FactSheet.Paragraph) -> String? {
        paragraph.text.contains(document.sheet.date.monthAndYear) ? "date" : nil
    }

    private func paragraph(_ paragraph: FactSheet.Paragraph, class className: String? = nil) -> Content {
        element("p", className.map { [("class", $0)] } ?? [], inline(paragraph.pieces))
    }

    private func highlight(_ highlight: FactSheet.Highlight, index: Int) -> Content {
        var children: [Content] = [
            element(
                "div",
                [("class", "text")],
                [
                    element(
                        "p",
                        [],
                        [element("strong", [], [text(highlight.heading + ":")]), text(" ")]
                            + inline(highlight.paragraph.pieces)
                    )
                ]
            )
        ]
        if let chart = document.charts[index] { children.append(charts(chart, highlight: index)) }
        return element("li", [("class", "highlight"), ("id", "h-\(index + 1)")], children)
    }

    /// Text with the template's `**bold**` and `*italic*`, and each number a link to its
    /// explanation, marked when it is an estimate or an upper bound.
    private func inline(_ pieces: [FactSheet.Piece]) -> [Content] {
        var nodes: [Content] = []
        var bold = false
        var italic = false
        func run(_ words: String) {
            guard !words.isEmpty else { return }
            var node = text(words)
            if italic { node = element("em", [], [node]) }
            if bold { node = element("strong", [], [node]) }
            nodes.append(node)
        }
        for piece in pieces {
            switch piece {
            case .text(let words):
                var current = ""
                var rest = Substring(words)
                while let star = rest.firstIndex(of: "*") {
                    current += rest[rest.startIndex..<star]
                    run(current)
                    current = ""
                    if rest[star...].hasPrefix("**") {
                        bold.toggle()
                        rest = rest[rest.index(star, offsetBy: 2)...]
                    } else {
                        italic.toggle()
                        rest = rest[rest.index(after: star)...]
                    }
                }
                run(current + rest)
            case .number(let number):
                nodes.append(numberLink(number))
            }
        }
        return nodes
    }

    private func numberLink(_ number: FactSheet.Number) -> Content {
        var classes = ["figure"]
        var children: [Content] = [text(number.phrased.text)]
        if number.estimate {
            classes.append("estimate")
            children.append(element("sup", [("class", "mark")], [text("*")]))
        }
        if number.lower != nil {
            classes.append("upper")
            children.append(element("sup", [("class", "mark")], [text("†")]))
        }
        return element(
            "a",
            [("class", classes.joined(separator: " ")), ("href", "#\(anchor(of: number))")],
            children
        )
    }

    private func anchor(of number: FactSheet.Number) -> String {
        let index = document.explanations.firstIndex { $0.number.placeholder.source == number.placeholder.source }
        return "n-\((index ?? 0) + 1)"
    }

    /// What the marks mean, shown only when some number carries one.
    private func legend() -> Content {
        let numbers = document.sheet.numbers
        var items: [Content] = []
        if numbers.contains(where: \.estimate) {
            items.append(
                element(
                    "li",
                    [],
                    [element("sup", [("class", "mark")], [text("*")]), text(" includes figures reported as estimates")]
                )
            )
        }
        if numbers.contains(where: { $0.lower != nil }) {
            items.append(
                element(
                    "li",
                    [],
                    [
                        element("sup", [("class", "mark")], [text("†")]),
                        text(
                            " an upper bound: agencies' figures may count the same people or firms twice; its explanation gives the lower bound"
                        ),
                    ]
                )
            )
        }
        guard !items.isEmpty else { return .empty }
        return element("ul", [("class", "legend")], items)
    }

    // MARK: - Charts

    private func charts(_ chart: FactSheetDocument.Chart, highlight index: Int) -> Content {
        element(
            "figure",
            [("class", "charts")],
            [
                quarterChart(chart, id: "q-\(index + 1)"),
                countryChart(chart, id: "c-\(index + 1)"),
                element(
                    "figcaption",
                    [],
                    [
                        text(
                            "\(chart.indicator.name): total to date at the end of each fiscal quarter, and by country"
                        )
                    ]
                ),
            ]
        )
    }

    /// Cumulative bars, one per fiscal quarter, the latest labelled.
    private func quarterChart(_ chart: FactSheetDocument.Chart, id: String) -> Content {
        let width = 320.0
        let height = 150.0
        let top = 18.0
        let bottom = 30.0
        let points = chart.quarters
        let largest = points.map(\.value).max() ?? 0
        var marks: [Content] = [svgText(summary(of: chart), tag: "title")]
        guard !points.isEmpty, largest > 0 else {
            return svg(id: id, class: "chart quarters", width: width, height: height, marks + [noData(width, height)])
        }
        let slot = width / Double(points.count)
        let barWidth = max(2, slot * 0.7)
        let plotHeight = height - top - bottom
        for (i, point) in points.enumerated() {
            let barHeight = max(point.value > 0 ? 1 : 0, plotHeight * ratio(point.value, largest))
            let x = Double(i) * slot + (slot - barWidth) / 2
            marks.append(
                svgElement(
                    "rect",
                    [
                        ("class", markClass(upperBound: point.upperBound, estimate: point.estimate)), ("x", format(x)),
                        ("y", format(top + plotHeight - barHeight)), ("width", format(barWidth)),
                        ("height", format(barHeight)),
                    ],
                    [
                        svgText(
                            "\(point.label) (to \(point.through)): \(exactFigure(point.value, chart.indicator))",
                            tag: "title"
                        )
                    ]
                )
            )
            // Quarter under each bar when they fit (else every other), the fiscal year under
            // the first bar and each Q1.
            let center = format(Double(i) * slot + slot / 2)
            let quarter = String(point.label.suffix(2))
            if points.count <= 8 || i % 2 == 0 {
                marks.append(
                    svgText(
                        quarter,
                        tag: "text",
                        [("class", "axis"), ("x", center), ("y", format(height - 15)), ("text-anchor", "middle")]
                    )
                )
            }
            if i == 0 || quarter == "Q1" {
                marks.append(
                    svgText(
                        String(point.label.prefix(6)),
                        tag: "text",
                        [("class", "axis"), ("x", center), ("y", format(height - 3)), ("text-anchor", "middle")]
                    )
                )
            }
        }
        let last = points[points.count - 1]
        marks.append(
            svgText(
                compactFigure(last.value, chart.indicator),
                tag: "text",
                [("class", "value"), ("x", format(width - 2)), ("y", format(12)), ("text-anchor", "end")]
            )
        )
        marks.append(
            svgElement(
                "line",
                [
                    ("class", "baseline"), ("x1", "0"), ("x2", format(width)), ("y1", format(top + plotHeight)),
                    ("y2", format(top + plotHeight)),
                ]
            )
        )
        return svg(id: id, class: "chart quarters", width: width, height: height, marks)
    }

    /// One horizontal bar per country of the figure, each labelled.
    private func countryChart(_ chart: FactSheetDocument.Chart, id: String) -> Content {
        let width = 320.0
        let rowHeight = 22.0
        let labelWidth = 96.0
        let valueWidth = 72.0
        let parts = chart.countries
        let height = max(rowHeight, rowHeight * Double(parts.count)) + 4
        let largest = parts.map(\.value).max() ?? 0
        var marks: [Content] = [svgText("\(chart.indicator.name) by country", tag: "title")]
        guard largest > 0 else {
            return svg(id: id, class: "chart countries", width: width, height: height, marks + [noData(width, height)])
        }
        let barSpace = width - labelWidth - valueWidth
        for (i, part) in parts.enumerated() {
            let y = Double(i) * rowHeight + 2
            let barWidth = max(part.value > 0 ? 1 : 0, barSpace * ratio(part.value, largest))
            marks.append(
                svgText(
                    part.name,
                    tag: "text",
                    [("class", "axis"), ("x", "0"), ("y", format(y + rowHeight * 0.65))]
                )
            )
            marks.append(
                svgElement(
                    "rect",
                    [
                        ("class", markClass(upperBound: part.upperBound, estimate: part.estimate)),
                        ("x", format(labelWidth)),
                        ("y", format(y + 3)), ("width", format(barWidth)), ("height", format(rowHeight - 8)),
                    ],
                    [svgText("\(part.name): \(exactFigure(part.value, chart.indicator))", tag: "title")]
                )
            )
            marks.append(
                svgText(
                    compactFigure(part.value, chart.indicator),
                    tag: "text",
                    [("class", "value"), ("x", format(labelWidth + barWidth + 4)), ("y", format(y + rowHeight * 0.65))]
                )
            )
        }
        return svg(id: id, class: "chart countries", width: width, height: height, marks)
    }

    /// A bar's classes: upper bounds drawn as dashed outlines, estimates lighter (the CSS).
    private func markClass(upperBound: Bool, estimate: Bool) -> String {
        (["mark"] + (upperBound ? ["upper"] : []) + (estimate ? ["estimate"] : [])).joined(separator: " ")
    }

    private func summary(of chart: FactSheetDocument.Chart) -> String {
        let steps = chart.quarters.map { "\($0.label): \(exactFigure($0.value, chart.indicator))" }
        return "\(chart.indicator.name), total to date by fiscal quarter: " + steps.joined(separator: "; ")
    }

    private func noData(_ width: Double, _ height: Double) -> Content {
        svgText(
            "no figures yet",
            tag: "text",
            [("class", "axis"), ("x", format(width / 2)), ("y", format(height / 2)), ("text-anchor", "middle")]
        )
    }

    private func svg(
        id: String,
        class className: String,
        width: Double,
        height: Double,
        _ marks: [Content]
    )
        -> Content
    {
        svgElement(
            "svg",
            [
                ("xmlns", "http://www.w3.org/2000/svg"), ("id", id), ("class", className), ("role", "img"),
                ("viewBox", "0 0 \(format(width)) \(format(height))"), ("preserveAspectRatio", "xMinYMin meet"),
            ],
            marks
        )
    }

    // MARK: - Explanations

    private func explanations() -> Content {
        element(
            "section",
            [("class", "explanations"), ("id", "explanations")],
            [
                element("h2", [], [text("Where each number comes from")]),
                element(
                    "p",
                    [],
                    [
                        text(
                            "Every figure above is read from the reports agencies submitted, as of submission seq \(document.asOfSeq), counting reporting periods that started by \(document.sheet.date). Under each: the exact total, the figures it adds up, where agencies' figures may overlap, and the stored values behind it. The explain operation gives the same, page by page."
                        )
                    ]
                ),
            ] + document.explanations.enumerated().map { explanation($1, index: $0) }
        )
    }

    private func explanation(_ explanation: FactSheetDocument.Explanation, index: Int) -> Content {
        let number = explanation.number
        let indicator = explanation.indicator
        let placeholder = number.placeholder
        var scope: [String] = []
        if let countries = placeholder.countries { scope.append("countries " + countries.joined(separator: ", ")) }
        if let reporters = placeholder.reporters { scope.append("reported by " + reporters.joined(separator: ", ")) }
        if let year = placeholder.achievedFiscalYear { scope.append("fiscal year \(year)") }
        var facts: [Content] = [
            element(
                "p",
                [],
                [
                    text("Exact total: "), element("strong", [], [text(exactFigure(number.phrased.exact, indicator))]),
                    text(
                        " \(indicator.unit), from \(number.submissionCount) submission\(number.submissionCount == 1 ? "" : "s")"
                            + (scope.isEmpty ? "" : " (" + scope.joined(separator: "; ") + ")")
                            + "; written as “\(number.phrased.text)”."
                    ),
                ]
            )
        ]
        if let target = number.target {
            facts.append(element("p", [], [text("Target for the fiscal year: \(exactFigure(target, indicator)).")]))
        } else if placeholder.achievedFiscalYear != nil {
            facts.append(element("p", [], [text("No target is set for every country of this figure.")]))
        }
        if number.estimate {
            facts.append(
                element("p", [("class", "note")], [text("* Some values behind it were reported as estimates.")])
            )
        }
        if let lower = number.lower {
            facts.append(
                element(
                    "p",
                    [("class", "note")],
                    [
                        text(
                            "† An upper bound: agencies' figures may overlap where nobody has deduplicated them. What the largest agency alone proves puts the figure at \(exactFigure(lower, indicator)) or more."
                        )
                    ]
                )
            )
        }
        return element(
            "section",
            [("class", "explanation"), ("id", "n-\(index + 1)")],
            [element("h3", [], [text("\(number.phrased.text) — \(indicator.name)")])] + facts
                + [
                    table(
                        caption: "The figures added up",
                        headers: ["Country", "Reporter", "Value", "Submissions", "Estimate"],
                        numeric: [2, 3],
                        rows: explanation.rows.map {
                            [
                                $0.country, $0.reporter, exactFigure($0.exact, indicator), "\($0.row.submissions)",
                                $0.row.estimate ? "yes" : "",
                            ]
                        }
                    ),
                    overlapTable(explanation.overlaps, indicator: indicator),
                    table(
                        caption: "Stored values behind it",
                        headers: [
                            "Seq", "Reporter", "Submission", "Period", "Country", "Breakdown", "Value", "Counted",
                        ],
                        numeric: [0, 6],
                        rows: explanation.entries.map { entryRow($0, indicator: indicator) }
                    ),
                    explanation.hasMoreEntries
                        ? element(
                            "p",
                            [("class", "note")],
                            [
                                text(
                                    "The first \(FactSheetDocument.entriesShown) values are shown. The explain operation lists them all: "
                                        + explainHint(placeholder, indicator: indicator) + "."
                                )
                            ]
                        ) : .empty,
                    element(
                        "p",
                        [],
                        [
                            element(
                                "a",
                                [("href", highlightIndex(of: number).map { "#h-\($0 + 1)" } ?? "#top")],
                                [text("Back")]
                            )
                        ]
                    ),
                ]
        )
    }

    /// The highlight the number is in; `nil` for a number of the lead or the closing.
    private func highlightIndex(of number: FactSheet.Number) -> Int? {
        document.sheet.highlights.firstIndex {
            $0.numbers.contains { $0.placeholder.source == number.placeholder.source }
        }
    }

    /// The `explain` request that pages through a number's values.
    private func explainHint(_ placeholder: FactSheetPlaceholder, indicator: Indicator) -> String {
        var request: [(String, JSON)] = [("op", "explain"), ("indicator", .string(indicator.code))]
        if let countries = placeholder.countries { request.append(("country", .array(countries.map(JSON.string)))) }
        if let reporters = placeholder.reporters { request.append(("reporter", .array(reporters.map(JSON.string)))) }
        if let year = placeholder.achievedFiscalYear {
            request += [("period_from", .string("FY\(year)")), ("period_to", .string("FY\(year)"))]
        }
        request += [("date", .string(document.sheet.date.description)), ("as_of_seq", .int(document.asOfSeq))]
        return JSON.object(request).serialized
    }

    private func overlapTable(_ points: [ReportingOperations.OverlapBounds.Point], indicator: Indicator) -> Content {
        guard !points.isEmpty else { return .empty }
        return table(
            caption: "Where agencies' figures meet",
            headers: ["Country", "Period", "Agencies", "Their sum", "Largest", "Counted", "How"],
            numeric: [2, 3, 4, 5],
            rows: points.map { point in
                let period =
                    Day(iso: point.periodStart, years: 1...9999).flatMap { start in
                        Day(iso: point.periodEnd, years: 1...9999).map { Period(start: start, end: $0).label }
                    } ?? "\(point.periodStart)/\(point.periodEnd)"
                let how: String
                if let adjustment = point.adjustment {
                    how =
                        "deduplicated (\(adjustment.method))"
                        + (adjustment.reason.map { ": \($0)" } ?? "")
                } else {
                    how = "not deduplicated: counted at their sum, an upper bound"
                }
                return [
                    point.country, period, "\(point.reporters)", exactFigure(point.sum, indicator),
                    exactFigure(point.largest, indicator), exactFigure(point.resolved, indicator), how,
                ]
            }
        )
    }

    private func entryRow(_ entry: ReportingQueries.ExplainEntry, indicator: Indicator) -> [String] {
        let breakdown = ReportingOperations.disaggregation(ofCell: entry.cell)?.objectValue?.map {
            "\($0.0): \($0.1.stringValue ?? "")"
        }
        var counted = "yes"
        if let seq = entry.supersededSeq {
            counted = entry.supersededByRetraction == true ? "no: retracted (seq \(seq))" : "no: replaced (seq \(seq))"
        } else if entry.latest, let seq = entry.newerSeq {
            counted = "no: a newer figure for the period (seq \(seq))"
        } else if entry.latest, let start = entry.recentStart, let end = entry.recentEnd,
            start != entry.periodStart || end != entry.periodEnd
        {
            counted = "no: a later period counts"
        }
        let value = (try? Decimal.decode(postgresText: entry.value)).map { exactFigure($0, indicator) } ?? entry.value
        return [
            "\(entry.seq)", entry.reporter, entry.submissionID, entry.period, entry.country,
            breakdown?.joined(separator: ", ") ?? "", value + (entry.estimate ? " *" : ""), counted,
        ]
    }

    private func table(caption: String, headers: [String], numeric: Set<Int>, rows: [[String]]) -> Content {
        func cell(_ tag: String, _ value: String, _ column: Int) -> Content {
            element(tag, numeric.contains(column) ? [("class", "num")] : [], [text(value)])
        }
        return element(
            "div",
            [("class", "table")],
            [
                element(
                    "table",
                    [],
                    [
                        element("caption", [], [text(caption)]),
                        element(
                            "thead",
                            [],
                            [element("tr", [], headers.enumerated().map { cell("th", $1, $0) })]
                        ),
                        element(
                            "tbody",
                            [],
                            rows.isEmpty
                                ? [
                                    element(
                                        "tr",
                                        [],
                                        [element("td", [("colspan", "\(headers.count)")], [text("none")])]
                                    )
                                ]
                                : rows.map { row in element("tr", [], row.enumerated().map { cell("td", $1, $0) }) }
                        ),
                    ]
                )
            ]
        )
    }

    private func footer() -> Content {
        element(
            "footer",
            [],
            [
                text(
                    "Made by Rootcauses \(version) from the data as of submission seq \(document.asOfSeq); the same request with that as_of_seq gives this document again."
                )
            ]
        )
    }

    // MARK: - Figures

    private func exactFigure(_ value: Decimal, _ indicator: Indicator) -> String {
        NumberPhrasing.exactFigure(value, isMoney: indicator.isMoney)
    }

    private func compactFigure(_ value: Decimal, _ indicator: Indicator) -> String {
        NumberPhrasing.compactFigure(value, isMoney: indicator.isMoney)
    }

    private func ratio(_ value: Decimal, _ largest: Decimal) -> Double {
        guard largest > 0 else { return 0 }
        return max(0, min(1, NSDecimalNumber(decimal: value / largest).doubleValue))
    }

    private func format(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    // MARK: - Building nodes

    private func element(_ name: String, _ attributes: [(String, String)], _ children: [Content] = []) -> Content {
        .element(named: name, nodes: attributes.map { attribute($0.0, $0.1) } + children)
    }

    private func svgElement(_ name: String, _ attributes: [(String, String)], _ children: [Content] = []) -> Content {
        element(name, attributes, children)
    }

    private func svgText(_ words: String, tag: String, _ attributes: [(String, String)] = []) -> Content {
        element(tag, attributes, [text(words)])
    }

    /// Plot writes attribute values as given: escape them here.
    private func attribute(_ name: String, _ value: String) -> Content {
        .attribute(
            named: name,
            value: value.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
                .replacingOccurrences(of: "<", with: "&lt;")
        )
    }

    /// Plot escapes `<` and `>` but leaves what looks like an entity (`&amp;`) alone: escaping
    /// every `&` first makes the text show exactly as written.
    private func text(_ words: String) -> Content {
        .text(words.replacingOccurrences(of: "&", with: "&amp;"))
    }

    static let css = """
        :root{color-scheme:light;--ink:#1b1f24;--muted:#5b6570;--accent:#1f4e79;--bar:#2f6fad;--rule:#d8dee4}
        *{box-sizing:border-box}
        body{margin:0;font:16px/1.5 Georgia,"Times New Roman",serif;color:var(--ink);background:#fff}
        main{max-width:64em;margin:0 auto;padding:1.5em 1.25em 3em}
        h1{font-size:1.6em;line-height:1.25;margin:0 0 .5em;color:var(--accent)}
        h2{font-size:1.3em;margin:2em 0 .5em;border-top:2px solid var(--accent);padding-top:.75em}
        h3{font-size:1.05em;margin:1.75em 0 .25em}
        p.date{font-weight:bold}
        a{color:var(--accent)}
        a.figure{font-weight:bold;text-decoration:none;border-bottom:1px dotted var(--accent)}
        sup.mark{font-size:.7em;margin-left:.1em}
        ul.legend{list-style:none;padding:0;font-size:.85em;color:var(--muted)}
        ul.highlights{list-style:none;padding:0;margin:0}
        li.highlight{display:grid;grid-template-columns:minmax(0,1fr) 20em;gap:1.25em;padding:1em 0;border-top:1px solid var(--rule);break-inside:avoid;page-break-inside:avoid}
        li.highlight .text p{margin:0}
        figure.charts{margin:0;font-family:Helvetica,Arial,sans-serif}
        figure.charts svg{display:block;width:100%;height:auto;margin-bottom:.5em}
        figcaption{font-size:.75em;color:var(--muted)}
        svg .mark{fill:var(--bar)}
        svg .mark.upper{fill:#fff;stroke:var(--bar);stroke-width:1.5;stroke-dasharray:3 2}
        svg .mark.estimate{fill-opacity:.55}
        svg .axis{font-size:10px;fill:var(--muted)}
        svg .value{font-size:11px;font-weight:bold;fill:var(--ink)}
        svg .baseline{stroke:var(--muted);stroke-width:1}
        section.explanation{break-inside:avoid-page}
        .table{overflow-x:auto}
        table{border-collapse:collapse;font:13px/1.35 Helvetica,Arial,sans-serif;margin:.5em 0;min-width:60%}
        caption{text-align:left;font-weight:bold;padding:.25em 0}
        th,td{border-bottom:1px solid var(--rule);padding:.2em .6em;text-align:left;vertical-align:top}
        td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
        p.note{font-size:.9em;color:var(--muted)}
        footer{margin-top:3em;font-size:.8em;color:var(--muted)}
        @media (max-width:40em){li.highlight{grid-template-columns:1fr}main{padding:1em .75em 2em}}
        @media print{main{max-width:none;padding:0}a{color:inherit}h2{break-before:page}li.highlight{grid-template-columns:minmax(0,1fr) 16em}}
        """
}
