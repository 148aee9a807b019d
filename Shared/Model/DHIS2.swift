import Foundation
import RootcausesJSON

/// How the catalogue maps to DHIS2 metadata, for `dataValueSets` exports and imports: each
/// indicator to a data element, each country to an organisation unit, each reporter to an
/// attribute option combo, and each disaggregation cell (none included) to a category option
/// combo. A data file (`Deploy/config/dhis2-mapping.json`): a deployment exchanging data with a
/// real DHIS2 instance puts that instance's UIDs in it.
public struct DHIS2Mapping: Sendable {
    public let dataElements: [String: String]
    public let orgUnits: [String: String]
    public let attributeOptionCombos: [String: String]
    /// Cell (`age=15-19;sex=female`, `""` for none) to category option combo.
    public let categoryOptionCombos: [String: String]

    private let indicatorsByDataElement: [String: String]
    private let countriesByOrgUnit: [String: String]
    private let reportersByAttributeOptionCombo: [String: String]
    private let cellsByCategoryOptionCombo: [String: [(String, String)]]

    /// The indicator a data element stands for.
    public func indicator(ofDataElement id: String) -> String? { indicatorsByDataElement[id] }
    /// The country an organisation unit stands for.
    public func country(ofOrgUnit id: String) -> String? { countriesByOrgUnit[id] }
    /// The reporter an attribute option combo stands for.
    public func reporter(ofAttributeOptionCombo id: String) -> String? { reportersByAttributeOptionCombo[id] }
    /// The cell (dimension name and value pairs, sorted by name) a category option combo stands for.
    public func cell(ofCategoryOptionCombo id: String) -> [(String, String)]? { cellsByCategoryOptionCombo[id] }

