import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesProtocol
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    @Suite struct ReportingTests {
        /// Three reporters, two countries, fiscal and calendar periods, a `latest` indicator.
        static let submissions: [JSON] = [
            submission(
                "r1",
                reporter: "USAID",
                period: "FY2022Q1",
                values: [
                    value("jobs_created", "HN", 100, sex: "female"), value("jobs_created", "HN", 50, sex: "male"),
                    value("jobs_created", "GT", 70),
                    value("cta_usd_committed", "HN", 1000),
                ]
            ),
            submission(
                "r2",
                reporter: "USAID",
                period: "2022Q1",
                values: [  // = FY2022Q2
                    value("jobs_created", "HN", 30), value("cta_usd_committed", "HN", 1500, estimate: true),
                ]
            ),
            submission(
                "r3",
                reporter: "DFC",
                period: "2021-12",
                values: [  // inside FY2022Q1
                    value("msme_financing_usd", "GT", .number("99.99"))
                ]
            ),
            submission(
                "r4",
                reporter: "USAID",
                period: "FY2022Q3",
                values: [
                    value("police_trained", "GT", 12, sex: "female")
                ]
            ),
        ]

        static func load(_ stack: ServiceStack) async throws -> Int64 {
            let intake = try await stack.intakeClient()
            var last: Int64 = 0
            for body in submissions {
                last = try #require(try await intake.expectOK(submitRequest(body))["seq"]?.int64Value)
            }
            await intake.close()
            return last
        }

        @Test func totalsByEveryDimensionWithLatestNeverSummedOverTime() async throws {
            try await withServiceStack { stack in
                let last = try await Self.load(stack)
                let reporting = try await stack.reportingClient()

                let byIndicator = try await reporting.expectOK([
                    "op": "totals", "group_by": ["indicator"], "min_seq": .int(last),
                ])
                #expect(byIndicator["applied_seq"] == .int(last))
                #expect(
                    rowsByKey(byIndicator, keys: ["indicator"]) == [
                        "jobs_created": "250", "cta_usd_committed": "1500",  // latest period only, not 2500
                        "msme_financing_usd": "99.99", "police_trained": "12",
                    ]
                )
                let cta = byIndicator["rows"]?.arrayValue?.first { $0["indicator"] == "cta_usd_committed" }
                #expect(cta?["estimate"] == true)
                #expect(cta?["unit"] == "USD")
                #expect(cta?["submissions"] == 1)

                let byCountry = try await reporting.expectOK([
                    "op": "totals", "indicator": "jobs_created", "group_by": ["country"],
                ])
                #expect(rowsByKey(byCountry, keys: ["country"]) == ["GT": "70", "HN": "180"])

                let byPeriod = try await reporting.expectOK([
                    "op": "totals", "indicator": ["jobs_created", "cta_usd_committed"],
                    "group_by": ["indicator", "period"],
                ])
                #expect(
                    rowsByKey(byPeriod, keys: ["indicator", "period"]) == [
                        "jobs_created|2021Q4": "220", "jobs_created|2022Q1": "30",
                        "cta_usd_committed|2021Q4": "1000", "cta_usd_committed|2022Q1": "1500",
                    ]
                )
                let firstRow = try #require(byPeriod["rows"]?[0])
                #expect(firstRow["period_start"] != nil && firstRow["period_end"] != nil)

                let byReporter = try await reporting.expectOK([
                    "op": "totals", "group_by": ["reporter"], "indicator": ["msme_financing_usd", "jobs_created"],
                ])
                #expect(rowsByKey(byReporter, keys: ["reporter"]) == ["DFC": "99.99", "USAID": "250"])

                let byPillar = try await reporting.expectOK([
                    "op": "totals", "group_by": ["pillar"], "pillar": ["IV", "I"],
                    "indicator": ["police_trained", "jobs_created"],
                ])
                #expect(rowsByKey(byPillar, keys: ["pillar"]) == ["I": "250", "IV": "12"])

                // FY2022Q1 is 2021Q4: both spellings select the same quarter; the month inside it counts.
                let quarter = try await reporting.expectOK([
                    "op": "totals", "period_from": "FY2022Q1", "period_to": "2021Q4", "group_by": ["indicator"],
                ])
                #expect(
                    rowsByKey(quarter, keys: ["indicator"]) == [
                        "jobs_created": "220", "cta_usd_committed": "1000", "msme_financing_usd": "99.99",
                    ]
                )

                // Different units are never added up: jobs and people come as separate rows.
                let countryFilter = try await reporting.expectOK(["op": "totals", "country": "GT", "reporter": "USAID"])
                #expect(rowsByKey(countryFilter, keys: ["unit"]) == ["jobs": "70", "people": "12"])
                let mixed = try await reporting.expectOK(["op": "totals", "group_by": ["pillar"], "pillar": "I"])
                #expect(rowsByKey(mixed, keys: ["pillar", "unit"]) == ["I|jobs": "250", "I|USD": "1599.99"])

                let nothing = try await reporting.expectOK(["op": "totals", "country": "NI"])
                #expect(nothing["rows"] == .array([]))
                await reporting.close()
            }
        }

        @Test func badQueriesAreRejectedWithPaths() async throws {
            try await withServiceStack { stack in
                let reporting = try await stack.reportingClient()
                let cases: [(JSON, [String])] = [
                    (["op": "totals", "indicator": ["jobs_created", "nope"]], ["indicator[1]"]),
                    (["op": "totals", "country": 5], ["country"]),
                    (["op": "totals", "period_from": "2023Q9"], ["period_from"]),
                    (["op": "totals", "group_by": ["indicator", "planet"]], ["group_by[1]"]),
                    (["op": "totals", "group_by": "indicator"], ["group_by"]),
                    (["op": "totals", "pillar": "VI", "reporter": "NASA"], ["reporter[0]", "pillar[0]"]),
                    (["op": "totals", "min_seq": "3"], ["min_seq"]),
                    (
                        ["op": "totals", "min_seq": -1, "timeout_ms": 60_001, "indicator": "nope"],
                        ["min_seq", "timeout_ms", "indicator[0]"]
                    ),
                    (["op": "factsheet", "timeout_ms": 999_999], ["timeout_ms"]),
                    (["op": "factsheet", "format": "pdf", "date": "2023-02-30"], ["format", "date"]),
                ]
                for (request, paths) in cases {
                    let answer = try await reporting.request(request)
                    #expect(answer.errorCode == "invalid_request", "\(request.serialized)")
                    #expect(answer.detailPaths == paths, "\(request.serialized)")
                }
                await reporting.close()
            }
        }

        @Test func readsWaitForMinSeqOrAnswerNotReady() async throws {
            try await withServiceStack { stack in
                let reporting = try await stack.reportingClient()
                let started = ContinuousClock.now
                let answer = try await reporting.request(["op": "totals", "min_seq": 5, "timeout_ms": 300, "id": "w"])
                #expect(answer.errorCode == "not_ready")
                #expect(answer["id"] == "w")
                #expect(answer["error"]?["details"]?[0]?["min_seq"] == 5)
                #expect(answer["error"]?["details"]?[0]?["applied_seq"] == 0)
                #expect(ContinuousClock.now - started >= .milliseconds(300))

                // A read waiting for a seq that arrives while it waits answers as soon as it is applied.
                let pending = Task {
                    try await reporting.request(["op": "totals", "min_seq": 1, "timeout_ms": 20_000])
                }
                try await Task.sleep(for: .milliseconds(200))
                let intake = try await stack.intakeClient()
                _ = try await intake.expectOK(
                    submitRequest(submission("late", values: [value("firms_supported", "GT", 42)]))
                )
                let read = try await pending.value
                #expect(read["ok"] == true)
                #expect(read["rows"]?[0]?["value"] == 42)
                await intake.close()
                await reporting.close()
            }
        }

        @Test func indicatorsListsTheCatalogue() async throws {
            try await withServiceStack { stack in
                let reporting = try await stack.reportingClient()
                let answer = try await reporting.expectOK(["op": "indicators"])
                let indicators = try #require(answer["indicators"]?.arrayValue)
                #expect(indicators.count >= 30)
                let jobs = try #require(indicators.first { $0["code"] == "jobs_created" })
                #expect(jobs["unit"] == "jobs")
                #expect(jobs["pillar"] == "I")
                #expect(jobs["time_aggregation"] == "sum")
                #expect(jobs["dimensions"] == ["sex", "age"])
                #expect(answer["pillars"]?["V"] != nil)
                #expect(answer["countries"]?["HN"] == "Honduras")
                #expect(answer["reporters"]?["USAID"] != nil)
                #expect(answer["dimensions"]?["sex"] == ["female", "male"])
                await reporting.close()
            }
        }
    }
}

