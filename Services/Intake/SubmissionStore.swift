import Metrics
import NIOConcurrencyHelpers
import RootcausesModel
import RootcausesPostgres
import RootcausesStorage

/// Intake's SQL, all in one place, and the group commit that feeds it.
///
/// Submissions arriving at the same time from any connection are stored together: one
/// transaction (their rows pipelined, their values in one COPY), one commit. Each is still all or
/// nothing and each answer still comes only after the commit that holds it. Seqs are drawn
/// as the last step before COMMIT, for the whole batch, from one counter row locked until
/// COMMIT: transactions therefore commit in seq order with no gaps, so "every submission up
/// to seq S" is a well-defined, stable set once S is visible.
final class SubmissionStore: Sendable {
    /// What one write asks for: store a submission (maybe a correction), or retract one.
    enum Write: Sendable {
        case submission(PreparedSubmission)
        case retraction(Retraction)

        var valueCount: Int {
            if case .submission(let prepared) = self { return prepared.submission.values.count }
            return 0
        }
    }

    /// A submission, the key that sent it, and what the database keeps of it that takes work
    /// to make: worked out as its request is handled, on the request's own task, not by the
    /// single writer (building the canonical content and hashing it, and making the COPY rows,
    /// were a good part of the writer's own time).
    struct PreparedSubmission: Sendable {
        let submission: ValidSubmission
        let keyID: String?
        /// `content_digest`: tells a repeat (`duplicate`) from other content (`conflict`).
        let contentDigest: String
        /// Its values as COPY rows without the row id, which each row takes first once the row
        /// exists (`PostgresCopyRows.append(_:prefixedBy:)`).
        let valueRows: PostgresCopyRows

        /// `forWriting: false` (a dry run) leaves out the COPY rows, which only a write sends.
        init(_ submission: ValidSubmission, keyID: String?, forWriting: Bool = true) {
            self.submission = submission
            self.keyID = keyID
            self.contentDigest = Storage.contentDigest(submission.canonicalContent)
            var rows = PostgresCopyRows(reservingCapacity: forWriting ? submission.values.count * 64 : 0)
            for (ordinal, value) in submission.values.enumerated() where forWriting {
                rows.append(ordinal)
                rows.append(value.indicator)
                rows.append(value.country)
                rows.append(value.cell)
                rows.append(value.value)
                rows.append(value.estimate)
                rows.endRow()
            }
            self.valueRows = rows
        }
    }

    /// Withdraws the reporter's submission `submissionID`, for `reason`.
    struct Retraction: Sendable {
        var reporter: String
        var submissionID: String
        var reason: String
        /// The key that sent it.
        var keyID: String?
    }

    /// A version of a correction chain, as `conflict` details name the chain's head.
    struct ChainVersion: Sendable, Equatable {
        var submissionID: String
        var seq: Int64
        var retraction: Bool
    }

    enum Outcome: Sendable, Equatable {
        /// Stored; `replacedSeq` is the seq of the submission it replaces.
        case accepted(seq: Int64, replacedSeq: Int64?)
        /// Sent before with the same content.
        case duplicate(seq: Int64, values: Int, replacedSeq: Int64?)
        /// The same submission_id was sent before with other content.
        case conflict(seq: Int64)
        /// The submission a correction targets is already replaced or retracted: the chain's head.
        case superseded(target: ChainVersion, head: ChainVersion)
        /// The submission a correction targets does not exist (for this reporter).
        case unknownTarget(submissionID: String)
        /// Retracted: the retraction's seq and the withdrawn submission's.
        case retracted(seq: Int64, retractedSeq: Int64)
        /// Retracted before: the earlier retraction's seq.
        case alreadyRetracted(seq: Int64, retractedSeq: Int64)
        /// A dry run found nothing wrong.
        case valid
    }

    /// A correction was neither stored nor refused: its target committed after this write's
    /// transaction looked for it. Written again once; a second time, it is an internal error.
    struct TargetNotVisible: Error, CustomStringConvertible {
        var description: String { "the submission this write corrects was not committed yet when it was written" }
    }

