import Foundation
import RootcausesJSON

/// One problem with a request or a submission, pointing at the field it concerns.
public struct Problem: Sendable, Equatable, CustomStringConvertible {
    /// Where: `values[3].value`, `period`, `submission.values[2].country`.
    public var path: String
    /// A stable, machine-readable code (`unknown_indicator`, `wrong_type`, ...).
    public var code: String
    /// A sentence for people.
    public var message: String

    public init(path: String, code: String, message: String) {
        self.path = path
        self.code = code
        self.message = message
    }

    public var description: String { "\(path): \(message) [\(code)]" }

    public var json: JSON { ["path": .string(path), "code": .string(code), "message": .string(message)] }
}

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
    public let values: [SubmittedValue]

    /// Everything that makes two submissions "the same content", independent of value order
    /// and of how numbers or periods are spelled. Its digest decides duplicate versus conflict.
    public var canonicalContent: String {
        var text = "reporter=\(reporter)\nperiod=\(period.start)..\(period.end)\nactivity=\(activity ?? "")\n"
        let lines = values.map { "\($0.indicator)\t\($0.country)\t\($0.cell)\t\($0.value)\t\($0.estimate ? "e" : "")" }
        text += lines.sorted().joined(separator: "\n")
        return text
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

/// Checks submissions against the catalogue. All problems are reported, not just the first.
public struct SubmissionValidator: Sendable {
    public static let maximumValues = 10_000
    public static let maximumSubmissionIDLength = 200
    public static let maximumActivityLength = 2000

    public let catalogue: Catalogue

    public init(catalogue: Catalogue) { self.catalogue = catalogue }

    /// Checks the `submission` object of a `submit` request. `today` bounds the period.
    public func check(_ submission: JSON?, today: Day) -> SubmissionCheck {
        // Shape first: a request whose fields have the wrong types is not validated further.
        guard let submission else {
            return .malformed([Problem(path: "submission", code: "missing", message: "the request needs a 'submission' object")])
        }
        guard case .object = submission else {
            return .malformed([Problem(path: "submission", code: "wrong_type", message: "'submission' must be an object, not \(submission.kindName)")])
        }
        var shape: [Problem] = []
        func requireString(_ key: String) -> String? {
            guard let field = submission[key] else {
                shape.append(Problem(path: "submission.\(key)", code: "missing", message: "'\(key)' is required"))
                return nil
            }
            guard let text = field.stringValue else {
                shape.append(Problem(path: "submission.\(key)", code: "wrong_type", message: "'\(key)' must be a string, not \(field.kindName)"))
                return nil
            }
            return text
        }
        let submissionID = requireString("submission_id")
        let reporter = requireString("reporter")
        let periodText = requireString("period")
        var activity: String?
        if let field = submission["activity"], !field.isNull {
            if let text = field.stringValue { activity = text } else {
                shape.append(Problem(path: "submission.activity", code: "wrong_type", message: "'activity' must be a string, not \(field.kindName)"))
            }
        }
        var rawValues: [JSON] = []
        if let field = submission["values"] {
            if let list = field.arrayValue { rawValues = list } else {
                shape.append(Problem(path: "submission.values", code: "wrong_type", message: "'values' must be an array, not \(field.kindName)"))
            }
        } else {
            shape.append(Problem(path: "submission.values", code: "missing", message: "'values' is required"))
        }
        struct RawValue {
            var indicator: String
            var country: String
            var literal: String
            var disaggregation: [(String, String)]
            var estimate: Bool
        }
        var parsed: [RawValue] = []
        parsed.reserveCapacity(rawValues.count)
        for (i, entry) in rawValues.enumerated() {
            let at = "submission.values[\(i)]"
            guard case .object = entry else {
                shape.append(Problem(path: at, code: "wrong_type", message: "each value must be an object, not \(entry.kindName)"))
                continue
            }
            var ok = true
            func string(_ key: String) -> String {
                guard let field = entry[key] else {
                    shape.append(Problem(path: "\(at).\(key)", code: "missing", message: "'\(key)' is required"))
                    ok = false
                    return ""
                }
                guard let text = field.stringValue else {
                    shape.append(Problem(path: "\(at).\(key)", code: "wrong_type", message: "'\(key)' must be a string, not \(field.kindName)"))
                    ok = false
                    return ""
                }
                return text
            }
            let indicator = string("indicator")
            let country = string("country")
            var literal = ""
            if let field = entry["value"] {
                if let number = field.numberLiteral { literal = number } else {
                    shape.append(Problem(path: "\(at).value", code: "wrong_type", message: "'value' must be a number, not \(field.kindName)"))
                    ok = false
                }
            } else {
                shape.append(Problem(path: "\(at).value", code: "missing", message: "'value' is required"))
                ok = false
            }
            var cells: [(String, String)] = []
            if let field = entry["disaggregation"], !field.isNull {
                if let members = field.objectValue {
                    for (dimension, value) in members {
                        if let text = value.stringValue { cells.append((dimension, text)) } else {
                            shape.append(Problem(path: "\(at).disaggregation.\(dimension)", code: "wrong_type", message: "a disaggregation value must be a string, not \(value.kindName)"))
                            ok = false
                        }
                    }
                } else {
                    shape.append(Problem(path: "\(at).disaggregation", code: "wrong_type", message: "'disaggregation' must be an object, not \(field.kindName)"))
                    ok = false
                }
            }
            var estimate = false
            if let field = entry["estimate"], !field.isNull {
                if let flag = field.boolValue { estimate = flag } else {
                    shape.append(Problem(path: "\(at).estimate", code: "wrong_type", message: "'estimate' must be true or false, not \(field.kindName)"))
                    ok = false
                }
            }
            if ok { parsed.append(RawValue(indicator: indicator, country: country, literal: literal, disaggregation: cells, estimate: estimate)) }
        }
        if !shape.isEmpty { return .malformed(shape) }

        // Rules of the catalogue.
        var problems: [Problem] = []
        guard let submissionID, let reporter, let periodText else { return .malformed(shape) }
        if submissionID.isEmpty || submissionID.count > Self.maximumSubmissionIDLength
            || submissionID.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        {
            problems.append(Problem(path: "submission_id", code: "invalid_submission_id",
                message: "submission_id must be 1 to \(Self.maximumSubmissionIDLength) characters without control characters"))
        }
        if let activity, activity.unicodeScalars.contains("\u{0}") || activity.count > Self.maximumActivityLength {
            problems.append(Problem(path: "activity", code: "invalid_activity",
                message: "activity must be at most \(Self.maximumActivityLength) characters, without NUL characters"))
        }
        if !catalogue.hasReporter(reporter) {
            problems.append(Problem(path: "reporter", code: "unknown_reporter", message: "'\(reporter)' is not a reporter in the catalogue"))
        }
        let period = Period.parse(periodText)
        if let period {
            if period.start > today {
                problems.append(Problem(path: "period", code: "future_period", message: "period \(periodText) starts on \(period.start), after today (\(today))"))
            }
        } else {
            problems.append(Problem(path: "period", code: "invalid_period",
                message: "'\(periodText)' is not a period; use 2023, 2023Q1, 2023-01, FY2023 or FY2023Q1"))
        }
        if parsed.isEmpty {
            problems.append(Problem(path: "values", code: "no_values", message: "a submission needs at least one value"))
        }
        if parsed.count > Self.maximumValues {
            problems.append(Problem(path: "values", code: "too_many_values",
                message: "a submission holds at most \(Self.maximumValues) values; this one has \(parsed.count)"))
        }

        var values: [SubmittedValue] = []
        values.reserveCapacity(parsed.count)
        var firstIndexOfKey: [String: Int] = [:]
        // Per indicator and country: the dimension set used and where it was first seen.
        var shapeOfSeries: [String: (dimensions: String, index: Int)] = [:]
        for (i, raw) in parsed.enumerated() {
            let at = "values[\(i)]"
            var valueOK = true
            let indicator = catalogue.indicator(raw.indicator)
            if indicator == nil {
                problems.append(Problem(path: "\(at).indicator", code: "unknown_indicator", message: "'\(raw.indicator)' is not an indicator in the catalogue"))
                valueOK = false
            }
            if !catalogue.hasCountry(raw.country) {
                problems.append(Problem(path: "\(at).country", code: "unknown_country", message: "'\(raw.country)' is not a country in the catalogue"))
                valueOK = false
            } else if let indicator, !indicator.countries.contains(raw.country) {
                problems.append(Problem(path: "\(at).country", code: "country_not_applicable",
                    message: "\(indicator.code) applies to \(indicator.countries.joined(separator: ", ")), not \(raw.country)"))
                valueOK = false
            }
            for (dimension, cellValue) in raw.disaggregation {
                guard let allowed = catalogue.allowedValues(ofDimension: dimension), indicator?.dimensions.contains(dimension) ?? true else {
                    let accepted = indicator.map { $0.dimensions.isEmpty ? "none" : $0.dimensions.joined(separator: ", ") } ?? ""
                    problems.append(Problem(path: "\(at).disaggregation.\(dimension)", code: "unknown_dimension",
                        message: indicator.map { "\($0.code) is not disaggregated by '\(dimension)' (accepted: \(accepted))" }
                            ?? "'\(dimension)' is not a dimension in the catalogue"))
                    valueOK = false
                    continue
                }
                if !allowed.contains(cellValue) {
                    let options = catalogue.dimensions.first { $0.name == dimension }?.values.joined(separator: ", ") ?? ""
                    problems.append(Problem(path: "\(at).disaggregation.\(dimension)", code: "unknown_dimension_value",
                        message: "'\(cellValue)' is not a value of \(dimension) (accepted: \(options))"))
                    valueOK = false
                }
            }
            // The number itself: exactness is judged on the literal, magnitude before conversion.
            var canonical = ""
            if let literal = NumberLiteral(raw.literal), (literal.magnitude ?? 0) < 30,
                let exact = Decimal(string: raw.literal), exact.isFinite
            {
                if literal.isNegative {
                    problems.append(Problem(path: "\(at).value", code: "negative", message: "values cannot be negative (\(raw.literal))"))
                    valueOK = false
                } else if let indicator {
                    if indicator.isMoney {
                        if literal.decimalPlaces > 2 {
                            problems.append(Problem(path: "\(at).value", code: "too_many_decimals", message: "amounts in USD take at most 2 decimal places (\(raw.literal))"))
                            valueOK = false
                        }
                    } else if literal.decimalPlaces > 0 {
                        problems.append(Problem(path: "\(at).value", code: "not_whole",
                            message: "\(indicator.code) counts \(indicator.unit): the value must be a whole number (\(raw.literal))"))
                        valueOK = false
                    }
                    if exact > indicator.maximumValue {
                        problems.append(Problem(path: "\(at).value", code: "out_of_range",
                            message: "\(raw.literal) is above the largest value accepted for \(indicator.code) (\(indicator.maximumValue))"))
                        valueOK = false
                    }
                }
                canonical = "\(exact)"
            } else {
                problems.append(Problem(path: "\(at).value", code: "out_of_range", message: "\(raw.literal) is far outside any value a result can take"))
                valueOK = false
            }
            let cell = raw.disaggregation.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: ";")
            let key = "\(raw.indicator)\u{1}\(raw.country)\u{1}\(cell)"
            if let first = firstIndexOfKey[key] {
                problems.append(Problem(path: at, code: "duplicate_value",
                    message: "values[\(first)] already gives \(raw.indicator) for \(raw.country)\(cell.isEmpty ? "" : " (\(cell))")"))
                valueOK = false
            } else {
                firstIndexOfKey[key] = i
            }
            let series = "\(raw.indicator)\u{1}\(raw.country)"
            let dimensionSet = raw.disaggregation.map(\.0).sorted().joined(separator: ",")
            if let seen = shapeOfSeries[series] {
                if seen.dimensions != dimensionSet {
                    let whole = seen.dimensions.isEmpty || dimensionSet.isEmpty
                    problems.append(Problem(path: at, code: whole ? "whole_and_parts" : "mixed_dimensions",
                        message: whole
                            ? "values[\(seen.index)] and this value give both a whole and a part of \(raw.indicator) for \(raw.country); send either the total or its cells"
                            : "values[\(seen.index)] disaggregates \(raw.indicator) for \(raw.country) by [\(seen.dimensions)], this value by [\(dimensionSet)]; use one set of dimensions"))
                    valueOK = false
                }
            } else {
                shapeOfSeries[series] = (dimensionSet, i)
            }
            if valueOK {
                values.append(SubmittedValue(indicator: raw.indicator, country: raw.country, cell: cell, value: canonical, estimate: raw.estimate))
            }
        }
        guard problems.isEmpty, let period else { return .invalid(problems) }
        return .valid(ValidSubmission(
            submissionID: submissionID, reporter: reporter, periodText: periodText.uppercased(), period: period,
            activity: activity, values: values))
    }
}
