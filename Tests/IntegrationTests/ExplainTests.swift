import RootcausesJSON
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    /// `explain`: the values behind a totals row, paged, with what was excluded and why.
    @Suite struct ExplainTests {
        /// A deterministic source of choices (SplitMix64), so a failure can be replayed.
        struct Choices {
            var state: UInt64
            mutating func next() -> UInt64 {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return z ^ (z >> 31)
            }
            mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
            mutating func pick<T>(_ options: [T]) -> T { options[below(options.count)] }
            mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
            mutating func subset<T>(_ options: [T]) -> [T] { options.filter { _ in chance(50) } }
        }

        /// Every page of `request`'s explanation; checks the pages hold each value once.
        static func allEntries(
            _ reporting: ProtocolClient,
            _ request: JSON
        ) async throws -> (value: JSON, entries: [JSON], adjustments: [JSON]) {
            var entries: [JSON] = []
            var page = try await reporting.expectOK(request)
            let value = page["value"] ?? .null
            let adjustments = page["adjustments"]?.arrayValue ?? []
            while true {
                entries += page["entries"]?.arrayValue ?? []
                guard let cursor = page["next_cursor"]?.stringValue else { break }
                page = try await reporting.expectOK(request.setting("cursor", to: .string(cursor)))
                #expect(page["value"] == value, "every page explains the same number")
            }
            let keys = entries.map {
                [$0["seq"], $0["indicator"], $0["country"], $0["disaggregation"]].map { $0?.serialized ?? "" }
            }
            #expect(Set(keys).count == keys.count, "no value twice")
            return (value, entries, adjustments)
        }

        /// The counted entries add up to the number, exactly, for rows of random totals queries
        /// over data with corrections, retractions, snapshots and disaggregation.
        @Test func countedEntriesAddUpToEveryRowOfRandomTotals() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                var choices = Choices(state: 20_230_206)
                let indicators: [(code: String, countries: [String], dimensions: [String])] = [
                    ("jobs_created", ["SV", "GT", "HN"], ["sex", "age"]),
                    ("police_trained", ["SV", "GT", "HN"], ["sex"]),
                    ("firms_supported", ["SV", "GT", "HN"], []),
                    ("cta_companies_committed", ["SV", "GT", "HN"], []),
                    ("local_partners_supported", ["SV", "GT", "HN"], []),
                ]
                let reporters = ["USAID", "STATE", "DOL"]
                let periods = ["FY2022Q1", "FY2022Q2", "FY2022Q3", "FY2022", "2022-11", "FY2023Q1"]
                // Current heads of correction chains: (reporter, submission_id).
                var heads: [(String, String)] = []
                var lastSeq: Int64 = 0
                for n in 0..<70 {
                    let reporter = choices.pick(reporters)
                    if n > 10, choices.chance(20), !heads.isEmpty {
                        let index = choices.below(heads.count)
                        let (headReporter, headID) = heads.remove(at: index)
                        let answer = try await intake.expectOK([
                            "op": "retract", "reporter": .string(headReporter), "submission_id": .string(headID),
                            "reason": .string("test retraction \(n)"),
                        ])
                        lastSeq = try #require(answer["seq"]?.int64Value)
                        continue
                    }
                    var values: [JSON] = []
                    var used = Set<String>()
                    for _ in 0..<(1 + choices.below(3)) {
                        let indicator = choices.pick(indicators)
                        let country = choices.pick(indicator.countries)
                        guard used.insert(indicator.code + country).inserted else { continue }
                        var sex: String?
                        var age: String?
                        if indicator.dimensions.contains("sex"), choices.chance(60) {
                            sex = choices.pick(["female", "male"])
                        }
                        if indicator.dimensions.contains("age"), choices.chance(40) {
                            age = choices.pick(["15-19", "20-24", "30+"])
                        }
                        values.append(
                            value(indicator.code, country, .int(Int64(1 + choices.below(500))), sex: sex, age: age)
                        )
                    }
                    var body = submission("x-\(n)", reporter: reporter, period: choices.pick(periods), values: values)
                    var replaced: Int?
                    if n > 5, choices.chance(25), let index = heads.indices.filter({ heads[$0].0 == reporter }).first {
                        body = body.setting("replaces", to: .string(heads[index].1))
                        replaced = index
                    }
                    let answer = try await intake.expectOK(submitRequest(body))
                    #expect(answer["status"] == "accepted")
                    lastSeq = try #require(answer["seq"]?.int64Value)
                    if let replaced { heads.remove(at: replaced) }
                    heads.append((reporter, "x-\(n)"))
                }
                // Analysts resolve some overlapping points, by each method, and correct one: after
                // looking at the aggregated figures, which adjustments are checked against.
                _ = try await reporting.expectOK(["op": "totals", "min_seq": .int(lastSeq), "timeout_ms": 30_000])
                var adjusted = 0
                for (n, (code, country, period)) in [
                    ("jobs_created", "HN", "FY2022Q1"), ("jobs_created", "GT", "FY2022Q2"),
                    ("police_trained", "SV", "FY2022"),
                    ("firms_supported", "HN", "FY2022Q3"), ("jobs_created", "SV", "2022-11"),
                    ("firms_supported", "GT", "FY2023Q1"),
                    ("police_trained", "HN", "FY2022Q1"), ("firms_supported", "SV", "FY2022Q2"),
                ].enumerated() {
                    let request: JSON = [
                        "op": "deduplicate", "adjustment_id": .string("a-\(n)"), "indicator": .string(code),
                        "country": .string(country), "period": .string(period), "method": "max",
                    ]
                    let first = try await intake.request(request)
                    guard first["ok"] == true, let lower = first["lower"]?.int64Value,
                        let upper = first["upper"]?.int64Value
                    else { continue }
                    lastSeq = max(lastSeq, first["seq"]?.int64Value ?? 0)
                    adjusted += 1
                    let method = choices.pick(["sum", "custom", "keep"])
                    guard method != "keep" else { continue }
                    var correction = request.setting("adjustment_id", to: .string("a-\(n)-b"))
                        .setting("replaces", to: .string("a-\(n)")).setting("method", to: .string(method))
                    if method == "custom" { correction = correction.setting("value", to: .int((lower + upper) / 2)) }
                    let second = try await intake.expectOK(correction)
                    lastSeq = max(lastSeq, second["seq"]?.int64Value ?? 0)
                }
                #expect(adjusted >= 2, "the workload has overlapping points to resolve")
                _ = try await reporting.expectOK(["op": "totals", "min_seq": .int(lastSeq), "timeout_ms": 30_000])

                var rowsChecked = 0
                var adjustedRows = 0
                var excludedSeen = Set<String>()
                for _ in 0..<40 {
                    var query: [(String, JSON)] = []
                    let chosenIndicators = choices.subset(indicators.map(\.code))
                    if !chosenIndicators.isEmpty, choices.chance(60) {
                        query.append(("indicator", .array(chosenIndicators.map(JSON.string))))
                    }
                    if choices.chance(30) { query.append(("country", .string(choices.pick(["SV", "GT", "HN"])))) }
                    if choices.chance(20) { query.append(("reporter", .string(choices.pick(reporters)))) }
                    if choices.chance(20) { query.append(("sex", .string(choices.pick(["female", "male"])))) }
                    if choices.chance(25) {
                        query.append(("period_from", "FY2022Q2"))
                        query.append(("period_to", "FY2022"))
                    }
                    let groupBy = choices.subset(["indicator", "country", "reporter", "period", "sex", "age"])
                    if !groupBy.isEmpty { query.append(("group_by", .array(groupBy.map(JSON.string)))) }
                    if choices.chance(40) { query.append(("as_of_seq", .int(Int64(choices.below(Int(lastSeq) + 1))))) }
                    let totals = try await reporting.expectOK(.object([("op", "totals")] + query))
                    let asOf = try #require(totals["as_of_seq"])
                    for row in totals["rows"]?.arrayValue ?? [] {
                        let explainRequest: JSON = .object(
                            [("op", "explain")] + query.filter { $0.0 != "as_of_seq" }
                                + [("as_of_seq", asOf), ("row", row), ("limit", .int(Int64(1 + choices.below(7))))]
                        )
                        let (value, entries, adjustments) = try await Self.allEntries(reporting, explainRequest)
                        #expect(value == row["value"], "\(explainRequest.serialized)")
                        // The counted values and the adjustments' amounts make the number exactly.
                        let counted = entries.filter { $0["counted"] == true }
                        let sum = counted.reduce(Int64(0)) { $0 + ($1["value"]?.int64Value ?? 0) }
                        let amounts = adjustments.reduce(Int64(0)) { $0 + ($1["amount"]?.int64Value ?? 0) }
                        #expect(.int(sum + amounts) == row["value"], "\(explainRequest.serialized)")
                        if !adjustments.isEmpty { adjustedRows += 1 }
                        for entry in entries where entry["counted"] == false {
                            excludedSeen.insert(entry["excluded"]?["because"]?.stringValue ?? "?")
                            #expect(entry["seq"]?.int64Value ?? .max <= asOf.int64Value ?? 0)
                        }
                        rowsChecked += 1
                    }
                }
                #expect(rowsChecked > 100)
                #expect(adjustedRows > 0, "some rows are made of deduplicated points")
                // The workload exercises every reason a value is left out.
                #expect(
                    excludedSeen.isSuperset(of: ["replaced", "retracted", "newer_in_period", "earlier_period"]),
                    "\(excludedSeen)"
                )
                await intake.close()
                await reporting.close()
            }
        }

        @Test func aFactSheetNumberAndMistakes() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                for (n, period) in ["FY2022Q1", "FY2023Q1", "FY2023Q3"].enumerated() {
                    let body = submission("firms-\(n)", period: period, values: [value("firms_supported", "HN", 10)])
                    _ = try await intake.expectOK(submitRequest(body))
                }
                // A fact sheet of 6 February 2023 counts periods started by then: not FY2023Q3.
                let number = try await reporting.expectOK([
                    "op": "explain", "indicator": "firms_supported", "date": "2023-02-06", "min_seq": 3,
                ])
                #expect(number["value"] == 20)
                #expect(number["entries"]?.arrayValue?.map { $0["submission_id"] } == ["firms-0", "firms-1"])

                let noRow = try await reporting.request(["op": "explain", "group_by": ["country"]])
                #expect(noRow.errorCode == "invalid_request")
                #expect(noRow.detailPaths == ["row"])
                let missingKey = try await reporting.request([
                    "op": "explain", "group_by": ["country", "sex"], "row": ["country": "HN"],
                ])
                #expect(missingKey.detailPaths == ["row.sex"])
                let badCursor = try await reporting.request(["op": "explain", "cursor": "not a cursor"])
                #expect(badCursor.detailPaths == ["cursor"])
                let badLimit = try await reporting.request(["op": "explain", "limit": 0])
                #expect(badLimit.detailPaths == ["limit"])
                let paged = try await reporting.expectOK(["op": "explain", "indicator": "firms_supported", "limit": 1])
                let cursor = try #require(paged["next_cursor"])
                let repinned = try await reporting.request([
                    "op": "explain", "indicator": "firms_supported", "cursor": cursor, "as_of": "2023-01-01T00:00:00Z",
                ])
                #expect(repinned.detailPaths == ["as_of"])
                await intake.close()
                await reporting.close()
            }
        }
    }
}
