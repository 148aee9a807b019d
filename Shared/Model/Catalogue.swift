import Foundation
import RootcausesJSON

/// How an indicator's values combine over time.
public enum TimeAggregation: String, Sendable {
    /// A flow: each period's value is new; totals add periods up.
    case sum
    /// A cumulative or snapshot figure: a total takes each series' latest period, never a sum over periods.
    case latest
}

/// Whether two reporters' figures for the same indicator, country and period may count the same
/// things (the same firm supported, the same youth reached by two agencies' programs).
public enum Overlap: String, Sendable {
    /// Disjoint by nature: a sum across reporters is exact.
    case none
    /// May overlap: a sum across reporters is an upper bound until an analyst deduplicates it.
    case possible
}

/// A thing counted: what reporters send values for.
///
/// Its fields live in one shared, immutable box: intake looks an indicator up for every value
/// it checks, and copying a dozen fields (a retain and a release each) was a visible part of
/// its time. Copies are one retain; equality is still field by field.
public struct Indicator: Sendable, Equatable {
    private struct Fields: Sendable, Equatable {
        var code: String
        var name: String
        var unit: String
        var pillar: String
        var countries: [String]
        var timeAggregation: TimeAggregation
        var overlap: Overlap
        var dimensions: [String]
        var precision: Decimal
        var maximumValue: Decimal
        var maximumLiteral: NumberLiteral
        var description: String?
    }

    private final class Box: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private let box: Box

    init(
        code: String,
        name: String,
        unit: String,
        pillar: String,
        countries: [String],
        timeAggregation: TimeAggregation,
        overlap: Overlap,
        dimensions: [String],
        precision: Decimal,
        maximumValue: Decimal,
        maximumLiteral: NumberLiteral,
        description: String?
    ) {
        box = Box(
            Fields(
                code: code,
                name: name,
                unit: unit,
                pillar: pillar,
                countries: countries,
                timeAggregation: timeAggregation,
                overlap: overlap,
                dimensions: dimensions,
                precision: precision,
                maximumValue: maximumValue,
                maximumLiteral: maximumLiteral,
                description: description
            )
        )
    }

    public var code: String { box.fields.code }
    public var name: String { box.fields.name }
    /// `USD` for money; any other unit counts things and takes whole numbers only.
    public var unit: String { box.fields.unit }
    public var pillar: String { box.fields.pillar }
    public var countries: [String] { box.fields.countries }
    public var timeAggregation: TimeAggregation { box.fields.timeAggregation }
    /// Whether reporters' figures may overlap.
    public var overlap: Overlap { box.fields.overlap }
    /// The disaggregation dimensions a value may carry.
    public var dimensions: [String] { box.fields.dimensions }
    /// The display rounding unit (a power of ten, at least 1).
    public var precision: Decimal { box.fields.precision }
    /// The largest single value accepted.
    public var maximumValue: Decimal { box.fields.maximumValue }
    /// The same, as its literal: values are checked against it digit by digit.
    public var maximumLiteral: NumberLiteral { box.fields.maximumLiteral }
    public var description: String? { box.fields.description }

    public var isMoney: Bool { unit == "USD" }

    public static func == (lhs: Indicator, rhs: Indicator) -> Bool {
        lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
    }
}

/// The catalogue: indicators, reporters, countries, pillars and disaggregation dimensions.
///
/// It is a data file shipped with the product (`Deploy/config/catalogue.json`) and loaded at
/// start, so analysts can add an indicator without a rebuild.
public struct Catalogue: Sendable {
    public let version: Int
    public let pillars: [(code: String, name: String)]
    public let countries: [(code: String, name: String)]
    public let reporters: [(code: String, name: String)]
    /// Dimension name to its allowed values, in file order.
    public let dimensions: [(name: String, values: [String])]
    public let indicators: [Indicator]

    private let indicatorsByCode: [String: Indicator]
    private let reporterCodes: Set<String>
    private let countryCodes: Set<String>
    private let dimensionValues: [String: Set<String>]

