import Foundation
import RootcausesJSON
import RootcausesProtocol
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    @Suite struct IntakeTests {
        @Test func acceptedThenDuplicateThenConflict() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let original = submission(
                    "dup-1",
                    period: "FY2023Q1",
                    values: [
                        value("jobs_created", "HN", 1250, sex: "female"),
                        value("jobs_created", "HN", 1100, sex: "male"),
                        value("msme_financing_usd", "HN", .number("2500000.50")),
                    ]
                )
                let first = try await intake.expectOK(submitRequest(original, id: "a"))
                #expect(first["status"] == "accepted")
                #expect(first["submission_id"] == "dup-1")
                #expect(first["values"] == 3)
                let seq = try #require(first["seq"]?.int64Value)

                // Same content, values in another order, numbers and period spelled differently.
                let reordered = submission(
                    "dup-1",
                    period: "2022Q4",
                    values: [
                        value("msme_financing_usd", "HN", .number("2500000.5")),
                        value("jobs_created", "HN", .number("1100.0"), sex: "male"),
                        value("jobs_created", "HN", 1250, sex: "female", estimate: false),
                    ]
                )
                let again = try await intake.expectOK(submitRequest(reordered, id: "b"))
                #expect(again["status"] == "duplicate")
                #expect(again["seq"] == .int(seq))

                // Same id, different content: conflict, and nothing changes.
                let changed = submission(
                    "dup-1",
                    period: "FY2023Q1",
                    values: [
                        value("jobs_created", "HN", 1251, sex: "female"),
                        value("jobs_created", "HN", 1100, sex: "male"),
                        value("msme_financing_usd", "HN", .number("2500000.50")),
                    ]
                )
                let conflict = try await intake.request(submitRequest(changed, id: "c"))
                #expect(conflict["ok"] == false)
                #expect(conflict.errorCode == "conflict")
                #expect(conflict["error"]?["details"]?[0]?["seq"] == .int(seq))

                // The same submission_id from another reporter is a different submission.
                let otherReporter = submission(
                    "dup-1",
                    reporter: "DFC",
                    period: "FY2023Q1",
                    values: [value("msme_financing_usd", "HN", 10)]
                )
                let other = try await intake.expectOK(submitRequest(otherReporter))
                #expect(other["status"] == "accepted")
                #expect(other["seq"] == .int(seq + 1))

                let reporting = try await stack.reportingClient()
                let totals = try await reporting.expectOK([
                    "op": "totals", "group_by": ["indicator"], "min_seq": .int(seq + 1), "country": "HN",
                ])
                let byIndicator = rowsByKey(totals, keys: ["indicator"])
                #expect(byIndicator == ["jobs_created": "2350", "msme_financing_usd": "2500010.5"])
                await intake.close()
                await reporting.close()
            }
        }

        @Test func oneBadValueAmongManyRejectsEverythingAndListsEveryProblem() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                // 30 distinct cells (3 countries x 2 sexes x 5 age bands), then four bad values.
                var values: [JSON] = (0..<30).map { i in
                    value(
                        "youth_education_reached",
                        ["SV", "GT", "HN"][i % 3],
                        .int(i + 1),
                        sex: ["female", "male"][(i / 3) % 2],
                        age: ["0-14", "15-19", "20-24", "25-29", "30+"][i / 6]
                    )
                }
                values.append(value("firms_supported", "HN", .number("12.5")))  // not whole
                values.append(value("police_trained", "MX", 10))  // country not applicable
                values.append(value("jobs_created", "GT", -4))  // negative
                values.append(value("no_such_indicator", "GT", 1))  // unknown indicator
                let bad = submission("bad-1", period: "FY2099Q1", values: values)
                let answer = try await intake.request(submitRequest(bad, id: 9))
                #expect(answer["id"] == 9)
                #expect(answer.errorCode == "validation_failed")
                #expect(
                    answer.detailCodes == [
                        "future_period", "not_whole", "country_not_applicable", "negative", "unknown_indicator",
                    ]
                )
                #expect(
                    answer.detailPaths == [
                        "period", "values[30].value", "values[31].country", "values[32].value", "values[33].indicator",
                    ]
                )

                // Nothing was stored: the good version is accepted as seq 1, and totals show only it.
                let good = submission("bad-1", period: "FY2022Q1", values: Array(values.prefix(30)))
                let accepted = try await intake.expectOK(submitRequest(good))
                #expect(accepted["seq"] == 1)
                let reporting = try await stack.reportingClient()
                let totals = try await reporting.expectOK(["op": "totals", "min_seq": 1])
                let expected = (0..<30).reduce(0) { $0 + $1 + 1 }
                #expect(totals["rows"]?[0]?["value"] == .int(expected))
                // One submission, counted once for each of the three countries it reports.
                #expect(totals["rows"]?[0]?["submissions"] == 3)
                await intake.close()
                await reporting.close()
            }
        }

        @Test func everyValidationRuleHasItsOwnCode() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let cases: [(JSON, [String], [String])] = [
                    (
                        submission("v1", reporter: "NASA", values: [value("firms_supported", "HN", 1)]),
                        ["unknown_reporter"], ["reporter"]
                    ),
                    (
                        submission("v2", values: [value("firms_supported", "XX", 1)]), ["unknown_country"],
                        ["values[0].country"]
                    ),
                    (
                        submission("v3", values: [value("jobs_created", "HN", 1, sex: "other")]),
                        ["unknown_dimension_value"], ["values[0].disaggregation.sex"]
                    ),
                    (
                        submission("v4", values: [value("firms_supported", "HN", 1, sex: "female")]),
                        ["unknown_dimension"], ["values[0].disaggregation.sex"]
                    ),
                    (
                        submission("v5", values: [value("msme_financing_usd", "HN", .number("1.005"))]),
                        ["too_many_decimals"], ["values[0].value"]
                    ),
                    // Beyond Decimal's 38 digits: still not a whole number.
                    (
                        submission(
                            "v5b",
                            values: [
                                value("firms_supported", "HN", .number("1.000000000000000000000000000000000000000001"))
                            ]
                        ), ["not_whole"], ["values[0].value"]
                    ),
                    (
                        submission("v5c", values: [value("firms_supported", "HN", .number("1e400"))]), ["out_of_range"],
                        ["values[0].value"]
                    ),
                    (
                        submission("v6", values: [value("firms_supported", "HN", .number("1e13"))]), ["out_of_range"],
                        ["values[0].value"]
                    ),
                    (
                        submission(
                            "v7",
                            values: [value("firms_supported", "HN", 1), value("firms_supported", "HN", 2)]
                        ), ["duplicate_value"], ["values[1]"]
                    ),
                    (
                        submission(
                            "v8",
                            values: [value("jobs_created", "HN", 3), value("jobs_created", "HN", 1, sex: "male")]
                        ), ["whole_and_parts"], ["values[1]"]
                    ),
                    (
                        submission(
                            "v9",
                            values: [
                                value("jobs_created", "HN", 3, sex: "female"),
                                value("jobs_created", "HN", 1, age: "30+"),
                            ]
                        ), ["mixed_dimensions"], ["values[1]"]
                    ),
                    (
                        submission("v10", period: "2023Q5", values: [value("firms_supported", "HN", 1)]),
                        ["invalid_period"], ["period"]
                    ),
                    (submission("v11", values: []), ["no_values"], ["values"]),
                    (
                        submission("", values: [value("firms_supported", "HN", 1)]), ["invalid_submission_id"],
                        ["submission_id"]
                    ),
                ]
                for (body, codes, paths) in cases {
                    let answer = try await intake.request(submitRequest(body))
                    #expect(answer.errorCode == "validation_failed", "\(body.serialized)")
                    #expect(answer.detailCodes == codes, "\(body.serialized)")
                    #expect(answer.detailPaths == paths, "\(body.serialized)")
                }
                let tooMany = submission("v12", values: (0..<10_001).map { _ in value("firms_supported", "HN", 1) })
                let many = try await intake.request(submitRequest(tooMany))
                #expect(many.detailCodes.first == "too_many_values")

                let malformed: [(JSON, [String])] = [
                    (["op": "submit"], ["submission"]),
                    (["op": "submit", "submission": "x"], ["submission"]),
                    (
                        [
                            "op": "submit",
                            "submission": ["reporter": 3, "period": "2022", "submission_id": "m", "values": "none"],
                        ],
                        ["submission.reporter", "submission.values"]
                    ),
                    (
                        submitRequest(
                            submission(
                                "m2",
                                values: [["indicator": "firms_supported", "country": "HN", "value": "12"]]
                            )
                        ),
                        ["submission.values[0].value"]
                    ),
                    (
                        submitRequest(
                            submission(
                                "m3",
                                values: [value("jobs_created", "HN", 1).setting("disaggregation", to: "female")]
                            )
                        ),
                        ["submission.values[0].disaggregation"]
                    ),
                    (
                        submitRequest(
                            submission("m4", values: [value("firms_supported", "HN", 1).setting("estimate", to: "yes")])
                        ),
                        ["submission.values[0].estimate"]
                    ),
                    (
                        submitRequest(submission("m5", values: [value("firms_supported", "HN", 1)])).setting(
                            "dry_run",
                            to: "no"
                        ), ["dry_run"]
                    ),
                    // Every problem of the request at once.
                    (
                        ["op": "submit", "dry_run": "yes", "submission": ["reporter": 5]],
                        [
                            "dry_run", "submission.submission_id", "submission.reporter", "submission.period",
                            "submission.values",
                        ]
                    ),
                ]
                for (request, paths) in malformed {
                    let answer = try await intake.request(request)
                    #expect(answer.errorCode == "invalid_request", "\(request.serialized)")
                    #expect(answer.detailPaths == paths, "\(request.serialized)")
                }
                // None of that stored anything.
                let aggregation = try await stack.aggregationClient()
                let status = try await aggregation.expectOK(["op": "status"])
                #expect(status["latest_seq"] == 0)
                await intake.close()
                await aggregation.close()
            }
        }

        @Test func dryRunValidatesWithoutStoring() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let body = submission("dry-1", values: [value("firms_supported", "GT", 5)])
                let dry = try await intake.expectOK(submitRequest(body, dryRun: true))
                #expect(dry["status"] == "valid")
                #expect(dry["seq"] == nil)
                let real = try await intake.expectOK(submitRequest(body))
                #expect(real["status"] == "accepted")
                #expect(real["seq"] == 1)
                let dryAgain = try await intake.expectOK(submitRequest(body, dryRun: true))
                #expect(dryAgain["status"] == "duplicate")
                #expect(dryAgain["seq"] == 1)
                await intake.close()
            }
        }

        @Test func aClientThatDisconnectsMidwayLosesNothingAndHalfStoresNothing() async throws {
            try await withServiceStack { stack in
                // 1. Half a line, then gone: nothing stored.
                let partial = submitRequest(submission("cut-1", values: [value("firms_supported", "SV", 7)])).serialized
                let first = try await stack.intakeClient()
                try await first.write(raw: Array(partial.utf8.prefix(partial.utf8.count / 2)))
                await first.close()

                // 2. A whole submission, then gone before reading the answer: it is stored once;
                //    the retry answers duplicate with the same seq.
                let whole = submitRequest(submission("cut-2", values: [value("firms_supported", "SV", 11)]))
                let second = try await stack.intakeClient()
                try await second.write(raw: Array((whole.serialized + "\n").utf8))
                await second.close()

                let third = try await stack.intakeClient()
                var retry = try await third.expectOK(whole)
                // The first copy may still be committing when the retry arrives; either way it counts once.
                #expect(["accepted", "duplicate"].contains(retry["status"]?.stringValue ?? ""))
                retry = try await third.expectOK(whole)
                #expect(retry["status"] == "duplicate")
                let seq = try #require(retry["seq"]?.int64Value)
                #expect(seq == 1)
                // cut-1 was never stored: it is new now.
                let cut1 = try await third.expectOK(
                    submitRequest(submission("cut-1", values: [value("firms_supported", "SV", 7)]))
                )
                #expect(cut1["status"] == "accepted")
                #expect(cut1["seq"] == 2)

                let reporting = try await stack.reportingClient()
                let totals = try await reporting.expectOK([
                    "op": "totals", "indicator": "firms_supported", "min_seq": 2,
                ])
                #expect(totals["rows"]?[0]?["value"] == 18)
                #expect(totals["rows"]?[0]?["submissions"] == 2)
                await third.close()
                await reporting.close()
            }
        }

        @Test func concurrentClientsGetGapFreeSeqs() async throws {
            try await withServiceStack { stack in
                let seqs = try await withThrowingTaskGroup(of: [Int64].self) { group in
                    for client in 0..<8 {
                        group.addTask {
                            let intake = try await stack.intakeClient()
                            var seqs: [Int64] = []
                            for i in 0..<25 {
                                let body = submission(
                                    "c\(client)-\(i)",
                                    reporter: "DFC",
                                    values: [value("msme_financing_usd", ["SV", "GT", "HN"][i % 3], .int(1000 + i))]
                                )
                                let answer = try await intake.expectOK(submitRequest(body))
                                seqs.append(try #require(answer["seq"]?.int64Value))
                            }
                            await intake.close()
                            return seqs
                        }
                    }
                    return try await group.reduce(into: [Int64]()) { $0 += $1 }
                }
                #expect(seqs.sorted() == Array(1...200))
                let reporting = try await stack.reportingClient()
                let totals = try await reporting.expectOK(["op": "totals", "min_seq": 200])
                let expected = 8 * (0..<25).reduce(0) { $0 + 1000 + $1 }
                #expect(totals["rows"]?[0]?["value"] == .int(expected))
                #expect(totals["rows"]?[0]?["submissions"] == 200)
                await reporting.close()
            }
        }
    }
}

