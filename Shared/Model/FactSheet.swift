import Foundation
import RootcausesJSON

/// A number the fact sheet template asks for: `{{jobs_created country=GT,HN above=over}}`.
public struct FactSheetPlaceholder: Sendable, Hashable {
    /// The placeholder as written, without braces.
    public let source: String
    public let indicator: String
    /// Only these countries, or all when `nil`.
    public let countries: [String]?
    /// Only these reporters, or all when `nil`.
    public let reporters: [String]?
    public let precision: Decimal?
    public let words: QualifierWords
    /// Print the rounded figure without a qualifier.
    public let bare: Bool
    /// Print instead the share of the reporter's target for this fiscal year achieved in it.
    public let achievedFiscalYear: Int?

    public static func == (a: Self, b: Self) -> Bool { a.source == b.source }
    public func hash(into hasher: inout Hasher) { hasher.combine(source) }
}

/// A piece of template text.
public enum TemplateSegment: Sendable {
    case text(String)
    case date
    case number(FactSheetPlaceholder)
}

/// The fact sheet template: a Markdown file communications staff edit
/// (`Deploy/config/factsheet.md`; syntax in docs/CONTRACTS.md).
public struct FactSheetTemplate: Sendable {
    public struct Highlight: Sendable {
        public let heading: String
        public let body: [TemplateSegment]
    }

    /// The template's text as read: publications record its digest.
    public let source: String
    public let title: String
    /// Paragraphs before the highlights, in order (date line, lead, "Highlights to date include:").
    public let preamble: [[TemplateSegment]]
    public let highlights: [Highlight]
    /// Paragraphs after the highlights.
    public let closing: [[TemplateSegment]]

    /// Every number placeholder, once each, in order of appearance.
    public var placeholders: [FactSheetPlaceholder] {
        var seen = Set<String>()
        var result: [FactSheetPlaceholder] = []
        for segments in preamble + highlights.map(\.body) + closing {
            for case .number(let placeholder) in segments where seen.insert(placeholder.source).inserted {
                result.append(placeholder)
            }
        }
        return result
    }

