import RootcausesJSON
import RootcausesProtocol

/// An agency's annual target for one indicator in one country: what `target` stores and what
/// `totals` measures a fiscal year's results against.
public struct Target: Sendable, Equatable {
    public var reporter: String
    public var indicator: String
    public var country: String
    /// The fiscal year, e.g. 2023 for FY2023 (October 2022 to September 2023).
    public var fiscalYear: Int
    /// Canonical numeric text.
    public var value: String

    /// A target as sent: fields of the right types, not yet checked against the catalogue.
    public struct Draft: Sendable {
        public var reporter: String
        public var indicator: String
        public var country: String
        public var fiscalYear: Int
        /// The number's JSON literal, exactly as written.
        public var literal: String

        /// Reads `"reporter"`, `"indicator"`, `"country"`, `"fiscal_year":"FY2023"` and `"value"`.
        public static func decode(from reader: FieldReader) -> Draft? {
            let reporter = reader.string("reporter", required: true)
            let indicator = reader.string("indicator", required: true)
            let country = reader.string("country", required: true)
            let fiscalYear = reader.parsed("fiscal_year", required: true, expected: "a fiscal year such as FY2023") {
                text -> Int? in
                guard text.utf8.count == 6, text.hasPrefix("FY"), let period = Period.parse(text) else { return nil }
                return period.end.year
            }
            var literal: String?
            if let value = reader.value("value", required: true, expected: "a number") {
                literal = value.numberLiteral
                if literal == nil {
                    reader.report(.wrongType(reader.path(of: "value"), expected: "a number", found: value))
                }
            }
            guard let reporter, let indicator, let country, let fiscalYear, let literal else { return nil }
            return Draft(
                reporter: reporter,
                indicator: indicator,
                country: country,
                fiscalYear: fiscalYear,
                literal: literal
            )
        }
    }
}

extension SubmissionValidator {
    /// The target, or every catalogue rule it breaks: a known reporter and indicator, a country
    /// the indicator applies to, and a value as a submission's would be.
    public func validate(_ draft: Target.Draft) -> Result<Target, Rejection> {
        var problems =
            reporterProblems(draft.reporter)
            + referenceProblems(indicator: draft.indicator, country: draft.country, at: "")
        let indicator = catalogue.indicator(draft.indicator)
        var valueProblems: [Problem] = []
        let value = canonicalValue(
            SubmissionDraft.Value(
                indicator: draft.indicator,
                country: draft.country,
                literal: draft.literal,
                disaggregation: [],
                estimate: false
            ),
            indicator: indicator,
            at: "target",
            problems: &valueProblems
        )
        // The value rules name "<at>.value"; a target's value is the request's "value".
        problems += valueProblems.map { Problem(path: "value", code: $0.code, message: $0.message) }
        guard problems.isEmpty, let value else { return .failure(Rejection(problems: problems)) }
        return .success(
            Target(
                reporter: draft.reporter,
                indicator: draft.indicator,
                country: draft.country,
                fiscalYear: draft.fiscalYear,
                value: value
            )
        )
    }
}
