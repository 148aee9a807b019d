import ArgumentParser
import Foundation
import NIOSSL
import RootcausesJSON
import RootcausesModel
import RootcausesProtocol
import RootcausesTransport
import UnixSignals

struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit results from an NDJSON file (one submission object per line).",
        discussion:
            "Prints one result per submission; exits non-zero if any was rejected. Safe to rerun: resent submissions answer 'duplicate'."
    )

    @OptionGroup var addresses: ServiceAddresses

    @Argument(help: "The NDJSON file, or - for standard input.")
    var file: String

    @Flag(name: .customLong("dry-run"), help: "Validate only; store nothing.")
    var dryRun = false

    @Flag(help: "Print only the summary line.")
    var quiet = false

    @Flag(help: "Print each answer as a JSON line, then a summary line {\"summary\":{…}} (for scripts).")
    var json = false

    func run() async throws {
        let text: String
        if file == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            text = try readSubmissionFile(file)
        }
        // The whole file is checked before anything is sent: a broken line is a broken file.
        let submissions = try parseSubmissions(text, source: file == "-" ? "stdin" : file)
        // A progress bar for a person at a terminal; nothing of it in a pipe or a file.
        let progress =
            !json && isatty(STDERR_FILENO) == 1
            ? ProgressBar(
                submissions: submissions.count,
                values: submissions.reduce(0) { $0 + ($1.submission["values"]?.arrayValue?.count ?? 0) }
            ) : nil
        let summary = try await submitLines(
            submissions,
            to: addresses.intakeAddress,
            token: try addresses.token(for: addresses.intakeAddress),
            tls: try addresses.tls(),
            dryRun: dryRun,
            progress: { done, values in progress?.update(submissions: done, values: values) },
            report: { line, answer in
                if json {
                    print(answer.serialized)
                } else if !quiet {
                    progress?.clear()
                    print(line)
                }
            }
        )
        progress?.finish()
        if json {
            let counts: JSON = [
                "accepted": .int(Int64(summary.accepted)), "duplicate": .int(Int64(summary.duplicate)),
                "valid": .int(Int64(summary.valid)), "failed": .int(Int64(summary.failed)),
                "last_seq": .int(summary.lastSeq),
            ]
            print(JSON.object([("summary", counts)]).serialized)
        } else {
            print(summary.description)
        }
        if summary.failed > 0 { throw ExitCode(1) }
    }
}

/// Counts of what happened to a file of submissions.
struct SubmitSummary: CustomStringConvertible {
    var accepted = 0
    var duplicate = 0
    var valid = 0
    var failed = 0
    var lastSeq: Int64 = 0

    var description: String {
        var parts = ["\(accepted) accepted", "\(duplicate) duplicate"]
        if valid > 0 { parts.append("\(valid) valid (dry run)") }
        parts.append("\(failed) failed")
        return "submissions: " + parts.joined(separator: ", ")
    }
}

/// The text of an NDJSON file, or why it cannot be read.
func readSubmissionFile(_ path: String) throws -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw CLIError("cannot read \(path): no such file")
    }
    guard !isDirectory.boolValue else { throw CLIError("cannot read \(path): it is a folder") }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))")
    }
    return String(decoding: data, as: UTF8.self)
}

/// One submission object of an NDJSON file, with its 1-based line number.
struct NumberedSubmission {
    let lineNumber: Int
    let submission: JSON
}

/// Parses every non-empty line as a JSON object. Throws listing each bad line as
/// `source:LINE: not valid JSON: …`, so nothing is sent from a file with a broken line.
func parseSubmissions(_ text: String, source: String) throws -> [NumberedSubmission] {
    var submissions: [NumberedSubmission] = []
    var problems: [String] = []
    for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
        if line.isEmpty { continue }
        do {
            let submission = try JSONParser.parse(line)
            guard case .object = submission else {
                problems.append("\(source):\(index + 1): not a JSON object (one submission object per line)")
                continue
            }
            submissions.append(NumberedSubmission(lineNumber: index + 1, submission: submission))
        } catch {
            problems.append("\(source):\(index + 1): not valid JSON: \(error)")
        }
    }
    guard problems.isEmpty else {
        let shown = problems.prefix(20).joined(separator: "\n")
        let more = problems.count > 20 ? "\n… and \(problems.count - 20) more" : ""
        throw CLIError("\(shown)\(more)\nnothing was sent")
    }
    return submissions
}

