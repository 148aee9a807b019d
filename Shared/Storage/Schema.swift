import Crypto
import Logging
import RootcausesPostgres

/// The schema's table names and the numbers fixed in it: the one place SQL sites take them from.
///
/// Migrations create the tables under these names and this many partitions (released steps are
/// history, never edited, so their DDL spells them out); every other statement interpolates them:
/// `"SELECT last_seq FROM \(Storage.Table.seqCounter)" as PostgresQuery`.
public enum Storage {
    /// The tables, by their SQL names.
    public enum Table: String, Sendable, CaseIterable {
        case submissions
        case submissionValues = "submission_values"
        case seqCounter = "seq_counter"
        case aggregationPartitions = "aggregation_partitions"
        case rollups
        case rollupVersions = "rollup_versions"
        case schemaMigrations = "schema_migrations"
        case aggregationInstances = "aggregation_instances"
        case publications
        case targets
        case deduplications
        case apiKeys = "api_keys"
        case overlapPoints = "overlap_points"
    }

    /// The number of partitions aggregation splits the work into: enough that eight instances
    /// each hold several. Each value's partition is stored at insert, so changing it takes a
    /// migration that repartitions (migration 2 went from 8 to 64).
    public static let aggregationPartitions = 64

    /// The `cell` of a rollup row that holds all cells of its indicator, country, reporter and
    /// period together, with the count of distinct submissions behind them. Never a real cell:
    /// those are `""` (the whole) or `dimension=value` pairs joined by `;`.
    public static let allCells = "*"

    /// The period of a rollup row that holds all periods of a `sum` indicator's series together:
    /// `(-infinity, infinity)`. Never a real period.
    public static let allPeriods = (start: "-infinity", end: "infinity")

    /// The channel every numbering notifies on commit, with the newest seq as its payload (the
    /// `seq_counter` trigger of migration 13): aggregation instances listen on it.
    public static let numberedChannel = "rootcauses_numbered"

    /// The channel every aggregation pass notifies on commit, with no payload (the
    /// `aggregation_partitions` trigger of migration 14): reporting listens on it, then reads
    /// the applied watermark.
    public static let appliedChannel = "rootcauses_applied"

    /// `submissions.content_digest` of a submission with this canonical content: the lower-case
    /// hex SHA-256 of its UTF-8 bytes, as `encode(sha256(convert_to(content, 'UTF8')), 'hex')`
    /// made it for the submissions stored before intake worked it out itself.
    public static func contentDigest(_ canonicalContent: String) -> String {
        Secrets.hex(SHA256.hash(data: Array(canonicalContent.utf8)))
    }
}

extension PostgresQuery.StringInterpolation {
    /// A table name: a constant of the schema, spliced in as is.
    public mutating func appendInterpolation(_ table: Storage.Table) {
        appendInterpolation(unescaped: table.rawValue)
    }
}

/// One versioned step of the database schema.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
}

/// The database schema, migrated by the services themselves at start.
///
/// Every service runs `Schema.migrate` before serving. Migrations run in one transaction
/// under an advisory lock, so several processes starting at once apply each step exactly once,
/// and a failed step leaves the schema as it was.
public enum Schema {
    /// Arbitrary constant naming the migration lock (`pg_advisory_xact_lock`).
    static let migrationLockKey: Int64 = 0x526F_6F74_6361_7573  // "Rootcaus"

    /// The number of partitions aggregation splits the work into.
    public static var aggregationPartitions: Int { Storage.aggregationPartitions }