extension Integration.IntakeTests {
    @Test func aNulCharacterCannotHideTheRestOfASubmission() async throws {
        try await withServiceStack { stack in
            let intake = try await stack.intakeClient()
            let sneaky = submission("nul-1", activity: "a\u{0}b", values: [value("firms_supported", "HN", 100)])
            let answer = try await intake.request(submitRequest(sneaky))
            #expect(answer.errorCode == "validation_failed")
            #expect(answer.detailCodes == ["invalid_activity"])
            await intake.close()
        }
    }

    @Test func largeAnswersArriveWholeBeforeAHalfCloseEndsTheConnection() async throws {
        try await withServiceStack { stack in
            let intake = try await stack.intakeClient()
            _ = try await intake.pipeline(try sampleSubmissions().map { submitRequest($0) })
            let reporting = try await stack.reportingClient()
            // Several large answers (about 30 KB each), then the client stops sending.
            let request = JSON.object([
                ("op", "factsheet"), ("format", "json"), ("date", "2023-02-06"), ("min_seq", 269),
            ]).serialized
            let pending = reporting.expectAnswers(20)
            try await reporting.write(raw: Array(String(repeating: request + "\n", count: 20).utf8))
            try await reporting.shutdownOutput()
            for line in try await pending.lines() {
                let answer = try JSONParser.parse(line)
                #expect(answer["highlights"]?.arrayValue?.count == 20)
            }
            await reporting.close()
            await intake.close()
        }
    }
}

