import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesProtocol
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    /// Corrections (replace, retract, history), `latest` supersession and disaggregated totals,
    /// through the real services.
    @Suite struct CorrectionTests {
        /// The single totals row of `indicator` as of `asOf` (or after `minSeq`), `nil` when there is no data.
        static func total(
            _ reporting: ProtocolClient,
            _ indicator: String,
            minSeq: Int64? = nil,
            asOf: Int64? = nil,
            extra: [(String, JSON)] = []
        ) async throws -> JSON? {
            var request: [(String, JSON)] = [("op", "totals"), ("indicator", .string(indicator))]
            if let minSeq { request.append(("min_seq", .int(minSeq))) }
            if let asOf { request.append(("as_of_seq", .int(asOf))) }
            let answer = try await reporting.expectOK(.object(request + extra))
            let rows = try #require(answer["rows"]?.arrayValue)
            #expect(rows.count <= 1)
            return rows.first
        }

        /// Submits `body` through `intake` and returns its seq.
        static func submit(to intake: ProtocolClient, _ body: JSON) async throws -> Int64 {
            try #require(try await intake.expectOK(submitRequest(body))["seq"]?.int64Value)
        }

        @Test func replaceRetractConflictsRetriesAndHistory() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let original = submission("jobs-1", values: [value("jobs_created", "HN", 100)])
                #expect(try await intake.expectOK(submitRequest(original))["seq"] == 1)
                #expect(try await Self.total(reporting, "jobs_created", minSeq: 1)?["value"] == 100)

                // Replace: the answer names the seq it replaced; the totals hold the new values only.
                let fixed = submission("jobs-1-fix", values: [value("jobs_created", "HN", 80)])
                    .setting("replaces", to: "jobs-1")
                let replaced = try await intake.expectOK(submitRequest(fixed))
                #expect(replaced["status"] == "accepted")
                #expect(replaced["seq"] == 2)
                #expect(replaced["replaced_seq"] == 1)
                let afterFix = try #require(try await Self.total(reporting, "jobs_created", minSeq: 2))
                #expect(afterFix["value"] == 80)
                #expect(afterFix["submissions"] == 1)

                // A retry is a duplicate with the same answer; the same id with other content conflicts.
                let retry = try await intake.expectOK(submitRequest(fixed))
                #expect(retry["status"] == "duplicate")
                #expect(retry["seq"] == 2)
                #expect(retry["replaced_seq"] == 1)
                let otherContent = submission("jobs-1-fix", values: [value("jobs_created", "HN", 81)])
                    .setting("replaces", to: "jobs-1")
                #expect(try await intake.request(submitRequest(otherContent)).errorCode == "conflict")

                // A chain, never a fork: correcting the replaced version names the head.
                let fork = submission("jobs-1-fork", values: [value("jobs_created", "HN", 70)])
                    .setting("replaces", to: "jobs-1")
                let forked = try await intake.request(submitRequest(fork))
                #expect(forked.errorCode == "conflict")
                let forkDetails = forked["error"]?["details"]?[0]
                #expect(forkDetails?["submission_id"] == "jobs-1")
                #expect(forkDetails?["head_submission_id"] == "jobs-1-fix")
                #expect(forkDetails?["head_seq"] == 2)
                #expect(forkDetails?["head_status"] == "current")

                // Corrections of something that does not exist are named, and change nothing.
                let orphan = submission("jobs-2", values: [value("jobs_created", "HN", 5)])
                    .setting("replaces", to: "no-such-id")
                let orphaned = try await intake.request(submitRequest(orphan))
                #expect(orphaned.errorCode == "validation_failed")
                #expect(orphaned.detailPaths == ["submission.replaces"])
                #expect(orphaned.detailCodes == ["unknown_submission"])
                let unknownRetraction = try await intake.request([
                    "op": "retract", "reporter": "USAID", "submission_id": "no-such-id", "reason": "typo",
                ])
                #expect(unknownRetraction.detailCodes == ["unknown_submission"])
                let noReason = try await intake.request([
                    "op": "retract", "reporter": "USAID", "submission_id": "jobs-1-fix", "reason": " ",
                ])
                #expect(noReason.errorCode == "invalid_request")
                #expect(noReason.detailPaths == ["reason"])

                // Retract: the value leaves the totals; retracting again is a duplicate of the same seq.
                let retract: JSON = [
                    "op": "retract", "reporter": "USAID", "submission_id": "jobs-1-fix", "reason": "counted twice",
                ]
                let retracted = try await intake.expectOK(retract)
                #expect(retracted["status"] == "retracted")
                #expect(retracted["seq"] == 3)
                #expect(retracted["retracted_seq"] == 2)
                #expect(try await Self.total(reporting, "jobs_created", minSeq: 3) == nil)
                let again = try await intake.expectOK(retract)
                #expect(again["status"] == "duplicate")
                #expect(again["seq"] == 3)
                #expect(again["retracted_seq"] == 2)

                // Past the head's retraction, both older versions are closed to corrections.
                let late = try await intake.request([
                    "op": "retract", "reporter": "USAID", "submission_id": "jobs-1", "reason": "late",
                ])
                #expect(late.errorCode == "conflict")
                #expect(late["error"]?["details"]?[0]?["head_status"] == "retracted")
                #expect(late["error"]?["details"]?[0]?["head_seq"] == 3)
                let afterRetraction = submission("jobs-1-again", values: [value("jobs_created", "HN", 1)])
                    .setting("replaces", to: "jobs-1-fix")
                #expect(try await intake.request(submitRequest(afterRetraction)).errorCode == "conflict")

                // as_of_seq keeps its promise: each seq gives the numbers of its time, exactly.
                #expect(try await Self.total(reporting, "jobs_created", asOf: 1)?["value"] == 100)
                #expect(try await Self.total(reporting, "jobs_created", asOf: 2)?["value"] == 80)
                #expect(try await Self.total(reporting, "jobs_created", asOf: 3) == nil)

                // The whole chain, from either end, every version with its values.
                for id in ["jobs-1", "jobs-1-fix"] {
                    let history = try await reporting.expectOK([
                        "op": "history", "reporter": "USAID", "submission_id": .string(id),
                    ])
                    let versions = try #require(history["versions"]?.arrayValue)
                    #expect(versions.map { $0["seq"] } == [1, 2])
                    #expect(versions.map { $0["status"] } == ["replaced", "retracted"])
                    #expect(versions[0]["replaced_by_seq"] == 2)
                    #expect(versions[1]["retracted_seq"] == 3)
                    #expect(versions[1]["reason"] == "counted twice")
                    #expect(versions[0]["values"]?[0]?["value"] == 100)
                    #expect(versions[1]["values"]?[0]?["value"] == 80)
                    #expect(versions[0]["received_at"]?.stringValue?.hasSuffix("Z") == true)
                }
                let unknownHistory = try await reporting.request([
                    "op": "history", "reporter": "USAID", "submission_id": "never-sent",
                ])
                #expect(unknownHistory.detailCodes == ["unknown_submission"])
                await intake.close()
                await reporting.close()
            }
        }

        /// `as_of` a time reads what was known then: the newest seq numbered by then.
        @Test func readsAsOfATimeGiveWhatWasKnownThen() async throws {
            func rfc3339(_ date: Date, offsetHours: Int = 0) -> String {
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                formatter.timeZone = TimeZone(secondsFromGMT: offsetHours * 3600)!
                return formatter.string(from: date)
            }
            // Each moment is taken a little after an ack: millisecond text must not fall before it.
            func momentAfterAck() async throws -> Date {
                try await Task.sleep(for: .milliseconds(20))
                let moment = Date()
                try await Task.sleep(for: .milliseconds(20))
                return moment
            }
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                func totals(asOf time: String) async throws -> JSON {
                    try await reporting.expectOK(["op": "totals", "indicator": "jobs_created", "as_of": .string(time)])
                }
                let beforeAnything = try await momentAfterAck()
                _ = try await intake.expectOK(
                    submitRequest(submission("jobs-1", values: [value("jobs_created", "HN", 100)]))
                )
                let afterOriginal = try await momentAfterAck()
                let fix = submission("jobs-1-fix", values: [value("jobs_created", "HN", 80)])
                    .setting("replaces", to: "jobs-1")
                _ = try await intake.expectOK(submitRequest(fix))
                let afterFix = try await momentAfterAck()
                _ = try await intake.expectOK([
                    "op": "retract", "reporter": "USAID", "submission_id": "jobs-1-fix", "reason": "counted twice",
                ])

                let empty = try await totals(asOf: rfc3339(beforeAnything))
                #expect(empty["as_of_seq"] == 0)
                #expect(empty["rows"] == [])
                let original = try await totals(asOf: rfc3339(afterOriginal))
                #expect(original["as_of_seq"] == 1)
                #expect(original["rows"]?[0]?["value"] == 100)
                // The same moment written with another offset is the same moment.
                #expect(try await totals(asOf: rfc3339(afterOriginal, offsetHours: -5)) == original)
                let fixed = try await totals(asOf: rfc3339(afterFix))
                #expect(fixed["as_of_seq"] == 2)
                #expect(fixed["rows"]?[0]?["value"] == 80)
                let now = try await totals(asOf: rfc3339(Date()))
                #expect(now["as_of_seq"] == 3)
                #expect(now["rows"] == [])
                // The fact sheet reads the same way.
                let sheet = try await reporting.expectOK(["op": "factsheet", "as_of": .string(rfc3339(afterFix))])
                #expect(sheet["as_of_seq"] == 2)

                // A time still to come, both ways of pinning at once, and what is not RFC 3339 are refused.
                let future = try await reporting.request([
                    "op": "totals", "as_of": .string(rfc3339(Date().addingTimeInterval(3600))),
                ])
                #expect(future.errorCode == "validation_failed")
                #expect(future.detailCodes == ["future"])
                let both = try await reporting.request([
                    "op": "totals", "as_of": .string(rfc3339(afterFix)), "as_of_seq": 1,
                ])
                #expect(both.errorCode == "invalid_request")
                #expect(both.detailPaths == ["as_of"])
                for text in ["now", "2023-02-06", "2023-02-06T15:04:05"] {
                    let malformed = try await reporting.request(["op": "totals", "as_of": .string(text)])
                    #expect(malformed.errorCode == "invalid_request", "\(text)")
                    #expect(malformed.detailPaths == ["as_of"], "\(text)")
                }
                await intake.close()
                await reporting.close()
            }
        }

        @Test func theNewestSubmissionOfALatestPeriodWinsAndCorrectionsFallBack() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let indicator = "cta_companies_committed"
                let first = try await Self.submit(
                    to: intake,
                    submission("q4-a", period: "2022Q4", values: [value(indicator, "HN", 10)])
                )
                let second = try await Self.submit(
                    to: intake,
                    submission("q4-b", period: "2022Q4", values: [value(indicator, "HN", 12, estimate: true)])
                )
                // Same series and period: the newer one wins, never added to the older.
                let newest = try #require(try await Self.total(reporting, indicator, minSeq: second))
                #expect(newest["value"] == 12)
                #expect(newest["submissions"] == 1)
                #expect(newest["estimate"] == true)
                // An older period does not count once a later one exists.
                let older = try await Self.submit(
                    to: intake,
                    submission("q3", period: "2022Q3", values: [value(indicator, "HN", 5)])
                )
                #expect(try await Self.total(reporting, indicator, minSeq: older)?["value"] == 12)
                // Retract the winner: the earlier submission for the period is current again.
                let retraction = try #require(
                    try await intake.expectOK([
                        "op": "retract", "reporter": "USAID", "submission_id": "q4-b", "reason": "wrong quarter",
                    ])["seq"]?.int64Value
                )
                let fellBack = try #require(try await Self.total(reporting, indicator, minSeq: retraction))
                #expect(fellBack["value"] == 10)
                #expect(fellBack["estimate"] == false)
                // Replace that one: the replacement is the newest.
                let fix = try await Self.submit(
                    to: intake,
                    submission("q4-a-fix", period: "2022Q4", values: [value(indicator, "HN", 11)])
                        .setting("replaces", to: "q4-a")
                )
                #expect(try await Self.total(reporting, indicator, minSeq: fix)?["value"] == 11)
                // Retract the only 2022Q4 submission left: 2022Q3 is the latest period again.
                let last = try #require(
                    try await intake.expectOK([
                        "op": "retract", "reporter": "USAID", "submission_id": "q4-a-fix", "reason": "withdrawn",
                    ])["seq"]?.int64Value
                )
                #expect(try await Self.total(reporting, indicator, minSeq: last)?["value"] == 5)
                // The row of all periods (current reads) and the periods' own rows (filtered reads) agree.
                let viaPeriods = try await Self.total(reporting, indicator, extra: [("period_from", "2000")])
                #expect(viaPeriods?["value"] == 5)
                #expect(viaPeriods?["submissions"] == 1)
                // Every step stays readable.
                #expect(try await Self.total(reporting, indicator, asOf: first)?["value"] == 10)
                #expect(try await Self.total(reporting, indicator, asOf: second)?["value"] == 12)
                #expect(try await Self.total(reporting, indicator, asOf: retraction)?["value"] == 10)
                #expect(try await Self.total(reporting, indicator, asOf: fix)?["value"] == 11)
                // By period, each period's winner.
                let byPeriod = try await reporting.expectOK([
                    "op": "totals", "indicator": .string(indicator), "group_by": ["period"], "as_of_seq": .int(fix),
                ])
                #expect(rowsByKey(byPeriod, keys: ["period"]) == ["2022Q3": "5", "2022Q4": "11"])
                await intake.close()
                await reporting.close()
            }
        }

        /// A correction need not carry the indicators of what it replaces: one with only a `sum`
        /// value takes the replaced `latest` snapshot away, from the current rows and the period rows.
        @Test func aCorrectionWithoutSnapshotValuesTakesTheReplacedSnapshotAway() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let snapshot = "cta_companies_committed"
                let both = try await Self.submit(
                    to: intake,
                    submission(
                        "both",
                        period: "2022Q2",
                        values: [value(snapshot, "HN", 7), value("firms_supported", "HN", 2)]
                    )
                )
                #expect(try await Self.total(reporting, snapshot, minSeq: both)?["value"] == 7)
                let fix = try await Self.submit(
                    to: intake,
                    submission("both-fix", period: "2022Q2", values: [value("firms_supported", "HN", 3)])
                        .setting("replaces", to: "both")
                )
                #expect(try await Self.total(reporting, snapshot, minSeq: fix) == nil)
                #expect(try await Self.total(reporting, snapshot, extra: [("period_from", "2000")]) == nil)
                #expect(try await Self.total(reporting, "firms_supported")?["value"] == 3)
                #expect(try await Self.total(reporting, snapshot, asOf: both)?["value"] == 7)
                await intake.close()
                await reporting.close()
            }
        }

        /// A submission and its correction applied in one aggregation pass: the rows of all
        /// periods net to nothing, yet a read as of the seq between them must see the submission.
        @Test func aSubmissionAndItsRetractionInOnePassStayExactInBetween() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                func send(_ request: JSON) async throws -> Int64 {
                    try #require(try await intake.expectOK(request)["seq"]?.int64Value)
                }
                func retract(_ id: String) -> JSON {
                    ["op": "retract", "reporter": "USAID", "submission_id": .string(id), "reason": "withdrawn"]
                }
                // Already applied: 10 firms for 2022Q1, and a latest snapshot of 7 for 2022Q2.
                _ = try await send(
                    submitRequest(submission("base", period: "2022Q1", values: [value("firms_supported", "HN", 10)]))
                )
                let base = try await send(
                    submitRequest(
                        submission("snap", period: "2022Q2", values: [value("cta_companies_committed", "HN", 7)])
                    )
                )
                _ = try await Self.total(reporting, "firms_supported", minSeq: base)
                // With aggregation stopped, each is followed by its own retraction: one pass applies all.
                await stack.aggregations[0].stop()
                let more = try await send(
                    submitRequest(submission("more", period: "2022Q2", values: [value("firms_supported", "HN", 3)]))
                )
                _ = try await send(retract("more"))
                let fresh = try await send(
                    submitRequest(submission("fresh", period: "2022Q2", values: [value("police_trained", "GT", 4)]))
                )
                _ = try await send(retract("fresh"))
                let newer = try await send(
                    submitRequest(
                        submission("newer", period: "2022Q3", values: [value("cta_companies_committed", "HN", 9)])
                    )
                )
                let last = try await send(retract("newer"))
                try await stack.startAggregation(index: 0)

                let between = try #require(try await Self.total(reporting, "firms_supported", minSeq: last, asOf: more))
                #expect(between["value"] == 13)
                #expect(between["submissions"] == 2)
                #expect(try await Self.total(reporting, "firms_supported", asOf: last)?["value"] == 10)
                #expect(try await Self.total(reporting, "police_trained", asOf: fresh)?["value"] == 4)
                #expect(try await Self.total(reporting, "police_trained", asOf: last) == nil)
                #expect(try await Self.total(reporting, "cta_companies_committed", asOf: newer)?["value"] == 9)
                #expect(try await Self.total(reporting, "cta_companies_committed", asOf: last)?["value"] == 7)
                await intake.close()
                await reporting.close()
            }
        }

        @Test func disaggregatedTotalsAddUpToTheWhole() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let bodies = [
                    submission(
                        "cells",
                        values: [
                            value("jobs_created", "HN", 10, sex: "female", age: "15-19"),
                            value("jobs_created", "HN", 20, sex: "female", age: "20-24"),
                            value("jobs_created", "HN", 5, sex: "male", age: "15-19"),
                        ]
                    ),
                    submission("whole", values: [value("jobs_created", "HN", 100)]),
                    submission("by-sex", values: [value("jobs_created", "GT", 7, sex: "female")]),
                ]
                var last: Int64 = 0
                for body in bodies {
                    last = try #require(try await intake.expectOK(submitRequest(body))["seq"]?.int64Value)
                }
                func rows(_ extra: [(String, JSON)], keys: [String]) async throws -> [String: String] {
                    let answer = try await reporting.expectOK(
                        .object([("op", "totals"), ("indicator", "jobs_created"), ("min_seq", .int(last))] + extra)
                    )
                    return rowsByKey(answer, keys: keys)
                }
                let whole = try #require(try await Self.total(reporting, "jobs_created", minSeq: last))
                #expect(whole["value"] == 142)
                #expect(whole["submissions"] == 3)
                // Each exclusive dimension's rows, the whole (null) included, add up to the total.
                #expect(
                    try await rows([("group_by", ["sex"])], keys: ["sex"]) == ["female": "37", "male": "5", "": "100"]
                )
                #expect(
                    try await rows([("group_by", ["age"])], keys: ["age"]) == ["15-19": "15", "20-24": "20", "": "107"]
                )
                #expect(
                    try await rows([("group_by", ["sex", "age"])], keys: ["sex", "age"]) == [
                        "female|15-19": "10", "female|20-24": "20", "male|15-19": "5", "|": "100", "female|": "7",
                    ]
                )
                let nullRow = try await reporting.expectOK([
                    "op": "totals", "indicator": "jobs_created", "group_by": ["sex"], "country": "HN",
                ])
                #expect(nullRow["rows"]?.arrayValue?.contains { $0["sex"] == .null && $0["value"] == 100 } == true)
                // Filters: only values whose cell has the dimension's value.
                #expect(
                    try await rows([("sex", ["female"]), ("group_by", ["country"])], keys: ["country"]) == [
                        "HN": "30", "GT": "7",
                    ]
                )
                #expect(try await rows([("age", "15-19"), ("sex", "male")], keys: []) == ["": "5"])
                // A correction moves the cells too.
                let fix = submission(
                    "cells-fix",
                    values: [value("jobs_created", "HN", 12, sex: "female", age: "15-19")]
                ).setting("replaces", to: "cells")
                last = try #require(try await intake.expectOK(submitRequest(fix))["seq"]?.int64Value)
                #expect(try await rows([("group_by", ["sex"])], keys: ["sex"]) == ["female": "19", "": "100"])
                // Rows of all periods together and the periods' own rows agree (a period filter reads the latter).
                for extra: [(String, JSON)] in [[], [("group_by", ["sex", "age", "country"])], [("sex", "female")]] {
                    let keys = ["sex", "age", "country"]
                    let allPeriods = try await rows(extra, keys: keys)
                    let byPeriods = try await rows(extra + [("period_from", "2000")], keys: keys)
                    #expect(allPeriods == byPeriods)
                    #expect(!allPeriods.isEmpty)
                }
                // Unknown dimension values and keys are errors, not empty answers.
                let bad = try await reporting.request([
                    "op": "totals", "sex": ["female", "other"], "group_by": ["sex", "colour"],
                ])
                #expect(bad.errorCode == "invalid_request")
                #expect(bad.detailPaths == ["sex[1]", "group_by[1]"])
                await intake.close()
                await reporting.close()
            }
        }
    }
}