/// Sends every submission to intake, pipelined in windows, reporting each result.
func submitLines(
    _ submissions: [NumberedSubmission],
    to address: String,
    token: String?,
    tls: NIOSSLContext? = nil,
    dryRun: Bool,
    progress: (_ submissions: Int, _ values: Int) -> Void = { _, _ in },
    report: (_ line: String, _ answer: JSON) -> Void
) async throws -> SubmitSummary {
    let client = try await connect(to: "intake", at: address, token: token, tls: tls)
    do {
        let summary = try await submit(submissions, over: client, dryRun: dryRun, progress: progress, report: report)
        await client.close()
        return summary
    } catch {
        await client.close()
        throw error
    }
}

private func submit(
    _ submissions: [NumberedSubmission],
    over client: ProtocolClient,
    dryRun: Bool,
    progress: (_ submissions: Int, _ values: Int) -> Void,
    report: (_ line: String, _ answer: JSON) -> Void
) async throws -> SubmitSummary {
    var summary = SubmitSummary()
    var pending: [(lineNumber: Int, label: String, request: JSON)] = []
    var sent = 0
    var valuesSent = 0

    func flush() async throws {
        guard !pending.isEmpty else { return }
        let answers = try await client.pipeline(pending.map(\.request))
        for (entry, answer) in zip(pending, answers) {
            if answer["ok"] == .bool(true) {
                let status = answer["status"]?.stringValue ?? "?"
                switch status {
                case "accepted": summary.accepted += 1
                case "duplicate": summary.duplicate += 1
                default: summary.valid += 1
                }
                if let seq = answer["seq"]?.int64Value { summary.lastSeq = max(summary.lastSeq, seq) }
                let seqText = answer["seq"].map { " seq \($0.serialized)" } ?? ""
                report("line \(entry.lineNumber) \(entry.label): \(status)\(seqText)", answer)
            } else {
                summary.failed += 1
                report(
                    "line \(entry.lineNumber) \(entry.label): "
                        + describeError(answer).replacingOccurrences(of: "\n", with: "\n    "),
                    answer
                )
            }
            sent += 1
            valuesSent += entry.request["submission"]?["values"]?.arrayValue?.count ?? 0
        }
        pending.removeAll()
        progress(sent, valuesSent)
    }

    for entry in submissions {
        let label = entry.submission["submission_id"]?.stringValue ?? "(no submission_id)"
        var request: JSON = ["op": "submit", "id": .int(entry.lineNumber), "submission": entry.submission]
        if dryRun { request = request.setting("dry_run", to: true) }
        pending.append((entry.lineNumber, label, request))
        if pending.count == 64 { try await flush() }
    }
    try await flush()
    return summary
}

