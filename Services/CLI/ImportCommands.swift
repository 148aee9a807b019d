import ArgumentParser
import Foundation
import RootcausesJSON
import RootcausesModel
import RootcausesService

/// `rootcauses import`: data from other systems, as submissions through intake.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import data from another system as submissions through intake.",
        subcommands: [ImportDHIS2Command.self]
    )
}

/// `rootcauses import dhis2 FILE --reporter R`: a DHIS2 `dataValueSets` document as submissions.
struct ImportDHIS2Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dhis2",
        abstract: "Import a DHIS2 dataValueSets JSON file as one reporter's submissions.",
        discussion: """
            Each value's data element, org unit, category option combo and attribute option combo are \
            read through the DHIS2 mapping (Deploy/config/dhis2-mapping.json); its period id (2022Q4, \
            202210, 2022, 2022Oct) becomes a period. The values of one indicator, country and period \
            with the same disaggregation shape become one submission, \
            dhis2-<period>-<country>-<indicator>-<shape>, so importing the same file again changes \
            nothing (every submission answers duplicate). Values of another reporter (their attribute \
            option combo), deleted ones, repeated ones and ones that cannot be mapped are listed and \
            skipped; values with the default (or no) attribute option combo count as --reporter's. \
            Prints an import summary like DHIS2's; exits 1 when anything conflicted. For data from \
            another system: importing a reporter's own export back into the same database counts its \
            figures twice (they arrive as new submissions).
            """
    )

    @OptionGroup var addresses: ServiceAddresses
    @Argument(help: "The dataValueSets JSON file, or - for standard input.") var file: String
    @Option(help: "The reporter the values are imported for (a reporter code of the catalogue).") var reporter: String
    @Option(help: "The DHIS2 mapping file. Env: ROOTCAUSES_DHIS2_MAPPING. Default: Deploy/config/dhis2-mapping.json.")
    var mapping: String?
    @Option(help: "The indicator catalogue. Env: ROOTCAUSES_CATALOGUE. Default: Deploy/config/catalogue.json.")
    var catalogue: String?
    @Flag(name: .customLong("dry-run"), help: "Validate only; store nothing.") var dryRun = false
    @Flag(help: "Print the import summary as JSON.") var json = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        // Found as the services find it: the flag, ROOTCAUSES_CATALOGUE, then the shipped file.
        var catalogueOptions = ServiceOptions()
        catalogueOptions.catalogue = catalogue
        let catalogue = try Catalogue.load(path: try catalogueOptions.resolvedCataloguePath())
        guard
            let mappingPath = mapping ?? environment["ROOTCAUSES_DHIS2_MAPPING"]
                ?? findShippedFile("dhis2-mapping.json")
        else { throw CLIError("no DHIS2 mapping found: pass --mapping") }
        let dhis2 = try DHIS2Mapping.load(path: mappingPath, catalogue: catalogue)
        guard catalogue.hasReporter(reporter) else {
            throw ValidationError("--reporter \(reporter) is not a reporter of the catalogue")
        }
        let text =
            file == "-"
            ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            : try readSubmissionFile(file)
        let document: JSON
        do { document = try JSONParser.parse(text) } catch { throw CLIError("\(file) is not JSON: \(error)") }
        guard let dataValues = document["dataValues"]?.arrayValue else {
            throw CLIError("\(file) is not a dataValueSets document: it has no 'dataValues' list")
        }
        var plan = DHIS2ImportPlan(reporter: reporter, mapping: dhis2)
        for (index, value) in dataValues.enumerated() { plan.add(value, at: index) }
        let numbered = plan.submissions.enumerated().map {
            NumberedSubmission(lineNumber: $0.offset + 1, submission: $0.element.submission)
        }
        var outcomes: [JSON] = []
        // A progress bar for a person at a terminal; nothing of it in a pipe or a file.
        let progress =
            !json && isatty(STDERR_FILENO) == 1
            ? ProgressBar(
                submissions: plan.submissions.count,
                values: plan.submissions.reduce(0) { $0 + $1.valueCount }
            )
            : nil
        _ = try await submitLines(
            numbered,
            to: addresses.intakeAddress,
            token: try addresses.token(for: addresses.intakeAddress),
            tls: try addresses.tls(),
            dryRun: dryRun,
            progress: { done, values in progress?.update(submissions: done, values: values) },
            report: { _, answer in outcomes.append(answer) }
        )
        progress?.finish()
        var summary = plan.summary
        for (planned, answer) in zip(plan.submissions, outcomes) {
            summary.record(planned, answer: answer)
        }
        if json {
            print(summary.json(dryRun: dryRun).prettyPrinted)
        } else {
            print(summary.text(dryRun: dryRun))
        }
        if !summary.conflicts.isEmpty { throw ExitCode(1) }
    }
}