extension Integration.ReportingTests {
    @Test func answersArePinnedToASeqAndReproducibleLater() async throws {
        try await withServiceStack { stack in
            let intake = try await stack.intakeClient()
            let reporting = try await stack.reportingClient()
            _ = try await intake.expectOK(
                submitRequest(submission("pin-1", values: [value("firms_supported", "HN", 100)]))
            )
            let first = try await reporting.expectOK(["op": "totals", "indicator": "firms_supported", "min_seq": 1])
            #expect(first["as_of_seq"] == 1)
            let sheetBefore = try await reporting.expectOK(["op": "factsheet", "format": "json", "date": "2023-02-06"])
            #expect(sheetBefore["as_of_seq"] == 1)

            _ = try await intake.expectOK(
                submitRequest(submission("pin-2", values: [value("firms_supported", "HN", 50)]))
            )
            let now = try await reporting.expectOK(["op": "totals", "indicator": "firms_supported", "min_seq": 2])
            #expect(now["rows"]?[0]?["value"] == 150)
            #expect(now["as_of_seq"] == 2)
            // The earlier answer, exactly, from its as_of_seq.
            let again = try await reporting.expectOK(["op": "totals", "indicator": "firms_supported", "as_of_seq": 1])
            #expect(again["rows"] == first["rows"])
            let sheetAgain = try await reporting.expectOK([
                "op": "factsheet", "format": "json", "date": "2023-02-06", "as_of_seq": 1,
            ])
            #expect(sheetAgain["highlights"] == sheetBefore["highlights"])
            // A seq not yet applied waits, like min_seq.
            let future = try await reporting.request(["op": "totals", "as_of_seq": 99, "timeout_ms": 100])
            #expect(future.errorCode == "not_ready")
            let bad = try await reporting.request(["op": "totals", "as_of_seq": -3])
            #expect(bad.detailPaths == ["as_of_seq"])
            await intake.close()
            await reporting.close()
        }
    }
}
