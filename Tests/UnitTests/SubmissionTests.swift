import Foundation
import RootcausesJSON
import RootcausesModel
import Testing

@Suite("SubmissionValidator with the shipped catalogue")
struct SubmissionTests {
    let validator = SubmissionValidator(catalogue: Fixtures.catalogue)
    let today = Fixtures.today

    // MARK: Helpers

    /// A submission object; `values` is JSON text of the values array.
    func submission(
        id: String = "USAID-FY2022Q1-HN-001",
        reporter: String = "USAID",
        period: String = "FY2022Q1",
        activity: String? = nil,
        values: String
    ) -> JSON {
        var text = #"{"submission_id":\#(JSON.string(id).serialized),"reporter":\#(JSON.string(reporter).serialized),"#
        text += #""period":\#(JSON.string(period).serialized),"#
        if let activity { text += #""activity":\#(JSON.string(activity).serialized),"# }
        text += #""values":\#(values)}"#
        return Fixtures.json(text)
    }

    func check(_ submission: JSON) -> SubmissionCheck { validator.check(submission, today: today) }

    /// The problems of an `.invalid` outcome as (path, code), or a recorded issue.
    func invalid(_ outcome: SubmissionCheck, sourceLocation: SourceLocation = #_sourceLocation) -> [Pair] {
        switch outcome {
        case .invalid(let problems): return problems.map { Pair($0.path, $0.code) }
        case .malformed(let problems):
            Issue.record("expected .invalid, got .malformed \(problems)", sourceLocation: sourceLocation)
        case .valid:
            Issue.record("expected .invalid, got .valid", sourceLocation: sourceLocation)
        }
        return []
    }

    func malformed(_ outcome: SubmissionCheck, sourceLocation: SourceLocation = #_sourceLocation) -> [Pair] {
        switch outcome {
        case .malformed(let problems): return problems.map { Pair($0.path, $0.code) }
        case .invalid(let problems):
            Issue.record("expected .malformed, got .invalid \(problems)", sourceLocation: sourceLocation)
        case .valid:
            Issue.record("expected .malformed, got .valid", sourceLocation: sourceLocation)
        }
        return []
    }

    func valid(_ outcome: SubmissionCheck, sourceLocation: SourceLocation = #_sourceLocation) -> ValidSubmission? {
        switch outcome {
        case .valid(let submission): return submission
        case .invalid(let problems), .malformed(let problems):
            Issue.record("expected .valid, got \(problems)", sourceLocation: sourceLocation)
            return nil
        }
    }

    struct Pair: Equatable, CustomStringConvertible {
        var path: String
        var code: String
        init(_ path: String, _ code: String) {
            self.path = path
            self.code = code
        }
        var description: String { "\(path):\(code)" }
    }

    /// One value for a one-value submission.
    func one(_ indicator: String, _ country: String, _ value: String, disaggregation: String? = nil) -> String {
        var text = #"[{"indicator":"\#(indicator)","country":"\#(country)","value":\#(value)"#
        if let disaggregation { text += #","disaggregation":\#(disaggregation)"# }
        return text + "}]"
    }

    // MARK: Valid

    @Test func validSubmission() throws {
        let values =
            #"[{"indicator":"jobs_created","country":"HN","value":1250,"disaggregation":{"sex":"female"},"estimate":true},"#
            + #"{"indicator":"jobs_created","country":"HN","value":1100,"disaggregation":{"sex":"male"}},"#
            + #"{"indicator":"msme_financing_usd","country":"GT","value":12.50,"disaggregation":{}},"#
            + #"{"indicator":"firms_supported","country":"SV","value":1250.0,"disaggregation":null,"estimate":false}]"#
        let input = submission(period: "fy2022q1", activity: "Feed the Future", values: values)
        let result = try #require(valid(check(input)))
        #expect(result.submissionID == "USAID-FY2022Q1-HN-001")
        #expect(result.reporter == "USAID")
        #expect(result.periodText == "FY2022Q1")
        #expect(result.period.start == Day(year: 2021, month: 10, day: 1))
        #expect(result.period.end == Day(year: 2021, month: 12, day: 31))
        #expect(result.activity == "Feed the Future")
        #expect(
            result.values.map(\.indicator) == ["jobs_created", "jobs_created", "msme_financing_usd", "firms_supported"]
        )
        #expect(result.values.map(\.country) == ["HN", "HN", "GT", "SV"])
        #expect(result.values.map(\.cell) == ["sex=female", "sex=male", "", ""])
        #expect(result.values.map(\.value) == ["1250", "1100", "12.5", "1250"])
        #expect(result.values.map(\.estimate) == [true, false, false, false])
        #expect(
            result.canonicalContent == """
                reporter=USAID
                period=2021-10-01..2021-12-31
                activity=Feed the Future
                firms_supported\tSV\t\t1250\t
                jobs_created\tHN\tsex=female\t1250\te
                jobs_created\tHN\tsex=male\t1100\t
                msme_financing_usd\tGT\t\t12.5\t
                """
        )
    }