    /// The steps, in order. Never edit a released step: add a new one. Write each new step so it
    /// can run again on a schema that has it (`IF EXISTS`, `OR REPLACE`): tests put a database
    /// back to an earlier version by forgetting the newer steps, then migrate it again.
    public static let migrations: [Migration] = [
        Migration(
            version: 1,
            name: "submissions, values, aggregation state and aggregates",
            sql: """
                CREATE TABLE submissions (
                    id              bigserial PRIMARY KEY,
                    -- Assigned as the last step before COMMIT under the seq_counter row lock:
                    -- seqs are gap-free and commit in increasing order.
                    seq             bigint UNIQUE,
                    reporter        text NOT NULL,
                    submission_id   text NOT NULL,
                    period          text NOT NULL,
                    period_start    date NOT NULL,
                    period_end      date NOT NULL,
                    activity        text,
                    value_count     integer NOT NULL CHECK (value_count > 0),
                    content_digest  text NOT NULL,
                    received_at     timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (reporter, submission_id),
                    CHECK (period_end >= period_start)
                );
                -- Only rows of transactions still in flight lack a seq: intake numbers its own through this.
                CREATE INDEX submissions_unsequenced ON submissions (id) WHERE seq IS NULL;

                -- No foreign key to submissions: intake writes a submission and its values in one
                -- statement, and the per-row key check cost a look-up per value (and, with a plan
                -- cached while the table was empty, a scan per value: 5x slower intake).
                CREATE TABLE submission_values (
                    submission  bigint NOT NULL,
                    ordinal     integer NOT NULL,
                    indicator   text NOT NULL,
                    country     text NOT NULL,
                    -- The disaggregation cell, canonical: 'age=15-19;sex=female', or '' for the whole.
                    cell        text NOT NULL,
                    value       numeric NOT NULL CHECK (value >= 0),
                    estimate    boolean NOT NULL,
                    -- The aggregation partition of the indicator, computed once at insert. md5, unlike
                    -- hashtext, never changes across PostgreSQL versions: watermarks rely on that.
                    partition   integer NOT NULL GENERATED ALWAYS AS
                                    (('x' || substr(md5(indicator), 1, 7))::bit(28)::integer % 8) STORED,
                    PRIMARY KEY (submission, ordinal),
                    UNIQUE (submission, indicator, country, cell)
                );

                -- One row updated by every submission, and eight updated by every aggregation pass:
                -- mostly-empty pages keep those updates HOT (no index churn), and frequent vacuums
                -- keep the dead versions from piling up (seen: 0.5 s to lock 8 rows after a load).
                CREATE TABLE seq_counter (
                    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                    last_seq   bigint NOT NULL
                ) WITH (fillfactor = 10, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500);
                INSERT INTO seq_counter (singleton, last_seq) VALUES (true, 0);

                -- Aggregation work is split by indicator into partitions; each has its own watermark:
                -- every submission with seq <= applied_seq is applied for the partition's indicators.
                CREATE TABLE aggregation_partitions (
                    partition    integer PRIMARY KEY,
                    applied_seq  bigint NOT NULL DEFAULT 0,
                    applied_by   text,
                    applied_at   timestamptz
                ) WITH (fillfactor = 10, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500);
                INSERT INTO aggregation_partitions (partition) SELECT generate_series(0, 7);

                -- One row per submission, indicator and country: the cells summed.
                CREATE TABLE aggregate_contributions (
                    seq           bigint NOT NULL,
                    indicator     text NOT NULL,
                    country       text NOT NULL,
                    reporter      text NOT NULL,
                    period_start  date NOT NULL,
                    period_end    date NOT NULL,
                    value         numeric NOT NULL,
                    estimate      boolean NOT NULL,
                    PRIMARY KEY (seq, indicator, country)
                );
                CREATE INDEX aggregate_contributions_series
                    ON aggregate_contributions (indicator, country, reporter, period_end, period_start);
                """
        ),
        Migration(
            version: 2,
            name: "64 aggregation partitions owned through leases",
            sql: """
                -- 64 partitions instead of 8, so that up to 8 instances each hold several. The hash is
                -- the same, so partition p of 64 holds some of the indicators of partition p % 8 of 8
                -- and starts at its watermark: nothing is applied twice or skipped.
                ALTER TABLE submission_values DROP COLUMN partition;
                ALTER TABLE submission_values ADD COLUMN partition integer NOT NULL GENERATED ALWAYS AS
                    (('x' || substr(md5(indicator), 1, 7))::bit(28)::integer % 64) STORED;
                -- An instance reads only its partitions' values of each submission: with the key
                -- (submission, ordinal) every instance read every value, so two instances did twice
                -- the work of one (measured: a 1.25 M-value catch-up took 2.8 s alone, 10 s with two).
                -- Ordinals are unique per submission, so the key's uniqueness is unchanged in effect.
                ALTER TABLE submission_values DROP CONSTRAINT submission_values_pkey,
                    ADD PRIMARY KEY (submission, partition, ordinal);
                INSERT INTO aggregation_partitions (partition, applied_seq, applied_by, applied_at)
                    SELECT p, old.applied_seq, old.applied_by, old.applied_at
                    FROM generate_series(8, 63) AS p
                    JOIN aggregation_partitions old ON old.partition = p % 8;

                -- Who owns a partition, until when. An owner renews its leases on every heartbeat;
                -- a partition whose lease ran out (its owner died) is free for another instance.
                -- Ownership only divides the work: exactly-once comes from the row lock and the
                -- watermark that moves with the rows, whoever applies them.
                ALTER TABLE aggregation_partitions ADD COLUMN owner text, ADD COLUMN lease_expires_at timestamptz;

                -- Live aggregation instances: each divides the partitions by their number.
                CREATE TABLE aggregation_instances (
                    instance      text PRIMARY KEY,
                    started_at    timestamptz NOT NULL DEFAULT now(),
                    heartbeat_at  timestamptz NOT NULL,
                    expires_at    timestamptz NOT NULL
                ) WITH (fillfactor = 10, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500);
                """
        ),
        Migration(
            version: 3,
            name: "corrections and rollups",
            sql: """
                -- Corrections. Every version of a submission stays stored; a later one names the one it
                -- supersedes in `replaces`: a submission (kind 'submission') replaces it, a retraction
                -- (kind 'retraction', no values, a reason) withdraws it. A retraction carries the
                -- submission_id and period of what it withdraws.
                ALTER TABLE submissions
                    ADD COLUMN kind text NOT NULL DEFAULT 'submission' CHECK (kind IN ('submission', 'retraction')),
                    ADD COLUMN replaces bigint REFERENCES submissions (id),
                    ADD COLUMN reason text,
                    DROP CONSTRAINT submissions_value_count_check,
                    ADD CONSTRAINT submissions_value_count_check CHECK ((kind = 'submission') = (value_count > 0)),
                    ADD CONSTRAINT submissions_retraction_reason CHECK ((kind = 'retraction') = (reason IS NOT NULL)),
                    ADD CONSTRAINT submissions_retraction_replaces CHECK (kind = 'submission' OR replaces IS NOT NULL),
                    DROP CONSTRAINT submissions_reporter_submission_id_key;
                CREATE UNIQUE INDEX submissions_versions ON submissions (reporter, submission_id) WHERE kind = 'submission';
                -- A chain, never a fork: at most one version supersedes any version. Two corrections of
                -- the same submission racing each other: the second waits for the first and conflicts.
                CREATE UNIQUE INDEX submissions_chain ON submissions (replaces) WHERE replaces IS NOT NULL;
                -- For `latest` indicators: the other submissions of a reporter and period, to find who
                -- wins a cell once its newest submission is corrected away.
                CREATE INDEX submissions_reporter_period ON submissions (reporter, period_start, period_end) WHERE kind = 'submission';

                -- Rollups: per indicator, country, reporter, period and cell, the current value, the
                -- number of current submissions behind it and how many of those are estimates. The cell
                -- '*' holds all cells together, counting each submission once. For `sum` indicators the
                -- period (-infinity, infinity) holds all periods together, so reads that do not ask for
                -- periods read one row per series, not one per period. docs/ROLLUPS.md has the design.
                DROP TABLE aggregate_contributions;
                -- Every pass updates the rows it touches: room on each page keeps those updates HOT
                -- (no index churn, dead versions pruned in place; seen: 124 MB for 22k live rows at fill 100).
                CREATE TABLE rollups (
                    key_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    partition     integer NOT NULL,
                    indicator     text NOT NULL,
                    country       text NOT NULL,
                    reporter      text NOT NULL,
                    period_start  date NOT NULL,
                    period_end    date NOT NULL,
                    cell          text NOT NULL,
                    value         numeric NOT NULL,
                    -- No CHECK (>= 0): PostgreSQL checks the row an upsert proposes, which holds the
                    -- change (negative for a correction), before it finds the row to add it to.
                    submissions   integer NOT NULL,
                    estimates     integer NOT NULL,
                    -- The last seq that changed the row: a read as of any seq from it on can take the
                    -- row as it is, without looking for its past state.
                    changed_seq   bigint NOT NULL,
                    -- The first seq that gave the row a value: reads as of an earlier seq skip it.
                    created_seq   bigint NOT NULL,
                    UNIQUE (indicator, country, reporter, period_start, period_end, cell)
                ) WITH (fillfactor = 40, autovacuum_vacuum_scale_factor = 0.05);
                CREATE INDEX rollups_series ON rollups (indicator, country, reporter) WHERE period_start = '-infinity';
                -- Every state a rollup row has had, by the seq that made it: a read as of an earlier seq
                -- takes each row's newest state at or before it (one index probe per row).
                CREATE TABLE rollup_versions (
                    key_id       bigint NOT NULL,
                    seq          bigint NOT NULL,
                    value        numeric NOT NULL,
                    submissions  integer NOT NULL,
                    estimates    integer NOT NULL,
                    PRIMARY KEY (key_id, seq)
                );
                -- The rollups are built from every stored submission again.
                UPDATE aggregation_partitions SET applied_seq = 0, applied_by = NULL, applied_at = NULL;
                """
        ),
        Migration(
            version: 4,
            name: "submissions numbered by id, and when each was numbered",
            sql: """
                -- Intake now numbers the rows its inserts returned. Through this index it went over
                -- one dead entry per submission numbered since the last vacuum.
                DROP INDEX submissions_unsequenced;

                -- When each submission got its seq (just before its COMMIT): reads "as of" a time
                -- take the newest seq numbered by then. Never decreasing with seq: the counter
                -- keeps the last one, and a clock that steps back does not move it back.
                ALTER TABLE seq_counter ADD COLUMN last_sequenced_at timestamptz;
                ALTER TABLE submissions ADD COLUMN sequenced_at timestamptz;
                -- Earlier submissions: their receipt is the best time known.
                UPDATE submissions s SET sequenced_at = known.at
                FROM (SELECT id, max(received_at) OVER (ORDER BY seq) AS at FROM submissions WHERE seq IS NOT NULL) known
                WHERE s.id = known.id;
                UPDATE seq_counter SET last_sequenced_at = (SELECT max(sequenced_at) FROM submissions);
                CREATE INDEX submissions_sequenced_at ON submissions (sequenced_at, seq) WHERE seq IS NOT NULL;
                """
        ),
        Migration(
            version: 5,
            name: "published fact sheets",
            sql: """
                -- A fact sheet as published: the document itself, byte for byte, and what reproduces
                -- it (its date, the seq it was pinned to, the digest of the template it was filled from).
                CREATE TABLE publications (
                    publication_id   text PRIMARY KEY CHECK (octet_length(publication_id) BETWEEN 1 AND 200),
                    fact_sheet_date  date NOT NULL,
                    as_of_seq        bigint NOT NULL CHECK (as_of_seq >= 0),
                    template_digest  text NOT NULL,
                    markdown         text NOT NULL,
                    -- The JSON form of the same document, as reporting serialized it.
                    sheet_json       text NOT NULL,
                    published_at     timestamptz NOT NULL DEFAULT now()
                );
                """
        ),
        Migration(
            version: 6,
            name: "values found by indicator and country",
            sql: """
                -- The same uniqueness with the indicator and country first: `explain` pages through
                -- the values behind a number in this order, and finds a cell's value in a given
                -- submission with one probe. New values land at the end of their indicator and
                -- country, so inserts still touch few pages.
                ALTER TABLE submission_values
                    DROP CONSTRAINT submission_values_submission_indicator_country_cell_key,
                    ADD CONSTRAINT submission_values_by_series UNIQUE (indicator, country, submission, cell);
                """
        ),
        Migration(
            version: 7,
            name: "targets",
            sql: """
                -- An agency's annual target per indicator and country. Setting another value keeps
                -- the old one as the version it replaces: the whole trail stays.
                CREATE TABLE targets (
                    id           bigserial PRIMARY KEY,
                    reporter     text NOT NULL,
                    indicator    text NOT NULL,
                    country      text NOT NULL,
                    fiscal_year  integer NOT NULL CHECK (fiscal_year BETWEEN 1900 AND 9999),
                    value        numeric NOT NULL CHECK (value >= 0),
                    set_at       timestamptz NOT NULL DEFAULT now(),
                    replaces     bigint UNIQUE REFERENCES targets (id),
                    current      boolean NOT NULL
                );
                -- One current target per key: of two corrections sent at once, one wins.
                CREATE UNIQUE INDEX targets_current ON targets (reporter, indicator, country, fiscal_year) WHERE current;
                CREATE INDEX targets_by_year ON targets (fiscal_year) WHERE current;
                """
        ),
        Migration(
            version: 8,
            name: "deduplication adjustments",
            sql: """
                -- An analyst's resolution of reporters' overlapping figures for one indicator,
                -- country and period. Each takes a seq from the submissions' counter (a seq with no
                -- submission behind it), so reads as of a seq apply exactly the adjustments made by
                -- then; a correction names the one it replaces, and every version stays stored.
                CREATE TABLE deduplications (
                    id             bigserial PRIMARY KEY,
                    adjustment_id  text NOT NULL UNIQUE CHECK (octet_length(adjustment_id) BETWEEN 1 AND 200),
                    indicator      text NOT NULL,
                    country        text NOT NULL,
                    period         text NOT NULL,
                    period_start   date NOT NULL,
                    period_end     date NOT NULL,
                    method         text NOT NULL CHECK (method IN ('sum', 'max', 'custom')),
                    value          numeric CHECK ((method = 'custom') = (value IS NOT NULL) AND (value IS NULL OR value >= 0)),
                    reason         text,
                    replaces       bigint UNIQUE REFERENCES deduplications (id),
                    seq            bigint NOT NULL UNIQUE,
                    made_at        timestamptz NOT NULL,
                    current        boolean NOT NULL
                );
                CREATE UNIQUE INDEX deduplications_current
                    ON deduplications (indicator, country, period_start, period_end) WHERE current;
                CREATE INDEX deduplications_by_indicator ON deduplications (indicator, seq);
                CREATE INDEX deduplications_made_at ON deduplications (made_at, seq);
                """
        ),
        Migration(
            version: 9,
            name: "rollup rows of all cells per period, by point",
            sql: """
                -- Where reporters meet (overlap bounds) is read from the rows of all cells per period
                -- of each indicator: without this index the read went through every cell's rows too
                -- (5 ms of a plain total at 1 M values). Its columns never change, so updates stay HOT.
                CREATE INDEX rollups_period_points ON rollups (indicator, country, period_start, period_end)
                    WHERE cell = '*' AND period_start <> '-infinity';
                """
        ),
        Migration(
            version: 10,
            name: "API keys, and the key behind every write",
            sql: """
                -- One row per key an admin made. Only the SHA-256 of the secret is stored: the
                -- token (key id and secret) is shown once, when the key is made. Revoked keys stay,
                -- so the writes they made still name a key that can be looked up.
                CREATE TABLE api_keys (
                    id             text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
                    reporter       text,
                    scopes         text[] NOT NULL CHECK (cardinality(scopes) > 0
                                       AND scopes <@ ARRAY['submit', 'read', 'admin']::text[]),
                    label          text NOT NULL DEFAULT '',
                    secret_sha256  bytea NOT NULL CHECK (octet_length(secret_sha256) = 32),
                    created_at     timestamptz NOT NULL DEFAULT now(),
                    -- The key that made it; NULL for keys made straight in the database (the first
                    -- admin key of a deployment, the local stack's).
                    created_by     text REFERENCES api_keys (id),
                    revoked_at     timestamptz,
                    revoked_by     text REFERENCES api_keys (id),
                    CHECK (NOT ('submit' = ANY(scopes)) OR reporter IS NOT NULL)
                );
                -- The key behind each write. NULL for rows written before keys existed.
                ALTER TABLE submissions ADD COLUMN api_key_id text REFERENCES api_keys (id);
                ALTER TABLE deduplications ADD COLUMN api_key_id text REFERENCES api_keys (id);
                ALTER TABLE targets ADD COLUMN api_key_id text REFERENCES api_keys (id);
                ALTER TABLE publications ADD COLUMN api_key_id text REFERENCES api_keys (id);
                """
        ),
        Migration(
            version: 11,
            name: "waiting for a numbering without the right to change the counter",
            sql: """
                -- A read as of a time waits for a batch being numbered (it holds the counter's row
                -- until its commit). Locking the row needs the UPDATE privilege, which reporting's
                -- role must not have: this function, run with its owner's rights, only waits.
                CREATE FUNCTION wait_for_numbering() RETURNS void
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
                BEGIN
                    PERFORM 1 FROM seq_counter FOR SHARE;
                END $$;
                REVOKE ALL ON FUNCTION wait_for_numbering() FROM PUBLIC;
                """
        ),
        Migration(
            version: 12,
            name: "waiting for a numbering returns at once on a hot standby",
            sql: """
                -- A standby replays whole transactions in commit order and takes no row locks:
                -- there is no numbering in progress to wait for there (reporting on a standby
                -- waits for the primary's numbering and then for the replay; docs/OPERATIONS.md).
                CREATE OR REPLACE FUNCTION wait_for_numbering() RETURNS void
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
                BEGIN
                    IF pg_is_in_recovery() THEN
                        RETURN;
                    END IF;
                    PERFORM 1 FROM seq_counter FOR SHARE;
                END $$;
                """
        ),
        Migration(
            version: 13,
            name: "every numbering notifies aggregation",
            sql: """
                -- Intake nudged only the aggregation instances it was told of: one started later
                -- (scaled out) waited for its poll, and totals waited with it. Now every numbering,
                -- whoever makes it, notifies on commit, and every instance listens. The payload is
                -- the newest seq; identical notifications of one transaction arrive once.
                CREATE OR REPLACE FUNCTION notify_numbered() RETURNS trigger
                LANGUAGE plpgsql SET search_path = public AS $$
                BEGIN
                    PERFORM pg_notify('rootcauses_numbered', NEW.last_seq::text);
                    RETURN NULL;
                END $$;
                DROP TRIGGER IF EXISTS seq_counter_numbered ON seq_counter;
                CREATE TRIGGER seq_counter_numbered AFTER UPDATE OF last_seq ON seq_counter
                    FOR EACH ROW WHEN (NEW.last_seq > OLD.last_seq) EXECUTE FUNCTION notify_numbered();
                """
        ),
        Migration(
            version: 14,
            name: "every applied pass notifies reporting",
            sql: """
                -- Reporting looked at the applied watermark every few milliseconds while a read
                -- waited for min_seq or a subscription was open: up to 5 ms of every
                -- ack-to-visible lag, and 200 queries a second per process. Now every statement
                -- that moves watermarks notifies on commit (no payload: one notification per
                -- transaction), and reporting reads the watermark when told.
                CREATE OR REPLACE FUNCTION notify_applied() RETURNS trigger
                LANGUAGE plpgsql SET search_path = public AS $$
                BEGIN
                    PERFORM pg_notify('rootcauses_applied', '');
                    RETURN NULL;
                END $$;
                DROP TRIGGER IF EXISTS aggregation_partitions_applied ON aggregation_partitions;
                CREATE TRIGGER aggregation_partitions_applied AFTER UPDATE OF applied_seq ON aggregation_partitions
                    FOR EACH STATEMENT EXECUTE FUNCTION notify_applied();
                """
        ),
        Migration(
            version: 15,
            name: "points where reporters meet, registered as they meet",
            sql: """
                -- The overlap bounds beside a total looked for points where two or more reporters
                -- meet among every period row of every series two reporters share: 1,248 rows read
                -- for 30 points at 10 M values, and most of a current total's time. Now each point
                -- is registered once, with the seq from which two reporters have rows there (the
                -- second smallest created_seq: a row's created_seq never changes, and rows are never
                -- deleted), so a read as of any seq finds the points that were shared by then.
                -- Anything that rebuilds the rollups from seq 0 must empty this table with them.
                CREATE TABLE IF NOT EXISTS overlap_points (
                    indicator     text NOT NULL,
                    country       text NOT NULL,
                    period_start  date NOT NULL,
                    period_end    date NOT NULL,
                    shared_seq    bigint NOT NULL,
                    PRIMARY KEY (indicator, country, period_start, period_end)
                );
                -- A trigger, not the pass: every writer of rollups registers (an aggregation
                -- instance of the previous release still running during an upgrade too). It
                -- fires only when a reporter's first row of all cells for a period is inserted;
                -- fired at the end of the pass's statement, it sees every row the pass inserted.
                -- Run with its owner's rights: aggregation's role needs no grant on the registry, so
                -- no pass fails between this migration and provision's grants.
                CREATE OR REPLACE FUNCTION register_overlap_point() RETURNS trigger
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
                BEGIN
                    INSERT INTO overlap_points (indicator, country, period_start, period_end, shared_seq)
                    SELECT NEW.indicator, NEW.country, NEW.period_start, NEW.period_end, r.created_seq
                    FROM rollups r
                    WHERE r.indicator = NEW.indicator AND r.country = NEW.country
                      AND r.period_start = NEW.period_start AND r.period_end = NEW.period_end
                      AND r.cell = '*' AND r.period_start <> '-infinity'
                    ORDER BY r.created_seq OFFSET 1 LIMIT 1
                    ON CONFLICT DO NOTHING;
                    RETURN NULL;
                END $$;
                REVOKE ALL ON FUNCTION register_overlap_point() FROM PUBLIC;
                -- Taking the table's lock here waits for passes in flight and holds back new ones
                -- until this commits: the backfill below sees every row, and every later row fires.
                DROP TRIGGER IF EXISTS rollups_overlap_points ON rollups;
                CREATE TRIGGER rollups_overlap_points AFTER INSERT ON rollups
                    FOR EACH ROW WHEN (NEW.cell = '*' AND NEW.period_start <> '-infinity')
                    EXECUTE FUNCTION register_overlap_point();
                INSERT INTO overlap_points (indicator, country, period_start, period_end, shared_seq)
                SELECT indicator, country, period_start, period_end, (array_agg(created_seq ORDER BY created_seq))[2]
                FROM rollups
                WHERE cell = '*' AND period_start <> '-infinity'
                GROUP BY indicator, country, period_start, period_end
                HAVING count(*) > 1
                ON CONFLICT DO NOTHING;
                """
        ),
        Migration(
            version: 16,
            name: "the keys behind submissions checked once per statement",
            sql: """
                -- The foreign key from submissions to api_keys checked every new row alone: a
                -- look-up and a row lock per submission, about a twentieth of the time of the
                -- session that writes intake's groups. Keys are never deleted nor renamed (a
                -- revoked key stays: the audit trail names it), so one look-up of all the new rows'
                -- keys after each statement keeps the same guarantee; a row whose key is changed
                -- (only the owner may) is checked alone. Run with their owner's rights: no role
                -- needs a grant on api_keys to write submissions.
                ALTER TABLE submissions DROP CONSTRAINT IF EXISTS submissions_api_key_id_fkey;
                CREATE OR REPLACE FUNCTION check_submission_keys() RETURNS trigger
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
                DECLARE
                    missing boolean;
                BEGIN
                    IF TG_LEVEL = 'STATEMENT' THEN
                        -- After an insert: every new row at once.
                        missing := EXISTS (
                            SELECT 1 FROM new_rows n
                            WHERE n.api_key_id IS NOT NULL
                              AND NOT EXISTS (SELECT 1 FROM public.api_keys k WHERE k.id = n.api_key_id)
                        );
                    ELSE
                        -- After a change of one row's key.
                        missing := NOT EXISTS (SELECT 1 FROM public.api_keys k WHERE k.id = NEW.api_key_id);
                    END IF;
                    IF missing THEN
                        RAISE foreign_key_violation USING
                            MESSAGE = 'a submission names an API key that does not exist';
                    END IF;
                    RETURN NULL;
                END $$;
                REVOKE ALL ON FUNCTION check_submission_keys() FROM PUBLIC;
                DROP TRIGGER IF EXISTS submissions_keys_exist ON submissions;
                CREATE TRIGGER submissions_keys_exist AFTER INSERT ON submissions
                    REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION check_submission_keys();
                DROP TRIGGER IF EXISTS submissions_changed_key_exists ON submissions;
                CREATE TRIGGER submissions_changed_key_exists AFTER UPDATE OF api_key_id ON submissions
                    FOR EACH ROW WHEN (NEW.api_key_id IS NOT NULL AND NEW.api_key_id IS DISTINCT FROM OLD.api_key_id)
                    EXECUTE FUNCTION check_submission_keys();
                -- What the foreign key also did: a key that submissions name stays. Now no key
                -- goes, named or not; revoking is how a key ends.
                CREATE OR REPLACE FUNCTION keep_api_keys() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE restrict_violation USING
                        MESSAGE = 'API keys are revoked, never deleted nor renamed: the records name them';
                END $$;
                DROP TRIGGER IF EXISTS api_keys_kept ON api_keys;
                CREATE TRIGGER api_keys_kept BEFORE DELETE ON api_keys
                    FOR EACH ROW EXECUTE FUNCTION keep_api_keys();
                DROP TRIGGER IF EXISTS api_keys_id_kept ON api_keys;
                CREATE TRIGGER api_keys_id_kept BEFORE UPDATE OF id ON api_keys
                    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION keep_api_keys();
                DROP TRIGGER IF EXISTS api_keys_not_truncated ON api_keys;
                CREATE TRIGGER api_keys_not_truncated BEFORE TRUNCATE ON api_keys
                    FOR EACH STATEMENT EXECUTE FUNCTION keep_api_keys();
                """
        ),
    ]

