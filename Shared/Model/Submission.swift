import Foundation
import RootcausesJSON
import RootcausesProtocol

/// A value that passed validation, in canonical form.
public struct SubmittedValue: Sendable, Equatable {
    public let indicator: String
    public let country: String
    /// The disaggregation cell, canonical (`age=15-19;sex=female`), or `""` for the whole.
    public let cell: String
    /// The exact value, canonical decimal text (`1250`, `12.5`).
    public let value: String
    public let estimate: Bool
}

/// A submission that passed validation against the catalogue.
public struct ValidSubmission: Sendable {
    public let submissionID: String
    public let reporter: String
    /// The period as the reporter wrote it.
    public let periodText: String
    public let period: Period
    public let activity: String?
    /// The `submission_id` of the reporter's earlier submission this one corrects, if any.
    public let replaces: String?
    public let values: [SubmittedValue]

    /// Everything that makes two submissions "the same content", independent of value order
    /// and of how numbers or periods are spelled. Its digest decides duplicate versus conflict.
    public var canonicalContent: String {
        var text = "reporter=\(reporter)\nperiod=\(period.start)..\(period.end)\nactivity=\(activity ?? "")\n"
        // Only when present, so the digests of submissions stored before corrections existed still match.
        if let replaces { text += "replaces=\(replaces)\n" }
        text += Self.sortedValueLines(values)
        return text
    }

    /// One line per value (`indicator\tcountry\tcell\tvalue\te-or-nothing`), sorted as strings
    /// and joined by newlines. Computed at every submit, so built as bytes in one buffer and
    /// sorted as ranges of it: strings, then an array per line, were each a few per cent of
    /// intake's time. Sorting ASCII lines by their bytes is sorting them as strings; lines with
    /// other characters are sorted as strings.
    static func sortedValueLines(_ values: [SubmittedValue]) -> String {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(
            values.reduce(0) { $0 + $1.indicator.utf8.count + $1.country.utf8.count + $1.cell.utf8.count + 40 }
        )
        var lines: [Range<Int>] = []
        lines.reserveCapacity(values.count)
        for value in values {
            let start = buffer.count
            buffer += value.indicator.utf8
            buffer.append(UInt8(ascii: "\t"))
            buffer += value.country.utf8
            buffer.append(UInt8(ascii: "\t"))
            buffer += value.cell.utf8
            buffer.append(UInt8(ascii: "\t"))
            buffer += value.value.utf8
            buffer.append(UInt8(ascii: "\t"))
            if value.estimate { buffer.append(UInt8(ascii: "e")) }
            lines.append(start..<buffer.count)
        }
        guard !buffer.contains(where: { $0 >= 0x80 }) else {
            return lines.map { String(decoding: buffer[$0], as: UTF8.self) }.sorted().joined(separator: "\n")
        }
        buffer.withUnsafeBufferPointer { bytes in
            lines.sort { a, b in
                let order = memcmp(
                    bytes.baseAddress! + a.lowerBound,
                    bytes.baseAddress! + b.lowerBound,
                    min(a.count, b.count)
                )
                return order != 0 ? order < 0 : a.count < b.count
            }
        }
        var joined: [UInt8] = []
        joined.reserveCapacity(buffer.count + lines.count)
        for (index, line) in lines.enumerated() {
            if index > 0 { joined.append(UInt8(ascii: "\n")) }
            joined += buffer[line]
        }
        return String(decoding: joined, as: UTF8.self)
    }
}

/// The outcome of checking a submission.
public enum SubmissionCheck: Sendable {
    /// Malformed: missing or mistyped fields (`invalid_request`).
    case malformed([Problem])
    /// Well formed but against the catalogue's rules (`validation_failed`).
    case invalid([Problem])
    case valid(ValidSubmission)
}

/// A submission as sent, with every field of the right type, not yet checked against the
/// catalogue: the shape of the `submission` object of a `submit` request.
public struct SubmissionDraft: Sendable {
    /// One value as sent.
    public struct Value: Sendable {
        public var indicator: String
        public var country: String
        /// The number's JSON literal, exactly as written.
        public var literal: String
        /// Dimension and value pairs, in document order.
        public var disaggregation: [(String, String)]
        public var estimate: Bool
    }

