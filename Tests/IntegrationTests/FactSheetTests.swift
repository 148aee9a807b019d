import Foundation
import RootcausesJSON
import RootcausesProtocol
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    @Suite struct FactSheetTests {
        /// The seed's highlight bullets, "Heading: text" with whitespace and emphasis normalised.
        static func seedBullets() throws -> [String] {
            let text = try String(
                contentsOfFile: packageRoot + "/Tests/IntegrationTests/Fixtures/root-causes-fact-sheet-2023-02-06.md",
                encoding: .utf8
            )
            var bullets: [String] = []
            var current: String?
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("-   ") || trimmed.hasPrefix("- ") {
                    if let current { bullets.append(current) }
                    current = String(trimmed.dropFirst(2))
                } else if trimmed.isEmpty || trimmed.hasPrefix("<!--") {
                    if let done = current {
                        bullets.append(done)
                        current = nil
                    }
                } else if current != nil {
                    current! += " " + trimmed
                }
            }
            if let current { bullets.append(current) }
            return bullets.map(normalise)
        }

        static func normalise(_ text: String) -> String {
            text.replacingOccurrences(of: "**", with: "").replacingOccurrences(of: "\u{00A0}", with: " ")
                .split(whereSeparator: \.isWhitespace).joined(separator: " ")
        }

        @Test func theSampleDataReproducesEverySeedPhrase() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let answers = try await intake.pipeline(try sampleSubmissions().map { submitRequest($0) })
                #expect(answers.allSatisfy { $0["status"] == "accepted" })
                let submitted = try #require(answers.last?["seq"]?.int64Value)
                let reporting = try await stack.reportingClient()

                // DFC and USAID both report financing, USDA and USAID leveraged funds: until an
                // analyst says how much they overlap, the sums are stated as upper bounds.
                let open = try await reporting.expectOK([
                    "op": "factsheet", "format": "json", "date": "2023-02-06", "min_seq": .int(submitted),
                ])
                let openFinancing = try #require(open["highlights"]?[0]?["numbers"]?[2])
                #expect(openFinancing["text"] == "as many as $179 million")
                #expect(openFinancing["upper"] == 179_000_000)
                #expect(openFinancing["lower"]?.int64Value.map { $0 < 179_000_000 } == true)
                let openAgriculture = try #require(
                    open["highlights"]?.arrayValue?.first { $0["heading"] == "Assisting Agricultural Workers" }?[
                        "numbers"
                    ]?[0]
                )
                #expect(openAgriculture["text"] == "up to an estimated $190 million")  // rounded up: a bound

                // The sample's history: a mistaken submission retracted, two corrections of how a
                // submission was described, targets, and adjustments that find no overlap (method
                // sum): the seed's figures stand.
                let history = try await intake.pipeline(try sampleHistory())
                #expect(
                    history.map { $0["status"]?.stringValue ?? "" }
                        == ["accepted", "retracted", "accepted", "accepted"] + Array(repeating: "accepted", count: 16),
                    "\(history.map(\.serialized))"
                )
                #expect(history[2]["replaced_seq"] != nil)
                let seqs = history.compactMap { $0["seq"]?.int64Value }
                let last = try #require(seqs.max())

                let markdown = try await reporting.expectOK([
                    "op": "factsheet", "date": "2023-02-06", "min_seq": .int(last),
                ])
                let text = try #require(markdown["text"]?.stringValue)
                #expect(
                    text.hasPrefix(
                        "# FACT SHEET: Update on the U.S. Strategy for Addressing the Root Causes of Migration in Central America\n\n**February 2023**\n\n"
                    )
                )
                #expect(text.contains("Highlights to date include:"))
                let rendered = text.split(separator: "\n").filter { $0.hasPrefix("- ") }.map {
                    Self.normalise(String($0.dropFirst(2)))
                }
                let seed = try Self.seedBullets()
                #expect(rendered.count == seed.count)
                for (mine, theirs) in zip(rendered, seed) {
                    #expect(mine == theirs)
                }

                let json = try await reporting.expectOK(["op": "factsheet", "format": "json", "date": "2023-02-06"])
                #expect(json["format"] == "json")
                #expect(json["date"] == "2023-02-06")
                let highlights = try #require(json["highlights"]?.arrayValue)
                #expect(highlights.count == 20)
                let opportunity = try #require(highlights.first)
                #expect(opportunity["heading"] == "Creating Opportunities")
                let firms = try #require(opportunity["numbers"]?[0])
                #expect(firms["indicator"] == "firms_supported")
                #expect(firms["rounded"] == 8000)
                #expect(firms["qualifier"] == "nearly")
                #expect(firms["text"] == "nearly 8,000")
                let exactFirms = try #require(firms["exact"]?.int64Value)
                #expect((7500..<8000).contains(exactFirms))
                // Traceability: the number and its submission count follow from the sample
                // submissions (a submission counts once per country it reports).
                let sample = try sampleSubmissions()
                var traced: Int64 = 0
                var behind = 0
                for submission in sample {
                    let firmsValues = (submission["values"]?.arrayValue ?? []).filter {
                        $0["indicator"] == "firms_supported"
                    }
                    traced += firmsValues.reduce(0) { $0 + ($1["value"]?.int64Value ?? 0) }
                    behind += Set(firmsValues.compactMap { $0["country"]?.stringValue }).count
                }
                #expect(firms["submission_count"]?.int64Value == Int64(behind))
                #expect(behind > 0)
                #expect(traced == exactFirms)
                let financing = try #require(opportunity["numbers"]?[2])
                #expect(financing["exact"] == 179_000_000)
                #expect(financing["qualifier"] == .null)
                let agriculture = try #require(
                    highlights.first { $0["heading"] == "Assisting Agricultural Workers" }?["numbers"]?[0]
                )
                #expect(agriculture["qualifier"] == "an estimated")
                #expect(agriculture["estimate"] == true)

                // An earlier date sees only the periods that had started by then.
                let early = try await reporting.expectOK(["op": "factsheet", "format": "json", "date": "2021-06-30"])
                let earlyFirms = early["highlights"]?[0]?["numbers"]?[0]
                #expect(earlyFirms?["exact"] == 0)
                await intake.close()
                await reporting.close()
            }
        }
    }
}