    public func indicator(_ code: String) -> Indicator? { indicatorsByCode[code] }
    public func hasReporter(_ code: String) -> Bool { reporterCodes.contains(code) }
    public func hasCountry(_ code: String) -> Bool { countryCodes.contains(code) }
    public func hasPillar(_ code: String) -> Bool { pillars.contains { $0.code == code } }
    public func allowedValues(ofDimension name: String) -> Set<String>? { dimensionValues[name] }

    /// Loads and checks a catalogue file.
    public static func load(path: String) throws -> Catalogue {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CatalogueError(message: "cannot read catalogue file \(path)")
        }
        do {
            return try parse(Array(data))
        } catch let error as CatalogueError {
            throw CatalogueError(message: "\(path): \(error.message)")
        }
    }

    /// Parses and checks catalogue JSON. Every problem found is reported, not just the first.
    public static func parse(_ bytes: [UInt8]) throws -> Catalogue {
        let root: JSON
        do { root = try JSONParser.parse(bytes) } catch {
            throw CatalogueError(message: "not valid JSON: \(error)")
        }
        var problems: [String] = []
        func namedMap(_ key: String) -> [(code: String, name: String)] {
            guard let members = root[key]?.objectValue else {
                problems.append("'\(key)' must be an object of code to name")
                return []
            }
            return members.compactMap { code, name in
                guard let name = name.stringValue else {
                    problems.append("\(key).\(code) must be a string")
                    return nil
                }
                return (code, name)
            }
        }
        let pillars = namedMap("pillars")
        let countries = namedMap("countries")
        let reporters = namedMap("reporters")
        var dimensions: [(name: String, values: [String])] = []
        if let members = root["dimensions"]?.objectValue {
            for (name, values) in members {
                guard let list = values.arrayValue?.compactMap(\.stringValue), !list.isEmpty else {
                    problems.append("dimensions.\(name) must be a non-empty list of strings")
                    continue
                }
                dimensions.append((name, list))
            }
        } else if root["dimensions"] != nil {
            problems.append("'dimensions' must be an object")
        }
        let pillarSet = Set(pillars.map(\.code))
        let countrySet = Set(countries.map(\.code))
        let dimensionSet = Set(dimensions.map(\.name))
        var indicators: [Indicator] = []
        var seen = Set<String>()
        for (i, entry) in (root["indicators"]?.arrayValue ?? []).enumerated() {
            let at = "indicators[\(i)]"
            guard let code = entry["code"]?.stringValue, isIndicatorCode(code) else {
                problems.append("\(at).code must be lowercase snake_case")
                continue
            }
            let here = "indicator \(code)"
            if !seen.insert(code).inserted { problems.append("\(here) is defined twice") }
            let name = entry["name"]?.stringValue ?? ""
            if name.isEmpty { problems.append("\(here) needs a name") }
            let unit = entry["unit"]?.stringValue ?? ""
            if unit.isEmpty { problems.append("\(here) needs a unit") }
            let pillar = entry["pillar"]?.stringValue ?? ""
            if !pillarSet.contains(pillar) { problems.append("\(here) has unknown pillar '\(pillar)'") }
            let applies = entry["countries"]?.arrayValue?.compactMap(\.stringValue) ?? []
            if applies.isEmpty { problems.append("\(here) needs a list of countries") }
            for country in applies where !countrySet.contains(country) {
                problems.append("\(here) names unknown country '\(country)'")
            }
            let aggregationText = entry["time_aggregation"]?.stringValue ?? "sum"
            let aggregation = TimeAggregation(rawValue: aggregationText)
            if aggregation == nil {
                problems.append("\(here) has time_aggregation '\(aggregationText)' (sum or latest)")
            }
            let overlapText = entry["overlap"].map { $0.stringValue ?? $0.serialized } ?? "none"
            let overlap = Overlap(rawValue: overlapText)
            if overlap == nil { problems.append("\(here) has overlap '\(overlapText)' (none or possible)") }
            // A snapshot counts each reporter's latest period: there is no common period to deduplicate.
            if overlap == .possible, aggregation == .latest {
                problems.append("\(here): overlap 'possible' needs time_aggregation 'sum'")
            }
            let dims = entry["dimensions"]?.arrayValue?.compactMap(\.stringValue) ?? []
            for dim in dims where !dimensionSet.contains(dim) {
                problems.append("\(here) names unknown dimension '\(dim)'")
            }
            let precisionLiteral = entry["precision"]?.numberLiteral ?? "1"
            let precision = Decimal(string: precisionLiteral) ?? 0
            if !isPowerOfTen(precision) { problems.append("\(here) precision must be 1, 10, 100, ...") }
            var maximum = Decimal(string: "1000000000000")!
            var maximumLiteral = NumberLiteral("1000000000000")!
            if let literal = entry["max_value"]?.numberLiteral {
                if let value = Decimal(string: literal), value > 0, let exact = NumberLiteral(literal) {
                    maximum = value
                    maximumLiteral = exact
                } else {
                    problems.append("\(here) max_value must be a positive number")
                }
            }
            indicators.append(
                Indicator(
                    code: code,
                    name: name,
                    unit: unit,
                    pillar: pillar,
                    countries: applies,
                    timeAggregation: aggregation ?? .sum,
                    overlap: overlap ?? .none,
                    dimensions: dims,
                    precision: precision,
                    maximumValue: maximum,
                    maximumLiteral: maximumLiteral,
                    description: entry["description"]?.stringValue
                )
            )
        }
        if indicators.isEmpty { problems.append("'indicators' must list at least one indicator") }
        guard problems.isEmpty else {
            throw CatalogueError(message: problems.joined(separator: "; "))
        }
        return Catalogue(
            version: Int(root["version"]?.int64Value ?? 1),
            pillars: pillars,
            countries: countries,
            reporters: reporters,
            dimensions: dimensions,
            indicators: indicators
        )
    }

    init(
        version: Int,
        pillars: [(code: String, name: String)],
        countries: [(code: String, name: String)],
        reporters: [(code: String, name: String)],
        dimensions: [(name: String, values: [String])],
        indicators: [Indicator]
    ) {
        self.version = version
        self.pillars = pillars
        self.countries = countries
        self.reporters = reporters
        self.dimensions = dimensions
        self.indicators = indicators
        self.indicatorsByCode = Dictionary(indicators.map { ($0.code, $0) }, uniquingKeysWith: { a, _ in a })
        self.reporterCodes = Set(reporters.map(\.code))
        self.countryCodes = Set(countries.map(\.code))
        self.dimensionValues = Dictionary(dimensions.map { ($0.name, Set($0.values)) }, uniquingKeysWith: { a, _ in a })
    }

    /// The catalogue as the `indicators` op returns it.
    public var json: JSON {
        func map(_ pairs: [(code: String, name: String)]) -> JSON { .object(pairs.map { ($0.code, .string($0.name)) }) }
        return [
            "indicators": .array(
                indicators.map { indicator in
                    var members: [(String, JSON)] = [
                        ("code", .string(indicator.code)),
                        ("name", .string(indicator.name)),
                        ("unit", .string(indicator.unit)),
                        ("pillar", .string(indicator.pillar)),
                        ("countries", .array(indicator.countries.map(JSON.string))),
                        ("dimensions", .array(indicator.dimensions.map(JSON.string))),
                        ("time_aggregation", .string(indicator.timeAggregation.rawValue)),
                        ("overlap", .string(indicator.overlap.rawValue)),
                        ("precision", .number("\(indicator.precision)")),
                    ]
                    if let description = indicator.description { members.append(("description", .string(description))) }
                    return .object(members)
                }
            ),
            "pillars": map(pillars),
            "countries": map(countries),
            "reporters": map(reporters),
            "dimensions": .object(dimensions.map { ($0.name, .array($0.values.map(JSON.string))) }),
        ]
    }
}

/// The catalogue file cannot be used; the message lists every problem.
public struct CatalogueError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

func isIndicatorCode(_ code: String) -> Bool {
    guard let first = code.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
    return code.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
}

func isPowerOfTen(_ value: Decimal) -> Bool {
    guard value >= 1 else { return false }
    var v = value
    while v >= 10 { v /= 10 }
    return v == 1
}