    public var submissionID: String
    public var reporter: String
    public var periodText: String
    public var activity: String?
    /// The `submission_id` this submission replaces (a correction), if any.
    public var replaces: String?
    public var values: [Value]

    /// Reads the `submission` object, reporting every missing or mistyped field (paths start
    /// with the reader's, `submission.values[2].value`); `nil` when any was.
    public static func decode(from reader: FieldReader) -> SubmissionDraft? {
        let submissionID = reader.string("submission_id", required: true)
        let reporter = reader.string("reporter", required: true)
        let periodText = reader.string("period", required: true)
        let activity = reader.string("activity")
        let replaces = reader.string("replaces")
        var values: [Value] = []
        for entry in reader.objects("values", required: true, elementName: "value") ?? [] {
            let indicator = entry.string("indicator", required: true)
            let country = entry.string("country", required: true)
            let literal = entry.numberLiteral("value", required: true)
            let disaggregation = entry.stringMembers("disaggregation") ?? []
            let estimate = entry.bool("estimate") ?? false
            if let indicator, let country, let literal {
                values.append(
                    Value(
                        indicator: indicator,
                        country: country,
                        literal: literal,
                        disaggregation: disaggregation,
                        estimate: estimate
                    )
                )
            }
        }
        guard reader.problems.isEmpty, let submissionID, let reporter, let periodText else { return nil }
        return SubmissionDraft(
            submissionID: submissionID,
            reporter: reporter,
            periodText: periodText,
            activity: activity,
            replaces: replaces,
            values: values
        )
    }
}

/// Checks submissions against the catalogue. All problems are reported, not just the first.
///
/// Lengths are counted the way PostgreSQL stores them: `submission_id` in UTF-8 bytes (it is
/// part of an index, whose entries are limited in bytes), `activity` in Unicode scalars
/// (PostgreSQL's characters), never in grapheme clusters, which hide any number of
/// combining marks behind one character.
public struct SubmissionValidator: Sendable {
    public static let maximumValues = 10_000
    /// In UTF-8 bytes.
    public static let maximumSubmissionIDBytes = 200
    /// In Unicode scalars.
    public static let maximumActivityScalars = 2000

    public let catalogue: Catalogue

    public init(catalogue: Catalogue) { self.catalogue = catalogue }

    /// Checks a whole `submission` object: shape, then the submission's rules, then its values.
    public func check(_ submission: JSON?, today: Day) -> SubmissionCheck {
        let root = FieldReader(.object(submission.map { [("submission", $0)] } ?? []))
        guard let reader = root.object("submission", required: true),
            let draft = SubmissionDraft.decode(from: reader)
        else { return .malformed(root.problems) }
        switch validate(draft, today: today) {
        case .success(let valid): return .valid(valid)
        case .failure(let rejection): return .invalid(rejection.problems)
        }
    }

    /// The problems of a submission that breaks the catalogue's rules.
    public struct Rejection: Error, Sendable {
        public var problems: [Problem]
    }

    /// Checks a well-formed submission against the catalogue: its own fields, then each value.
    public func validate(_ draft: SubmissionDraft, today: Day) -> Result<ValidSubmission, Rejection> {
        var problems = submissionProblems(draft, today: today)
        let values = validateValues(draft.values, problems: &problems)
        guard problems.isEmpty, let period = Period.parse(draft.periodText) else {
            return .failure(Rejection(problems: problems))
        }
        return .success(
            ValidSubmission(
                submissionID: draft.submissionID,
                reporter: draft.reporter,
                periodText: draft.periodText.uppercased(),
                period: period,
                activity: draft.activity,
                replaces: draft.replaces,
                values: values
            )
        )
    }

