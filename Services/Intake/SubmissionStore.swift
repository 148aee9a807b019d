import NIOConcurrencyHelpers
import RootcausesModel
import RootcausesPostgres
import RootcausesStorage

/// Intake's SQL, all in one place, and the group commit that feeds it.
///
/// Submissions arriving at the same time from any connection are stored together: one
/// transaction, one round trip (libpq pipeline mode), one commit. Each is still all or
/// nothing and each answer still comes only after the commit that holds it. Seqs are drawn
/// as the last step before COMMIT, for the whole batch, from one counter row locked until
/// COMMIT: transactions therefore commit in seq order with no gaps, so "every submission up
/// to seq S" is a well-defined, stable set once S is visible.
final class SubmissionStore: Sendable {
    enum Outcome: Sendable {
        case accepted(seq: Int64)
        case duplicate(seq: Int64, values: Int)
        case conflict(seq: Int64)
        /// A dry run found nothing wrong.
        case valid
    }

    /// At most this many transactions are being written at once (one commits while the next fills).
    static let maximumWriters = 2
    /// Limits of one transaction.
    static let maximumBatchSubmissions = 200
    static let maximumBatchValues = 50_000

    private let pool: PostgresPool
    private let state = NIOLockedValueBox(State())

    private struct Pending {
        let submission: ValidSubmission
        let continuation: CheckedContinuation<Outcome, any Error>
    }

    private struct State {
        var queue: [Pending] = []
        var writers = 0
    }

    init(pool: PostgresPool) { self.pool = pool }

    /// Stores a submission, or finds it was sent before. Returns after the commit.
    func store(_ submission: ValidSubmission, dryRun: Bool) async throws -> Outcome {
        if dryRun {
            return try await pool.withConnection(idempotent: true) { connection in
                try Self.existing(submission, on: connection) ?? .valid
            }
        }
        return try await withCheckedThrowingContinuation { continuation in
            let startWriter = state.withLockedValue { state -> Bool in
                state.queue.append(Pending(submission: submission, continuation: continuation))
                guard state.writers < Self.maximumWriters else { return false }
                state.writers += 1
                return true
            }
            if startWriter { Task { await self.drain() } }
        }
    }

    /// Writes batches until the queue is empty.
    private func drain() async {
        while true {
            let batch = state.withLockedValue { state -> [Pending] in
                var values = 0
                var count = 0
                for pending in state.queue {
                    if count == Self.maximumBatchSubmissions { break }
                    if count > 0, values + pending.submission.values.count > Self.maximumBatchValues { break }
                    values += pending.submission.values.count
                    count += 1
                }
                let batch = Array(state.queue.prefix(count))
                state.queue.removeFirst(count)
                if batch.isEmpty { state.writers -= 1 }
                return batch
            }
            if batch.isEmpty { return }
            await write(batch)
        }
    }

    private func write(_ batch: [Pending]) async {
        do {
            // Safe to run again on a fresh connection if the server dropped the first one: a
            // submission committed before the drop is not inserted again (ON CONFLICT DO
            // NOTHING on reporter and submission_id) and answers duplicate with its seq.
            let outcomes = try await pool.withConnection(idempotent: true) { connection in
                try Self.insert(batch.map(\.submission), on: connection)
            }
            precondition(outcomes.count == batch.count, "one outcome per submission")
            for (pending, outcome) in zip(batch, outcomes) { pending.continuation.resume(with: outcome) }
        } catch let error as PostgresError where batch.count > 1 && !error.isConnectionProblem {
            // One submission made the transaction fail: store each alone, so only it fails.
            for pending in batch { await write([pending]) }
        } catch {
            for pending in batch { pending.continuation.resume(throwing: error) }
        }
    }

    private static func existing(_ submission: ValidSubmission, on connection: PostgresConnection) throws -> Outcome? {
        let query: PostgresQuery = """
            SELECT seq, value_count,
                   content_digest = encode(sha256(convert_to(\(submission.canonicalContent), 'UTF8')), 'hex') AS same_content
            FROM \(Storage.Table.submissions)
            WHERE reporter = \(submission.reporter) AND submission_id = \(submission.submissionID)
            """
        guard let row = try connection.query(query).first, let seq = try row.decode(column: "seq", as: Int64?.self)
        else { return nil }
        return try row.decode(column: "same_content", as: Bool?.self) == true
            ? .duplicate(seq: seq, values: try row.decode(column: "value_count", as: Int.self))
            : .conflict(seq: seq)
    }