    public static func load(path: String, catalogue: Catalogue) throws -> FactSheetTemplate {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw FactSheetTemplateError(message: "cannot read fact sheet template \(path)")
        }
        do {
            return try parse(text, catalogue: catalogue)
        } catch let error as FactSheetTemplateError {
            throw FactSheetTemplateError(message: "\(path): \(error.message)")
        }
    }

    /// Parses a template and checks every placeholder against the catalogue.
    public static func parse(_ text: String, catalogue: Catalogue) throws -> FactSheetTemplate {
        var problems: [String] = []
        // Split into blocks: paragraphs and bullets (a bullet continues until a blank line or the next bullet).
        enum Block {
            case paragraph(String)
            case bullet(String)
        }
        var blocks: [Block] = []
        var current: Block?
        func flush() {
            if let current { blocks.append(current) }
            current = nil
        }
        var title: String?
        // Any line ending: "\r\n" is one Character in Swift, and a newline.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("<!--") {
                flush()
                continue
            }
            if title == nil, line.hasPrefix("# ") {
                flush()
                title = String(line.dropFirst(2)).trimmingCharacters(in: .whitespaces)
                continue
            }
            if line.hasPrefix("- ") || line.hasPrefix("* ") {
                flush()
                current = .bullet(String(line.dropFirst(2)).trimmingCharacters(in: .whitespaces))
                continue
            }
            switch current {
            case .paragraph(let sofar): current = .paragraph(sofar + " " + line)
            case .bullet(let sofar): current = .bullet(sofar + " " + line)
            case nil: current = .paragraph(line)
            }
        }
        flush()

        func segments(_ text: String, in context: String) -> [TemplateSegment] {
            var result: [TemplateSegment] = []
            var rest = Substring(text)
            while let open = rest.range(of: "{{") {
                if open.lowerBound > rest.startIndex {
                    result.append(.text(String(rest[rest.startIndex..<open.lowerBound])))
                }
                guard let close = rest[open.upperBound...].range(of: "}}") else {
                    problems.append("\(context): '{{' without '}}'")
                    return result
                }
                let inner = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
                if let segment = placeholder(inner, in: context) { result.append(segment) }
                rest = rest[close.upperBound...]
            }
            if !rest.isEmpty { result.append(.text(String(rest))) }
            return result
        }

        func placeholder(_ inner: String, in context: String) -> TemplateSegment? {
            let words = inner.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let code = words.first else {
                problems.append("\(context): empty placeholder")
                return nil
            }
            if code == "date", words.count == 1 { return .date }
            guard catalogue.indicator(code) != nil else {
                problems.append("\(context): {{\(inner)}} names unknown indicator '\(code)'")
                return nil
            }
            var countries: [String]?
            var reporters: [String]?
            var precision: Decimal?
            var qualifierWords = QualifierWords()
            var bare = false
            var achievedFiscalYear: Int?
            for option in words.dropFirst() {
                let pair = option.split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2 else {
                    problems.append("\(context): {{\(inner)}}: option '\(option)' must be key=value")
                    continue
                }
                let value = pair[1].replacingOccurrences(of: "_", with: " ")
                switch pair[0] {
                case "country":
                    countries = pair[1].split(separator: ",").map(String.init)
                    for c in countries! where !catalogue.hasCountry(c) {
                        problems.append("\(context): {{\(inner)}}: unknown country '\(c)'")
                    }
                case "reporter":
                    reporters = pair[1].split(separator: ",").map(String.init)
                    for r in reporters! where !catalogue.hasReporter(r) {
                        problems.append("\(context): {{\(inner)}}: unknown reporter '\(r)'")
                    }
                case "precision":
                    if let p = Decimal(string: pair[1]), isPowerOfTen(p) {
                        precision = p
                    } else {
                        problems.append("\(context): {{\(inner)}}: precision must be 1, 10, 100, ...")
                    }
                case "above": qualifierWords.above = value
                case "below": qualifierWords.below = value
                case "estimate": qualifierWords.estimate = value
                case "upper": qualifierWords.upper = value
                case "upper_estimate": qualifierWords.upperEstimate = value
                case "bare": bare = pair[1] == "true"
                case "achieved":
                    if pair[1].utf8.count == 6, pair[1].hasPrefix("FY"), let period = Period.parse(pair[1]) {
                        achievedFiscalYear = period.end.year
                    } else {
                        problems.append("\(context): {{\(inner)}}: achieved takes a fiscal year such as FY2023")
                    }
                default: problems.append("\(context): {{\(inner)}}: unknown option '\(pair[0])'")
                }
            }
            // A target is one agency's: a share achieved names the agency.
            if achievedFiscalYear != nil, reporters?.count != 1 {
                problems.append(
                    "\(context): {{\(inner)}}: achieved needs reporter= with one reporter (targets are an agency's)"
                )
            }
            return .number(
                FactSheetPlaceholder(
                    source: inner,
                    indicator: code,
                    countries: countries,
                    reporters: reporters,
                    precision: precision,
                    words: qualifierWords,
                    bare: bare,
                    achievedFiscalYear: achievedFiscalYear
                )
            )
        }

        var preamble: [[TemplateSegment]] = []
        var highlights: [Highlight] = []
        var closing: [[TemplateSegment]] = []
        for block in blocks {
            switch block {
            case .paragraph(let text):
                let parsed = segments(text, in: "paragraph '\(text.prefix(30))'")
                if highlights.isEmpty { preamble.append(parsed) } else { closing.append(parsed) }
            case .bullet(let text):
                // "**Heading:** body"
                guard text.hasPrefix("**"), let end = text.dropFirst(2).range(of: "**") else {
                    problems.append(
                        "highlight '\(text.prefix(30))' must start with a bold heading: - **Heading:** text"
                    )
                    continue
                }
                var heading = String(text[text.index(text.startIndex, offsetBy: 2)..<end.lowerBound])
                    .trimmingCharacters(in: .whitespaces)
                if heading.hasSuffix(":") { heading.removeLast() }
                var body = String(text[end.upperBound...]).trimmingCharacters(in: .whitespaces)
                if body.hasPrefix(":") { body = String(body.dropFirst()).trimmingCharacters(in: .whitespaces) }
                highlights.append(Highlight(heading: heading, body: segments(body, in: "highlight '\(heading)'")))
            }
        }
        if title == nil { problems.append("the template needs a title line: # FACT SHEET: ...") }
        if highlights.isEmpty { problems.append("the template needs at least one highlight: - **Heading:** text") }
        guard problems.isEmpty, let title else {
            throw FactSheetTemplateError(message: problems.joined(separator: "; "))
        }
        return FactSheetTemplate(
            source: text,
            title: title,
            preamble: preamble,
            highlights: highlights,
            closing: closing
        )
    }

    /// Fills the template. `total` gives the exact total behind each placeholder.
    public func render(date: Day, catalogue: Catalogue, total: (FactSheetPlaceholder) -> NumberTotal) -> FactSheet {
        var cache: [String: FactSheet.Number] = [:]
        func number(_ placeholder: FactSheetPlaceholder) -> FactSheet.Number {
            if let known = cache[placeholder.source] { return known }
            let indicator = catalogue.indicator(placeholder.indicator)!
            let sum = total(placeholder)
            if placeholder.achievedFiscalYear != nil {
                let result = FactSheet.Number(
                    placeholder: placeholder,
                    phrased: NumberPhrasing.share(of: sum.exact, target: sum.target),
                    estimate: sum.estimate,
                    submissionCount: sum.submissionCount,
                    target: sum.target,
                    lower: nil
                )
                cache[placeholder.source] = result
                return result
            }
            let phrased = NumberPhrasing.phrase(
                exact: sum.exact,
                precision: placeholder.precision ?? indicator.precision,
                isMoney: indicator.isMoney,
                estimate: sum.estimate,
                words: placeholder.words,
                bare: placeholder.bare,
                upperBound: sum.lower != nil
            )
            let result = FactSheet.Number(
                placeholder: placeholder,
                phrased: phrased,
                estimate: sum.estimate,
                submissionCount: sum.submissionCount,
                target: nil,
                lower: sum.lower
            )
            cache[placeholder.source] = result
            return result
        }
        func fill(_ segments: [TemplateSegment]) -> FactSheet.Paragraph {
            var pieces: [FactSheet.Piece] = []
            for segment in segments {
                switch segment {
                case .text(let t): pieces.append(.text(t))
                case .date: pieces.append(.text(date.monthAndYear))
                case .number(let placeholder): pieces.append(.number(number(placeholder)))
                }
            }
            return FactSheet.Paragraph(pieces: pieces)
        }
        return FactSheet(
            title: title,
            date: date,
            preambleParagraphs: preamble.map(fill),
            highlights: highlights.map { FactSheet.Highlight(heading: $0.heading, paragraph: fill($0.body)) },
            closingParagraphs: closing.map(fill)
        )
    }
}