    @Test func cellIsCanonicalWhateverTheKeyOrder() throws {
        let a = try #require(
            valid(
                check(
                    submission(
                        values: one("jobs_created", "HN", "5", disaggregation: #"{"sex":"female","age":"15-19"}"#)
                    )
                )
            )
        )
        let b = try #require(
            valid(
                check(
                    submission(
                        values: one("jobs_created", "HN", "5", disaggregation: #"{"age":"15-19","sex":"female"}"#)
                    )
                )
            )
        )
        #expect(a.values.first?.cell == "age=15-19;sex=female")
        #expect(a.canonicalContent == b.canonicalContent)
    }

    @Test func boundaryValuesAreAccepted() throws {
        // Largest default value, zero, money with two decimals, whole number written with decimals or exponent.
        let values =
            #"[{"indicator":"firms_supported","country":"HN","value":1000000000000},"#
            + #"{"indicator":"jobs_created","country":"HN","value":0},"#
            + #"{"indicator":"msme_financing_usd","country":"HN","value":0.01},"#
            + #"{"indicator":"police_trained","country":"HN","value":1.5e3},"#
            + #"{"indicator":"smuggling_arrests","country":"MX","value":7.000}]"#
        let result = try #require(valid(check(submission(values: values))))
        #expect(result.values.map(\.value) == ["1000000000000", "0", "0.01", "1500", "7"])
    }

