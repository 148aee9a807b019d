import Logging
import RootcausesJSON
import RootcausesPostgres
import RootcausesStorage
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

                // Resolving HN's point: a custom figure outside [100, 160] is refused; `max` says
                // the figures overlap completely.
                func adjustment(_ id: String, _ method: String, value amount: Int64? = nil) -> JSON {
                    var request: JSON = [
                        "op": "deduplicate", "adjustment_id": .string(id), "indicator": "firms_supported",
                        "country": "HN", "period": "FY2023Q1", "method": .string(method),
                        "reason": "joint programme, checked against both lists",
                    ]
                    if let amount { request = request.setting("value", to: .int(amount)) }
                    return request
                }
                let published = try await reporting.expectOK([
                    "op": "publish", "publication_id": "before-dedup", "date": "2023-02-06", "as_of_seq": 5,
                ])
                #expect(published["status"] == "published")
                let outside = try await intake.request(adjustment("d-1", "custom", value: 200))
                #expect(outside.errorCode == "validation_failed")
                #expect(outside.detailCodes == ["outside_bounds"])
                let resolved = try await intake.expectOK(adjustment("d-1", "max"))
                #expect(resolved["status"] == "accepted")
                #expect(resolved["seq"] == 6)
                #expect(resolved["value"] == 100)
                #expect(resolved["lower"] == 100)
                #expect(resolved["upper"] == 160)
                #expect(try await intake.expectOK(adjustment("d-1", "max"))["status"] == "duplicate")
                #expect(try await intake.request(adjustment("d-1", "sum")).errorCode == "conflict")
                let unreplaced = try await intake.request(adjustment("d-2", "sum"))
                #expect(unreplaced.errorCode == "conflict")
                #expect(unreplaced["error"]?["details"]?[0]?["head_adjustment_id"] == "d-1")
                // The seq of an adjustment has no submission behind it: reads still reach it.
                let afterMax = try await reporting.expectOK([
                    "op": "totals", "indicator": "firms_supported", "min_seq": 6,
                ])
                #expect(afterMax["as_of_seq"]?.int64Value.map { $0 >= 6 } == true)
                #expect(afterMax["rows"]?[0]?["value"] == 110)
                #expect(afterMax["rows"]?[0]?["lower"] == nil)

                // A correction of the adjustment, and the numbers as of each step.
                let corrected = try await intake.expectOK(
                    adjustment("d-2", "custom", value: 130).setting("replaces", to: "d-1")
                )
                #expect(corrected["replaced_seq"] == 6)
                #expect(corrected["seq"] == 7)
                for (seq, expected): (Int64, Int64) in [(5, 170), (6, 110), (7, 140)] {
                    let answer = try await reporting.expectOK([
                        "op": "totals", "indicator": "firms_supported", "as_of_seq": .int(seq),
                    ])
                    #expect(answer["rows"]?[0]?["value"] == .int(expected), "as of \(seq)")
                }
                // explain: the counted values and the adjustments' amounts make the number.
                let explained = try await reporting.expectOK(["op": "explain", "indicator": "firms_supported"])
                #expect(explained["value"] == 140)
                let counted = (explained["entries"]?.arrayValue ?? []).filter { $0["counted"] == true }
                    .reduce(Int64(0)) { $0 + ($1["value"]?.int64Value ?? 0) }
                let amounts = (explained["adjustments"]?.arrayValue ?? [])
                    .reduce(Int64(0)) { $0 + ($1["amount"]?.int64Value ?? 0) }
                #expect(counted + amounts == 140)
                #expect(explained["adjustments"]?[0]?["adjustment_id"] == "d-2")
                // diff names the adjustments that moved the published figure.
                let diff = try await reporting.expectOK(["op": "diff", "from": "before-dedup", "min_seq": 7])
                let firmsMoved = try #require(
                    diff["numbers"]?.arrayValue?.first { $0["indicator"] == "firms_supported" }
                )
                #expect(firmsMoved["from"]?["text"] == "as many as 200")
                #expect(firmsMoved["to"]?["exact"] == 140)
                let kinds = firmsMoved["changes"]?.arrayValue?.map { $0["kind"] } ?? []
                #expect(kinds == ["deduplication", "deduplication"])
                #expect(firmsMoved["changes"]?[1]?["adjustment_id"] == "d-2")
                #expect(firmsMoved["changes"]?[1]?["replaced_seq"] == 6)

                // Nothing to deduplicate: an indicator that cannot overlap, a point with one reporter.
                let disjoint = try await intake.request(
                    adjustment("d-3", "sum").setting("indicator", to: "treasury_sanctions").setting("country", to: "GT")
                )
                #expect(disjoint.detailCodes == ["no_overlap"])
                #expect(disjoint.detailPaths == ["indicator"])
                let alone = try await intake.request(adjustment("d-4", "sum").setting("country", to: "GT"))
                #expect(alone.detailCodes == ["no_overlap"])
                #expect(alone.detailPaths == ["period"])
                let noValue = try await intake.request(adjustment("d-5", "custom"))
                #expect(noValue.errorCode == "invalid_request")
                #expect(noValue.detailPaths == ["value"])
                await intake.close()
                await reporting.close()
            }
        }

        /// Reporters meeting within one pass: read as of a seq inside it, the point is open from
        /// the second reporter's seq on, although a reporter's row of all periods carries the
        /// pass's later seq (the bounds once looked for shared series there, and missed it).
        @Test func reportersMeetingWithinOnePassGiveBoundsAsOfEverySeqInside() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                // With aggregation stopped, one pass applies all three, through aggregation's role.
                await stack.aggregations[0].stop()
                let sent: [(String, String, String, Int64)] = [
                    ("m-1", "USAID", "FY2023Q1", 100), ("m-2", "STATE", "FY2023Q1", 60),
                    ("m-3", "USAID", "FY2023Q2", 5),
                ]
                var seqs: [Int64] = []
                for (id, reporter, period, amount) in sent {
                    let body = submission(
                        id,
                        reporter: reporter,
                        period: period,
                        values: [value("firms_supported", "HN", .int(amount))]
                    )
                    seqs.append(try #require(try await intake.expectOK(submitRequest(body))["seq"]?.int64Value))
                }
                try await stack.startAggregation(index: 0)
                let expected: [(seq: Int64, value: JSON, lower: JSON?)] = [
                    (seqs[0], 100, nil), (seqs[1], 160, 100), (seqs[2], 165, 105),
                ]
                for (seq, total, lower) in expected {
                    let answer = try await reporting.expectOK([
                        "op": "totals", "indicator": "firms_supported", "min_seq": .int(seqs[2]),
                        "as_of_seq": .int(seq),
                    ])
                    let row = try #require(answer["rows"]?[0])
                    #expect(row["value"] == total, "as of \(seq)")
                    #expect(row["lower"] == lower, "as of \(seq)")
                }
                await intake.close()
                await reporting.close()
            }
        }

        /// The points where reporters meet are registered with the seq from which two reporters
        /// had rows there: by migration 15 for the rows before it, by the trigger for every row
        /// inserted after, the rows of one statement (a pass) together.
        @Test func pointsWhereReportersMeetAreRegisteredWithTheSeqTheyMetAt() async throws {
            let url = try await TestDatabase.create()
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            try await PostgresConnection.withConnection(conninfo: url, logger: logger) { connection in
                try Schema.migrate(connection, logger: logger)
                // The database as the previous release left it: rows, and no registry yet.
                try connection.execute(
                    """
                    DROP TRIGGER rollups_overlap_points ON rollups;
                    TRUNCATE overlap_points;
                    DELETE FROM schema_migrations WHERE version >= 15;
                    """
                )
                func rows(_ rows: [(String, String, String, String, Int64)]) throws {
                    for (indicator, reporter, quarter, cell, created) in rows {
                        let start = quarter == "all" ? "-infinity" : quarter
                        let end = quarter == "all" ? "infinity" : quarter
                        try connection.query(
                            """
                            INSERT INTO rollups (partition, indicator, country, reporter, period_start, period_end,
                                                 cell, value, submissions, estimates, changed_seq, created_seq)
                            VALUES (0, \(indicator), 'HN', \(reporter), \(start)::date, \(end)::date, \(cell),
                                    1, 1, 0, \(created), \(created))
                            """
                        )
                    }
                }
                func registered() throws -> [String] {
                    try connection.query(
                        "SELECT indicator, period_start::text, shared_seq FROM overlap_points ORDER BY 1, 2"
                            as PostgresQuery
                    ).map { row in
                        let (indicator, start, seq) = try row.decode(String.self, String.self, Int64.self)
                        return "\(indicator) \(start) \(seq)"
                    }
                }
                try rows([
                    // Three reporters meet at a point: shared from the second one's row on.
                    ("firms_supported", "USAID", "2023-01-01", "*", 3),
                    ("firms_supported", "STATE", "2023-01-01", "*", 7),
                    ("firms_supported", "LABOR", "2023-01-01", "*", 5),
                    // Alone in its period, whatever the rows of other periods and cells say.
                    ("firms_supported", "USAID", "2023-04-01", "*", 8),
                    ("firms_supported", "STATE", "2023-04-01", "sex=female", 9),
                    ("firms_supported", "STATE", "all", "*", 7), ("firms_supported", "USAID", "all", "*", 3),
                ])
                try Schema.migrate(connection, logger: logger)
                #expect(try registered() == ["firms_supported 2023-01-01 5"])

                // After the migration, the trigger: a second reporter in the lone period.
                try rows([("firms_supported", "LABOR", "2023-04-01", "*", 11)])
                // Two reporters meeting in one statement, as in one pass.
                try connection.execute(
                    """
                    INSERT INTO rollups (partition, indicator, country, reporter, period_start, period_end, cell,
                                         value, submissions, estimates, changed_seq, created_seq)
                    VALUES (0, 'youth_reached', 'HN', 'USAID', '2023-01-01', '2023-01-01', '*', 1, 1, 0, 14, 14),
                           (0, 'youth_reached', 'HN', 'STATE', '2023-01-01', '2023-01-01', '*', 1, 1, 0, 13, 12),
                           (0, 'youth_reached', 'HN', 'LABOR', '2023-04-01', '2023-04-01', '*', 1, 1, 0, 13, 13)
                    """
                )
                // A later reporter at a registered point changes nothing.
                try rows([("firms_supported", "TREASURY", "2023-01-01", "*", 20)])
                #expect(
                    try registered() == [
                        "firms_supported 2023-01-01 5", "firms_supported 2023-04-01 11", "youth_reached 2023-01-01 14",
                    ]
                )
            }
        }
    }
}