extension Integration.IntakeTests {
    @Test func theSameSubmissionFromManyConnectionsAtOnceIsStoredOnce() async throws {
        try await withServiceStack { stack in
            let same = submission("race-1", values: [value("firms_supported", "GT", 9)])
            let answers = try await withThrowingTaskGroup(of: JSON.self) { group in
                for i in 0..<12 {
                    group.addTask {
                        let intake = try await stack.intakeClient()
                        // Half send the same content, half a different one under the same id.
                        let body =
                            i % 2 == 0
                            ? same : submission("race-1", values: [value("firms_supported", "GT", .int(10 + i))])
                        let answer = try await intake.request(submitRequest(body))
                        await intake.close()
                        return answer
                    }
                }
                return try await group.reduce(into: [JSON]()) { $0.append($1) }
            }
            let accepted = answers.filter { $0["status"] == "accepted" }
            #expect(accepted.count == 1)
            let seq = try #require(accepted.first?["seq"]?.int64Value)
            #expect(seq == 1)
            // Everyone else learns about the one stored copy: duplicate if same content, conflict if not.
            for answer in answers where answer["status"] != "accepted" {
                let isDuplicate = answer["status"] == "duplicate" && answer["seq"] == .int(seq)
                let isConflict = answer.errorCode == "conflict" && answer["error"]?["details"]?[0]?["seq"] == .int(seq)
                #expect(isDuplicate || isConflict, "\(answer.serialized)")
            }
            let aggregation = try await stack.aggregationClient()
            #expect(try await aggregation.expectOK(["op": "status"])["latest_seq"] == 1)
            await aggregation.close()
        }
    }
}
