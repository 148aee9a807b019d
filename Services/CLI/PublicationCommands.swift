import ArgumentParser
import RootcausesJSON
import RootcausesModel

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish the fact sheet: store it as it reads now, to answer it unchanged forever."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Option(name: .customLong("id"), help: "The publication's id (sending it again is safe).") var publicationID: String
    @Option(help: "The fact sheet's date, YYYY-MM-DD (default: today).") var date: String?
    @Option(name: .customLong("min-seq"), help: "Wait until every submission up to this seq is aggregated.") var minSeq:
        Int64?
    @Option(name: .customLong("as-of-seq"), help: "Publish the fact sheet as it stood at this seq.") var asOfSeq: Int64?
    @Flag(help: "Print the raw JSON answer.") var json = false

    func validate() throws {
        try validateFactSheetOptions(date: date, format: "markdown")
    }

    func run() async throws {
        var request: JSON = ["op": "publish", "publication_id": .string(publicationID)]
        if let date { request = request.setting("date", to: .string(date)) }
        if let minSeq { request = request.setting("min_seq", to: .int(minSeq)) }
        if let asOfSeq { request = request.setting("as_of_seq", to: .int(asOfSeq)) }
        let answer = try await addresses.send(.reporting, request)
        if json { return print(answer.prettyPrinted) }
        print(
            "\(answer["status"]?.stringValue ?? "?"): \(publicationID), the fact sheet of \(answer["date"]?.stringValue ?? "?") as of seq \(answer["as_of_seq"]?.serialized ?? "?") (template \(answer["template_digest"]?.stringValue?.prefix(12) ?? "?"))"
        )
    }
}

struct PublishedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "published",
        abstract: "List the published fact sheets."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Flag(help: "Print the raw JSON answer.") var json = false

    func run() async throws {
        let answer = try await addresses.send(.reporting, ["op": "published"])
        if json {
            print(answer.prettyPrinted)
            return
        }
        var table = [["publication", "date", "as of seq", "published at", "template"]]
        for publication in answer["publications"]?.arrayValue ?? [] {
            table.append([
                publication["publication_id"]?.stringValue ?? "", publication["date"]?.stringValue ?? "",
                publication["as_of_seq"]?.serialized ?? "", publication["published_at"]?.stringValue ?? "",
                String(publication["template_digest"]?.stringValue?.prefix(12) ?? ""),
            ])
        }
        printTable(table)
    }
}

struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show every fact sheet number that moved between a publication and now (or another one), and why."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Option(help: "The earlier publication's id.") var from: String
    @Option(help: "The later publication's id (default: the data now).") var to: String?
    @Option(name: .customLong("min-seq"), help: "Wait until every submission up to this seq is aggregated.") var minSeq:
        Int64?
    @Flag(help: "Print the raw JSON answer.") var json = false

    func run() async throws {
        var request: JSON = ["op": "diff", "from": .string(from)]
        if let to { request = request.setting("to", to: .string(to)) }
        if let minSeq { request = request.setting("min_seq", to: .int(minSeq)) }
        let answer = try await addresses.send(.reporting, request)
        if json {
            print(answer.prettyPrinted)
            return
        }
        let target = to ?? "now"
        print(
            "\(from) (seq \(answer["from"]?["as_of_seq"]?.serialized ?? "?")) → \(target) (seq \(answer["to"]?["as_of_seq"]?.serialized ?? "?")): \(answer["numbers"]?.arrayValue?.count ?? 0) moved, \(answer["unchanged"]?.serialized ?? "?") unchanged"
        )
        for number in answer["numbers"]?.arrayValue ?? [] {
            let old = number["from"]?["text"]?.stringValue ?? "(absent)"
            let new = number["to"]?["text"]?.stringValue ?? "(absent)"
            print("\(number["indicator"]?.stringValue ?? "?"): \(old) → \(new)")
            for change in number["changes"]?.arrayValue ?? [] {
                let who =
                    change["adjustment_id"].flatMap(\.stringValue).map {
                        "\($0) (\(change["method"]?.stringValue ?? ""))"
                    }
                    ?? "\(change["reporter"]?.stringValue ?? "") \(change["submission_id"]?.stringValue ?? "")"
                var line = "    seq \(change["seq"]?.serialized ?? "?")  \(change["kind"]?.stringValue ?? "")  \(who)"
                if let replaced = change["replaced_seq"] { line += "  replaces seq \(replaced.serialized)" }
                if let retracted = change["retracted_seq"] { line += "  withdraws seq \(retracted.serialized)" }
                if let reason = change["reason"]?.stringValue { line += "  reason: \(reason)" }
                print(line)
            }
            let shown = number["changes"]?.arrayValue?.count ?? 0
            if let count = number["change_count"]?.int64Value, count > shown {
                print("    … and \(count - Int64(shown)) more")
            }
        }
    }
}

struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "List every stored value behind a total or a fact sheet number, and why each counts or not."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Option(help: "Only these indicators (repeatable).") var indicator: [String] = []
    @Option(help: "Only these countries (repeatable).") var country: [String] = []
    @Option(help: "Only these reporters (repeatable).") var reporter: [String] = []
    @Option(help: "First period, inclusive.") var from: String?
    @Option(help: "Last period, inclusive.") var to: String?
    @Option(help: "A fact sheet's date, YYYY-MM-DD: explain its number (periods started by then).") var date: String?
    @Option(name: .customLong("as-of-seq"), help: "Explain the number as it stood at this seq.") var asOfSeq: Int64?
    @Option(help: "Values per page (1 to 1000).") var limit: Int = 100
    @Flag(name: .customLong("all"), help: "Follow the pages to the end.") var allPages = false
    @Flag(help: "Print the raw JSON answers.") var json = false

    func validate() throws {
        try validateFactSheetOptions(date: date, format: "markdown")
        guard (1...1000).contains(limit) else { throw ValidationError("--limit takes 1 to 1000, not \(limit)") }
    }

    func run() async throws {
        var request: JSON = ["op": "explain", "limit": .int(Int64(limit))]
        func list(_ key: String, _ values: [String]) {
            if !values.isEmpty { request = request.setting(key, to: .array(values.map(JSON.string))) }
        }
        list("indicator", indicator)
        list("country", country)
        list("reporter", reporter)
        if let from { request = request.setting("period_from", to: .string(from)) }
        if let to { request = request.setting("period_to", to: .string(to)) }
        if let date { request = request.setting("date", to: .string(date)) }
        if let asOfSeq { request = request.setting("as_of_seq", to: .int(asOfSeq)) }
        var answer = try await addresses.send(.reporting, request)
        if !json {
            print("value \(answer["value"]?.serialized ?? "?") as of seq \(answer["as_of_seq"]?.serialized ?? "?")")
        }
        while true {
            if json {
                print(answer.prettyPrinted)
            } else {
                for entry in answer["entries"]?.arrayValue ?? [] {
                    let cell = (entry["disaggregation"]?.objectValue ?? []).map { "\($0.0)=\($0.1.stringValue ?? "")" }
                    var line =
                        "\(entry["counted"] == true ? "counted " : "excluded") seq \(entry["seq"]?.serialized ?? "?")  \(entry["reporter"]?.stringValue ?? "") \(entry["submission_id"]?.stringValue ?? "")  \(entry["period"]?.stringValue ?? "")  \(entry["indicator"]?.stringValue ?? "") \(entry["country"]?.stringValue ?? "") \(cell.joined(separator: ";"))  \(entry["value"]?.serialized ?? "")"
                    if let excluded = entry["excluded"] {
                        line += "  (\(excluded["because"]?.stringValue ?? "")"
                        if let seq = excluded["by_seq"] { line += " by seq \(seq.serialized)" }
                        if let period = excluded["latest_period"]?.stringValue { line += "; latest \(period)" }
                        if let reason = excluded["reason"]?.stringValue { line += ": \(reason)" }
                        line += ")"
                    }
                    print(line)
                }
            }
            guard allPages, let cursor = answer["next_cursor"]?.stringValue else { break }
            answer = try await addresses.send(.reporting, request.setting("cursor", to: .string(cursor)))
        }
        if !json, let cursor = answer["next_cursor"]?.stringValue, !allPages {
            print("more: --all, or the next page with cursor \(cursor)")
        }
    }
}