/// The exact total behind one fact sheet number.
public struct NumberTotal: Sendable {
    public var exact: Decimal
    public var estimate: Bool
    /// How many submissions are behind it, each counted once per country (and reporter) it
    /// gives a value for. The list itself is history-sized: it is not part of the fact sheet.
    public var submissionCount: Int
    /// For a share-achieved placeholder: the reporter's target for the fiscal year, `nil` when
    /// it set none for every country of the placeholder.
    public var target: Decimal?
    /// Where reporters' figures may overlap and are not all deduplicated: what the largest
    /// reporters alone prove (`exact` is then an upper bound). `nil`: `exact` is exact.
    public var lower: Decimal?

    public init(
        exact: Decimal,
        estimate: Bool,
        submissionCount: Int,
        target: Decimal? = nil,
        lower: Decimal? = nil
    ) {
        self.exact = exact
        self.estimate = estimate
        self.submissionCount = submissionCount
        self.target = target
        self.lower = lower
    }
}

/// A rendered fact sheet.
public struct FactSheet: Sendable {
    public struct Number: Sendable {
        public let placeholder: FactSheetPlaceholder
        public let phrased: PhrasedNumber
        public let estimate: Bool
        public let submissionCount: Int
        /// A share-achieved number's target (its `exact` is then the fiscal year's result).
        public let target: Decimal?
        /// The lower bound of a total that may count things twice (`exact` is its upper bound).
        public let lower: Decimal?
    }