    /// The schema version of a hot standby (0: not migrated), or `nil` when the database is not
    /// in recovery (a primary, which `migrate` handles). Two statements: a query naming a table
    /// that does not exist fails even in a branch that is never taken.
    public static func standbyVersion(_ connection: PostgresConnection) throws -> Int? {
        let inRecovery =
            try connection.query("SELECT pg_is_in_recovery() AS standby" as PostgresQuery).first?
            .decode(column: "standby", as: Bool.self) ?? false
        guard inRecovery else { return nil }
        return try appliedVersion(connection) ?? 0
    }

    /// The newest migration applied to the database, or `nil` when it has none (no table).
    public static func appliedVersion(_ connection: PostgresConnection) throws -> Int? {
        let present =
            try connection.query(
                "SELECT to_regclass('\(unescaped: Storage.Table.schemaMigrations.rawValue)') IS NOT NULL AS present"
                    as PostgresQuery
            ).first?.decode(column: "present", as: Bool.self) ?? false
        guard present else { return nil }
        return try connection.query(
            "SELECT max(version) AS newest FROM \(Storage.Table.schemaMigrations)" as PostgresQuery
        )
        .first?.decode(column: "newest", as: Int?.self) ?? nil
    }

    /// The newest schema version this build knows.
    public static var currentVersion: Int { migrations.last?.version ?? 0 }