/// What an import will send: the submissions the mapped values make, and what was skipped.
struct DHIS2ImportPlan {
    struct Planned {
        var submission: JSON
        var valueCount: Int
    }

    let reporter: String
    let mapping: DHIS2Mapping
    private(set) var summary = DHIS2ImportSummary()
    /// Values by submission id, in file order of first appearance.
    private var groups: [(id: String, period: String, values: [JSON])] = []
    private var groupIndex: [String: Int] = [:]
    /// Where each (submission, cell) was first given, to report a value given twice.
    private var firstIndex: [String: Int] = [:]

    init(reporter: String, mapping: DHIS2Mapping) {
        self.reporter = reporter
        self.mapping = mapping
    }

    var submissions: [Planned] {
        groups.map { group in
            // Sorted, so the same file always makes the same submission (and answers duplicate).
            let values = group.values.sorted { $0.serialized < $1.serialized }
            return Planned(
                submission: [
                    "submission_id": .string(group.id), "reporter": .string(reporter), "period": .string(group.period),
                    "values": .array(values),
                ],
                valueCount: values.count
            )
        }
    }

    /// Maps one data value, or records why it is skipped.
    mutating func add(_ value: JSON, at index: Int) {
        let object = "dataValues[\(index)]"
        func field(_ name: String) -> String? { value[name]?.stringValue }
        if value["deleted"] == true {
            summary.ignore(object, "deleted in DHIS2")
            return
        }
        guard let dataElement = field("dataElement"), let indicator = mapping.indicator(ofDataElement: dataElement)
        else {
            return summary.conflict(
                object,
                "data element \(field("dataElement") ?? "(none)") is not in the DHIS2 mapping"
            )
        }
        guard let orgUnit = field("orgUnit"), let country = mapping.country(ofOrgUnit: orgUnit) else {
            return summary.conflict(object, "org unit \(field("orgUnit") ?? "(none)") is not in the DHIS2 mapping")
        }
        guard let periodID = field("period"), let period = DHIS2Mapping.period(ofID: periodID) else {
            return summary.conflict(
                object,
                "period \(field("period") ?? "(none)") is not one Rootcauses takes (2022Q4, 202210, 2022, 2022Oct)"
            )
        }
        // DHIS2 leaves the default combos out.
        let comboID = field("categoryOptionCombo") ?? mapping.categoryOptionCombos[""] ?? ""
        guard let cell = mapping.cell(ofCategoryOptionCombo: comboID) else {
            return summary.conflict(object, "category option combo \(comboID) is not in the DHIS2 mapping")
        }
        if let attribute = field("attributeOptionCombo"), attribute != "HllvX50cXC0" {
            guard let owner = mapping.reporter(ofAttributeOptionCombo: attribute) else {
                return summary.conflict(object, "attribute option combo \(attribute) is not in the DHIS2 mapping")
            }
            guard owner == reporter else {
                summary.ignore(object, "\(owner)'s value (attribute option combo \(attribute)), not \(reporter)'s")
                return
            }
        }
        guard let literal = field("value") ?? value["value"]?.numberLiteral, NumberLiteral(literal) != nil else {
            return summary.conflict(object, "value \(value["value"]?.serialized ?? "(none)") is not a number")
        }
        var entry: JSON = ["indicator": .string(indicator), "country": .string(country), "value": .number(literal)]
        if !cell.isEmpty {
            entry = entry.setting("disaggregation", to: .object(cell.map { ($0.0, JSON.string($0.1)) }))
        }
        if field("comment")?.lowercased() == "estimate" { entry = entry.setting("estimate", to: true) }
        // One submission per series (indicator and country), period and disaggregation shape: a
        // submission keeps one shape per series, and files split by org unit or data element
        // each make their own submissions.
        let shape = cell.isEmpty ? "whole" : cell.map(\.0).joined(separator: "+")
        let id = "dhis2-\(periodID)-\(country)-\(indicator)-\(shape)"
        let cellKey = id + "|" + DHIS2Mapping.cellKey(cell)
        if let first = firstIndex[cellKey] {
            return summary.conflict(
                object,
                "repeats dataValues[\(first)] (the same data element, period, org unit and category option combo for \(reporter))"
            )
        }
        firstIndex[cellKey] = index
        if let existing = groupIndex[id] {
            groups[existing].values.append(entry)
        } else {
            groupIndex[id] = groups.count
            groups.append((id, period.label, [entry]))
        }
    }
}