struct TotalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "totals", abstract: "Query totals from reporting.")

    @OptionGroup var addresses: ServiceAddresses

    @Option(help: "Only these indicators (repeatable).") var indicator: [String] = []
    @Option(help: "Only these countries (repeatable).") var country: [String] = []
    @Option(help: "Only these reporters (repeatable).") var reporter: [String] = []
    @Option(help: "Only these pillars (repeatable).") var pillar: [String] = []
    @Option(help: "First period, inclusive (2023, 2023Q1, 2023-01, FY2023, FY2023Q1).") var from: String?
    @Option(help: "Last period, inclusive.") var to: String?
    @Option(
        name: .customLong("cell"),
        help: "Only cells with this dimension value, as dimension=value, e.g. sex=female (repeatable)."
    )
    var cells: [String] = []
    @Option(
        name: .customLong("group-by"),
        help: "Comma-separated: indicator,country,reporter,pillar,period, or a dimension of the catalogue (sex, age)."
    )
    var groupBy: String?
    @Option(name: .customLong("min-seq"), help: "Wait until every submission up to this seq is aggregated.") var minSeq:
        Int64?
    @Option(
        name: .customLong("as-of-seq"),
        help: "The totals as they stood at this seq (reproduces an earlier answer)."
    )
    var asOfSeq: Int64?
    @Option(
        name: .customLong("as-of"),
        help: "The totals as known at this RFC 3339 time, e.g. 2023-04-10T12:00:00-05:00."
    )
    var asOf: String?
    @Flag(help: "Add each row's target and the share achieved (rows of one fiscal year, indicator and reporter).")
    var targets = false
    @Flag(help: "Print the raw JSON answer.") var json = false

    @Flag(help: "Print the rows as CSV (RFC 4180, a header row, numbers exact).") var csv = false

    @Flag(
        help:
            "Print a DHIS2 dataValueSets document of the totals (grouped as DHIS2 keeps values; no --group-by)."
    )
    var dhis2 = false

    @Flag(help: "Print one reporter's IATI 2.03 activity file of the totals (give exactly one --reporter).")
    var iati = false

    @Flag(
        help:
            "Keep watching: subscribe, and print the rows again each time they change (with --json, each event as a line) until Ctrl-C."
    )
    var watch = false

    func validate() throws {
        try validateAsOf(asOf, asOfSeq: asOfSeq)
        if watch, asOf != nil || asOfSeq != nil {
            throw ValidationError("--watch follows the data as it changes: leave out --as-of and --as-of-seq")
        }
        if watch, csv || dhis2 || iati {
            throw ValidationError("--watch prints tables or JSON: leave out --csv, --dhis2 and --iati")
        }
        if [json, csv, dhis2, iati].filter({ $0 }).count > 1 {
            throw ValidationError("choose one of --json, --csv, --dhis2 and --iati")
        }
        if dhis2 || iati, groupBy != nil {
            throw ValidationError("--dhis2 and --iati are grouped as those systems keep values: leave --group-by out")
        }
        if iati, reporter.count != 1 { throw ValidationError("--iati writes one reporter's file: give one --reporter") }
        var first: Period?
        if let from {
            guard let period = Period.parse(from) else { throw ValidationError(periodProblem("--from", from)) }
            first = period
        }
        if let to {
            guard let last = Period.parse(to) else { throw ValidationError(periodProblem("--to", to)) }
            if let first, first.start > last.end {
                throw ValidationError("--from \(from!) starts after --to \(to) ends")
            }
        }
        // Group keys and dimensions are the catalogue's: reporting checks them and names what it accepts.
        for cell in cells where cell.split(separator: "=", maxSplits: 1).count != 2 {
            throw ValidationError("--cell \(cell) is not dimension=value, e.g. sex=female")
        }
    }

    private func periodProblem(_ option: String, _ text: String) -> String {
        "\(option) \(text) is not a period: write 2023, 2023Q1, 2023-01, FY2023 or FY2023Q1 (years 1900-2999)"
    }

    func run() async throws {
        var request: JSON = ["op": "totals"]
        func list(_ key: String, _ values: [String]) {
            if !values.isEmpty { request = request.setting(key, to: .array(values.map(JSON.string))) }
        }
        list("indicator", indicator)
        list("country", country)
        list("reporter", reporter)
        list("pillar", pillar)
        if let from { request = request.setting("period_from", to: .string(from)) }
        if let to { request = request.setting("period_to", to: .string(to)) }
        let keys = groupBy?.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } ?? []
        list("group_by", keys)
        var byDimension: [(String, [String])] = []
        for cell in cells {
            let parts = cell.split(separator: "=", maxSplits: 1).map(String.init)
            if let index = byDimension.firstIndex(where: { $0.0 == parts[0] }) {
                byDimension[index].1.append(parts[1])
            } else {
                byDimension.append((parts[0], [parts[1]]))
            }
        }
        for (dimension, values) in byDimension { list(dimension, values) }
        if let minSeq { request = request.setting("min_seq", to: .int(minSeq)) }
        if let asOfSeq { request = request.setting("as_of_seq", to: .int(asOfSeq)) }
        if let asOf { request = request.setting("as_of", to: .string(asOf)) }
        if targets { request = request.setting("targets", to: true) }
        if csv { request = request.setting("format", to: "csv") }
        if dhis2 { request = request.setting("format", to: "dhis2") }
        if iati { request = request.setting("format", to: "iati") }
        if watch { return try await watch(request, keys: keys) }
        let answer = try await addresses.send(.reporting, request)
        if dhis2 {
            print((answer["dataValueSet"] ?? ["dataValues": []]).prettyPrinted)
            return
        }
        if csv || iati {
            print(answer["text"]?.stringValue ?? "", terminator: "")
            return
        }
        if json {
            print(answer.prettyPrinted)
            return
        }
        printRows(answer, keys: keys)
    }

    private func printRows(_ answer: JSON, keys: [String]) {
        let rows = answer["rows"]?.arrayValue ?? []
        let columns =
            keys.flatMap { $0 == "period" ? ["period"] : $0 == "indicator" ? ["indicator"] : [$0] }
            + ["unit", "value", "submissions", "estimate"] + (targets ? ["target", "achieved"] : [])
        var table = [columns]
        for row in rows {
            table.append(
                columns.map { column in
                    guard let value = row[column] else { return "" }
                    // Figures read with thousands separators; codes and dates as they are.
                    if let number = value.numberLiteral { return groupThousands(number) }
                    return value.stringValue ?? value.serialized
                }
            )
        }
        printTable(table)
        print(
            "(as of seq \(answer["as_of_seq"]?.serialized ?? "?"); \(rows.count) row\(rows.count == 1 ? "" : "s"))"
        )
    }

    /// `subscribe`, then the rows again at each event until Ctrl-C or the connection ends.
    private func watch(_ totals: JSON, keys: [String]) async throws {
        let request = totals.setting("op", to: "subscribe").setting("id", to: "watch")
        let address = addresses.reportingAddress
        let client = try await connect(
            to: "reporting",
            at: address,
            token: try addresses.token(for: address),
            tls: try addresses.tls()
        )
        let answer = try await client.request(request)
        guard answer["ok"] == true else {
            await client.close()
            throw CLIError(
                "reporting refused the subscription: \(answer["error"]?["message"]?.stringValue ?? answer.serialized)"
            )
        }
        func show(_ state: JSON) {
            if json {
                print(state.serialized)
            } else {
                print("")
                printRows(state, keys: keys)
            }
            fflush(nil)
        }
        show(answer.withoutEnvelope)
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in client.events {
                    if event["event"] == "ended" {
                        FileHandle.standardError.write(
                            Data("rootcauses: \(event["message"]?.stringValue ?? "the subscription ended")\n".utf8)
                        )
                        return
                    }
                    show(event)
                }
            }
            group.addTask { for await _ in signals { return } }
            await group.next()
            group.cancelAll()
        }
        await client.close()
    }
}

