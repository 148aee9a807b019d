import RootcausesJSON
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    /// Published fact sheets (`publish`, `published`, `factsheet` by `published_id`) and `diff`,
    /// through the real services.
    @Suite struct PublicationTests {
        /// The number of `indicator` in a fact sheet JSON answer.
        static func number(_ indicator: String, in sheet: JSON) -> JSON? {
            (sheet["highlights"]?.arrayValue ?? []).lazy.compactMap { highlight in
                highlight["numbers"]?.arrayValue?.first { $0["indicator"] == .string(indicator) }
            }.first
        }

        @Test func aPublishedFactSheetStaysAsPublishedAndDiffNamesWhatMovedIt() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                let original = submission("jobs-1", period: "FY2023Q1", values: [value("jobs_created", "HN", 1_000)])
                #expect(try await intake.expectOK(submitRequest(original))["seq"] == 1)

                // Publish February 2023 as of seq 1; the document is the fact sheet of that date and seq.
                let publish: JSON = [
                    "op": "publish", "publication_id": "2023-02", "date": "2023-02-06", "min_seq": 1,
                ]
                let published = try await reporting.expectOK(publish)
                #expect(published["status"] == "published")
                #expect(published["as_of_seq"] == 1)
                #expect(published["date"] == "2023-02-06")
                #expect(published["template_digest"]?.stringValue?.count == 64)
                let live: JSON = ["op": "factsheet", "date": "2023-02-06", "as_of_seq": 1]
                let liveMarkdown = try await reporting.expectOK(live)
                let liveJSON = try await reporting.expectOK(live.setting("format", to: "json"))
                let jobsThen = try #require(Self.number("jobs_created", in: liveJSON))
                #expect(jobsThen["exact"] == 1000)

                // A retry is a duplicate with the same record; the same id for another date is refused.
                let retry = try await reporting.expectOK(publish)
                #expect(retry["status"] == "duplicate")
                #expect(retry["published_at"] == published["published_at"])
                let taken = try await reporting.request(publish.setting("date", to: "2023-03-06"))
                #expect(taken.errorCode == "conflict")
                #expect(taken["error"]?["details"]?[0]?["as_of_seq"] == 1)

                // Corrections and new data arrive.
                let fix = submission("jobs-1-fix", period: "FY2023Q1", values: [value("jobs_created", "HN", 1_500)])
                    .setting("replaces", to: "jobs-1")
                #expect(try await intake.expectOK(submitRequest(fix))["replaced_seq"] == 1)
                let firms = submission("firms-1", period: "FY2023Q1", values: [value("firms_supported", "HN", 40)])
                #expect(try await intake.expectOK(submitRequest(firms))["seq"] == 3)

                // The publication answers byte for byte what was published, whatever changed since.
                let stored: JSON = ["op": "factsheet", "published_id": "2023-02", "min_seq": 3]
                let storedMarkdown = try await reporting.expectOK(stored)
                #expect(storedMarkdown["text"] == liveMarkdown["text"])
                #expect(storedMarkdown["as_of_seq"] == 1)
                #expect(storedMarkdown["publication_id"] == "2023-02")
                let storedJSON = try await reporting.expectOK(stored.setting("format", to: "json"))
                for key in ["title", "date", "lead", "highlights"] {
                    #expect(storedJSON[key]?.serialized == liveJSON[key]?.serialized, "\(key)")
                }

                // Against now: each moved number, old and new, with the versions that moved it.
                let sinceThen = try await reporting.expectOK(["op": "diff", "from": "2023-02", "min_seq": 3])
                #expect(sinceThen["from"]?["as_of_seq"] == 1)
                #expect(sinceThen["to"]?["as_of_seq"] == 3)
                let moved = try #require(sinceThen["numbers"]?.arrayValue)
                #expect(moved.map { $0["indicator"] } == ["firms_supported", "jobs_created"])
                let jobs = try #require(moved.first { $0["indicator"] == "jobs_created" })
                #expect(jobs["from"]?["exact"] == 1000)
                #expect(jobs["to"]?["exact"] == 1500)
                #expect(jobs["change_count"] == 1)
                #expect(
                    jobs["changes"]
                        == [
                            [
                                "seq": 2, "reporter": "USAID", "submission_id": "jobs-1-fix", "kind": "replacement",
                                "replaced_seq": 1,
                            ]
                        ]
                )
                let firmsMoved = try #require(moved.first { $0["indicator"] == "firms_supported" })
                #expect(firmsMoved["to"]?["exact"] == 40)
                #expect(firmsMoved["changes"]?[0]?["kind"] == "submission")
                #expect(sinceThen["unchanged"]?.int64Value.map { $0 >= 1 } == true)

                // Between two publications, and a retraction named with its reason.
                _ = try await reporting.expectOK([
                    "op": "publish", "publication_id": "2023-02-b", "date": "2023-02-06", "min_seq": 3,
                ])
                _ = try await intake.expectOK([
                    "op": "retract", "reporter": "USAID", "submission_id": "firms-1", "reason": "double counted",
                ])
                let between = try await reporting.expectOK(["op": "diff", "from": "2023-02", "to": "2023-02-b"])
                #expect(between["to"]?["publication_id"] == "2023-02-b")
                #expect(between["numbers"]?.arrayValue?.count == 2)
                let retracted = try await reporting.expectOK(["op": "diff", "from": "2023-02-b", "min_seq": 4])
                let firmsGone = try #require(retracted["numbers"]?[0])
                #expect(firmsGone["indicator"] == "firms_supported")
                #expect(firmsGone["from"]?["exact"] == 40)
                #expect(
                    firmsGone["changes"]
                        == [
                            [
                                "seq": 4, "reporter": "USAID", "submission_id": "firms-1", "kind": "retraction",
                                "retracted_seq": 3, "reason": "double counted",
                            ]
                        ]
                )
                let list = try await reporting.expectOK(["op": "published"])
                #expect(list["publications"]?.arrayValue?.map { $0["publication_id"] } == ["2023-02", "2023-02-b"])

                // Mistakes are named.
                let unknown = try await reporting.request(["op": "diff", "from": "2023-02", "to": "nope"])
                #expect(unknown.errorCode == "validation_failed")
                #expect(unknown.detailPaths == ["to"])
                #expect(unknown.detailCodes == ["unknown_publication"])
                let repinned = try await reporting.request([
                    "op": "factsheet", "published_id": "2023-02", "as_of_seq": 3,
                ])
                #expect(repinned.errorCode == "invalid_request")
                #expect(repinned.detailPaths == ["as_of_seq"])
                let badID = try await reporting.request(["op": "publish", "publication_id": ""])
                #expect(badID.detailPaths == ["publication_id"])
                let nul = try await reporting.request(["op": "factsheet", "published_id": "2023\u{0}02"])
                #expect(nul.errorCode == "invalid_request")
                #expect(nul.detailPaths == ["published_id"])
                await intake.close()
                await reporting.close()
            }
        }
    }
}
