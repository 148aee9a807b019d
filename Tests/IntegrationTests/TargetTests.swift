import Foundation
import RootcausesJSON
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    /// Targets: set, corrected, refused, and measured against in `totals`.
    @Suite struct TargetTests {
        static func target(_ country: String, _ value: JSON, indicator: String = "jobs_created") -> JSON {
            [
                "op": "target", "reporter": "USAID", "indicator": .string(indicator), "country": .string(country),
                "fiscal_year": "FY2023", "value": value,
            ]
        }

        @Test func targetsAreSetCorrectedAndMeasuredAgainst() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let set = try await intake.expectOK(Self.target("HN", 2_000))
                #expect(set["status"] == "accepted")
                #expect(set["fiscal_year"] == "FY2023")
                #expect(set["replaced_value"] == nil)
                let again = try await intake.expectOK(Self.target("HN", 2_000))
                #expect(again["status"] == "duplicate")
                #expect(again["target_id"] == set["target_id"])
                _ = try await intake.expectOK(Self.target("GT", 500))

                // Refused: catalogue rules as for values, and a year that is not a fiscal year.
                let unknown = try await intake.request(Self.target("HN", 5, indicator: "no_such_indicator"))
                #expect(unknown.errorCode == "validation_failed")
                #expect(unknown.detailCodes == ["unknown_indicator"])
                let elsewhere = try await intake.request(Self.target("NI", 5))
                #expect(elsewhere.detailCodes == ["country_not_applicable"])
                let fractional = try await intake.request(Self.target("HN", .number("2.5")))
                #expect(fractional.detailCodes == ["not_whole"])
                #expect(fractional.detailPaths == ["value"])
                let negative = try await intake.request(Self.target("HN", -1))
                #expect(negative.detailCodes == ["negative"])
                let calendarYear = try await intake.request(Self.target("HN", 5).setting("fiscal_year", to: "2023"))
                #expect(calendarYear.errorCode == "invalid_request")
                #expect(calendarYear.detailPaths == ["fiscal_year"])

                for (id, period, country, amount) in [
                    ("t-1", "FY2023Q1", "HN", 600), ("t-2", "FY2023Q2", "HN", 400), ("t-3", "FY2023Q1", "GT", 100),
                    ("t-4", "FY2022Q4", "HN", 9_000),
                ] {
                    let body = submission(
                        id,
                        period: period,
                        values: [value("jobs_created", country, .int(Int64(amount)))]
                    )
                    _ = try await intake.expectOK(submitRequest(body))
                }
                let fiscal2023: JSON = [
                    "op": "totals", "indicator": "jobs_created", "reporter": "USAID", "period_from": "FY2023",
                    "period_to": "FY2023", "targets": true, "min_seq": 4,
                ]
                let byCountry = try await reporting.expectOK(fiscal2023.setting("group_by", to: ["country"]))
                let rows = try #require(byCountry["rows"]?.arrayValue)
                let honduras = try #require(rows.first { $0["country"] == "HN" })
                #expect(honduras["value"] == 1000)
                #expect(honduras["target"] == 2000)
                #expect(honduras["achieved"] == .number("0.5"))
                let guatemala = try #require(rows.first { $0["country"] == "GT" })
                #expect(guatemala["achieved"] == .number("0.2"))
                // Both targeted countries together; all countries (SV has no target): none.
                let two = try await reporting.expectOK(fiscal2023.setting("country", to: ["GT", "HN"]))
                #expect(two["rows"]?[0]?["target"] == 2500)
                #expect(two["rows"]?[0]?["achieved"] == .number("0.44"))
                // A country the indicator does not apply to holds nothing and asks no target.
                let withNicaragua = try await reporting.expectOK(fiscal2023.setting("country", to: ["HN", "NI"]))
                #expect(withNicaragua["rows"]?[0]?["target"] == 2000)
                let all = try await reporting.expectOK(fiscal2023)
                #expect(all["rows"]?[0]?["target"] == nil)
                // Not one fiscal year, or grouped by period: no target.
                let quarter = try await reporting.expectOK(
                    fiscal2023.setting("period_to", to: "FY2023Q1").setting("country", to: "HN")
                )
                #expect(quarter["rows"]?[0]?["target"] == nil)

                // A correction replaces the target; the share follows.
                let corrected = try await intake.expectOK(Self.target("HN", 4_000))
                #expect(corrected["status"] == "accepted")
                #expect(corrected["replaced_value"] == 2000)
                let after = try await reporting.expectOK(fiscal2023.setting("country", to: "HN"))
                #expect(after["rows"]?[0]?["target"] == 4000)
                #expect(after["rows"]?[0]?["achieved"] == .number("0.25"))
                await intake.close()
                await reporting.close()
            }
        }

        /// A fact sheet placeholder prints the share of an agency's target achieved.
        @Test func aFactSheetPrintsTheShareAchieved() async throws {
            // Not in the tests' shared folder: a stack stopping elsewhere may clear it.
            let template = FileManager.default.temporaryDirectory
                .appendingPathComponent("rootcauses-targets-template-\(UUID().uuidString).md").path
            defer { try? FileManager.default.removeItem(atPath: template) }
            try """
            # FACT SHEET: Targets

            **{{date}}**

            - **Jobs:** USAID reached {{jobs_created reporter=USAID country=HN achieved=FY2023}} of its FY2023 target for Honduras ({{jobs_created reporter=USAID country=HN}} jobs in all).
            """.write(toFile: template, atomically: true, encoding: .utf8)
            try await withServiceStack(environment: ["ROOTCAUSES_FACTSHEET_TEMPLATE": template]) { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                _ = try await intake.expectOK(Self.target("HN", 4_000))
                for (id, period, amount) in [
                    ("s-1", "FY2023Q1", 1_000), ("s-2", "FY2023Q2", 2_000), ("s-3", "FY2022Q4", 500),
                ] {
                    let body = submission(
                        id,
                        period: period,
                        values: [value("jobs_created", "HN", .int(Int64(amount)))]
                    )
                    _ = try await intake.expectOK(submitRequest(body))
                }
                // Dated in March 2023: FY2023's first two quarters have started, FY2022's last counts in all.
                let sheet = try await reporting.expectOK(["op": "factsheet", "date": "2023-03-15", "min_seq": 3])
                let text = try #require(sheet["text"]?.stringValue)
                #expect(
                    text.contains("USAID reached 75% of its FY2023 target for Honduras (nearly 4,000 jobs in all)."),
                    "\(text)"
                )
                let json = try await reporting.expectOK([
                    "op": "factsheet", "date": "2023-03-15", "min_seq": 3, "format": "json",
                ])
                let share = try #require(json["highlights"]?[0]?["numbers"]?[0])
                #expect(share["exact"] == 3000)
                #expect(share["target"] == 4000)
                #expect(share["text"] == "75%")
                await intake.close()
                await reporting.close()
            }
        }
    }
}