    @Test func periodsUpToTodayAreAccepted() {
        for period in ["2026-11", "2026Q4", "FY2027", "2026", "FY2027Q1", "1900"] {
            #expect(
                valid(check(submission(period: period, values: one("jobs_created", "HN", "1")))) != nil,
                "\(period)"
            )
        }
        let startsToday = SubmissionValidator(catalogue: Fixtures.catalogue)
            .check(
                submission(period: "2026-12", values: one("jobs_created", "HN", "1")),
                today: Day(year: 2026, month: 12, day: 1)
            )
        if case .valid = startsToday {
        } else {
            Issue.record("a period starting today is not in the future: \(startsToday)")
        }
    }

    @Test func submissionIDOf200CharactersIsAccepted() {
        #expect(
            valid(check(submission(id: String(repeating: "x", count: 200), values: one("jobs_created", "HN", "1"))))
                != nil
        )
    }

    // MARK: Each rule

    @Test func unknownReporter() {
        #expect(
            invalid(check(submission(reporter: "NASA", values: one("jobs_created", "HN", "1")))) == [
                Pair("reporter", "unknown_reporter")
            ]
        )
        #expect(
            invalid(check(submission(reporter: "usaid", values: one("jobs_created", "HN", "1")))) == [
                Pair("reporter", "unknown_reporter")
            ]
        )
    }

    @Test func unknownIndicator() {
        #expect(
            invalid(check(submission(values: one("no_such_indicator", "HN", "1")))) == [
                Pair("values[0].indicator", "unknown_indicator")
            ]
        )
    }

    @Test func unknownCountry() {
        #expect(
            invalid(check(submission(values: one("jobs_created", "XX", "1")))) == [
                Pair("values[0].country", "unknown_country")
            ]
        )
        #expect(
            invalid(check(submission(values: one("jobs_created", "hn", "1")))) == [
                Pair("values[0].country", "unknown_country")
            ]
        )
    }

    @Test func countryNotApplicable() {
        // labor_officials_trained applies to HN only; MX is in the catalogue.
        #expect(
            invalid(check(submission(values: one("labor_officials_trained", "GT", "1")))) == [
                Pair("values[0].country", "country_not_applicable")
            ]
        )
        #expect(
            invalid(check(submission(values: one("jobs_created", "MX", "1")))) == [
                Pair("values[0].country", "country_not_applicable")
            ]
        )
    }

    @Test func unknownDimension() {
        // firms_supported is not disaggregated at all.
        #expect(
            invalid(check(submission(values: one("firms_supported", "HN", "1", disaggregation: #"{"sex":"female"}"#))))
                == [Pair("values[0].disaggregation.sex", "unknown_dimension")]
        )
        // labor_officials_trained is disaggregated by sex only.
        #expect(
            invalid(
                check(submission(values: one("labor_officials_trained", "HN", "1", disaggregation: #"{"age":"30+"}"#)))
            )
                == [Pair("values[0].disaggregation.age", "unknown_dimension")]
        )
        // Not a dimension of the catalogue.
        #expect(
            invalid(check(submission(values: one("jobs_created", "HN", "1", disaggregation: #"{"colour":"red"}"#))))
                == [Pair("values[0].disaggregation.colour", "unknown_dimension")]
        )
    }

    @Test func unknownDimensionValue() {
        #expect(
            invalid(check(submission(values: one("jobs_created", "HN", "1", disaggregation: #"{"sex":"other"}"#))))
                == [Pair("values[0].disaggregation.sex", "unknown_dimension_value")]
        )
        #expect(
            invalid(
                check(
                    submission(values: one("jobs_created", "HN", "1", disaggregation: #"{"sex":"female","age":"31"}"#))
                )
            )
                == [Pair("values[0].disaggregation.age", "unknown_dimension_value")]
        )
    }

    @Test func negative() {
        #expect(
            invalid(check(submission(values: one("jobs_created", "HN", "-5")))) == [Pair("values[0].value", "negative")]
        )
        #expect(
            invalid(check(submission(values: one("msme_financing_usd", "HN", "-0.01")))) == [
                Pair("values[0].value", "negative")
            ]
        )
    }

    @Test func notWhole() {
        #expect(
            invalid(check(submission(values: one("jobs_created", "HN", "12.5")))) == [
                Pair("values[0].value", "not_whole")
            ]
        )
        #expect(
            invalid(check(submission(values: one("jobs_created", "HN", "1.25e1")))) == [
                Pair("values[0].value", "not_whole")
            ]
        )
    }

    @Test func tooManyDecimals() {
        #expect(
            invalid(check(submission(values: one("msme_financing_usd", "HN", "12.345")))) == [
                Pair("values[0].value", "too_many_decimals")
            ]
        )
        // Trailing zeros do not count.
        #expect(valid(check(submission(values: one("msme_financing_usd", "HN", "12.3400")))) != nil)
    }

    @Test func outOfRange() {
        // Above the maximum, too large or too small to use at all, and merely fractional.
        let cases = [
            ("1000000000001", "out_of_range"), ("1e400", "out_of_range"), ("1e-400", "out_of_range"),
            ("1e-40", "not_whole"),
        ]
        for (literal, code) in cases {
            #expect(
                invalid(check(submission(values: one("jobs_created", "HN", literal)))) == [
                    Pair("values[0].value", code)
                ],
                "\(literal)"
            )
        }
        // An unknown indicator's value makes no text (and no megabyte of zeros).
        #expect(
            invalid(check(submission(values: one("jobs", "HN", "1e-99999")))).map(\.code) == [
                "unknown_indicator", "out_of_range",
            ]
        )
    }

    @Test func duplicateValue() {
        let values =
            #"[{"indicator":"jobs_created","country":"HN","value":1},{"indicator":"jobs_created","country":"GT","value":2},"#
            + #"{"indicator":"jobs_created","country":"HN","value":3}]"#
        #expect(invalid(check(submission(values: values))) == [Pair("values[2]", "duplicate_value")])
        let cells =
            #"[{"indicator":"jobs_created","country":"HN","value":1,"disaggregation":{"sex":"male","age":"30+"}},"#
            + #"{"indicator":"jobs_created","country":"HN","value":1,"disaggregation":{"age":"30+","sex":"male"}}]"#
        #expect(invalid(check(submission(values: cells))) == [Pair("values[1]", "duplicate_value")])
    }

    @Test func wholeAndParts() {
        let values =
            #"[{"indicator":"jobs_created","country":"HN","value":10},"#
            + #"{"indicator":"jobs_created","country":"HN","value":4,"disaggregation":{"sex":"female"}}]"#
        #expect(invalid(check(submission(values: values))) == [Pair("values[1]", "whole_and_parts")])
        let reversed =
            #"[{"indicator":"jobs_created","country":"HN","value":4,"disaggregation":{"sex":"female"}},"#
            + #"{"indicator":"jobs_created","country":"HN","value":10,"disaggregation":{}}]"#
        #expect(invalid(check(submission(values: reversed))) == [Pair("values[1]", "whole_and_parts")])
        // A whole for another country is fine.
        let other =
            #"[{"indicator":"jobs_created","country":"GT","value":10},"#
            + #"{"indicator":"jobs_created","country":"HN","value":4,"disaggregation":{"sex":"female"}}]"#
        #expect(valid(check(submission(values: other))) != nil)
    }

    @Test func mixedDimensions() {
        let values =
            #"[{"indicator":"jobs_created","country":"HN","value":4,"disaggregation":{"sex":"female"}},"#
            + #"{"indicator":"jobs_created","country":"HN","value":5,"disaggregation":{"age":"15-19"}},"#
            + #"{"indicator":"jobs_created","country":"HN","value":6,"disaggregation":{"sex":"male","age":"15-19"}}]"#
        #expect(
            invalid(check(submission(values: values))) == [
                Pair("values[1]", "mixed_dimensions"), Pair("values[2]", "mixed_dimensions"),
            ]
        )
    }

    @Test func theCellKeySortsDimensionsWhateverTheirNumber() {
        #expect(SubmissionValidator.cellKey([]) == "")
        #expect(SubmissionValidator.cellKey([("sex", "female")]) == "sex=female")
        #expect(SubmissionValidator.cellKey([("sex", "female"), ("age", "15-19")]) == "age=15-19;sex=female")
        #expect(SubmissionValidator.cellKey([("age", "15-19"), ("sex", "female")]) == "age=15-19;sex=female")
        #expect(SubmissionValidator.cellKey([("b", "2"), ("c", "3"), ("a", "1")]) == "a=1;b=2;c=3")
    }

    @Test func mixedDimensionsNameBothSetsSorted() throws {
        let values =
            #"[{"indicator":"jobs_created","country":"HN","value":4,"disaggregation":{"sex":"female"}},"#
            + #"{"indicator":"jobs_created","country":"HN","value":6,"disaggregation":{"sex":"male","age":"15-19"}}]"#
        guard case .invalid(let problems) = check(submission(values: values)) else {
            Issue.record("mixed dimensions were accepted")
            return
        }
        #expect(
            problems.map(\.message) == [
                "values[0] disaggregates jobs_created for HN by [sex], this value by [age,sex]; use one set of dimensions"
            ]
        )
    }

    @Test func invalidPeriod() {
        for period in ["2023Q5", "FY23", "", "2023-13", "last year"] {
            #expect(
                invalid(check(submission(period: period, values: one("jobs_created", "HN", "1")))) == [
                    Pair("period", "invalid_period")
                ],
                "\(period)"
            )
        }
    }

    @Test func futurePeriod() {
        for period in ["2026-12", "2027", "FY2027Q2", "2027Q1", "FY2028"] {
            #expect(
                invalid(check(submission(period: period, values: one("jobs_created", "HN", "1")))) == [
                    Pair("period", "future_period")
                ],
                "\(period)"
            )
        }
    }

    @Test func noValues() {
        #expect(invalid(check(submission(values: "[]"))) == [Pair("values", "no_values")])
    }

    @Test func tooManyValues() {
        func values(_ n: Int) -> String {
            "["
                + Array(repeating: #"{"indicator":"jobs_created","country":"HN","value":1}"#, count: n).joined(
                    separator: ","
                ) + "]"
        }
        let tooMany = invalid(check(submission(values: values(10_001))))
        #expect(tooMany.filter { $0.code == "too_many_values" } == [Pair("values", "too_many_values")])
        #expect(tooMany.first == Pair("values", "too_many_values"))
        let atLimit = invalid(check(submission(values: values(10_000))))
        #expect(!atLimit.contains { $0.code == "too_many_values" })
        #expect(atLimit.count == 9_999)  // only the duplicates
    }

    @Test func invalidSubmissionID() {
        for id in ["", String(repeating: "x", count: 201), "ab\ncd", "tab\there", "nul\u{0}", "del\u{7F}"] {
            #expect(
                invalid(check(submission(id: id, values: one("jobs_created", "HN", "1")))) == [
                    Pair("submission_id", "invalid_submission_id")
                ],
                "\(id.debugDescription)"
            )
        }
    }

    @Test func everyProblemIsListed() {
        let values =
            #"[{"indicator":"nope","country":"HN","value":1},"#
            + #"{"indicator":"jobs_created","country":"HN","value":-1},"#
            + #"{"indicator":"jobs_created","country":"XX","value":2.5,"disaggregation":{"sex":"x"}},"#
            + #"{"indicator":"msme_financing_usd","country":"NI","value":1.234},"#
            + #"{"indicator":"jobs_created","country":"HN","value":3}]"#
        let problems = invalid(check(submission(id: "", reporter: "NASA", period: "2023Q5", values: values)))
        #expect(
            problems == [
                Pair("submission_id", "invalid_submission_id"),
                Pair("reporter", "unknown_reporter"),
                Pair("period", "invalid_period"),
                Pair("values[0].indicator", "unknown_indicator"),
                Pair("values[1].value", "negative"),
                Pair("values[2].country", "unknown_country"),
                Pair("values[2].disaggregation.sex", "unknown_dimension_value"),
                Pair("values[2].value", "not_whole"),
                Pair("values[3].country", "country_not_applicable"),
                Pair("values[3].value", "too_many_decimals"),
                Pair("values[4]", "duplicate_value"),
            ]
        )
    }

    @Test func problemsCarryMessagesAndJSON() throws {
        guard case .invalid(let problems) = check(submission(values: one("labor_officials_trained", "GT", "1"))) else {
            Issue.record("expected .invalid")
            return
        }
        let problem = try #require(problems.first)
        #expect(problem.message.contains("HN"))
        #expect(problem.message.contains("GT"))
        #expect(problem.json["path"] == .string("values[0].country"))
        #expect(problem.json["code"] == .string("country_not_applicable"))
        #expect(problem.json["message"] == .string(problem.message))
    }

    // MARK: Malformed

    @Test func missingSubmission() {
        #expect(malformed(validator.check(nil, today: today)) == [Pair("submission", "missing")])
    }

    @Test func submissionNotAnObject() {
        #expect(malformed(check(Fixtures.json("[]"))) == [Pair("submission", "wrong_type")])
        #expect(malformed(check(Fixtures.json(#""text""#))) == [Pair("submission", "wrong_type")])
        #expect(malformed(check(.null)) == [Pair("submission", "wrong_type")])
    }

    @Test func valuesNotAnArray() {
        #expect(
            malformed(check(submission(values: #"{"indicator":"jobs_created"}"#))) == [
                Pair("submission.values", "wrong_type")
            ]
        )
    }

    @Test func valueIsAString() {
        let values =
            #"[{"indicator":"jobs_created","country":"HN","value":1},"#
            + #"{"indicator":"jobs_created","country":"GT","value":2},"#
            + #"{"indicator":"jobs_created","country":"SV","value":"3"}]"#
        #expect(malformed(check(submission(values: values))) == [Pair("submission.values[2].value", "wrong_type")])
    }

    @Test func valueEntryNotAnObject() {
        #expect(
            malformed(check(submission(values: #"[{"indicator":"jobs_created","country":"HN","value":1}, 5, "x"]"#)))
                == [Pair("submission.values[1]", "wrong_type"), Pair("submission.values[2]", "wrong_type")]
        )
    }

    @Test func disaggregationNotAnObject() {
        #expect(
            malformed(check(submission(values: one("jobs_created", "HN", "1", disaggregation: #"["sex","female"]"#))))
                == [Pair("submission.values[0].disaggregation", "wrong_type")]
        )
        #expect(
            malformed(check(submission(values: one("jobs_created", "HN", "1", disaggregation: #""sex=female""#))))
                == [Pair("submission.values[0].disaggregation", "wrong_type")]
        )
        #expect(
            malformed(check(submission(values: one("jobs_created", "HN", "1", disaggregation: #"{"sex":1}"#))))
                == [Pair("submission.values[0].disaggregation.sex", "wrong_type")]
        )
    }

    @Test func estimateNotABool() {
        let values = #"[{"indicator":"jobs_created","country":"HN","value":1,"estimate":"yes"}]"#
        #expect(malformed(check(submission(values: values))) == [Pair("submission.values[0].estimate", "wrong_type")])
        let number = #"[{"indicator":"jobs_created","country":"HN","value":1,"estimate":1}]"#
        #expect(malformed(check(submission(values: number))) == [Pair("submission.values[0].estimate", "wrong_type")])
    }

    @Test func missingTopLevelFields() {
        #expect(
            malformed(check(Fixtures.json("{}"))) == [
                Pair("submission.submission_id", "missing"), Pair("submission.reporter", "missing"),
                Pair("submission.period", "missing"), Pair("submission.values", "missing"),
            ]
        )
    }

    @Test func mistypedTopLevelFields() {
        let input = Fixtures.json(#"{"submission_id":1,"reporter":null,"period":2023,"activity":7,"values":[]}"#)
        #expect(
            malformed(check(input)) == [
                Pair("submission.submission_id", "wrong_type"), Pair("submission.reporter", "wrong_type"),
                Pair("submission.period", "wrong_type"), Pair("submission.activity", "wrong_type"),
            ]
        )
    }

    @Test func missingValueFields() {
        #expect(
            malformed(check(submission(values: "[{}]"))) == [
                Pair("submission.values[0].indicator", "missing"), Pair("submission.values[0].country", "missing"),
                Pair("submission.values[0].value", "missing"),
            ]
        )
        #expect(
            malformed(check(submission(values: #"[{"indicator":5,"country":["HN"],"value":null}]"#))) == [
                Pair("submission.values[0].indicator", "wrong_type"),
                Pair("submission.values[0].country", "wrong_type"),
                Pair("submission.values[0].value", "wrong_type"),
            ]
        )
    }

    @Test func malformedWinsOverRuleProblems() {
        // Unknown reporter and an unknown indicator, but also a mistyped value: only the shape is reported.
        let values =
            #"[{"indicator":"nope","country":"HN","value":1},{"indicator":"jobs_created","country":"HN","value":true}]"#
        #expect(
            malformed(check(submission(reporter: "NASA", values: values))) == [
                Pair("submission.values[1].value", "wrong_type")
            ]
        )
    }

    // MARK: canonicalContent

    func content(
        period: String = "FY2022Q1",
        activity: String? = nil,
        _ values: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> String? {
        valid(check(submission(period: period, activity: activity, values: values)), sourceLocation: sourceLocation)?
            .canonicalContent
    }

    let a = #"{"indicator":"jobs_created","country":"HN","value":1250,"disaggregation":{"sex":"female"}}"#
    let b = #"{"indicator":"jobs_created","country":"HN","value":900,"disaggregation":{"sex":"male"}}"#
    let c = #"{"indicator":"msme_financing_usd","country":"GT","value":12.5}"#

    @Test func canonicalContentIgnoresValueOrder() throws {
        let one = try #require(content("[\(a),\(b),\(c)]"))
        #expect(content("[\(c),\(a),\(b)]") == one)
        #expect(content("[\(b),\(c),\(a)]") == one)
    }

    @Test func canonicalContentIgnoresNumberSpelling() throws {
        let plain = try #require(content(#"[{"indicator":"jobs_created","country":"HN","value":1250}]"#))
        #expect(content(#"[{"indicator":"jobs_created","country":"HN","value":1250.0}]"#) == plain)
        #expect(content(#"[{"indicator":"jobs_created","country":"HN","value":1.25e3}]"#) == plain)
        #expect(
            content(#"[{"indicator":"msme_financing_usd","country":"HN","value":12.50}]"#)
                == content(#"[{"indicator":"msme_financing_usd","country":"HN","value":12.5}]"#)
        )
    }

    /// The value lines are sorted as strings (the digests of stored submissions depend on it),
    /// although they are built and sorted as bytes.
    @Test func canonicalContentSortsValueLinesAsStrings() throws {
        let values = [
            #"{"indicator":"youth_vocational_employed","country":"HN","value":7,"disaggregation":{"sex":"male","age":"30+"}}"#,
            #"{"indicator":"jobs_created","country":"HN","value":12,"disaggregation":{"age":"15-19","sex":"male"}}"#,
            #"{"indicator":"commerce_delegation_participants","country":"GT","value":3,"estimate":true}"#,
            #"{"indicator":"jobs_created","country":"HN","value":1.5e1,"disaggregation":{"age":"0-14","sex":"female"}}"#,
            #"{"indicator":"youth_vocational_completed","country":"HN","value":9,"disaggregation":{"sex":"male","age":"30+"}}"#,
            #"{"indicator":"commerce_delegation_companies","country":"GT","value":30}"#,
            #"{"indicator":"jobs_created","country":"HN","value":4,"disaggregation":{"sex":"female","age":"15-19"}}"#,
            #"{"indicator":"cta_usd_committed","country":"HN","value":100.10}"#,
            #"{"indicator":"cta_companies_committed","country":"HN","value":2,"estimate":true}"#,
            #"{"indicator":"jobs_created","country":"GT","value":5,"disaggregation":{"age":"30+","sex":"male"}}"#,
        ]
        let checked = try #require(valid(check(submission(values: "[\(values.joined(separator: ","))]"))))
        let asStrings = checked.values
            .map { "\($0.indicator)\t\($0.country)\t\($0.cell)\t\($0.value)\t\($0.estimate ? "e" : "")" }
            .sorted()
            .joined(separator: "\n")
        #expect(checked.canonicalContent.hasSuffix("\n" + asStrings))
        let lines = checked.canonicalContent.split(separator: "\n").suffix(values.count).map(String.init)
        #expect(lines == lines.sorted())
        #expect(lines.first == "commerce_delegation_companies\tGT\t\t30\t")
        #expect(lines.last == "youth_vocational_employed\tHN\tage=30+;sex=male\t7\t")
    }

    @Test func canonicalContentIgnoresPeriodSpelling() throws {
        let fiscal = try #require(content(period: "FY2023Q1", "[\(a)]"))
        #expect(content(period: "2022Q4", "[\(a)]") == fiscal)
        #expect(content(period: "fy2023q1", "[\(a)]") == fiscal)
        #expect(content(period: "2023Q1", "[\(a)]") != fiscal)
    }

    @Test func canonicalContentChangesWithTheContent() throws {
        let base = try #require(content("[\(a),\(b)]"))
        let otherValue = #"{"indicator":"jobs_created","country":"HN","value":1251,"disaggregation":{"sex":"female"}}"#
        #expect(content("[\(otherValue),\(b)]") != base)
        let estimated =
            #"{"indicator":"jobs_created","country":"HN","value":1250,"disaggregation":{"sex":"female"},"estimate":true}"#
        #expect(content("[\(estimated),\(b)]") != base)
        let explicitFalse =
            #"{"indicator":"jobs_created","country":"HN","value":1250,"disaggregation":{"sex":"female"},"estimate":false}"#
        #expect(content("[\(explicitFalse),\(b)]") == base)
        #expect(content("[\(a)]") != base)
        #expect(content(activity: "other", "[\(a),\(b)]") != base)
        #expect(content(period: "FY2022Q2", "[\(a),\(b)]") != base)
        let otherReporter = valid(check(submission(reporter: "STATE", values: "[\(a),\(b)]")))?.canonicalContent
        #expect(otherReporter != nil && otherReporter != base)
    }

    @Test func canonicalContentIgnoresSubmissionID() throws {
        let first = try #require(valid(check(submission(id: "one", values: "[\(a)]"))))
        let second = try #require(valid(check(submission(id: "two", values: "[\(a)]"))))
        #expect(first.canonicalContent == second.canonicalContent)
    }
}
