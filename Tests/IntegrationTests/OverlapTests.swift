import RootcausesJSON
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    /// Totals of indicators whose reporters' figures may overlap carry bounds until deduplicated.
    @Suite struct OverlapTests {
        @Test func overlappingReportersGiveBoundsWhereTheyMeet() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let sent: [(String, String, String, String, Int64)] = [
                    ("o-1", "USAID", "firms_supported", "HN", 100), ("o-2", "STATE", "firms_supported", "HN", 60),
                    ("o-3", "USAID", "firms_supported", "GT", 10),
                    // treasury_sanctions cannot overlap: two reporters add up exactly.
                    ("o-4", "TREASURY", "treasury_sanctions", "GT", 3), ("o-5", "STATE", "treasury_sanctions", "GT", 2),
                ]
                for (id, reporter, indicator, country, amount) in sent {
                    let body = submission(
                        id,
                        reporter: reporter,
                        period: "FY2023Q1",
                        values: [value(indicator, country, .int(amount))]
                    )
                    _ = try await intake.expectOK(submitRequest(body))
                }
                func rows(_ request: JSON) async throws -> [JSON] {
                    try #require(try await reporting.expectOK(request.setting("min_seq", to: 5))["rows"]?.arrayValue)
                }
                // HN: USAID's 100 alone is proven, 160 if nobody was counted twice; GT is exact.
                let firms = try await rows(["op": "totals", "indicator": "firms_supported"])
                #expect(firms.count == 1)
                #expect(firms[0]["value"] == 170)
                #expect(firms[0]["lower"] == 110)
                #expect(firms[0]["upper"] == 170)
                let byCountry = try await rows([
                    "op": "totals", "indicator": "firms_supported", "group_by": ["country"],
                ])
                let honduras = try #require(byCountry.first { $0["country"] == "HN" })
                #expect(honduras["lower"] == 100)
                #expect(honduras["upper"] == 160)
                let guatemala = try #require(byCountry.first { $0["country"] == "GT" })
                #expect(guatemala["lower"] == nil)
                // By reporter, or for chosen reporters, each figure is a reporter's own: no bounds.
                for request: JSON in [
                    ["op": "totals", "indicator": "firms_supported", "group_by": ["reporter"]],
                    ["op": "totals", "indicator": "firms_supported", "reporter": ["USAID", "STATE"]],
                    ["op": "totals", "indicator": "treasury_sanctions"],
                ] {
                    for row in try await rows(request) { #expect(row["lower"] == nil, "\(request.serialized)") }
                }
                // Across indicators of one unit, the open point is counted in its row.
                let pillar = try await rows(["op": "totals", "pillar": "I", "group_by": ["pillar"]])
                let firmsRow = try #require(pillar.first { $0["unit"] == "firms" })
                #expect(firmsRow["lower"] == 110)
                // Before STATE reported, nothing overlapped.
                let before = try await reporting.expectOK([
                    "op": "totals", "indicator": "firms_supported", "as_of_seq": 1,
                ])
                #expect(before["rows"]?[0]?["lower"] == nil)
                await intake.close()
                await reporting.close()
            }
        }
    }
}
