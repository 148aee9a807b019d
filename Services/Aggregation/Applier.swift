import NIOConcurrencyHelpers
import RootcausesPostgres
import RootcausesStorage

/// Aggregation's SQL, all in one place: applying submissions and reading progress.
struct Applier: Sendable {
    let pool: PostgresPool
    let instance: String
    let batchSize: Int

    /// What one pass over the partitions did.
    struct Pass: Sendable {
        /// Partitions this instance held and worked on.
        var held: [Int] = []
        /// The most submissions any partition moved forward by.
        var applied = 0
        /// True when some partition still has work beyond its batch.
        var moreWork = false
    }

    /// Applies pending submissions to every partition no other instance is working on, in one
    /// statement (one round trip, one commit): lock the free partitions (`SKIP LOCKED`), insert
    /// the contributions of the submissions after each one's watermark, and move the watermarks.
    /// The inserts and the watermark moves commit together or not at all, so exactly once.
    func applyPass() async throws -> Pass {
        let batchSize = self.batchSize
        let instance = self.instance
        let query: PostgresQuery = """
            WITH locked AS (
                SELECT partition, applied_seq FROM \(Storage.Table.aggregationPartitions) FOR UPDATE SKIP LOCKED
            ), latest AS (
                -- Seqs commit in order (see intake): every seq up to the committed counter is visible.
                SELECT last_seq FROM \(Storage.Table.seqCounter)
            ), target AS (
                SELECT l.partition, l.applied_seq AS from_seq, LEAST(latest.last_seq, l.applied_seq + \(Int64(batchSize))::bigint) AS to_seq
                FROM locked l, latest
            ), inserted AS (
                INSERT INTO \(Storage.Table.aggregateContributions) (seq, indicator, country, reporter, period_start, period_end, value, estimate)
                SELECT s.seq, v.indicator, v.country, s.reporter, s.period_start, s.period_end, sum(v.value), bool_or(v.estimate)
                FROM \(Storage.Table.submissions) s
                -- Per submission, its values by index. A plain join let the planner hash the
                -- whole values table on every pass (80 ms at 500k values); OFFSET 0 keeps the
                -- lateral subquery from being flattened back into that join.
                CROSS JOIN LATERAL (
                    SELECT v.indicator, v.country, v.value, v.estimate, v.partition
                    FROM \(Storage.Table.submissionValues) v WHERE v.submission = s.id OFFSET 0
                ) v
                JOIN target t ON t.partition = v.partition AND s.seq > t.from_seq AND s.seq <= t.to_seq
                WHERE s.seq > (SELECT min(from_seq) FROM target) AND s.seq <= (SELECT max(to_seq) FROM target)
                GROUP BY s.seq, v.indicator, v.country, s.reporter, s.period_start, s.period_end
                RETURNING 1
            ), moved AS (
                UPDATE \(Storage.Table.aggregationPartitions) p SET applied_seq = t.to_seq, applied_by = \(instance), applied_at = now()
                FROM target t
                WHERE p.partition = t.partition AND t.to_seq > t.from_seq
                RETURNING p.partition
            )
            SELECT t.partition, t.from_seq, t.to_seq, (SELECT last_seq FROM latest) AS latest,
                   (SELECT count(*) FROM inserted) AS inserted, (SELECT count(*) FROM moved) AS moved
            FROM target t
            ORDER BY t.partition
            """
        // Running a pass again is harmless: the watermarks it moved make it start after them.
        let rows = try await pool.withConnection(idempotent: true) { connection in try connection.query(query) }
        var pass = Pass()
        for row in rows {
            let (partition, from, to, latest) = try (
                row.decode(column: "partition", as: Int.self), row.decode(column: "from_seq", as: Int64.self),
                row.decode(column: "to_seq", as: Int64.self), row.decode(column: "latest", as: Int64.self)
            )
            pass.held.append(partition)
            pass.applied = max(pass.applied, Int(to - from))
            pass.moreWork = pass.moreWork || to < latest
        }
        return pass
    }

    /// The applied watermark (every seq up to it is applied in every partition) and the latest committed seq.
    func progress() async throws -> (applied: Int64, latest: Int64) {
        let query: PostgresQuery = """
            SELECT (SELECT min(applied_seq) FROM \(Storage.Table.aggregationPartitions)) AS applied,
                   (SELECT last_seq FROM \(Storage.Table.seqCounter)) AS latest
            """
        return try await pool.withConnection(idempotent: true) { connection in
            let row = try connection.query(query).first
            return (
                try row?.decode(column: "applied", as: Int64?.self) ?? 0,
                try row?.decode(column: "latest", as: Int64?.self) ?? 0
            )
        }
    }
}