    /// Rules of the submission as a whole: its id, activity, reporter, period and size.
    func submissionProblems(_ draft: SubmissionDraft, today: Day) -> [Problem] {
        var problems: [Problem] = []
        let submissionID = draft.submissionID
        if submissionID.isEmpty || submissionID.utf8.count > Self.maximumSubmissionIDBytes
            || submissionID.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        {
            problems.append(
                Problem(
                    path: "submission_id",
                    code: "invalid_submission_id",
                    message:
                        "submission_id must be 1 to \(Self.maximumSubmissionIDBytes) bytes of UTF-8 without control characters"
                )
            )
        }
        if let replaces = draft.replaces,
            replaces.isEmpty || replaces.utf8.count > Self.maximumSubmissionIDBytes || replaces == submissionID
        {
            problems.append(
                Problem(
                    path: "replaces",
                    code: "invalid_replaces",
                    message:
                        "replaces must be the submission_id of another of the reporter's submissions (1 to \(Self.maximumSubmissionIDBytes) bytes of UTF-8)"
                )
            )
        }
        if let activity = draft.activity,
            activity.unicodeScalars.contains("\u{0}") || activity.unicodeScalars.count > Self.maximumActivityScalars
        {
            problems.append(
                Problem(
                    path: "activity",
                    code: "invalid_activity",
                    message:
                        "activity must be at most \(Self.maximumActivityScalars) Unicode characters (code points), without NUL characters"
                )
            )
        }
        problems += reporterProblems(draft.reporter)
        if let period = Period.parse(draft.periodText) {
            if period.start > today {
                problems.append(
                    Problem(
                        path: "period",
                        code: "future_period",
                        message: "period \(draft.periodText) starts on \(period.start), after today (\(today))"
                    )
                )
            }
        } else {
            problems.append(
                Problem(
                    path: "period",
                    code: "invalid_period",
                    message: "'\(draft.periodText)' is not a period; use 2023, 2023Q1, 2023-01, FY2023 or FY2023Q1"
                )
            )
        }
        if draft.values.isEmpty {
            problems.append(
                Problem(path: "values", code: "no_values", message: "a submission needs at least one value")
            )
        }
        if draft.values.count > Self.maximumValues {
            problems.append(
                Problem(
                    path: "values",
                    code: "too_many_values",
                    message:
                        "a submission holds at most \(Self.maximumValues) values; this one has \(draft.values.count)"
                )
            )
        }
        return problems
    }

    /// Rules of each value and between values; returns the values that passed, canonical.
    func validateValues(_ drafts: [SubmissionDraft.Value], problems: inout [Problem]) -> [SubmittedValue] {
        var values: [SubmittedValue] = []
        values.reserveCapacity(drafts.count)
        // Keys of structs, not interpolated strings: a submission's values are checked at every
        // submit, and building strings per value was a good part of intake's time.
        var firstIndexOfKey: [CellKey: Int] = [:]
        firstIndexOfKey.reserveCapacity(drafts.count)
        // Per indicator and country: the dimension set used and where it was first seen.
        var shapeOfSeries: [SeriesKey: (dimensions: String, index: Int)] = [:]
        for (i, raw) in drafts.enumerated() {
            let countBefore = problems.count
            let indicator = catalogue.indicator(raw.indicator)
            checkReference(raw, indicator: indicator, index: i, problems: &problems)
            let canonical = canonicalValue(raw, indicator: indicator, at: "values[\(i)]", problems: &problems)
            let cell = Self.cellKey(raw.disaggregation)
            let key = CellKey(indicator: raw.indicator, country: raw.country, cell: cell)
            if let first = firstIndexOfKey[key] {
                problems.append(
                    Problem(
                        path: "values[\(i)]",
                        code: "duplicate_value",
                        message:
                            "values[\(first)] already gives \(raw.indicator) for \(raw.country)\(cell.isEmpty ? "" : " (\(cell))")"
                    )
                )
            } else {
                firstIndexOfKey[key] = i
            }
            let series = SeriesKey(indicator: raw.indicator, country: raw.country)
            let dimensionSet = Self.dimensionSet(raw.disaggregation)
            if let seen = shapeOfSeries[series] {
                if seen.dimensions != dimensionSet {
                    let whole = seen.dimensions.isEmpty || dimensionSet.isEmpty
                    problems.append(
                        Problem(
                            path: "values[\(i)]",
                            code: whole ? "whole_and_parts" : "mixed_dimensions",
                            message: whole
                                ? "values[\(seen.index)] and this value give both a whole and a part of \(raw.indicator) for \(raw.country); send either the total or its cells"
                                : "values[\(seen.index)] disaggregates \(raw.indicator) for \(raw.country) by [\(seen.dimensions)], this value by [\(dimensionSet)]; use one set of dimensions"
                        )
                    )
                }
            } else {
                shapeOfSeries[series] = (dimensionSet, i)
            }
            if problems.count == countBefore, let canonical {
                values.append(
                    SubmittedValue(
                        indicator: raw.indicator,
                        country: raw.country,
                        cell: cell,
                        value: canonical,
                        estimate: raw.estimate
                    )
                )
            }
        }
        return values
    }

