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
    /// The indicators whose periods hold snapshots (`latest`): the newest submission of a cell wins.
    let latestIndicators: [String]

    /// Which of this instance's partitions one of its concurrent pass loops works on: those
    /// whose number leaves `index` when divided by `count`. The loops of one instance never
    /// touch the same partition, so their passes lock, write and commit independently.
    struct Lane: Sendable, Hashable {
        let index: Int
        let count: Int

        /// The first lane also heartbeats, for the whole instance.
        var heartbeats: Bool { index == 0 }
    }

    /// What this instance holds after a heartbeat.
    struct Ownership: Sendable, Equatable {
        /// The partitions it keeps (its fair share), in order: passes work on these only.
        var partitions: [Int]
        /// Live instances, this one included.
        var instances: Int
    }

    /// Renews this instance's heartbeat and leases and takes or gives up partitions so that each
    /// live instance holds a fair share (the partitions divided by the live instances, rounded
    /// up): a new instance gets partitions handed over by the others within a heartbeat or two,
    /// and a dead one's are taken once its lease has run out. One statement, one round trip.
    ///
    /// A partition that one of this instance's passes holds right now is left alone (`SKIP
    /// LOCKED`): the pass renews its lease as it commits, and a partition to give up goes at a
    /// later heartbeat. Waiting for it kept the first lane from its own passes while another
    /// lane's ran, and the heartbeat's locks made passes starting meanwhile skip partitions.
    func heartbeat() async throws -> Ownership {
        let leaseMilliseconds = lease.wholeMilliseconds
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
            ), idle AS (
                -- Not in a pass of ours right now.
                SELECT partition FROM \(Storage.Table.aggregationPartitions) WHERE owner = \(instance)
                FOR UPDATE SKIP LOCKED
            ), released AS (
                UPDATE \(Storage.Table.aggregationPartitions) p SET owner = NULL, lease_expires_at = NULL
                FROM mine, fair, idle
                WHERE p.partition = mine.partition AND idle.partition = mine.partition AND mine.rank > fair.share
                RETURNING p.partition
            ), renewed AS (
                UPDATE \(Storage.Table.aggregationPartitions) p
                SET lease_expires_at = now() + \(leaseMilliseconds)::bigint * interval '1 millisecond'
                FROM mine, fair, idle
                WHERE p.partition = mine.partition AND idle.partition = mine.partition AND mine.rank <= fair.share
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
            -- What this instance keeps from now on, renewed here or by the pass holding it. A
            -- partition to give up that a pass holds goes at the next heartbeat: passes keep to
            -- this list, so only the pass in progress holds it up.
            SELECT partition, (SELECT instances FROM fair) AS instances, (SELECT count(*) FROM heartbeat) AS beat
            FROM (
                SELECT partition FROM mine, fair WHERE mine.rank <= fair.share
                UNION ALL SELECT partition FROM claimed
            ) owned
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

    /// The partitions of `lane` among `kept` (the last heartbeat's ``Ownership/partitions``)
    /// that this instance owns, and how many seqs the one furthest behind is behind the counter
    /// (0: nothing to apply). A pass costs ~10 ms of planning even with nothing to apply, and an
    /// idle instance would pay it at every poll: this look (one small statement) decides whether
    /// a pass is needed, and which plan it runs on.
    func pendingWork(lane: Lane, among kept: [Int]) async throws -> (owned: [Int], gap: Int64) {
        let instance = self.instance
        let query: PostgresQuery = """
            SELECT p.partition, c.last_seq - p.applied_seq AS gap
            FROM \(Storage.Table.aggregationPartitions) p, \(Storage.Table.seqCounter) c
            WHERE p.owner = \(instance) AND p.partition % \(lane.count) = \(lane.index)
              AND p.partition = ANY (\(kept)::integer[])
            ORDER BY p.partition
            """
        let rows = try await pool.withConnection(idempotent: true) { connection in try connection.query(query) }
        var owned: [Int] = []
        var gap: Int64 = 0
        for row in rows {
            owned.append(try row.decode(column: "partition", as: Int.self))
            gap = max(gap, try row.decode(column: "gap", as: Int64.self))
        }
        return (owned, gap)
    }

    /// Passes over at most this many seqs (in the partition furthest behind) run on a generic
    /// plan: planning the pass for its values took 5 ms and more under load, about as long as
    /// applying a few submissions, and was most of the ack-to-visible lag. Larger passes
    /// (catching up a backlog) are still planned for their values: a generic plan made them
    /// slower.
    static let genericPlanGap: Int64 = 64

    /// The oldest a generic plan of the pass may be when used; an older one is made again.
    /// A generic plan is made for the tables as they are: one made while they were nearly empty
    /// scanned them whole once they had grown, and kept aggregation a minute behind until
    /// autovacuum's ANALYZE threw it away (the reason passes were planned every time before).
    static let genericPlanLifetime: Duration = .seconds(5)

    /// What one pass over the partitions did.
    struct Pass: Sendable {
        /// Partitions this instance held and worked on.
        var held: [Int] = []
        /// The most submissions any partition moved forward by.
        var applied = 0
        /// Seqs moved past, summed over the partitions held.
        var advanced = 0
        /// True when some partition still has work beyond its batch.
        var moreWork = false
    }

    /// Applies pending versions to the partitions of `lane` among `kept` that this instance
    /// owns, in one statement (one round trip, one commit): lock them (`SKIP LOCKED`: a former
    /// owner may still be finishing a pass on one), turn the versions after each one's watermark
    /// into changes of the rollups, keep each changed row's state after each seq that changed
    /// it, and move the watermarks, renewing their leases. The rollups, the log
    /// and the watermarks commit together or not at all, so every version is applied exactly once.
    ///
    /// A version adds its values and takes away those of the version it replaces or retracts.
    /// For `sum` indicators those are the changes, to the period's rows and to the rows of all
    /// periods together. For `latest` indicators a cell's value is its
    /// newest current submission's, so each touched (indicator, country, reporter, period) is
    /// worked out again from the stored submissions at every seq that touches it (and at the
    /// watermark, as the baseline), and the changes are the differences. docs/ROLLUPS.md.
    ///
    /// `gap` is how far behind the counter the partition furthest behind was just before (see
    /// ``pendingWork(lane:among:)``): a small pass runs on a generic plan (``genericPlanGap``).
    func applyPass(lane: Lane, among kept: [Int], gap: Int64) async throws -> Pass {
        let batchSize = self.batchSize
        let leaseMilliseconds = lease.wholeMilliseconds
        let instance = self.instance
        let latest = latestIndicators
        let allCells = Storage.allCells
        let allPeriods = Storage.allPeriods
        let query: PostgresQuery = """
            WITH locked AS (
                SELECT partition, applied_seq FROM \(Storage.Table.aggregationPartitions)
                WHERE owner = \(instance) AND partition % \(lane.count) = \(lane.index)
                  AND partition = ANY (\(kept)::integer[])
                FOR UPDATE SKIP LOCKED
            ), newest AS (
                -- Seqs commit in order (see intake): every seq up to the committed counter is visible.
                SELECT last_seq FROM \(Storage.Table.seqCounter)
            ), target AS (
                SELECT l.partition, l.applied_seq AS from_seq, LEAST(newest.last_seq, l.applied_seq + \(Int64(batchSize))::bigint) AS to_seq
                FROM locked l, newest
            ), span AS (
                SELECT array_agg(partition) AS partitions, min(partition) AS first_partition, max(partition) AS last_partition,
                       min(from_seq) AS lo, max(to_seq) AS hi
                FROM target
            ), versions AS (
                -- A submission brings its own values; a correction takes away those of what it supersedes.
                -- `corrects`: the seq both adds and takes away, so its changes are summed per key.
                -- Each row carries its source's reporter and period: joined later, the planner
                -- hashed every stored submission to find them (100 ms a pass at 280 k submissions).
                SELECT s.seq, s.id AS source, 1 AS sign, s.replaces IS NOT NULL AS corrects,
                       s.reporter, s.period_start, s.period_end
                FROM \(Storage.Table.submissions) s, span WHERE s.seq > span.lo AND s.seq <= span.hi AND s.kind = 'submission'
                UNION ALL
                SELECT s.seq, t.id AS source, -1 AS sign, true AS corrects, t.reporter, t.period_start, t.period_end
                FROM \(Storage.Table.submissions) s
                JOIN \(Storage.Table.submissions) t ON t.id = s.replaces, span
                WHERE s.seq > span.lo AND s.seq <= span.hi AND s.replaces IS NOT NULL
            ), version_values AS MATERIALIZED (
                -- Materialized: joined to the partitions' ranges later, the planner ran this once per
                -- partition (64 times the index look-ups).
                SELECT ver.seq, ver.sign, ver.corrects, v.partition, v.indicator, v.country, ver.reporter, ver.period_start,
                       ver.period_end, v.cell, v.value, v.estimate
                FROM versions ver
                -- Per version, its values by index. A plain join let the planner hash the whole
                -- values table on every pass (80 ms at 500k values); OFFSET 0 keeps the lateral
                -- subquery from being flattened back into that join.
                CROSS JOIN LATERAL (
                    SELECT v.indicator, v.country, v.cell, v.value, v.estimate, v.partition
                    FROM \(Storage.Table.submissionValues) v
                    -- Only this instance's partitions, straight from the key (submission, partition, ordinal).
                    -- The range is the index condition: one descent per version. As an index condition the
                    -- list cost a descent per partition (64 for one instance), so it only filters (`+ 0`).
                    WHERE v.submission = ver.source
                      AND v.partition BETWEEN (SELECT first_partition FROM span) AND (SELECT last_partition FROM span)
                      AND v.partition + 0 = ANY ((SELECT partitions FROM span)::integer[])
                    OFFSET 0
                ) v
            ), events AS (
                SELECT vv.*, vv.indicator = ANY(\(latest)::text[]) AS latest
                FROM version_values vv
                JOIN target t ON t.partition = vv.partition AND vv.seq > t.from_seq AND vv.seq <= t.to_seq
            ), sum_cells AS (
                -- A submission gives a cell once: only a correction's seq can touch a key twice.
                SELECT seq, partition, indicator, country, reporter, period_start, period_end, cell,
                       value, 1 AS submissions, estimate::integer AS estimates
                FROM events WHERE NOT latest AND NOT corrects
                UNION ALL
                SELECT seq, partition, indicator, country, reporter, period_start, period_end, cell,
                       sum(sign * value) AS value, sum(sign)::integer AS submissions,
                       sum(CASE WHEN estimate THEN sign ELSE 0 END)::integer AS estimates
                FROM events WHERE NOT latest AND corrects
                GROUP BY seq, partition, indicator, country, reporter, period_start, period_end, cell
            ), sum_all_cells AS (
                -- Each submission counts once for all its cells together.
                SELECT seq, partition, indicator, country, reporter, period_start, period_end, \(allCells)::text AS cell,
                       sum(sign * value) AS value,
                       (bool_or(sign = 1)::integer - bool_or(sign = -1)::integer) AS submissions,
                       (bool_or(sign = 1 AND estimate)::integer - bool_or(sign = -1 AND estimate)::integer) AS estimates
                FROM events WHERE NOT latest
                GROUP BY seq, partition, indicator, country, reporter, period_start, period_end
            ), latest_points AS (
                -- Every seq at which a latest group changes, and its watermark as the baseline.
                SELECT DISTINCT seq, partition, indicator, country, reporter, period_start, period_end FROM events WHERE latest
                UNION
                SELECT t.from_seq, e.partition, e.indicator, e.country, e.reporter, e.period_start, e.period_end
                FROM events e JOIN target t ON t.partition = e.partition WHERE e.latest
            ), latest_states AS (
                -- Per point and cell, the newest submission current at that seq.
                SELECT p.seq, p.partition, p.indicator, p.country, p.reporter, p.period_start, p.period_end,
                       w.cell, w.value, w.estimate, w.winner
                FROM latest_points p
                CROSS JOIN LATERAL (
                    SELECT DISTINCT ON (v.cell) v.cell, v.value, v.estimate, c.seq AS winner
                    FROM \(Storage.Table.submissions) c
                    JOIN \(Storage.Table.submissionValues) v
                      ON v.submission = c.id AND v.partition = p.partition AND v.indicator = p.indicator AND v.country = p.country
                    WHERE c.kind = 'submission' AND c.reporter = p.reporter
                      AND c.period_start = p.period_start AND c.period_end = p.period_end AND c.seq <= p.seq
                      AND NOT EXISTS (
                          SELECT 1 FROM \(Storage.Table.submissions) later WHERE later.replaces = c.id AND later.seq <= p.seq
                      )
                    ORDER BY v.cell, c.seq DESC
                ) w
            ), latest_grid AS (
                -- Every cell the group has at any of its points, at every point (absent: NULL).
                SELECT p.seq, p.partition, p.indicator, p.country, p.reporter, p.period_start, p.period_end, c.cell,
                       s.value, s.estimate, s.winner
                FROM latest_points p
                JOIN (SELECT DISTINCT partition, indicator, country, reporter, period_start, period_end, cell FROM latest_states) c
                  USING (partition, indicator, country, reporter, period_start, period_end)
                LEFT JOIN latest_states s
                  USING (seq, partition, indicator, country, reporter, period_start, period_end, cell)
            ), latest_cells AS (
                SELECT seq, partition, indicator, country, reporter, period_start, period_end, cell,
                       coalesce(value, 0) - coalesce(lag(value) OVER w, 0) AS value,
                       (winner IS NOT NULL)::integer - (lag(winner) OVER w IS NOT NULL)::integer AS submissions,
                       coalesce(estimate, false)::integer - coalesce(lag(estimate) OVER w, false)::integer AS estimates
                FROM latest_grid
                WINDOW w AS (PARTITION BY partition, indicator, country, reporter, period_start, period_end, cell ORDER BY seq)
            ), latest_all_states AS (
                SELECT p.seq, p.partition, p.indicator, p.country, p.reporter, p.period_start, p.period_end,
                       coalesce(sum(s.value), 0) AS value, count(DISTINCT s.winner)::integer AS submissions,
                       count(DISTINCT s.winner) FILTER (WHERE s.estimate)::integer AS estimates
                FROM latest_points p
                LEFT JOIN latest_states s USING (seq, partition, indicator, country, reporter, period_start, period_end)
                GROUP BY p.seq, p.partition, p.indicator, p.country, p.reporter, p.period_start, p.period_end
            ), latest_all_cells AS (
                SELECT seq, partition, indicator, country, reporter, period_start, period_end, \(allCells)::text AS cell,
                       value - coalesce(lag(value) OVER w, 0) AS value,
                       submissions - coalesce(lag(submissions) OVER w, 0) AS submissions,
                       estimates - coalesce(lag(estimates) OVER w, 0) AS estimates
                FROM latest_all_states
                WINDOW w AS (PARTITION BY partition, indicator, country, reporter, period_start, period_end ORDER BY seq)
            ), sum_series AS (
                -- The same changes for all periods of the series together (a submission has one
                -- period). These rows keep no versions, so one change per row and pass will do.
                SELECT max(seq) AS seq, partition, indicator, country, reporter, \(allPeriods.start)::date AS period_start,
                       \(allPeriods.end)::date AS period_end, cell,
                       sum(value) AS value, sum(submissions)::integer AS submissions, sum(estimates)::integer AS estimates
                FROM (SELECT * FROM sum_cells UNION ALL SELECT * FROM sum_all_cells) period_changes
                GROUP BY partition, indicator, country, reporter, cell
            ), latest_changes AS (
                SELECT c.* FROM latest_cells c JOIN target t ON t.partition = c.partition AND c.seq > t.from_seq
                UNION ALL
                SELECT c.* FROM latest_all_cells c JOIN target t ON t.partition = c.partition AND c.seq > t.from_seq
            ), latest_touched AS (
                SELECT DISTINCT partition, indicator, country, reporter FROM latest_changes
            ), latest_period_rows AS (
                -- Every period row of each touched latest series as it stands after this pass.
                SELECT partition, indicator, country, reporter, period_start, period_end, cell,
                       sum(value) AS value, sum(submissions) AS submissions, sum(estimates) AS estimates
                FROM (
                    SELECT r.partition, r.indicator, r.country, r.reporter, r.period_start, r.period_end, r.cell,
                           r.value, r.submissions, r.estimates
                    FROM \(Storage.Table.rollups) r JOIN latest_touched USING (partition, indicator, country, reporter)
                    WHERE r.period_start <> \(allPeriods.start)::date
                    UNION ALL
                    SELECT partition, indicator, country, reporter, period_start, period_end, cell, value, submissions, estimates
                    FROM latest_changes
                ) rows
                GROUP BY partition, indicator, country, reporter, period_start, period_end, cell
            ), latest_newest AS (
                SELECT DISTINCT ON (indicator, country, reporter) indicator, country, reporter, period_start, period_end
                FROM latest_period_rows WHERE cell = \(allCells) AND submissions > 0
                ORDER BY indicator, country, reporter, period_end DESC, period_start DESC
            ), latest_series_after AS (
                SELECT p.partition, p.indicator, p.country, p.reporter, p.cell, p.value, p.submissions, p.estimates
                FROM latest_period_rows p JOIN latest_newest USING (indicator, country, reporter, period_start, period_end)
                WHERE p.submissions > 0
            ), latest_series_before AS (
                SELECT r.partition, r.indicator, r.country, r.reporter, r.cell, r.value, r.submissions, r.estimates
                FROM \(Storage.Table.rollups) r JOIN latest_touched USING (partition, indicator, country, reporter)
                WHERE r.period_start = \(allPeriods.start)::date
            ), latest_series AS (
                -- A latest series' row of all periods holds its newest period's rows. It keeps no
                -- versions (a read as of a past seq reads the periods), so the pass's last seq will do.
                SELECT t.to_seq AS seq, t.partition, indicator, country, reporter, \(allPeriods.start)::date AS period_start,
                       \(allPeriods.end)::date AS period_end, cell,
                       coalesce(a.value, 0) - coalesce(b.value, 0) AS value,
                       (coalesce(a.submissions, 0) - coalesce(b.submissions, 0))::integer AS submissions,
                       (coalesce(a.estimates, 0) - coalesce(b.estimates, 0))::integer AS estimates
                FROM latest_series_after a
                FULL JOIN latest_series_before b USING (indicator, country, reporter, cell)
                JOIN target t ON t.partition = coalesce(a.partition, b.partition)
            ), changes AS (
                SELECT * FROM sum_cells
                UNION ALL SELECT * FROM sum_all_cells
                UNION ALL SELECT * FROM sum_series
                UNION ALL SELECT * FROM latest_changes
                UNION ALL SELECT * FROM latest_series
                UNION ALL
                -- Every touched latest series marks its row of all periods as changed, even when
                -- its changes cancel out (or it was created and withdrawn in this very pass).
                SELECT t.to_seq, t.partition, lt.indicator, lt.country, lt.reporter, \(allPeriods.start)::date,
                       \(allPeriods.end)::date, \(allCells)::text, 0::numeric, 0, 0
                FROM latest_touched lt JOIN target t ON t.partition = lt.partition
            ), effective AS (
                -- Rows of all periods are written even for a zero change: their changed_seq must move
                -- whenever one of their periods changed, or a read as of a seq inside this pass would
                -- take them as they are (docs/ROLLUPS.md).
                SELECT * FROM changes
                WHERE value <> 0 OR submissions <> 0 OR estimates <> 0 OR period_start = \(allPeriods.start)::date
            ), upserted AS (
                INSERT INTO \(Storage.Table.rollups) AS r (partition, indicator, country, reporter, period_start, period_end, cell, value, submissions, estimates, changed_seq, created_seq)
                SELECT partition, indicator, country, reporter, period_start, period_end, cell, sum(value), sum(submissions), sum(estimates),
                       max(seq), min(seq)
                FROM effective
                GROUP BY partition, indicator, country, reporter, period_start, period_end, cell
                ON CONFLICT (indicator, country, reporter, period_start, period_end, cell) DO UPDATE
                SET value = r.value + EXCLUDED.value, submissions = r.submissions + EXCLUDED.submissions,
                    estimates = r.estimates + EXCLUDED.estimates, changed_seq = greatest(r.changed_seq, EXCLUDED.changed_seq)
                RETURNING r.key_id, r.indicator, r.country, r.reporter, r.period_start, r.period_end, r.cell,
                          r.value, r.submissions, r.estimates
            ), logged AS (
                -- Each period row's state after each seq that changed it: its new state less the
                -- changes after that seq (a period row gets one change per seq). One window over
                -- integer keys: sorting the changes by their six text columns, and two windows,
                -- were two thirds of a pass.
                INSERT INTO \(Storage.Table.rollupVersions) (key_id, seq, value, submissions, estimates)
                SELECT key_id, seq,
                       value - coalesce(sum(change_value) OVER later, 0),
                       submissions - coalesce(sum(change_submissions) OVER later, 0),
                       estimates - coalesce(sum(change_estimates) OVER later, 0)
                FROM (
                    SELECT u.key_id, e.seq, u.value, u.submissions, u.estimates,
                           e.value AS change_value, e.submissions AS change_submissions, e.estimates AS change_estimates
                    FROM effective e JOIN upserted u USING (indicator, country, reporter, period_start, period_end, cell)
                    -- Rows of all periods keep no versions: reads as of a past seq read the periods.
                    WHERE e.period_start <> \(allPeriods.start)::date
                ) changed
                WINDOW later AS (PARTITION BY key_id ORDER BY seq DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                RETURNING 1
            ), moved AS (
                -- Every partition held renews its lease here: the heartbeat skips partitions in a
                -- pass. From the clock, not the transaction's start: a long pass must not commit a
                -- lease that has already run out.
                UPDATE \(Storage.Table.aggregationPartitions) p
                SET applied_seq = t.to_seq,
                    applied_by = CASE WHEN t.to_seq > t.from_seq THEN \(instance) ELSE p.applied_by END,
                    applied_at = CASE WHEN t.to_seq > t.from_seq THEN now() ELSE p.applied_at END,
                    lease_expires_at = clock_timestamp() + \(leaseMilliseconds)::bigint * interval '1 millisecond'
                FROM target t
                WHERE p.partition = t.partition
                RETURNING p.partition
            )
            SELECT t.partition, t.from_seq, t.to_seq, (SELECT last_seq FROM newest) AS latest,
                   (SELECT count(*) FROM logged) AS logged, (SELECT count(*) FROM moved) AS moved
            FROM target t
            ORDER BY t.partition
            """
        // Running a pass again is harmless: the watermarks it moved make it start after them.
        let rows = try await pool.withConnection(idempotent: true) { connection -> PostgresRows in
            guard gap <= Self.genericPlanGap else { return try connection.query(query) }
            if connection.cachedPlansAge > Self.genericPlanLifetime { try connection.discardCachedPlans() }
            do {
                let results = try connection.pipeline([
                    "BEGIN", "SET LOCAL plan_cache_mode = force_generic_plan", query, "COMMIT",
                ])
                guard results.count == 4, results[3].commandTag == "COMMIT" else {
                    throw PostgresError(code: .unexpectedResult, message: "an aggregation pass did not commit")
                }
                return results[2]
            } catch {
                // A transaction left open (aborted): end it, so the connection is clean.
                if connection.isHealthy, !connection.isIdle { try? connection.execute("ROLLBACK") }
                throw error
            }
        }
        var pass = Pass()
        for row in rows {
            let (partition, from, to, latest) = try (
                row.decode(column: "partition", as: Int.self), row.decode(column: "from_seq", as: Int64.self),
                row.decode(column: "to_seq", as: Int64.self), row.decode(column: "latest", as: Int64.self)
            )
            pass.held.append(partition)
            pass.applied = max(pass.applied, Int(to - from))
            pass.advanced += Int(to - from)
            pass.moreWork = pass.moreWork || to < latest
        }
        return pass
    }

    /// The backlog as metrics see it: how many seqs are numbered but not applied everywhere,
    /// and how long ago the oldest of them was numbered (0 with no backlog).
    func backlog() async throws -> (submissions: Int64, lagSeconds: Double) {
        let query: PostgresQuery = """
            WITH watermark AS (
                SELECT (SELECT min(applied_seq) FROM \(Storage.Table.aggregationPartitions)) AS applied,
                       (SELECT last_seq FROM \(Storage.Table.seqCounter)) AS latest
            )
            SELECT greatest(coalesce(latest, 0) - coalesce(applied, 0), 0) AS backlog,
                   coalesce(extract(epoch FROM now() - (
                       SELECT sequenced_at FROM \(Storage.Table.submissions)
                       WHERE seq > watermark.applied ORDER BY seq LIMIT 1
                   ))::float8, 0) AS lag
            FROM watermark
            """
        return try await pool.withConnection(idempotent: true) { connection in
            let row = try connection.query(query).first
            return (
                try row?.decode(column: "backlog", as: Int64.self) ?? 0,
                max(0, try row?.decode(column: "lag", as: Double.self) ?? 0)
            )
        }
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
