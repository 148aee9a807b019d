import Logging
import RootcausesJSON
import RootcausesPostgres
import RootcausesStorage
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

    /// Pipelined writes of one batch, mixed: plain submissions are inserted together, a
    /// correction alone, and a submission sent twice in one batch is stored once.
    @Test func aBatchMixingRepeatsAndCorrectionsStoresEachOnceInOrder() async throws {
        try await withServiceStack { stack in
            let intake = try await stack.intakeClient()
            let first = submission("mix-a", values: [value("firms_supported", "GT", 7)])
            // The seq counter is held, so a first write, stored alone at once, waits to be
            // numbered while the others queue behind it: they are written together.
            let blocker = try PostgresConnection(conninfo: stack.databaseURL, logger: Logger(label: "tests"))
            defer { blocker.close() }
            try blocker.execute("BEGIN")
            _ = try blocker.query("SELECT last_seq FROM seq_counter FOR UPDATE" as PostgresQuery)
            let other = try await stack.intakeClient()
            let firstWrite = Task {
                try await other.request(
                    submitRequest(submission("mix-0", values: [value("firms_supported", "HN", 1)]))
                )
            }
            // Until intake's writer waits for the counter.
            let observer = try PostgresConnection(conninfo: stack.databaseURL, logger: Logger(label: "tests"))
            defer { observer.close() }
            var waited = 0
            while waited < 1000 {
                let waiting = try observer.query(
                    """
                    SELECT count(*)::integer AS n FROM pg_stat_activity
                    WHERE wait_event_type = 'Lock' AND query LIKE '%seq_counter%'
                    """ as PostgresQuery
                ).first?.decode(column: "n", as: Int.self)
                if waiting == 1 { break }
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            #expect(waited < 1000, "intake's writer never waited for the seq counter")
            let pipelined = Task {
                try await intake.pipeline([
                    submitRequest(first),
                    submitRequest(first),
                    submitRequest(submission("mix-a", values: [value("firms_supported", "GT", 8)])),
                    submitRequest(
                        submission("mix-b", values: [value("firms_supported", "GT", 9)])
                            .setting("replaces", to: "mix-a")
                    ),
                    submitRequest(submission("mix-c", values: [value("firms_supported", "SV", 1)])),
                    submitRequest(submission("mix-d", values: [value("firms_supported", "SV", 2)])),
                    // Two spellings of one accented letter: two submission_ids, as PostgreSQL
                    // compares them (byte for byte), though Swift's String calls them equal.
                    submitRequest(submission("mix-caf\u{E9}", values: [value("firms_supported", "SV", 3)])),
                    submitRequest(submission("mix-cafe\u{301}", values: [value("firms_supported", "SV", 4)])),
                ])
            }
            // Time for the pipeline to queue behind the waiting write.
            try await Task.sleep(for: .seconds(1))
            try blocker.execute("COMMIT")
            let answers = [try await firstWrite.value] + (try await pipelined.value)
            await other.close()
            #expect(answers[0]["seq"] == 1)
            #expect(answers[1]["status"] == "accepted")
            #expect(answers[1]["seq"] == 2)
            #expect(answers[2]["status"] == "duplicate", "\(answers[2].serialized)")
            #expect(answers[2]["seq"] == 2)
            #expect(answers[3].errorCode == "conflict", "\(answers[3].serialized)")
            #expect(answers[4]["status"] == "accepted")
            #expect(answers[4]["seq"] == 3)
            #expect(answers[4]["replaced_seq"] == 2)
            #expect(answers[5]["status"] == "accepted")
            #expect(answers[5]["seq"] == 4)
            #expect(answers[6]["status"] == "accepted")
            #expect(answers[6]["seq"] == 5)
            #expect(answers[7]["status"] == "accepted", "\(answers[7].serialized)")
            #expect(answers[7]["seq"] == 6)
            #expect(answers[8]["status"] == "accepted", "\(answers[8].serialized)")
            #expect(answers[8]["seq"] == 7)
            // Written in one transaction: no write of it failed, none was stored alone.
            let transactions = try blocker.query(
                "SELECT count(DISTINCT xmin::text) AS n FROM submissions WHERE submission_id <> 'mix-0'"
                    as PostgresQuery
            ).first?.decode(column: "n", as: Int.self)
            #expect(transactions == 1)
            await intake.close()
        }
    }

    /// Intake works out a submission's content digest itself; it must be the one PostgreSQL
    /// worked out for the submissions stored before (a repeat of one of them must still answer
    /// `duplicate`), accented letters and all.
    @Test func theContentDigestIsTheOneTheDatabaseWorksOut() async throws {
        try await withServiceStack { stack in
            // A canonical content as `ValidSubmission.canonicalContent` makes it.
            let content =
                "reporter=USAID\nperiod=2022-10-01..2022-12-31\nactivity=Apoyo a la niñez — año 2\nreplaces=digest-é\n"
                + "jobs_created\tHN\tsex=female\t1250\t"
            let digest = try await PostgresConnection.withConnection(
                conninfo: stack.databaseURL,
                logger: Logger(label: "tests")
            ) { connection in
                try connection.query(
                    "SELECT encode(sha256(convert_to(\(content), 'UTF8')), 'hex') AS digest" as PostgresQuery
                ).first?.decode(column: "digest", as: String.self)
            }
            #expect(Storage.contentDigest(content) == digest)
            #expect(Storage.contentDigest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        }
    }

    /// The writer keeps its connection from batch to batch. When that connection is cut in the
    /// middle of a batch, the batch is written again on a fresh one: nothing is lost, nothing
    /// stored twice, no client sees the cut.
    @Test func aWriterWhoseConnectionIsCutWritesItsBatchAgain() async throws {
        try await withServiceStack { stack in
            let intake = try await stack.intakeClient()
            _ = try await intake.expectOK(
                submitRequest(submission("cut-0", values: [value("firms_supported", "GT", 1)]))
            )
            // Hold the seq counter: the next batch waits for it, its connection in use.
            let blocker = try PostgresConnection(conninfo: stack.databaseURL, logger: Logger(label: "tests"))
            defer { blocker.close() }
            try blocker.execute("BEGIN")
            _ = try blocker.query("SELECT last_seq FROM seq_counter FOR UPDATE" as PostgresQuery)
            let pipelined = Task {
                try await intake.pipeline(
                    (1...6).map { i in
                        submitRequest(submission("cut-\(i)", values: [value("firms_supported", "GT", .int(Int64(i)))]))
                    }
                )
            }
            let observer = try PostgresConnection(conninfo: stack.databaseURL, logger: Logger(label: "tests"))
            defer { observer.close() }
            var cut = 0
            for _ in 0..<1000 where cut == 0 {
                cut =
                    try observer.query(
                        """
                        SELECT count(pg_terminate_backend(pid))::integer AS n FROM pg_stat_activity
                        WHERE wait_event_type = 'Lock' AND query LIKE '%seq_counter%' AND pid <> pg_backend_pid()
                        """ as PostgresQuery
                    ).first?.decode(column: "n", as: Int.self) ?? 0
                if cut == 0 { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(cut == 1, "intake's writer never waited for the seq counter")
            try blocker.execute("COMMIT")
            let answers = try await pipelined.value
            #expect(answers.allSatisfy { $0["status"] == "accepted" }, "\(answers.map(\.serialized))")
            #expect(answers.compactMap { $0["seq"]?.int64Value } == Array(2...7))
            let stored = try observer.query(
                "SELECT count(*)::integer AS n FROM submissions WHERE submission_id LIKE 'cut-%'" as PostgresQuery
            ).first?.decode(column: "n", as: Int.self)
            #expect(stored == 7)
            // The writer goes on as before.
            let after = try await intake.expectOK(
                submitRequest(submission("cut-8", values: [value("firms_supported", "GT", 8)]))
            )
            #expect(after["seq"] == 8)
            await intake.close()
        }
    }
}