    private struct CellKey: Hashable {
        var indicator: String
        var country: String
        var cell: String
    }

    private struct SeriesKey: Hashable {
        var indicator: String
        var country: String
    }

    /// The canonical cell: `dimension=value` pairs sorted by dimension, joined by `;`
    /// (`age=15-19;sex=female`), or `""` for the whole.
    public static func cellKey(_ pairs: [(String, String)]) -> String {
        switch pairs.count {
        case 0: return ""
        case 1: return pairs[0].0 + "=" + pairs[0].1
        case 2:
            // Two dimensions (sex and age) is the common case: no array to sort and join,
            // and the same order a stable sort gives.
            let (first, second) = pairs[1].0 < pairs[0].0 ? (pairs[1], pairs[0]) : (pairs[0], pairs[1])
            var key = ""
            key.reserveCapacity(first.0.utf8.count + first.1.utf8.count + second.0.utf8.count + second.1.utf8.count + 3)
            key += first.0
            key += "="
            key += first.1
            key += ";"
            key += second.0
            key += "="
            key += second.1
            return key
        default: return pairs.sorted { $0.0 < $1.0 }.map { $0.0 + "=" + $0.1 }.joined(separator: ";")
        }
    }

    /// The dimensions a value is disaggregated by, sorted and joined by `,`.
    static func dimensionSet(_ pairs: [(String, String)]) -> String {
        switch pairs.count {
        case 0: return ""
        case 1: return pairs[0].0
        case 2: return pairs[1].0 < pairs[0].0 ? pairs[1].0 + "," + pairs[0].0 : pairs[0].0 + "," + pairs[1].0
        default: return pairs.map(\.0).sorted().joined(separator: ",")
        }
    }

    /// The reporter is one of the catalogue's.
    func reporterProblems(_ reporter: String) -> [Problem] {
        guard !catalogue.hasReporter(reporter) else { return [] }
        return [
            Problem(
                path: "reporter",
                code: "unknown_reporter",
                message: "'\(reporter)' is not a reporter in the catalogue"
            )
        ]
    }

    /// The indicator and country exist in the catalogue and the indicator applies to the
    /// country; paths are `<prefix>indicator` and `<prefix>country`.
    func referenceProblems(indicator code: String, country: String, at prefix: @autoclosure () -> String) -> [Problem] {
        referenceProblems(indicator: code, found: catalogue.indicator(code), country: country, at: prefix())
    }

    /// The same, for an indicator already looked up (`found`, `nil` when the catalogue has none).
    private func referenceProblems(
        indicator code: String,
        found indicator: Indicator?,
        country: String,
        at prefix: @autoclosure () -> String
    ) -> [Problem] {
        var problems: [Problem] = []
        if indicator == nil {
            problems.append(
                Problem(
                    path: "\(prefix())indicator",
                    code: "unknown_indicator",
                    message: "'\(code)' is not an indicator in the catalogue"
                )
            )
        }
        if !catalogue.hasCountry(country) {
            problems.append(
                Problem(
                    path: "\(prefix())country",
                    code: "unknown_country",
                    message: "'\(country)' is not a country in the catalogue"
                )
            )
        } else if let indicator, !indicator.countries.contains(country) {
            problems.append(
                Problem(
                    path: "\(prefix())country",
                    code: "country_not_applicable",
                    message:
                        "\(indicator.code) applies to \(indicator.countries.joined(separator: ", ")), not \(country)"
                )
            )
        }
        return problems
    }