struct TargetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "target",
        abstract: "Set an agency's annual target for an indicator in a country (again to correct it)."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Option(help: "The reporter code.") var reporter: String
    @Option(help: "The indicator code.") var indicator: String
    @Option(help: "The country code.") var country: String
    @Option(name: .customLong("fiscal-year"), help: "The fiscal year, e.g. FY2023.") var fiscalYear: String
    @Option(help: "The target, in the indicator's unit.") var value: String
    @Flag(help: "Print the raw JSON answer.") var json = false

    func validate() throws {
        guard NumberLiteral(value) != nil else {
            throw ValidationError("--value \(value) is not a number")
        }
    }

    func run() async throws {
        let answer = try await addresses.send(
            .intake,
            [
                "op": "target", "reporter": .string(reporter), "indicator": .string(indicator),
                "country": .string(country), "fiscal_year": .string(fiscalYear), "value": .number(value),
            ]
        )
        if json { return print(answer.prettyPrinted) }
        var line =
            "\(answer["status"]?.stringValue ?? "?"): \(reporter) \(indicator) \(country) \(answer["fiscal_year"]?.stringValue ?? fiscalYear) = \(answer["value"]?.serialized ?? value)"
        if let replaced = answer["replaced_value"] { line += " (was \(replaced.serialized))" }
        print(line)
    }
}

struct DeduplicateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deduplicate",
        abstract: "Resolve reporters' overlapping figures for an indicator, country and period."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Option(name: .customLong("id"), help: "The adjustment's id (sending it again is safe).") var adjustmentID: String
    @Option(help: "The indicator code (one whose reporters may overlap).") var indicator: String
    @Option(help: "The country code.") var country: String
    @Option(help: "The period, as submissions give it (FY2023Q1, 2023-01, ...).") var period: String
    @Option(help: "sum (no overlap), max (complete overlap) or custom (with --value).") var method: String
    @Option(help: "The deduplicated figure, for custom.") var value: String?
    @Option(help: "Why.") var reason: String?
    @Option(help: "The adjustment_id of the adjustment this one corrects.") var replaces: String?
    @Flag(help: "Print the raw JSON answer.") var json = false

    func validate() throws {
        guard Deduplication.Method(rawValue: method) != nil else {
            throw ValidationError("--method \(method) is not sum, max or custom")
        }
        if let value, NumberLiteral(value) == nil { throw ValidationError("--value \(value) is not a number") }
    }

    func run() async throws {
        var request: JSON = [
            "op": "deduplicate", "adjustment_id": .string(adjustmentID), "indicator": .string(indicator),
            "country": .string(country), "period": .string(period), "method": .string(method),
        ]
        if let value { request = request.setting("value", to: .number(value)) }
        if let reason { request = request.setting("reason", to: .string(reason)) }
        if let replaces { request = request.setting("replaces", to: .string(replaces)) }
        let answer = try await addresses.send(.intake, request)
        if json { return print(answer.prettyPrinted) }
        var line = "\(answer["status"]?.stringValue ?? "?"): \(adjustmentID) (seq \(answer["seq"]?.serialized ?? "?"))"
        if let resolved = answer["value"] {
            line +=
                ": \(indicator) \(country) \(period) = \(resolved.serialized), between \(answer["lower"]?.serialized ?? "?") and \(answer["upper"]?.serialized ?? "?")"
        }
        print(line)
    }
}