/// Prints rows as aligned columns; numbers right-aligned.
func printTable(_ table: [[String]]) {
    guard let header = table.first else { return }
    var widths = header.map(\.count)
    for row in table { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    for (r, row) in table.enumerated() {
        let cells = row.enumerated().map { i, cell -> String in
            let pad = String(repeating: " ", count: widths[i] - cell.count)
            let numeric = r > 0 && Double(cell.replacingOccurrences(of: ",", with: "")) != nil
            return numeric ? pad + cell : cell + pad
        }
        print(cells.joined(separator: "  "))
    }
}

struct FactSheetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "factsheet",
        abstract: "Render the fact sheet from the aggregates."
    )

    @OptionGroup var addresses: ServiceAddresses

    @Option(
        help:
            "markdown, json, html (one self-contained file with charts and explanations) or pdf (the HTML printed by headless Chromium, ROOTCAUSES_CHROMIUM or found on PATH, stopped after ROOTCAUSES_PDF_TIMEOUT_SECONDS, default 120; needs -o)."
    )
    var format: String = "markdown"
    @Option(name: [.customShort("o"), .customLong("output")], help: "Write the fact sheet to this file.")
    var output: String?
    @Option(help: "The fact sheet's date, YYYY-MM-DD (default: today).") var date: String?
    @Option(name: .customLong("min-seq"), help: "Wait until every submission up to this seq is aggregated.") var minSeq:
        Int64?
    @Option(
        name: .customLong("as-of-seq"),
        help: "The fact sheet as it stood at this seq (reproduces an earlier one, with the same --date)."
    )
    var asOfSeq: Int64?
    @Option(
        name: .customLong("as-of"),
        help: "The fact sheet as known at this RFC 3339 time, e.g. 2023-04-10T12:00:00-05:00."
    )
    var asOf: String?
    @Option(name: .customLong("published-id"), help: "A published fact sheet, exactly as it was published.")
    var publishedID: String?
    @Flag(help: "Print the raw JSON answer (with --format markdown, the Markdown is in its text).") var json = false

    func validate() throws {
        try validateFactSheetOptions(date: date, format: format, allowed: ["markdown", "json", "html", "pdf"])
        if format == "pdf", output == nil { throw ValidationError("--format pdf writes a file: give -o FILE") }
        if format == "pdf", json { throw ValidationError("--format pdf writes a file, not JSON: leave out --json") }
        try validateAsOf(asOf, asOfSeq: asOfSeq)
        if publishedID != nil, date != nil || asOf != nil || asOfSeq != nil {
            throw ValidationError(
                "a published fact sheet is fixed: --published-id takes no --date, --as-of or --as-of-seq"
            )
        }
    }

    func run() async throws {
        var request: JSON = ["op": "factsheet", "format": .string(format == "pdf" ? "html" : format)]
        if let date { request = request.setting("date", to: .string(date)) }
        if let minSeq { request = request.setting("min_seq", to: .int(minSeq)) }
        if let asOfSeq { request = request.setting("as_of_seq", to: .int(asOfSeq)) }
        if let asOf { request = request.setting("as_of", to: .string(asOf)) }
        if let publishedID { request = request.setting("published_id", to: .string(publishedID)) }
        let answer = try await addresses.send(.reporting, request)
        let document: String
        if json {
            document = answer.prettyPrinted
        } else if format == "json" {
            document = answer.withoutEnvelope.prettyPrinted
        } else {
            document = answer["text"]?.stringValue ?? ""
        }
        guard let output else { return print(document) }
        if format == "pdf" {
            try await printToPDF(html: document, output: output)
        } else {
            try writeOutput(document + (document.hasSuffix("\n") ? "" : "\n"), to: output)
        }
    }
}

