import RootcausesModel
import RootcausesPostgres

/// Intake's SQL, all in one place.
struct SubmissionStore: Sendable {
    let pool: PostgresPool

    enum Outcome: Sendable {
        case accepted(seq: Int64)
        case duplicate(seq: Int64, values: Int)
        case conflict(seq: Int64)
        /// A dry run found nothing wrong.
        case valid
    }

    /// Stores a submission and its values in one transaction, or finds it was sent before.
    ///
    /// The whole transaction goes to the server in one round trip (pipeline mode). The seq is
    /// drawn last, from a single counter row locked until COMMIT: concurrent submissions
    /// therefore commit in seq order with no gaps, so "every submission up to seq S" is a
    /// well-defined, stable set once S is visible. No network wait happens inside that lock.
    func store(_ submission: ValidSubmission, dryRun: Bool) async throws -> Outcome {
        try await pool.withConnection { connection in
            let content = submission.canonicalContent
            if dryRun {
                return try Self.existing(submission, content: content, on: connection) ?? .valid
            }
            do {
                return .accepted(seq: try Self.insert(submission, content: content, on: connection))
            } catch let error as PostgresError where error.isUniqueViolation {
                // Sent before (a retry), or committed by another connection a moment ago.
                if let earlier = try Self.existing(submission, content: content, on: connection) { return earlier }
                throw error
            }
        }
    }

    private static func existing(_ submission: ValidSubmission, content: String, on connection: PostgresConnection) throws -> Outcome? {
        let rows = try connection.query("""
            SELECT seq, value_count,
                   content_digest = encode(sha256(convert_to($3, 'UTF8')), 'hex') AS same_content
            FROM submissions
            WHERE reporter = $1 AND submission_id = $2
            """, [submission.reporter, submission.submissionID, content])
        guard let row = rows.first, let seq = row.int64("seq") else { return nil }
        return row.bool("same_content") == true ? .duplicate(seq: seq, values: row.int("value_count") ?? 0) : .conflict(seq: seq)
    }

    private static func insert(_ submission: ValidSubmission, content: String, on connection: PostgresConnection) throws -> Int64 {
        let values = submission.values
        let statements: [(sql: String, parameters: [any PostgresEncodable])] = [
            ("BEGIN", []),
            ("""
            WITH submission AS (
                INSERT INTO submissions (reporter, submission_id, period, period_start, period_end, activity, value_count, content_digest)
                VALUES ($1, $2, $3, $4::date, $5::date, $6, $7::integer, encode(sha256(convert_to($8, 'UTF8')), 'hex'))
                RETURNING id
            ), stored AS (
                INSERT INTO submission_values (submission, ordinal, indicator, country, cell, value, estimate)
                SELECT submission.id, v.ordinal - 1, v.indicator, v.country, v.cell, v.value, v.estimate
                FROM submission,
                     unnest($9::text[], $10::text[], $11::text[], $12::numeric[], $13::boolean[])
                         WITH ORDINALITY AS v (indicator, country, cell, value, estimate, ordinal)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM stored) AS stored
            """, [
                submission.reporter, submission.submissionID, submission.periodText,
                submission.period.start.description, submission.period.end.description,
                submission.activity, values.count, content,
                values.map(\.indicator), values.map(\.country), values.map(\.cell), values.map(\.value), values.map(\.estimate),
            ]),
            // Last step before COMMIT: take the next seq under the counter's row lock.
            ("""
            WITH next AS (UPDATE seq_counter SET last_seq = last_seq + 1 RETURNING last_seq)
            UPDATE submissions SET seq = next.last_seq FROM next
            WHERE submissions.id = (SELECT currval('submissions_id_seq'))  -- a sub-select runs once: index lookup, no scan
            RETURNING submissions.seq
            """, []),
            ("COMMIT", []),
        ]
        let results: [PostgresRows]
        do {
            results = try connection.pipeline(statements)
        } catch {
            // The transaction is aborted (or the connection gone): leave the connection clean.
            if connection.isHealthy { try? connection.execute("ROLLBACK") }
            throw error
        }
        guard results.count == 4, results[1].first?.int("stored") == values.count, let seq = results[2].first?.int64("seq"),
            results[3].commandTag == "COMMIT"
        else {
            throw PostgresError(code: .unexpectedResult, message: "storing a submission returned unexpected results")
        }
        return seq
    }
}