    /// The indicator, country and disaggregation exist in the catalogue and fit together.
    private func checkReference(
        _ raw: SubmissionDraft.Value,
        indicator: Indicator?,
        index: Int,
        problems: inout [Problem]
    ) {
        // Paths are made only for problems.
        func at() -> String { "values[\(index)]" }
        problems += referenceProblems(indicator: raw.indicator, found: indicator, country: raw.country, at: "\(at()).")
        for (dimension, cellValue) in raw.disaggregation {
            guard let allowed = catalogue.allowedValues(ofDimension: dimension),
                indicator?.dimensions.contains(dimension) ?? true
            else {
                let accepted =
                    indicator.map { $0.dimensions.isEmpty ? "none" : $0.dimensions.joined(separator: ", ") } ?? ""
                problems.append(
                    Problem(
                        path: "\(at()).disaggregation.\(dimension)",
                        code: "unknown_dimension",
                        message: indicator.map {
                            "\($0.code) is not disaggregated by '\(dimension)' (accepted: \(accepted))"
                        }
                            ?? "'\(dimension)' is not a dimension in the catalogue"
                    )
                )
                continue
            }
            if !allowed.contains(cellValue) {
                let options = catalogue.dimensions.first { $0.name == dimension }?.values.joined(separator: ", ") ?? ""
                problems.append(
                    Problem(
                        path: "\(at()).disaggregation.\(dimension)",
                        code: "unknown_dimension_value",
                        message: "'\(cellValue)' is not a value of \(dimension) (accepted: \(options))"
                    )
                )
            }
        }
    }

    /// The value in canonical form (PostgreSQL `numeric` text), or `nil` with the problems: not
    /// negative, within range, whole for counts and at most cents for money. Targets follow the
    /// same rules as values. Everything is judged on the literal's digits, so nothing is lost
    /// to rounding.
    func canonicalValue(
        _ raw: SubmissionDraft.Value,
        indicator: Indicator?,
        at: @autoclosure () -> String,
        problems: inout [Problem]
    ) -> String? {
        let literal = NumberLiteral(raw.literal)
        // Zero is zero whatever its exponent (`0e999999`).
        if let literal, literal.magnitude == nil { return "0" }
        // Too large, or too small to use at all: `1e-400` (Decimal, which this replaced, took at
        // most 128 places too; the bound also keeps the canonical text short).
        guard let literal, let magnitude = literal.magnitude, magnitude < 30, literal.decimalPlaces <= 128 else {
            problems.append(
                Problem(
                    path: "\(at()).value",
                    code: "out_of_range",
                    message: "\(raw.literal) is far outside any value a result can take"
                )
            )
            return nil
        }
        if literal.isNegative {
            problems.append(
                Problem(path: "\(at()).value", code: "negative", message: "values cannot be negative (\(raw.literal))")
            )
            return nil
        }
        // An unknown indicator is a problem of its own (`checkReference`): no value to make.
        guard let indicator else { return nil }
        let countBefore = problems.count
        if indicator.isMoney {
            if literal.decimalPlaces > 2 {
                problems.append(
                    Problem(
                        path: "\(at()).value",
                        code: "too_many_decimals",
                        message: "amounts in USD take at most 2 decimal places (\(raw.literal))"
                    )
                )
            }
        } else if literal.decimalPlaces > 0 {
            problems.append(
                Problem(
                    path: "\(at()).value",
                    code: "not_whole",
                    message:
                        "\(indicator.code) counts \(indicator.unit): the value must be a whole number (\(raw.literal))"
                )
            )
        }
        if literal.isGreater(than: indicator.maximumLiteral) {
            problems.append(
                Problem(
                    path: "\(at()).value",
                    code: "out_of_range",
                    message:
                        "\(raw.literal) is above the largest value accepted for \(indicator.code) (\(indicator.maximumValue))"
                )
            )
        }
        return problems.count == countBefore ? literal.canonicalText : nil
    }
}
