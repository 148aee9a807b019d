import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesTesting
import Subprocess
import SystemPackage
import Testing

extension Integration {
    /// Totals as a sheet: `format: csv` gives the same rows as the JSON answer, exactly.
    @Suite struct ExportTests {
        @Test func totalsAsCSVParseBackToTheSameNumbers() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let lastSeq = try await submitSample(through: intake)
                for shape in [
                    ["indicator", "country"], ["period"], [], ["sex", "age"],
                ] as [[String]] {
                    var query: JSON = [
                        "op": "totals", "group_by": .array(shape.map(JSON.string)), "as_of_seq": .int(lastSeq),
                        "timeout_ms": 30_000,
                    ]
                    if shape.contains("sex") { query = query.setting("indicator", to: "jobs_created") }
                    let json = try await reporting.request(query)
                    let sheet = try await reporting.request(query.setting("format", to: "csv"))
                    try #require(json["ok"] == true && sheet["ok"] == true, "\(sheet)")
                    #expect(sheet["format"] == "csv")
                    #expect(sheet["as_of_seq"] == json["as_of_seq"])
                    #expect(sheet["rows"] == nil)
                    let text = try #require(sheet["text"]?.stringValue)
                    #expect(text.hasSuffix("\r\n"))
                    let table = parseCSV(text)
                    let header = try #require(table.first)
                    let rows = json["rows"]?.arrayValue ?? []
                    #expect(table.count == rows.count + 1)
                    #expect(!rows.isEmpty)
                    for key in shape { #expect(header.contains(key)) }
                    for column in ["unit", "value", "submissions", "estimate"] { #expect(header.contains(column)) }
                    // Every member of every JSON row is in its CSV row, as written.
                    for (row, fields) in zip(rows, table.dropFirst()) {
                        #expect(fields.count == header.count)
                        for (name, value) in row.objectValue ?? [] {
                            let index = try #require(header.firstIndex(of: name), "no column \(name)")
                            let expected =
                                value.isNull ? "" : value.stringValue ?? value.numberLiteral ?? value.serialized
                            #expect(fields[index] == expected, "\(name) in \(row.serialized)")
                        }
                    }
                    // The values add up to the same exact total.
                    let valueColumn = try #require(header.firstIndex(of: "value"))
                    let fromSheet = table.dropFirst().compactMap { Decimal(string: $0[valueColumn]) }.reduce(0, +)
                    let fromJSON = rows.compactMap { $0["value"]?.numberLiteral.flatMap { Decimal(string: $0) } }
                        .reduce(0, +)
                    #expect(fromSheet == fromJSON)
                }
                let wrong = try await reporting.request(["op": "totals", "format": "xlsx"])
                #expect(wrong.errorCode == "invalid_request")
                #expect(wrong.detailPaths == ["format"])
                await intake.close()
                await reporting.close()
            }
        }

        /// Runs `rootcauses import dhis2` against `stack`; returns its status and output.
        static func importDHIS2(
            _ path: String,
            reporter: String,
            stack: ServiceStack,
            json: Bool = true
        ) async throws
            -> (status: Int32, output: String)
        {
            try await runRootcauses(
                ["import", "dhis2", path, "--reporter", reporter] + (json ? ["--json"] : []),
                environment: ["ROOTCAUSES_TOKEN": stack.adminToken, "ROOTCAUSES_INTAKE": stack.intakeAddress]
            )
        }

