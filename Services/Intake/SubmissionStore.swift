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
    /// The seq is drawn last, from a single counter row locked until COMMIT: concurrent
    /// submissions therefore commit in seq order with no gaps, and "every submission up to
    /// seq S" is a well-defined, stable set once S is visible.
    func store(_ submission: ValidSubmission, dryRun: Bool) async throws -> Outcome {
        try await pool.withConnection { connection in
            let content = submission.canonicalContent
            if let earlier = try Self.existing(submission, content: content, on: connection) { return earlier }
            if dryRun { return .valid }
            do {
                return .accepted(seq: try Self.insert(submission, content: content, on: connection))
            } catch let error as PostgresError where error.isUniqueViolation {
                // Another connection committed the same submission_id first.
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
        try connection.transaction { connection in
            let inserted = try connection.query("""
                INSERT INTO submissions (reporter, submission_id, period, period_start, period_end, activity, value_count, content_digest)
                VALUES ($1, $2, $3, $4::date, $5::date, $6, $7::integer, encode(sha256(convert_to($8, 'UTF8')), 'hex'))
                RETURNING id
                """, [
                    submission.reporter, submission.submissionID, submission.periodText,
                    submission.period.start.description, submission.period.end.description,
                    submission.activity, submission.values.count, content,
                ])
            guard let id = inserted.first?.int64("id") else {
                throw PostgresError(code: .unexpectedResult, message: "INSERT returned no id")
            }
            var lines: [String] = []
            lines.reserveCapacity(submission.values.count)
            for (ordinal, value) in submission.values.enumerated() {
                lines.append(
                    "\(id)\t\(ordinal)\t\(postgresCopyEscape(value.indicator))\t\(postgresCopyEscape(value.country))\t"
                        + "\(postgresCopyEscape(value.cell))\t\(value.value)\t\(value.estimate ? "t" : "f")\n")
            }
            try connection.copyIn(
                "COPY submission_values (submission, ordinal, indicator, country, cell, value, estimate) FROM STDIN",
                lines: lines)
            // Last step before COMMIT: take the next seq under the counter's row lock.
            let counter = try connection.query("UPDATE seq_counter SET last_seq = last_seq + 1 RETURNING last_seq")
            guard let seq = counter.first?.int64("last_seq") else {
                throw PostgresError(code: .unexpectedResult, message: "seq_counter has no row")
            }
            try connection.query("UPDATE submissions SET seq = $1::bigint WHERE id = $2::bigint", [seq, id])
            return seq
        }
    }
}