    /// A piece of filled-in text: words as written, or a number from the data.
    public enum Piece: Sendable {
        case text(String)
        case number(Number)
    }

    /// A filled-in paragraph, kept in pieces so a renderer can mark and link each number.
    public struct Paragraph: Sendable {
        public let pieces: [Piece]

        public var text: String {
            pieces.map {
                switch $0 {
                case .text(let text): text
                case .number(let number): number.phrased.text
                }
            }.joined()
        }

        public var numbers: [Number] {
            pieces.compactMap {
                if case .number(let number) = $0 { number } else { nil }
            }
        }
    }

    public struct Highlight: Sendable {
        public let heading: String
        public let paragraph: Paragraph
        public var text: String { paragraph.text }
        public var numbers: [Number] { paragraph.numbers }
    }

    public let title: String
    public let date: Day
    public let preambleParagraphs: [Paragraph]
    public let highlights: [Highlight]
    public let closingParagraphs: [Paragraph]

    public var preamble: [String] { preambleParagraphs.map(\.text) }
    public var closing: [String] { closingParagraphs.map(\.text) }

    /// Every number, once each (by placeholder), in order of appearance.
    public var numbers: [Number] {
        var seen = Set<String>()
        return (preambleParagraphs + highlights.map(\.paragraph) + closingParagraphs).flatMap(\.numbers).filter {
            seen.insert($0.placeholder.source).inserted
        }
    }

    /// The lead: preamble paragraphs other than the date line and the closing "...include:" line.
    public var lead: String {
        preamble.filter { !$0.contains(date.monthAndYear) && !$0.hasSuffix(":") }.joined(separator: "\n\n")
    }

    public var markdown: String {
        var out = "# \(title)\n\n"
        for paragraph in preamble { out += paragraph + "\n\n" }
        for highlight in highlights { out += "- **\(highlight.heading):** \(highlight.text)\n\n" }
        for paragraph in closing { out += paragraph + "\n\n" }
        return String(out.dropLast())
    }

    public var json: JSON {
        [
            "title": .string(title),
            "date": .string(date.description),
            "lead": .string(lead),
            "highlights": .array(
                highlights.map { highlight in
                    [
                        "heading": .string(highlight.heading),
                        "text": .string(highlight.text),
                        "numbers": .array(
                            highlight.numbers.map { n in
                                var members: [(String, JSON)] = [
                                    ("indicator", .string(n.placeholder.indicator)),
                                    ("exact", .number("\(n.phrased.exact)")),
                                    ("rounded", .number("\(n.phrased.rounded)")),
                                    ("qualifier", n.phrased.qualifier.map(JSON.string) ?? .null),
                                    ("text", .string(n.phrased.text)),
                                    ("estimate", .bool(n.estimate)),
                                ]
                                if let countries = n.placeholder.countries {
                                    members.append(("countries", .array(countries.map(JSON.string))))
                                }
                                if let reporters = n.placeholder.reporters {
                                    members.append(("reporters", .array(reporters.map(JSON.string))))
                                }
                                members.append(("submission_count", .int(n.submissionCount)))
                                if let lower = n.lower {
                                    members.append(("lower", .number("\(lower)")))
                                    members.append(("upper", .number("\(n.phrased.exact)")))
                                }
                                if let year = n.placeholder.achievedFiscalYear {
                                    members.append(("fiscal_year", .string("FY\(year)")))
                                    members.append(("target", n.target.map { .number("\($0)") } ?? .null))
                                }
                                return .object(members)
                            }
                        ),
                    ]
                }
            ),
        ]
    }
}

/// The template cannot be used; the message lists every problem.
public struct FactSheetTemplateError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