        /// Every reporter's totals exported as DHIS2 dataValueSets, imported into an empty
        /// database reporter by reporter, give the same totals at DHIS2's granularity; importing
        /// again changes nothing.
        @Test func dhis2ExportImportedIntoAnEmptyDatabaseGivesTheSameTotals() async throws {
            let grouping: JSON = ["indicator", "country", "period", "reporter", "sex", "age"]
            var files: [(reporter: String, path: String, values: Int)] = []
            var before: [JSON] = []
            // Not under the test run's scratch folder: the shared cluster's first start empties it.
            let folder = "/tmp/rootcauses-dhis2-\(getpid())-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let lastSeq = try await submitSample(through: intake)
                var reporters: [String] = []
                for line in try sampleSubmissions() {
                    if let reporter = line["reporter"]?.stringValue, !reporters.contains(reporter) {
                        reporters.append(reporter)
                    }
                }
                for reporter in reporters {
                    let export = try await reporting.request([
                        "op": "totals", "reporter": .string(reporter), "format": "dhis2", "as_of_seq": .int(lastSeq),
                        "timeout_ms": 30_000,
                    ])
                    try #require(export["ok"] == true, "\(export)")
                    let document = try #require(export["dataValueSet"])
                    let values = document["dataValues"]?.arrayValue ?? []
                    #expect(!values.isEmpty)
                    for value in values {
                        for key in ["dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo"] {
                            #expect(
                                value[key]?.stringValue?.count == 11 || key == "period",
                                "\(key) in \(value.serialized)"
                            )
                        }
                        #expect(value["value"]?.stringValue != nil)
                    }
                    let path = folder + "/\(reporter).json"
                    try document.prettyPrinted.write(toFile: path, atomically: true, encoding: .utf8)
                    files.append((reporter, path, values.count))
                }
                let grouped = try await reporting.request([
                    "op": "totals", "group_by": grouping, "as_of_seq": .int(lastSeq),
                ])
                before = grouped["rows"]?.arrayValue ?? []
                #expect(!before.isEmpty)
                let refused = try await reporting.request(["op": "totals", "format": "dhis2", "group_by": ["country"]])
                #expect(refused.errorCode == "invalid_request")
                #expect(refused.detailPaths == ["group_by"])
                await intake.close()
                await reporting.close()
            }
            try await withServiceStack { stack in
                var lastSeq: Int64 = 0
                for file in files {
                    let first = try await Self.importDHIS2(file.path, reporter: file.reporter, stack: stack)
                    #expect(first.status == 0, "\(file.reporter): \(first.output)")
                    let summary = try JSONParser.parse(first.output)
                    #expect(summary["status"] == "SUCCESS")
                    #expect(summary["importCount"]?["imported"]?.int64Value == Int64(file.values))
                    for submission in summary["submissions"]?.arrayValue ?? [] {
                        lastSeq = max(lastSeq, submission["seq"]?.int64Value ?? 0)
                    }
                    // Again: nothing changes.
                    let again = try await Self.importDHIS2(file.path, reporter: file.reporter, stack: stack)
                    let second = try JSONParser.parse(again.output)
                    #expect(second["importCount"]?["imported"] == 0)
                    #expect(second["importCount"]?["ignored"]?.int64Value == Int64(file.values))
                }
                let reporting = try await stack.reportingClient()
                let grouped = try await reporting.request([
                    "op": "totals", "group_by": grouping, "min_seq": .int(lastSeq), "timeout_ms": 30_000,
                ])
                let after = grouped["rows"]?.arrayValue ?? []
                // The same totals; only how many submissions stand behind them differs.
                func withoutCounts(_ rows: [JSON]) -> Set<String> {
                    Set(
                        rows.map { row in
                            JSON.object((row.objectValue ?? []).filter { $0.0 != "submissions" }).serialized
                        }
                    )
                }
                #expect(after.count == before.count)
                #expect(withoutCounts(after) == withoutCounts(before))
                // What DHIS2 calls conflicts: listed by the file's index, the rest imported.
                let document = try JSONParser.parse(try String(contentsOfFile: files[0].path, encoding: .utf8))
                let first = try #require(document["dataValues"]?[0])
                var fresh = first.setting("period", to: "2019Q1")
                fresh = fresh.setting("value", to: "5")
                let crafted: JSON = [
                    "dataValues": [
                        fresh, fresh.setting("value", to: "6"), first.setting("dataElement", to: "Rxxxxxxxxxx"),
                        first.setting("period", to: "2019Q2").setting("deleted", to: true),
                    ]
                ]
                let craftedPath = folder + "/crafted.json"
                try crafted.serialized.write(toFile: craftedPath, atomically: true, encoding: .utf8)
                let mixed = try await Self.importDHIS2(craftedPath, reporter: files[0].reporter, stack: stack)
                #expect(mixed.status == 1)
                let report = try JSONParser.parse(mixed.output)
                #expect(report["status"] == "WARNING")
                #expect(report["importCount"]?["imported"] == 1)
                #expect(report["importCount"]?["ignored"] == 1)
                let conflicts = report["conflicts"]?.arrayValue ?? []
                #expect(conflicts.compactMap { $0["object"]?.stringValue } == ["dataValues[1]", "dataValues[2]"])
                #expect(conflicts.first?["value"]?.stringValue?.contains("repeats dataValues[0]") == true)
                #expect(conflicts.last?["value"]?.stringValue?.contains("Rxxxxxxxxxx") == true)

                // A file of another reporter's values imports nothing for this one.
                let other = try await Self.importDHIS2(files[0].path, reporter: "TREASURY", stack: stack)
                let skipped = try JSONParser.parse(other.output)
                #expect(skipped["importCount"]?["imported"] == 0)
                #expect(skipped["importCount"]?["ignored"]?.int64Value == Int64(files[0].values))
                await reporting.close()
            }
        }

        /// Validates `xml` against the IATI 2.03 activity schema with xmllint; its verdict.
        static func validateIATI(_ xml: String) async throws -> (valid: Bool, output: String) {
            let path = "/tmp/rootcauses-iati-\(getpid())-\(UUID().uuidString.prefix(8)).xml"
            try xml.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let schema = packageRoot + "/Tests/IntegrationTests/Fixtures/iati-2.03/iati-activities-schema.xsd"
            let result = try await Subprocess.run(
                .path(FilePath("/usr/bin/xmllint")),
                arguments: ["--noout", "--schema", schema, path],
                output: .string(limit: 1 << 20),
                error: .combinedWithOutput
            )
            return (result.terminationStatus.isSuccess, result.standardOutput)
        }

        @Test func iatiActivityFileOfOneReporterValidatesAgainstTheIATI203Schema() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let lastSeq = try await submitSample(through: intake)
                let export = try await reporting.request([
                    "op": "totals", "reporter": "USAID", "format": "iati", "min_seq": .int(lastSeq),
                    "timeout_ms": 30_000,
                ])
                try #require(export["ok"] == true, "\(export)")
                #expect(export["format"] == "iati")
                let xml = try #require(export["text"]?.stringValue)
                let verdict = try await Self.validateIATI(xml)
                #expect(verdict.valid, "\(verdict.output)")
                // One actual per total at IATI's granularity, each with its exact value.
                let rows =
                    try await reporting.request([
                        "op": "totals", "reporter": "USAID",
                        "group_by": ["indicator", "country", "period", "sex", "age"],
                        "as_of_seq": export["as_of_seq"] ?? .null,
                    ])["rows"]?.arrayValue ?? []
                #expect(!rows.isEmpty)
                #expect(xml.components(separatedBy: "<actual ").count - 1 == rows.count)
                for row in rows {
                    let value = try #require(row["value"]?.numberLiteral)
                    #expect(xml.contains(#"<actual value="\#(value)">"#))
                }
                #expect(xml.contains("<iati-identifier>US-ROOTCAUSES-USAID</iati-identifier>"))
                // The validation is not a formality: a file without its identifier fails it.
                let broken = xml.replacingOccurrences(
                    of: "  <iati-identifier>US-ROOTCAUSES-USAID</iati-identifier>\n",
                    with: ""
                )
                #expect(try await Self.validateIATI(broken).valid == false)
                // One reporter's file only.
                let two = try await reporting.request(["op": "totals", "reporter": ["USAID", "DOL"], "format": "iati"])
                #expect(two.errorCode == "invalid_request")
                #expect(two.detailPaths == ["reporter"])
                await intake.close()
                await reporting.close()
            }
        }
    }
}