    /// Brings the database to `currentVersion`. Safe to call from several processes at once.
    ///
    /// `finishing`, when given, runs in the same transaction after the migrations (also when
    /// there were none to run): `provision` grants the services their tables there, so no
    /// service ever sees a schema version whose new tables it may not read yet.
    public static func migrate(
        _ connection: PostgresConnection,
        logger: Logger,
        finishing: ((PostgresConnection) throws -> Void)? = nil
    ) throws {
        try connection.transaction { connection in
            try connection.query("SELECT pg_advisory_xact_lock(\(migrationLockKey)::bigint)" as PostgresQuery)
            // A schema already current needs no DDL: services whose roles may not change the
            // schema (docs/SECURITY.md) start against a database their owner has migrated.
            let newestApplied = try appliedVersion(connection)
            if newestApplied == currentVersion {
                try finishing?(connection)
                return
            }
            if let newestApplied, newestApplied > currentVersion {
                throw SchemaError(
                    message:
                        "the database schema is at version \(newestApplied), newer than this build knows (\(currentVersion)); upgrade the service"
                )
            }
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS \(Storage.Table.schemaMigrations.rawValue) (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            let applied = Set(
                try connection.query("SELECT version FROM \(Storage.Table.schemaMigrations)" as PostgresQuery)
                    .map { try $0.decode(column: "version", as: Int.self) }
            )
            if let newest = applied.max(), newest > currentVersion {
                throw SchemaError(
                    message:
                        "the database schema is at version \(newest), newer than this build knows (\(currentVersion)); upgrade the service"
                )
            }
            for migration in migrations where !applied.contains(migration.version) {
                logger.info(
                    "applying schema migration",
                    metadata: ["version": "\(migration.version)", "name": "\(migration.name)"]
                )
                try connection.execute(migration.sql)
                try connection.query(
                    "INSERT INTO \(Storage.Table.schemaMigrations) (version, name) VALUES (\(migration.version)::integer, \(migration.name))"
                        as PostgresQuery
                )
            }
            try finishing?(connection)
        }
    }
}

/// The schema cannot be brought to the version this build needs.
public struct SchemaError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}
