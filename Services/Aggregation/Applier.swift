import NIOConcurrencyHelpers
import RootcausesPostgres
import RootcausesStorage

/// Aggregation's SQL, all in one place: applying submissions and reading progress.
struct Applier: Sendable {
    let pool: PostgresPool
    let instance: String
    let batchSize: Int

    /// A non-negative number derived from an indicator code that never changes across PostgreSQL
    /// versions (unlike `hashtext`): partition watermarks rely on each indicator staying put.
    static func partitionOfIndicator(_ column: String) -> String {
        "('x' || substr(md5(\(column)), 1, 7))::bit(28)::integer"
    }

    /// What one pass over the partitions did.
    struct Pass: Sendable {
        /// Partitions this instance held and worked on.
        var held: [Int] = []
        /// Submissions applied, summed over partitions.
        var applied = 0
        /// True when some partition still has work beyond its batch.
        var moreWork = false
    }

    /// Applies pending submissions to every partition no other instance is working on.
    func applyPass() async throws -> Pass {
        var pass = Pass()
        let start = Int.random(in: 0..<Schema.aggregationPartitions)  // spread instances over partitions
        for offset in 0..<Schema.aggregationPartitions {
            let partition = (start + offset) % Schema.aggregationPartitions
            guard let result = try await apply(partition: partition) else { continue }
            pass.held.append(partition)
            pass.applied += result.applied
            pass.moreWork = pass.moreWork || result.moreWork
        }
        pass.held.sort()
        return pass
    }

    /// One transaction: lock the partition (skip it if another instance has it), apply the
    /// submissions after its watermark, move the watermark. All or nothing, so exactly once.
    func apply(partition: Int) async throws -> (applied: Int, moreWork: Bool)? {
        let batchSize = self.batchSize
        let instance = self.instance
        return try await pool.withTransaction { connection -> (applied: Int, moreWork: Bool)? in
            let locked = try connection.query(
                "SELECT applied_seq FROM aggregation_partitions WHERE partition = $1::integer FOR UPDATE SKIP LOCKED", [partition])
            guard let applied = locked.first?.int64("applied_seq") else { return nil }
            // Seqs commit in order (see intake), so every seq up to the committed counter is visible.
            let latest = try connection.query("SELECT last_seq FROM seq_counter").first?.int64("last_seq") ?? 0
            let target = min(latest, applied + Int64(batchSize))
            guard target > applied else { return (0, false) }
            try connection.query("""
                INSERT INTO aggregate_contributions (seq, indicator, country, reporter, period_start, period_end, value, estimate)
                SELECT s.seq, v.indicator, v.country, s.reporter, s.period_start, s.period_end, sum(v.value), bool_or(v.estimate)
                FROM submissions s
                JOIN submission_values v ON v.submission = s.id
                WHERE s.seq > $1::bigint AND s.seq <= $2::bigint
                  AND \(Self.partitionOfIndicator("v.indicator")) % $3::integer = $4::integer
                GROUP BY s.seq, v.indicator, v.country, s.reporter, s.period_start, s.period_end
                """, [applied, target, Schema.aggregationPartitions, partition])
            try connection.query("""
                UPDATE aggregation_partitions SET applied_seq = $2::bigint, applied_by = $3, applied_at = now()
                WHERE partition = $1::integer
                """, [partition, target, instance])
            return (Int(target - applied), target < latest)
        }
    }

    /// The applied watermark (every seq up to it is applied in every partition) and the latest committed seq.
    func progress() async throws -> (applied: Int64, latest: Int64) {
        try await pool.withConnection { connection in
            let row = try connection.query("""
                SELECT (SELECT min(applied_seq) FROM aggregation_partitions) AS applied,
                       (SELECT last_seq FROM seq_counter) AS latest
                """).first
            return (row?.int64("applied") ?? 0, row?.int64("latest") ?? 0)
        }
    }
}