    /// A cell's key: `name=value` pairs sorted by name, joined by `;` (`""` for none).
    public static func cellKey(_ cell: [(String, String)]) -> String {
        cell.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: ";")
    }

    /// Loads a mapping file and checks it covers `catalogue`: every indicator, country, reporter
    /// and cell mapped, every id a DHIS2 UID, no id used twice. Lists every problem.
    public static func load(path: String, catalogue: Catalogue) throws -> DHIS2Mapping {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DHIS2MappingError(message: "cannot read DHIS2 mapping file \(path)")
        }
        do {
            return try parse(Array(data), catalogue: catalogue)
        } catch let error as DHIS2MappingError {
            throw DHIS2MappingError(message: "\(path): \(error.message)")
        }
    }

    public static func parse(_ bytes: [UInt8], catalogue: Catalogue) throws -> DHIS2Mapping {
        let json: JSON
        do { json = try JSONParser.parse(bytes) } catch {
            throw DHIS2MappingError(message: "not valid JSON: \(error)")
        }
        var problems: [String] = []
        var seen: [String: String] = [:]
        func ids(_ key: String, expected: [String], what: String) -> [String: String] {
            guard let members = json[key]?.objectValue else {
                problems.append("'\(key)' must be an object of \(what) codes to DHIS2 UIDs")
                return [:]
            }
            var map: [String: String] = [:]
            for (code, value) in members {
                guard let id = value.stringValue, isUID(id) else {
                    problems.append("\(key).\(code): not a DHIS2 UID (11 letters and digits, a letter first)")
                    continue
                }
                if let other = seen.updateValue("\(key).\(code)", forKey: id) {
                    problems.append("\(key).\(code): \(id) is already \(other)")
                }
                map[code] = id
            }
            for code in expected where map[code] == nil { problems.append("\(key): no UID for \(what) \(code)") }
            for code in map.keys where !expected.contains(code) {
                problems.append("\(key).\(code): no such \(what) in the catalogue")
            }
            return map
        }
        let dataElements = ids("data_elements", expected: catalogue.indicators.map(\.code), what: "indicator")
        let orgUnits = ids("org_units", expected: catalogue.countries.map(\.code), what: "country")
        let combos = ids("attribute_option_combos", expected: catalogue.reporters.map(\.code), what: "reporter")
        var cells: [String: String] = [:]
        var cellsByID: [String: [(String, String)]] = [:]
        for (index, entry) in (json["category_option_combos"]?.arrayValue ?? []).enumerated() {
            let at = "category_option_combos[\(index)]"
            guard let id = entry["id"]?.stringValue, isUID(id), let members = entry["disaggregation"]?.objectValue
            else {
                problems.append("\(at): needs an 'id' (a DHIS2 UID) and a 'disaggregation' object")
                continue
            }
            var cell: [(String, String)] = []
            for (name, value) in members {
                guard let value = value.stringValue, catalogue.allowedValues(ofDimension: name)?.contains(value) == true
                else {
                    problems.append(
                        "\(at): \(name)=\(value.stringValue ?? value.serialized) is not a cell of the catalogue"
                    )
                    continue
                }
                cell.append((name, value))
            }
            cell.sort { $0.0 < $1.0 }
            if let other = seen.updateValue(at, forKey: id) { problems.append("\(at): \(id) is already \(other)") }
            if cells.updateValue(id, forKey: cellKey(cell)) != nil {
                problems.append("\(at): the cell '\(cellKey(cell))' is mapped twice")
            }
            cellsByID[id] = cell
        }
        // Every cell of the catalogue: none, and every value of every non-empty set of dimensions.
        var expectedCells: [[(String, String)]] = [[]]
        for dimension in catalogue.dimensions {
            expectedCells += expectedCells.flatMap { cell in dimension.values.map { cell + [(dimension.name, $0)] } }
        }
        for cell in expectedCells where cells[cellKey(cell)] == nil {
            problems.append("category_option_combos: no combo for the cell '\(cellKey(cell))'")
        }
        guard problems.isEmpty else {
            let shown = problems.prefix(20).joined(separator: "; ")
            throw DHIS2MappingError(
                message:
                    "\(problems.count) problem\(problems.count == 1 ? "" : "s"): \(shown)\(problems.count > 20 ? "; …" : "")"
            )
        }
        return DHIS2Mapping(
            dataElements: dataElements,
            orgUnits: orgUnits,
            attributeOptionCombos: combos,
            categoryOptionCombos: cells,
            indicatorsByDataElement: Dictionary(uniqueKeysWithValues: dataElements.map { ($1, $0) }),
            countriesByOrgUnit: Dictionary(uniqueKeysWithValues: orgUnits.map { ($1, $0) }),
            reportersByAttributeOptionCombo: Dictionary(uniqueKeysWithValues: combos.map { ($1, $0) }),
            cellsByCategoryOptionCombo: cellsByID
        )
    }

    /// A DHIS2 UID: 11 ASCII letters and digits, the first a letter.
    public static func isUID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 11, let first = bytes.first, first.isASCIILetter else { return false }
        return bytes.allSatisfy { $0.isASCIILetter || (48...57).contains($0) }
    }

    /// The DHIS2 period id of a period: `2022Q4`, `202210` (a month), `2022` (a calendar year),
    /// `2022Oct` (the financial year from October 2022: the U.S. FY2023). `nil` for a range DHIS2
    /// has no period type for.
    public static func periodID(_ period: Period) -> String? {
        let label = period.label
        if label.hasPrefix("FY"), let year = Int(label.dropFirst(2)) { return "\(year - 1)Oct" }
        if label.count == 7, label.dropFirst(4).first == "-" { return label.replacingOccurrences(of: "-", with: "") }
        if Period.parse(label) == period { return label }
        return nil
    }

    /// The period of a DHIS2 period id this mapping knows (`2022Q4`, `202210`, `2022`, `2022Oct`).
    public static func period(ofID id: String) -> Period? {
        if id.hasSuffix("Oct"), id.count == 7, let year = Int(id.prefix(4)) { return Period.parse("FY\(year + 1)") }
        if id.count == 6, id.allSatisfy(\.isNumber) { return Period.parse("\(id.prefix(4))-\(id.suffix(2))") }
        if id.count == 4 || (id.count == 6 && id.dropFirst(4).first == "Q") { return Period.parse(id) }
        return nil
    }
}

extension UInt8 {
    fileprivate var isASCIILetter: Bool { (65...90).contains(self) || (97...122).contains(self) }
}

/// A DHIS2 mapping file that cannot be read or does not cover the catalogue.
public struct DHIS2MappingError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}