    /// One transaction for the batch: each submission with its values, then the seqs, then COMMIT.
    /// Throws only for failures before the commit (nothing stored); after it, each submission
    /// gets its own outcome, so a failed look-up of one never turns the others into retries.
    private static func insert(
        _ submissions: [ValidSubmission],
        on connection: PostgresConnection
    ) throws -> [Result<Outcome, any Error>] {
        var statements: [PostgresQuery] = ["BEGIN"]
        for submission in submissions {
            let values = submission.values
            statements.append(
                """
                WITH submission AS (
                    INSERT INTO \(Storage.Table.submissions) (reporter, submission_id, period, period_start, period_end, activity, value_count, content_digest)
                    VALUES (\(submission.reporter), \(submission.submissionID), \(submission.periodText),
                            \(submission.period.start.description)::date, \(submission.period.end.description)::date,
                            \(submission.activity), \(values.count)::integer,
                            encode(sha256(convert_to(\(submission.canonicalContent), 'UTF8')), 'hex'))
                    -- Sent before (a retry), or by another connection a moment ago: decided after COMMIT.
                    ON CONFLICT (reporter, submission_id) DO NOTHING
                    RETURNING id
                ), stored AS (
                    INSERT INTO \(Storage.Table.submissionValues) (submission, ordinal, indicator, country, cell, value, estimate)
                    SELECT submission.id, v.ordinal - 1, v.indicator, v.country, v.cell, v.value, v.estimate
                    FROM submission,
                         unnest(\(values.map(\.indicator))::text[], \(values.map(\.country))::text[], \(values.map(\.cell))::text[],
                                \(values.map(\.value))::numeric[], \(values.map(\.estimate))::boolean[])
                             WITH ORDINALITY AS v (indicator, country, cell, value, estimate, ordinal)
                    RETURNING 1
                )
                SELECT (SELECT id FROM submission) AS id, (SELECT count(*) FROM stored) AS stored
                """
            )
        }
        // Last step before COMMIT: number this transaction's submissions (the only rows without
        // a seq that it can see) consecutively, under the counter's row lock.
        statements.append(
            """
            WITH mine AS (
                SELECT id, row_number() OVER (ORDER BY id) AS ordinal, count(*) OVER () AS total
                -- Rows without a seq that this transaction inserted (xmin: no savepoints are used).
                FROM \(Storage.Table.submissions) WHERE seq IS NULL AND xmin = pg_current_xact_id()::xid
            ), next AS (
                UPDATE \(Storage.Table.seqCounter) SET last_seq = last_seq + coalesce((SELECT max(total) FROM mine), 0) RETURNING last_seq
            )
            UPDATE \(Storage.Table.submissions) s SET seq = next.last_seq - mine.total + mine.ordinal
            FROM mine, next
            WHERE s.id = mine.id
            RETURNING s.id, s.seq
            """
        )
        statements.append("COMMIT")

        let results: [PostgresRows]
        do {
            results = try connection.pipeline(statements)
        } catch {
            // The transaction is aborted (or the connection gone): leave the connection clean.
            if connection.isHealthy { try? connection.execute("ROLLBACK") }
            throw error
        }
        guard results.count == submissions.count + 3, results.last?.commandTag == "COMMIT" else {
            throw PostgresError(code: .unexpectedResult, message: "storing submissions returned unexpected results")
        }
        // Committed: from here on, errors concern one submission's answer, never its storage,
        // so nothing below may throw out of this function (it would be taken for a failed write).
        let seqOfID = Result { () throws -> [Int64: Int64] in
            var seqOfID: [Int64: Int64] = [:]
            for row in results[submissions.count + 1] {
                let (id, seq) = try row.decode(Int64.self, Int64.self)
                seqOfID[id] = seq
            }
            return seqOfID
        }
        return submissions.enumerated().map { index, submission in
            Result { () throws -> Outcome in
                let row = results[index + 1].first
                if let row, let id = try row.decode(column: "id", as: Int64?.self) {
                    guard try row.decode(column: "stored", as: Int.self) == submission.values.count,
                        let seq = try seqOfID.get()[id]
                    else {
                        throw PostgresError(
                            code: .unexpectedResult,
                            message: "a stored submission has no seq or lost values"
                        )
                    }
                    return .accepted(seq: seq)
                }
                guard let earlier = try existing(submission, on: connection) else {
                    throw PostgresError(
                        code: .unexpectedResult,
                        message: "submission \(submission.submissionID) was neither stored nor found"
                    )
                }
                return earlier
            }
        }
    }
}
