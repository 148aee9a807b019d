import Logging
import RootcausesJSON
import RootcausesPostgres
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration.IntakeTests {
    /// Submissions and retractions pipelined on one connection are worked on together (they
    /// share transactions), and still take effect, and are answered, in request order.
    @Test func pipelinedWritesShareTransactionsAndTakeEffectInRequestOrder() async throws {
        try await withServiceStack { stack in
            let intake = try await stack.intakeClient()
            // Forty snapshots of one `latest` series and period, then a retraction of the first:
            // the last sent must be the one that counts.
            var requests = (1...40).map { i in
                submitRequest(
                    submission("pipe-\(i)", values: [value("cta_companies_committed", "GT", .int(i))]),
                    id: .int(Int64(i))
                )
            }
            requests.append([
                "op": "retract", "id": 41, "reporter": "USAID", "submission_id": "pipe-1", "reason": "sent twice",
            ])
            let answers = try await intake.pipeline(requests)
            #expect(answers.map { $0["id"] } == (1...41).map { JSON.int(Int64($0)) })
            #expect(answers.dropLast().allSatisfy { $0["status"] == "accepted" }, "\(answers.map(\.serialized))")
            let seqs = try answers.map { try #require($0["seq"]?.int64Value) }
            #expect(seqs == Array(1...41))
            #expect(answers.last?["status"] == "retracted")
            #expect(answers.last?["retracted_seq"] == 1)

            // One transaction each would give forty-one; overlapping requests share them.
            let transactions = try await PostgresConnection.withConnection(
                conninfo: stack.databaseURL,
                logger: Logger(label: "tests")
            ) { connection in
                try connection.query("SELECT count(DISTINCT xmin::text) AS n FROM submissions" as PostgresQuery)
                    .first?.decode(column: "n", as: Int.self) ?? -1
            }
            #expect(transactions < 41, "\(transactions) transactions for 41 pipelined writes")

            let reporting = try await stack.reportingClient()
            let totals = try await reporting.expectOK([
                "op": "totals", "indicator": "cta_companies_committed", "min_seq": 41,
            ])
            #expect(totals["rows"]?[0]?["value"] == 40)
            await reporting.close()
            await intake.close()
        }
    }

    /// A request that depends on what the connection sent before it waits for that: a dry run
    /// sees the submission pipelined just before it, and `auth` never changes the key of a
    /// write in the works.
    @Test func aDryRunOrABarrierSeesTheWritesPipelinedBeforeIt() async throws {
        try await withServiceStack { stack in
            let intake = try await stack.intakeClient()
            // Enough writes before the dry run that they are still being stored when it starts.
            let writes = (1...30).map { i in
                submission(
                    "barrier-\(i)",
                    values: ["SV", "GT", "HN"].map { value("firms_supported", $0, .int(Int64(i))) }
                )
            }
            let answers = try await intake.pipeline(
                writes.map { submitRequest($0) } + [
                    submitRequest(writes[29], dryRun: true),
                    ["op": "auth", "token": "rck_not-a-token"],
                    submitRequest(submission("after-auth", values: [value("firms_supported", "HN", 6)])),
                ]
            )
            #expect(answers.prefix(30).allSatisfy { $0["status"] == "accepted" })
            #expect(answers[30]["status"] == "duplicate", "\(answers[30].serialized)")
            #expect(answers[30]["seq"] == answers[29]["seq"])
            #expect(answers[31].errorCode == "unauthenticated")
            #expect(answers[32].errorCode == "unauthenticated")
            await intake.close()
        }
    }
}
