import RootcausesJSON
import RootcausesProtocol

/// An analyst's resolution of reporters' overlapping figures for one indicator, country and
/// period: `sum` (they do not overlap), `max` (they overlap completely: the largest alone
/// counts) or `custom` (the deduplicated figure, between those two).
public struct Deduplication: Sendable, Equatable {
    public enum Method: String, Sendable, CaseIterable {
        case sum, max, custom
    }

    public var adjustmentID: String
    public var indicator: String
    public var country: String
    public var periodText: String
    public var period: Period
    public var method: Method
    /// A custom figure, canonical numeric text; `nil` for `sum` and `max`.
    public var value: String?
    public var reason: String?
    /// The `adjustment_id` of the adjustment this one corrects.
    public var replaces: String?

    public static let maximumIDBytes = 200
    public static let maximumReasonScalars = 2000

    /// As sent: fields of the right types, not yet checked against the catalogue.
    public struct Draft: Sendable {
        public var adjustmentID: String
        public var indicator: String
        public var country: String
        public var periodText: String
        public var period: Period
        public var method: Method
        public var literal: String?
        public var reason: String?
        public var replaces: String?

        public static func decode(from reader: FieldReader) -> Draft? {
            func identifier(_ key: String, required: Bool) -> String? {
                let id = reader.string(key, required: required)
                if let id,
                    id.isEmpty || id.utf8.count > Deduplication.maximumIDBytes
                        || id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
                {
                    reader.report(
                        key,
                        code: "invalid",
                        "'\(key)' must be 1 to \(Deduplication.maximumIDBytes) bytes of UTF-8 without control characters"
                    )
                }
                return id
            }
            let adjustmentID = identifier("adjustment_id", required: true)
            let replaces = identifier("replaces", required: false)
            let indicator = reader.string("indicator", required: true)
            let country = reader.string("country", required: true)
            let periodText = reader.string("period", required: true)
            let period = periodText.flatMap(Period.parse)
            if let periodText, period == nil {
                reader.report(
                    "period",
                    code: "invalid",
                    "'\(periodText)' is not a period: write 2023, 2023Q1, 2023-01, FY2023 or FY2023Q1"
                )
            }
            let method = reader.oneOf("method", Method.allCases.map(\.rawValue), required: true).flatMap(Method.init)
            var literal: String?
            if let value = reader.value("value", expected: "a number") {
                literal = value.numberLiteral
                if literal == nil {
                    reader.report(.wrongType(reader.path(of: "value"), expected: "a number", found: value))
                }
            }
            if method == .custom, reader.value("value") == nil {
                reader.report("value", code: "missing", "a custom deduplication gives its figure in 'value'")
            } else if let method, method != .custom, reader.value("value") != nil {
                reader.report("value", code: "invalid", "'\(method.rawValue)' takes no value: the figures decide it")
            }
            let reason = reader.string("reason")
            if let reason, reason.unicodeScalars.contains("\u{0}") || reason.unicodeScalars.count > maximumReasonScalars
            {
                reader.report(
                    "reason",
                    code: "invalid",
                    "'reason' must be at most \(maximumReasonScalars) Unicode characters (code points), without NUL characters"
                )
            }
            guard let adjustmentID, let indicator, let country, let periodText, let period, let method else {
                return nil
            }
            return Draft(
                adjustmentID: adjustmentID,
                indicator: indicator,
                country: country,
                periodText: periodText,
                period: period,
                method: method,
                literal: literal,
                reason: reason,
                replaces: replaces
            )
        }
    }
}

extension SubmissionValidator {
    /// The adjustment, or every catalogue rule it breaks: an indicator whose reporters may
    /// overlap, a country it applies to, and a custom figure as a value would be.
    public func validate(_ draft: Deduplication.Draft) -> Result<Deduplication, Rejection> {
        var problems = referenceProblems(indicator: draft.indicator, country: draft.country, at: "")
        let indicator = catalogue.indicator(draft.indicator)
        if let indicator, indicator.overlap != .possible {
            problems.append(
                Problem(
                    path: "indicator",
                    code: "no_overlap",
                    message:
                        "\(indicator.code) cannot overlap between reporters (catalogue: overlap none): nothing to deduplicate"
                )
            )
        }
        var value: String?
        if let literal = draft.literal {
            var valueProblems: [Problem] = []
            value = canonicalValue(
                SubmissionDraft.Value(
                    indicator: draft.indicator,
                    country: draft.country,
                    literal: literal,
                    disaggregation: [],
                    estimate: false
                ),
                indicator: indicator,
                at: "adjustment",
                problems: &valueProblems
            )
            problems += valueProblems.map { Problem(path: "value", code: $0.code, message: $0.message) }
        }
        guard problems.isEmpty else { return .failure(Rejection(problems: problems)) }
        return .success(
            Deduplication(
                adjustmentID: draft.adjustmentID,
                indicator: draft.indicator,
                country: draft.country,
                periodText: draft.periodText,
                period: draft.period,
                method: draft.method,
                value: value,
                reason: draft.reason,
                replaces: draft.replaces
            )
        )
    }
}
