import Foundation
import RootcausesJSON
import RootcausesTesting
import Testing

extension Integration {
    /// Totals as a sheet: `format: csv` gives the same rows as the JSON answer, exactly.
    @Suite struct ExportTests {
        @Test func totalsAsCSVParseBackToTheSameNumbers() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                var lastSeq: Int64 = 0
                for line in try sampleSubmissions() {
                    let answer = try await intake.request(["op": "submit", "submission": line])
                    lastSeq = max(lastSeq, answer["seq"]?.int64Value ?? 0)
                }
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
    }
}