/// Counts like DHIS2's import summary: data values imported and ignored, and the conflicts.
struct DHIS2ImportSummary {
    var imported = 0
    var ignored = 0
    var conflicts: [(object: String, value: String)] = []
    var ignoredReasons: [(object: String, value: String)] = []
    var submissions: [JSON] = []

    mutating func conflict(_ object: String, _ reason: String) { conflicts.append((object, reason)) }

    mutating func ignore(_ object: String, _ reason: String) {
        ignored += 1
        ignoredReasons.append((object, reason))
    }

    mutating func record(_ planned: DHIS2ImportPlan.Planned, answer: JSON) {
        let id = planned.submission["submission_id"]?.stringValue ?? "?"
        let status = answer["status"]?.stringValue ?? answer["error"]?["code"]?.stringValue ?? "?"
        submissions.append(["submission_id": .string(id), "status": .string(status), "seq": answer["seq"] ?? .null])
        switch status {
        case "accepted", "valid":
            imported += planned.valueCount
        case "duplicate":
            ignored += planned.valueCount
            ignoredReasons.append((id, "imported before, unchanged"))
        case "conflict":
            conflicts.append(
                (
                    id,
                    "imported before with other values, which stand; to correct them, submit a submission whose replaces is \(id)"
                )
            )
        default:
            conflicts.append((id, describeError(answer).replacingOccurrences(of: "\n", with: " ")))
        }
    }

    var status: String { conflicts.isEmpty ? "SUCCESS" : imported > 0 ? "WARNING" : "ERROR" }

    func json(dryRun: Bool) -> JSON {
        [
            "status": .string(status),
            "dryRun": .bool(dryRun),
            "importCount": [
                "imported": .int(Int64(imported)), "updated": 0, "ignored": .int(Int64(ignored)), "deleted": 0,
            ],
            "conflicts": .array(conflicts.map { ["object": .string($0.object), "value": .string($0.value)] }),
            "ignored": .array(ignoredReasons.map { ["object": .string($0.object), "value": .string($0.value)] }),
            "submissions": .array(submissions),
        ]
    }

    func text(dryRun: Bool) -> String {
        var lines = [
            "import \(status.lowercased())\(dryRun ? " (dry run, nothing stored)" : ""): \(imported) values imported, \(ignored) ignored, \(conflicts.count) conflicts"
        ]
        for (object, reason) in conflicts { lines.append("  conflict: \(object): \(reason)") }
        let shown = ignoredReasons.filter { $0.value != "imported before, unchanged" }
        for (object, reason) in shown.prefix(20) { lines.append("  ignored: \(object): \(reason)") }
        if shown.count > 20 { lines.append("  … and \(shown.count - 20) more ignored") }
        return lines.joined(separator: "\n")
    }
}