struct RetractCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retract",
        abstract: "Withdraw a submission, with the reason (every version stays stored).",
        discussion:
            "To correct a submission instead, submit the corrected one with \"replaces\": \"<its submission_id>\" in the submission object."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Option(help: "The reporter code.") var reporter: String
    @Option(name: .customLong("submission-id"), help: "The submission to withdraw.") var submissionID: String
    @Option(help: "Why it is withdrawn.") var reason: String
    @Flag(help: "Print the raw JSON answer.") var json = false

    func run() async throws {
        let answer = try await addresses.send(
            .intake,
            [
                "op": "retract", "reporter": .string(reporter), "submission_id": .string(submissionID),
                "reason": .string(reason),
            ]
        )
        if json { return print(answer.prettyPrinted) }
        let status = answer["status"]?.stringValue ?? "?"
        print(
            "\(status): \(submissionID) (seq \(answer["retracted_seq"]?.serialized ?? "?")) withdrawn as of seq \(answer["seq"]?.serialized ?? "?")"
        )
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show every version of a submission: replacements, retraction, values."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Option(help: "The reporter code.") var reporter: String
    @Option(name: .customLong("submission-id"), help: "Any version of the submission.") var submissionID: String
    @Flag(help: "Print the raw JSON answer.") var json = false

    func run() async throws {
        let answer = try await addresses.send(
            .reporting,
            ["op": "history", "reporter": .string(reporter), "submission_id": .string(submissionID)]
        )
        if json {
            print(answer.prettyPrinted)
            return
        }
        for version in answer["versions"]?.arrayValue ?? [] {
            var line =
                "seq \(version["seq"]?.serialized ?? "?")  \(version["submission_id"]?.stringValue ?? "")  \(version["status"]?.stringValue ?? "")  received \(version["received_at"]?.stringValue ?? "")"
            if let reason = version["reason"]?.stringValue { line += "  reason: \(reason)" }
            print(line)
            for value in version["values"]?.arrayValue ?? [] {
                let cell = (value["disaggregation"]?.objectValue ?? []).map { "\($0.0)=\($0.1.stringValue ?? "")" }
                print(
                    "    \(value["indicator"]?.stringValue ?? "") \(value["country"]?.stringValue ?? "") \(cell.joined(separator: ";")) \(value["value"]?.serialized ?? "")\(value["estimate"] == true ? " (estimate)" : "")"
                )
            }
        }
    }
}