    /// One transaction is written at a time, the queue's oldest writes first: transactions then
    /// commit, and take their seqs, in the order their writes were queued. A connection's
    /// overlapping requests queue in request order, so their seqs follow it too (a later
    /// snapshot of a `latest` series wins). Measured in `rootcauses bench`, two writers
    /// gained nothing once requests overlap (the queue fills while one commits).
    static let maximumWriters = 1
    /// Limits of one transaction.
    static let maximumBatchSubmissions = 200
    static let maximumBatchValues = 50_000

    private let pool: PostgresPool
    private let metrics = GroupCommitMetrics()
    private let state = NIOLockedValueBox(State())

    private struct Pending {
        let write: Write
        let continuation: CheckedContinuation<Outcome, any Error>
        /// Written again once already (its correction target was not visible the first time).
        var retried = false
        /// Queued again once already after its connection broke.
        var requeued = false
    }

    private struct State {
        var queue: [Pending] = []
        var writers = 0
    }

    init(pool: PostgresPool) { self.pool = pool }

    /// Stores a submission, or finds it was sent before. Returns after the commit; `queued`
    /// is called once the write is queued behind every write queued before it.
    func store(
        _ submission: ValidSubmission,
        keyID: String?,
        dryRun: Bool,
        queued: @Sendable () -> Void = {}
    ) async throws -> Outcome {
        if dryRun {
            return try await pool.withConnection(idempotent: true) { connection in
                try Self.resolve(
                    .submission(PreparedSubmission(submission, keyID: keyID, forWriting: false)),
                    on: connection
                ) ?? .valid
            }
        }
        return try await write(.submission(PreparedSubmission(submission, keyID: keyID)), queued: queued)
    }

    /// Retracts a submission, or finds it was retracted before. Returns after the commit;
    /// `queued` is called once the retraction is queued.
    func retract(_ retraction: Retraction, queued: @Sendable () -> Void = {}) async throws -> Outcome {
        try await write(.retraction(retraction), queued: queued)
    }

