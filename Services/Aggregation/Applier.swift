import NIOConcurrencyHelpers
import RootcausesPostgres
import RootcausesStorage

/// Aggregation's SQL, all in one place: applying submissions and reading progress.
struct Applier: Sendable {
    let pool: PostgresPool
    let instance: String
    let batchSize: Int
    /// How long this instance's partitions stay its own without a heartbeat.
    let lease: Duration

    /// What this instance holds after a heartbeat.
    struct Ownership: Sendable, Equatable {
        /// The partitions it owns, in order.
        var partitions: [Int]
        /// Live instances, this one included.
        var instances: Int
    }

    /// Renews this instance's heartbeat and leases and takes or gives up partitions so that each
    /// live instance holds a fair share (the partitions divided by the live instances, rounded
    /// up): a new instance gets partitions handed over by the others within a heartbeat or two,
    /// and a dead one's are taken once its lease has run out. One statement, one round trip.
    func heartbeat() async throws -> Ownership {
        let leaseMilliseconds = Int64(
            lease.components.seconds * 1000 + lease.components.attoseconds / 1_000_000_000_000_000
        )
        let query: PostgresQuery = """
            WITH heartbeat AS (
                INSERT INTO \(Storage.Table.aggregationInstances) (instance, heartbeat_at, expires_at)
                VALUES (\(instance), now(), now() + \(leaseMilliseconds)::bigint * interval '1 millisecond')
                ON CONFLICT (instance) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at
                RETURNING 1
            ), live AS (
                -- Statements see the table as it was: count this instance whether its row is new or not.
                SELECT 1 + count(*) AS instances FROM \(Storage.Table.aggregationInstances)
                WHERE expires_at > now() AND instance <> \(instance)
            ), fair AS (
                SELECT ceil(\(Storage.aggregationPartitions)::numeric / live.instances)::integer AS share, live.instances FROM live
            ), mine AS (
                SELECT partition, row_number() OVER (ORDER BY partition) AS rank
                FROM \(Storage.Table.aggregationPartitions) WHERE owner = \(instance)
            ), released AS (
                UPDATE \(Storage.Table.aggregationPartitions) p SET owner = NULL, lease_expires_at = NULL
                FROM mine, fair WHERE p.partition = mine.partition AND mine.rank > fair.share
                RETURNING p.partition
            ), renewed AS (
                UPDATE \(Storage.Table.aggregationPartitions) p
                SET lease_expires_at = now() + \(leaseMilliseconds)::bigint * interval '1 millisecond'
                FROM mine, fair WHERE p.partition = mine.partition AND mine.rank <= fair.share
                RETURNING p.partition
            ), free AS (
                -- Unowned, or owned by an instance whose lease ran out. SKIP LOCKED: a partition
                -- being applied right now is not waited for; it is taken on a later heartbeat.
                SELECT partition FROM \(Storage.Table.aggregationPartitions)
                WHERE (owner IS NULL OR lease_expires_at <= now()) AND owner IS DISTINCT FROM \(instance)
                ORDER BY partition
                LIMIT (SELECT greatest(0, fair.share - (SELECT count(*) FROM mine)) FROM fair)
                FOR UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE \(Storage.Table.aggregationPartitions) p
                SET owner = \(instance), lease_expires_at = now() + \(leaseMilliseconds)::bigint * interval '1 millisecond'
                FROM free WHERE p.partition = free.partition
                RETURNING p.partition
            )
            SELECT partition, (SELECT instances FROM fair) AS instances, (SELECT count(*) FROM heartbeat) AS beat
            FROM (SELECT partition FROM renewed UNION ALL SELECT partition FROM claimed) owned
            ORDER BY partition
            """
        let rows = try await pool.withConnection(idempotent: true) { connection in try connection.query(query) }
        var ownership = Ownership(partitions: [], instances: 1)
        for row in rows {
            ownership.partitions.append(try row.decode(column: "partition", as: Int.self))
            ownership.instances = try row.decode(column: "instances", as: Int.self)
        }
        return ownership
    }

    /// Gives up this instance's partitions and heartbeat, so others take them at once (on a
    /// graceful shutdown; a killed instance's leases simply run out).
    func resign() async throws {
        let query: PostgresQuery = """
            WITH released AS (
                UPDATE \(Storage.Table.aggregationPartitions) SET owner = NULL, lease_expires_at = NULL
                WHERE owner = \(instance)
                RETURNING 1
            )
            DELETE FROM \(Storage.Table.aggregationInstances) WHERE instance = \(instance)
            """
        try await pool.withConnection(idempotent: true) { connection in _ = try connection.query(query) }
    }

    /// A live instance, the partitions it owns and each one's watermark.
    struct InstanceState: Sendable {
        var instance: String
        var heartbeatAt: String
        var partitions: [(partition: Int, appliedSeq: Int64)]
    }

    /// Every live instance with the partitions it owns, for `status`.
    func instances() async throws -> [InstanceState] {
        let query: PostgresQuery = """
            SELECT i.instance, to_char(i.heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS heartbeat_at,
                   p.partition, p.applied_seq
            FROM \(Storage.Table.aggregationInstances) i
            LEFT JOIN \(Storage.Table.aggregationPartitions) p ON p.owner = i.instance AND p.lease_expires_at > now()
            WHERE i.expires_at > now()
            ORDER BY i.instance, p.partition
            """
        let rows = try await pool.withConnection(idempotent: true) { connection in try connection.query(query) }
        var states: [InstanceState] = []
        for row in rows {
            let name = try row.decode(column: "instance", as: String.self)
            if states.last?.instance != name {
                states.append(
                    InstanceState(
                        instance: name,
                        heartbeatAt: try row.decode(column: "heartbeat_at", as: String.self),
                        partitions: []
                    )
                )
            }
            if let partition = try row.decode(column: "partition", as: Int?.self) {
                states[states.count - 1].partitions.append(
                    (partition, try row.decode(column: "applied_seq", as: Int64.self))
                )
            }
        }
        return states
    }

    /// What one pass over the partitions did.
    struct Pass: Sendable {
        /// Partitions this instance held and worked on.
        var held: [Int] = []
        /// The most submissions any partition moved forward by.
        var applied = 0
        /// True when some partition still has work beyond its batch.
        var moreWork = false
    }

    /// Applies pending submissions to the partitions this instance owns, in one statement (one
    /// round trip, one commit): lock them (`SKIP LOCKED`: a former owner may still be finishing
    /// a pass on one), insert
    /// the contributions of the submissions after each one's watermark, and move the watermarks.
    /// The inserts and the watermark moves commit together or not at all, so exactly once.
    func applyPass() async throws -> Pass {
        let batchSize = self.batchSize
        let instance = self.instance
        let query: PostgresQuery = """
            WITH locked AS (
                SELECT partition, applied_seq FROM \(Storage.Table.aggregationPartitions)
                WHERE owner = \(instance)
                FOR UPDATE SKIP LOCKED
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
                    FROM \(Storage.Table.submissionValues) v
                    -- Only this instance's partitions, straight from the key (submission, partition, ordinal).
                    WHERE v.submission = s.id AND v.partition = ANY ((SELECT array_agg(partition) FROM target)::integer[])
                    OFFSET 0
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