struct IndicatorsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "indicators",
        abstract: "List the indicator catalogue."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Flag(help: "Print the raw JSON answer.") var json = false

    func run() async throws {
        let answer = try await addresses.send(.reporting, ["op": "indicators"])
        if json {
            print(answer.prettyPrinted)
            return
        }
        var table = [["code", "pillar", "unit", "over time", "countries", "name"]]
        for indicator in answer["indicators"]?.arrayValue ?? [] {
            table.append([
                indicator["code"]?.stringValue ?? "", indicator["pillar"]?.stringValue ?? "",
                indicator["unit"]?.stringValue ?? "", indicator["time_aggregation"]?.stringValue ?? "",
                (indicator["countries"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ","),
                indicator["name"]?.stringValue ?? "",
            ])
        }
        printTable(table)
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show aggregation progress.")

    @OptionGroup var addresses: ServiceAddresses
    @Flag(help: "Print the raw JSON answer (with its envelope); the default prints its fields.") var json = false

    func run() async throws {
        let answer = try await addresses.send(.aggregation, ["op": "status"])
        print(json ? answer.prettyPrinted : answer.withoutEnvelope.prettyPrinted)
    }
}

/// Checks a fact sheet's `--date` (a real day, YYYY-MM-DD, years 1900-9999) and `--format`.
func validateFactSheetOptions(date: String?, format: String, allowed: [String] = ["markdown", "json"]) throws {
    if let date, Day(iso: date) == nil {
        throw ValidationError(
            "--date \(date) is not a day: write YYYY-MM-DD, e.g. 2023-02-06, with a year from \(Day.supportedYears.lowerBound) to \(Day.supportedYears.upperBound)"
        )
    }
    guard allowed.contains(format) else {
        throw ValidationError(
            "--format \(format) is not " + allowed.dropLast().joined(separator: ", ") + " or " + allowed.last!
        )
    }
}

/// `--as-of` must be RFC 3339 (reporting would refuse anything else) and not given with `--as-of-seq`.
private func validateAsOf(_ asOf: String?, asOfSeq: Int64?) throws {
    guard let asOf else { return }
    guard asOfSeq == nil else { throw ValidationError("give --as-of or --as-of-seq, not both") }
    guard Timestamp(rfc3339: asOf) != nil else {
        throw ValidationError(
            "--as-of \(asOf) is not an RFC 3339 time: write e.g. 2023-04-10T17:00:00Z or 2023-04-10T12:00:00-05:00"
        )
    }
}