    private func write(_ write: Write, queued: @Sendable () -> Void) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            let startWriter = state.withLockedValue { state -> Bool in
                state.queue.append(Pending(write: write, continuation: continuation))
                guard state.writers < Self.maximumWriters else { return false }
                state.writers += 1
                return true
            }
            queued()
            if startWriter { Task { await self.drain() } }
        }
    }

    /// Writes batches until the queue is empty, all on one connection and its pool thread:
    /// between two batches the writer neither waits for a thread of the pool nor for the
    /// cooperative threads, which are busy decoding and checking the next requests (going back
    /// to them after each batch was a tenth of the writer's time under load).
    private func drain() async {
        while true {
            do {
                let drained = try await pool.withConnection { connection -> Bool in
                    while connection.isIdle {
                        guard let batch = self.nextBatch() else { return true }
                        guard self.write(batch, on: connection) else { return false }
                    }
                    // Broken, or left inside a transaction (a failed ROLLBACK): the pool closes
                    // it, and the writer goes on with a fresh, checked one.
                    return false
                }
                if drained { return }
            } catch {
                // No connection to write on: the oldest writes fail, and the writer goes on with
                // the rest (a database back after a restart takes them).
                guard let batch = nextBatch() else { return }
                for pending in batch { pending.continuation.resume(throwing: error) }
            }
        }
    }

    /// The next batch from the front of the queue, or `nil` when the queue is empty, and then
    /// this writer has stopped (the next write starts another).
    private func nextBatch() -> [Pending]? {
        state.withLockedValue { state -> [Pending]? in
            var values = 0
            var count = 0
            for pending in state.queue {
                if count == Self.maximumBatchSubmissions { break }
                if count > 0, values + pending.write.valueCount > Self.maximumBatchValues { break }
                values += pending.write.valueCount
                count += 1
            }
            guard count > 0 else {
                state.writers -= 1
                return nil
            }
            let batch = Array(state.queue.prefix(count))
            state.queue.removeFirst(count)
            return batch
        }
    }

    /// The connection broke while these writes were not answered yet.
    private struct ConnectionBroke: Error {
        var unwritten: [Pending]
        var underlying: any Error
    }

    /// Writes a batch and answers each of its writes; false when the connection broke. Then
    /// the writes it did not answer go back to the front of the queue, in order, to be written
    /// on a fresh connection; once only: a write whose connection broke twice fails. Safe: a
    /// submission committed before the break is not inserted again and answers duplicate with
    /// its seq.
    private func write(_ batch: [Pending], on connection: PostgresConnection) -> Bool {
        do {
            try writeAndAnswer(batch, on: connection)
            return true
        } catch let broke as ConnectionBroke {
            var again: [Pending] = []
            for var pending in broke.unwritten {
                if pending.requeued {
                    pending.continuation.resume(throwing: broke.underlying)
                } else {
                    pending.requeued = true
                    again.append(pending)
                }
            }
            state.withLockedValue { $0.queue.insert(contentsOf: again, at: 0) }
            return false
        } catch {
            preconditionFailure("writeAndAnswer throws only ConnectionBroke")
        }
    }

    /// Throws only `ConnectionBroke`.
    private func writeAndAnswer(_ batch: [Pending], on connection: PostgresConnection) throws {
        let started = ContinuousClock.now
        defer {
            metrics.submissions.record(batch.count)
            metrics.values.record(batch.reduce(0) { $0 + $1.write.valueCount })
            metrics.duration.record(duration: ContinuousClock.now - started)
        }
        let outcomes: [Result<Outcome, any Error>]
        do {
            outcomes = try Self.insert(batch.map(\.write), on: connection)
        } catch let error as PostgresError where error.isConnectionProblem {
            throw ConnectionBroke(unwritten: batch, underlying: error)
        } catch is PostgresError where batch.count > 1 {
            // One submission made the transaction fail: store each alone, so only it fails.
            for (index, pending) in batch.enumerated() {
                do {
                    try writeAndAnswer([pending], on: connection)
                } catch let broke as ConnectionBroke {
                    throw ConnectionBroke(
                        unwritten: broke.unwritten + batch[(index + 1)...],
                        underlying: broke.underlying
                    )
                }
            }
            return
        } catch {
            for pending in batch { pending.continuation.resume(throwing: error) }
            return
        }
        precondition(outcomes.count == batch.count, "one outcome per submission")
        var again: [Pending] = []
        for (pending, outcome) in zip(batch, outcomes) {
            // A correction sent right after its target, on another connection, can be written
            // while the target's transaction is still open: once that commits, write it again.
            if case .failure(let error) = outcome, error is TargetNotVisible, !pending.retried {
                var retry = pending
                retry.retried = true
                again.append(retry)
            } else {
                pending.continuation.resume(with: outcome)
            }
        }
        for (index, pending) in again.enumerated() {
            do {
                try writeAndAnswer([pending], on: connection)
            } catch let broke as ConnectionBroke {
                throw ConnectionBroke(unwritten: broke.unwritten + again[(index + 1)...], underlying: broke.underlying)
            }
        }
    }

    /// What an earlier write means for this one, or `nil` when nothing stands in its way: the
    /// same submission_id sent before (duplicate or conflict), or a correction whose target is
    /// missing or already superseded.
    private static func resolve(_ write: Write, on connection: PostgresConnection) throws -> Outcome? {
        switch write {
        case .submission(let prepared):
            let submission = prepared.submission
            let query: PostgresQuery = """
                SELECT seq, value_count,
                       content_digest = \(prepared.contentDigest) AS same_content,
                       (SELECT t.seq FROM \(Storage.Table.submissions) t WHERE t.id = s.replaces) AS replaced_seq
                FROM \(Storage.Table.submissions) s
                WHERE reporter = \(submission.reporter) AND submission_id = \(submission.submissionID) AND kind = 'submission'
                """
            if let row = try connection.query(query).first, let seq = try row.decode(column: "seq", as: Int64?.self) {
                return try row.decode(column: "same_content", as: Bool?.self) == true
                    ? .duplicate(
                        seq: seq,
                        values: try row.decode(column: "value_count", as: Int.self),
                        replacedSeq: try row.decode(column: "replaced_seq", as: Int64?.self)
                    )
                    : .conflict(seq: seq)
            }
            guard let replaces = submission.replaces else { return nil }
            let chain = try chain(reporter: submission.reporter, submissionID: replaces, on: connection)
            guard let target = chain.first else { return .unknownTarget(submissionID: replaces) }
            if chain.count > 1, let head = chain.last { return .superseded(target: target, head: head) }
            return nil
        case .retraction(let retraction):
            let chain = try chain(reporter: retraction.reporter, submissionID: retraction.submissionID, on: connection)
            guard let target = chain.first else { return .unknownTarget(submissionID: retraction.submissionID) }
            guard chain.count > 1, let head = chain.last else { return nil }
            if chain.count == 2, head.retraction { return .alreadyRetracted(seq: head.seq, retractedSeq: target.seq) }
            return .superseded(target: target, head: head)
        }
    }

    /// The reporter's submission `submissionID` followed by every later version, in order: the
    /// last is the chain's head. Empty when there is no such submission.
    static func chain(
        reporter: String,
        submissionID: String,
        on connection: PostgresConnection
    ) throws -> [ChainVersion] {
        let query: PostgresQuery = """
            WITH RECURSIVE chain AS (
                SELECT id, seq, submission_id, kind, 0 AS depth FROM \(Storage.Table.submissions)
                WHERE reporter = \(reporter) AND submission_id = \(submissionID) AND kind = 'submission'
                UNION ALL
                SELECT s.id, s.seq, s.submission_id, s.kind, chain.depth + 1
                FROM \(Storage.Table.submissions) s JOIN chain ON s.replaces = chain.id
            )
            SELECT submission_id, seq, kind = 'retraction' AS retraction FROM chain ORDER BY depth
            """
        return try connection.query(query).map { row in
            ChainVersion(
                submissionID: try row.decode(column: "submission_id", as: String.self),
                seq: try row.decode(column: "seq", as: Int64.self),
                retraction: try row.decode(column: "retraction", as: Bool.self)
            )
        }
    }

    /// One transaction for the batch: each submission's row, then all their values in one COPY,
    /// then the seqs, then COMMIT. Throws only for failures before the commit (nothing stored);
    /// after it, each submission gets its own outcome, so a failed look-up of one never turns
    /// the others into retries.
    private static func insert(
        _ writes: [Write],
        on connection: PostgresConnection
    ) throws -> [Result<Outcome, any Error>] {
        let groups = InsertGroup.groups(of: writes)
        var statements: [PostgresQuery] = ["BEGIN"]
        for group in groups {
            switch group {
            case .plain(let range):
                statements.append(
                    insertStatement(
                        plain: writes[range].compactMap { write in
                            if case .submission(let prepared) = write { return prepared }
                            return nil
                        }
                    )
                )
            case .correction(_, let prepared, let replaces):
                statements.append(insertStatement(correction: prepared, replaces: replaces))
            case .retraction(_, let retraction):
                statements.append(insertStatement(retraction))
            }
        }
        let storedIDs: [Int64?]
        let numbered: [PostgresRows]
        do {
            // Four round trips: the rows (pipelined), whose ids the values and the numbering
            // take; the values (COPY's start, then its end); the seqs and COMMIT. Locally each is
            // a small fraction of a millisecond, less than the statements they replace. Finding this transaction's rows on the
            // server instead (an index on rows without a seq) went through one dead index entry
            // per earlier submission until the next vacuum, since bitmap scans never mark
            // entries dead: 2 ms per batch after 2,000 submissions.
            let inserted = try connection.pipeline(statements)
            guard inserted.count == groups.count + 1 else {
                throw PostgresError(code: .unexpectedResult, message: "storing submissions returned unexpected results")
            }
            storedIDs = try InsertGroup.ids(of: writes, groups: groups, inserted: Array(inserted.dropFirst()))
            var values = PostgresCopyRows(reservingCapacity: writes.reduce(0) { $0 + $1.valueCount } * 64)
            for (write, id) in zip(writes, storedIDs) {
                guard let id, case .submission(let prepared) = write else { continue }
                values.append(prepared.valueRows, prefixedBy: id)
            }
            // COPY, not an INSERT per submission: PostgreSQL stores the rows in batches, and one
            // statement for the whole group replaces one per submission (half the database time).
            if values.rowCount > 0 {
                let copied = try connection.copyIn(valuesCopy, rows: values)
                guard copied == values.rowCount else {
                    throw PostgresError(
                        code: .unexpectedResult,
                        message: "storing values copied \(copied) rows instead of \(values.rowCount)"
                    )
                }
            }
            let numberedIDs = storedIDs.compactMap { $0 }
            if numberedIDs.isEmpty {
                numbered =
                    [PostgresRows(columns: [], rows: [], affectedRows: 0)] + (try connection.pipeline(["COMMIT"]))
            } else {
                let results = try connection.pipeline([
                    // Planned for this batch and the table as it is now: intake's connections keep
                    // generic plans, and one made while `submissions` was small scanned the table
                    // (or its seq index) at every batch until the next ANALYZE.
                    "SET LOCAL plan_cache_mode = force_custom_plan", numberingStatement(numberedIDs), "COMMIT",
                ])
                // Without the SET's own result; anything else fails the count checked below.
                numbered = results.first?.commandTag == "SET" ? Array(results.dropFirst()) : results
            }
        } catch {
            // The transaction is aborted (or the connection gone): leave the connection clean.
            if connection.isHealthy { try? connection.execute("ROLLBACK") }
            throw error
        }
        guard numbered.count == 2, numbered.last?.commandTag == "COMMIT" else {
            throw PostgresError(code: .unexpectedResult, message: "storing submissions returned unexpected results")
        }
        // Committed: from here on, errors concern one submission's answer, never its storage,
        // so nothing below may throw out of this function (it would be taken for a failed write).
        let seqOfID = Result { () throws -> [Int64: Int64] in
            var seqOfID: [Int64: Int64] = [:]
            for row in numbered[0] {
                let (id, seq) = try row.decode(Int64.self, Int64.self)
                seqOfID[id] = seq
            }
            return seqOfID
        }
        return writes.enumerated().map { index, write in
            Result { () throws -> Outcome in
                if let id = storedIDs[index] {
                    guard let seq = try seqOfID.get()[id] else {
                        throw PostgresError(code: .unexpectedResult, message: "a stored submission has no seq")
                    }
                    return try stored(write, seq: seq, on: connection)
                }
                guard let earlier = try resolve(write, on: connection) else {
                    // Neither stored nor refused: the target of this correction committed after
                    // this transaction looked for it (see `write`).
                    throw TargetNotVisible()
                }
                return earlier
            }
        }
    }

    /// A submission row's key as PostgreSQL compares it: byte for byte. Swift's `String`
    /// equality would take two spellings of one accented letter for one key, where the table
    /// holds two rows.
    private struct RowKey: Hashable {
        var reporter: [UInt8]
        var submissionID: [UInt8]

        init(reporter: String, submissionID: String) {
            self.reporter = Array(reporter.utf8)
            self.submissionID = Array(submissionID.utf8)
        }
    }

    /// How a batch's rows are inserted, in the batch's order: each run of plain submissions in
    /// one statement, each correction or retraction alone (it looks for its target, which may
    /// be earlier in the batch).
    private enum InsertGroup {
        case plain(Range<Int>)
        /// The write at this index, a correction of `replaces`.
        case correction(Int, PreparedSubmission, replaces: String)
        case retraction(Int, Retraction)

        /// The write as a group of its own, or `nil` for a plain submission.
        static func single(_ write: Write, at index: Int) -> InsertGroup? {
            switch write {
            case .submission(let prepared):
                return prepared.submission.replaces.map { .correction(index, prepared, replaces: $0) }
            case .retraction(let retraction):
                return .retraction(index, retraction)
            }
        }

        static func groups(of writes: [Write]) -> [InsertGroup] {
            var groups: [InsertGroup] = []
            var start = 0
            while start < writes.count {
                if let single = single(writes[start], at: start) {
                    groups.append(single)
                    start += 1
                    continue
                }
                var end = start + 1
                while end < writes.count, single(writes[end], at: end) == nil { end += 1 }
                groups.append(.plain(start..<end))
                start = end
            }
            return groups
        }

        /// Each write's new row id, or `nil` where nothing was inserted; `inserted` holds the
        /// groups' results in order.
        static func ids(of writes: [Write], groups: [InsertGroup], inserted: [PostgresRows]) throws -> [Int64?] {
            var ids = [Int64?](repeating: nil, count: writes.count)
            for (group, rows) in zip(groups, inserted) {
                switch group {
                case .correction(let index, _, _), .retraction(let index, _):
                    ids[index] = try rows.first?.decode(column: "id", as: Int64?.self) ?? nil
                case .plain(let range):
                    var idOfKey: [RowKey: Int64] = [:]
                    for row in rows {
                        let (id, reporter, submissionID) = try row.decode(Int64.self, String.self, String.self)
                        idOfKey[RowKey(reporter: reporter, submissionID: submissionID)] = id
                    }
                    for index in range {
                        guard case .submission(let prepared) = writes[index] else { continue }
                        // Only the first of the run with its key can have been inserted.
                        ids[index] = idOfKey.removeValue(
                            forKey: RowKey(
                                reporter: prepared.submission.reporter,
                                submissionID: prepared.submission.submissionID
                            )
                        )
                    }
                    // A row no write claims would commit without a seq: refuse the batch (each
                    // write is then stored alone).
                    guard idOfKey.isEmpty else {
                        throw PostgresError(
                            code: .unexpectedResult,
                            message: "storing submissions inserted rows no submission of the batch claims"
                        )
                    }
                }
            }
            return ids
        }
    }

    /// The COPY that stores the values of a batch's submissions.
    private static let valuesCopy =
        "COPY \(Storage.Table.submissionValues.rawValue) (submission, ordinal, indicator, country, cell, value, estimate) FROM STDIN"

    /// Numbers the batch's stored submissions consecutively, in the order they were written,
    /// under the counter's row lock: the last step before COMMIT, so seqs commit in order. Each
    /// also gets the time it was numbered, which reads "as of" a time go by.
    private static func numberingStatement(_ ids: [Int64]) -> PostgresQuery {
        """
        WITH mine AS (
            SELECT id, ordinal FROM unnest(\(ids)::bigint[]) WITH ORDINALITY AS m (id, ordinal)
        ), next AS (
            UPDATE \(Storage.Table.seqCounter)
            SET last_seq = last_seq + \(ids.count)::bigint,
                -- greatest() skips NULL: the first submission ever takes the clock's time.
                last_sequenced_at = greatest(clock_timestamp(), last_sequenced_at)
            RETURNING last_seq, last_sequenced_at
        )
        UPDATE \(Storage.Table.submissions) s
        SET seq = next.last_seq - \(ids.count)::bigint + mine.ordinal, sequenced_at = next.last_sequenced_at
        FROM mine, next
        -- Each row by its id; `seq IS NULL` only checks (`+ 0`). As an index condition, with one
        -- such row expected, the planner scanned the seq index's entries of rows without a seq
        -- (every earlier submission's, dead until a vacuum) into a hash.
        WHERE s.id = mine.id AND (s.seq + 0) IS NULL
        RETURNING s.id, s.seq
        """
    }

    /// The answer for a write that was stored as `seq`: a correction names the seq it superseded.
    private static func stored(_ write: Write, seq: Int64, on connection: PostgresConnection) throws -> Outcome {
        switch write {
        case .submission(let prepared):
            let submission = prepared.submission
            guard let replaces = submission.replaces else { return .accepted(seq: seq, replacedSeq: nil) }
            let target = try chain(reporter: submission.reporter, submissionID: replaces, on: connection).first
            return .accepted(seq: seq, replacedSeq: target?.seq)
        case .retraction(let retraction):
            let target = try chain(reporter: retraction.reporter, submissionID: retraction.submissionID, on: connection)
                .first
            guard let target else {
                throw PostgresError(code: .unexpectedResult, message: "a stored retraction has no target")
            }
            return .retracted(seq: seq, retractedSeq: target.seq)
        }
    }

    /// Inserts a correction's row (its values follow in the batch's COPY), unless its
    /// submission_id is taken or the submission it replaces is missing or already superseded
    /// (decided after COMMIT). Returns the new id, or NULL.
    private static func insertStatement(correction prepared: PreparedSubmission, replaces: String) -> PostgresQuery {
        let submission = prepared.submission
        return """
            WITH target AS (
                SELECT id FROM \(Storage.Table.submissions)
                WHERE reporter = \(submission.reporter) AND submission_id = \(replaces) AND kind = 'submission'
            ), submission AS (
                INSERT INTO \(Storage.Table.submissions) (reporter, submission_id, period, period_start, period_end, activity, value_count, content_digest, replaces, api_key_id)
                SELECT \(submission.reporter), \(submission.submissionID), \(submission.periodText),
                       \(submission.period.start.description)::date, \(submission.period.end.description)::date,
                       \(submission.activity), \(submission.values.count)::integer,
                       \(prepared.contentDigest), target.id,
                       \(prepared.keyID)
                FROM target
                -- Sent before (a retry), by another connection a moment ago, or a second correction
                -- of the same submission (the chain index): decided after COMMIT.
                ON CONFLICT DO NOTHING
                RETURNING id
            )
            SELECT (SELECT id FROM submission) AS id
            """
    }

    /// Inserts the rows of plain submissions (no `replaces`), in order, in one statement: one
    /// statement per submission was a good part of the database's time for intake (each
    /// planned, executed and answered alone). Skips those whose submission_id is taken,
    /// decided after COMMIT; returns each new row's id with its reporter and submission_id.
    ///
    /// It does not look for a target at all: with `replaces` bound as NULL, a generic plan of a
    /// statement shared with corrections still searched the reporter's submissions for one, an
    /// index entry per earlier submission (2 ms a submission at 6,000 stored).
    private static func insertStatement(plain submissions: [PreparedSubmission]) -> PostgresQuery {
        let rows = submissions.map(\.submission)
        return """
            INSERT INTO \(Storage.Table.submissions) (reporter, submission_id, period, period_start, period_end, activity, value_count, content_digest, api_key_id)
            SELECT reporter, submission_id, period, period_start, period_end, activity, value_count,
                   content_digest, api_key_id
            FROM unnest(\(rows.map(\.reporter))::text[], \(rows.map(\.submissionID))::text[], \(rows.map(\.periodText))::text[],
                        \(rows.map(\.period.start.description))::date[], \(rows.map(\.period.end.description))::date[],
                        \(rows.map(\.activity))::text[], \(rows.map(\.values.count))::integer[],
                        \(submissions.map(\.contentDigest))::text[], \(submissions.map(\.keyID))::text[])
                 WITH ORDINALITY AS s (reporter, submission_id, period, period_start, period_end, activity, value_count, content_digest, api_key_id, ordinal)
            ORDER BY ordinal
            -- Sent before (a retry), by another connection a moment ago, or twice in this batch.
            ON CONFLICT DO NOTHING
            RETURNING id, reporter, submission_id
            """
    }

    /// Inserts a retraction of a submission, unless it is missing or already superseded.
    private static func insertStatement(_ retraction: Retraction) -> PostgresQuery {
        """
        WITH target AS (
            SELECT id, period, period_start, period_end FROM \(Storage.Table.submissions)
            WHERE reporter = \(retraction.reporter) AND submission_id = \(retraction.submissionID) AND kind = 'submission'
        ), retraction AS (
            INSERT INTO \(Storage.Table.submissions) (reporter, submission_id, kind, replaces, reason, period, period_start, period_end, value_count, content_digest, api_key_id)
            SELECT \(retraction.reporter), \(retraction.submissionID), 'retraction', id, \(retraction.reason),
                   period, period_start, period_end, 0, encode(sha256(convert_to(\(retraction.reason), 'UTF8')), 'hex'),
                   \(retraction.keyID)
            FROM target
            ON CONFLICT DO NOTHING
            RETURNING id
        )
        SELECT (SELECT id FROM retraction) AS id
        """
    }
}

/// The group commit's metrics, created once: how much each transaction carries and how long it takes.
struct GroupCommitMetrics: Sendable {
    /// Submissions (and retractions) per transaction.
    let submissions = Recorder(label: "rootcauses_intake_group_commit_submissions")
    /// Values per transaction.
    let values = Recorder(label: "rootcauses_intake_group_commit_values")
    /// From the transaction's start to its commit (and the answers).
    let duration = Timer(label: "rootcauses_intake_group_commit_duration_seconds")
}
