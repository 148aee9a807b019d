import Crypto
import Foundation
import Logging
import RootcausesPostgres

/// Least privilege in PostgreSQL: an owner role that runs the migrations and owns every table,
/// and one login role per service with only the grants that service needs. None is a superuser,
/// so none can run `COPY … TO PROGRAM`, read server files or change roles.
public enum DatabaseRoles {
    /// A role of the schema, by what it does.
    public enum Role: String, Sendable, CaseIterable {
        case owner = "rootcauses_owner"
        case intake = "rootcauses_intake"
        case aggregation = "rootcauses_aggregation"
        case reporting = "rootcauses_reporting"
    }

    /// What each service may do to each table: the one place the grants are written.
    ///
    /// Reporting only reads, but for the record of what it published (`publish`); intake writes
    /// what clients send (and reads the rollups a deduplication is checked against); aggregation
    /// reads what intake wrote and keeps the rollups and the partitions' watermarks.
    public static let grants: [Role: [(Storage.Table, String)]] = [
        .intake: [
            // Intake numbers the submissions it stored (seq, sequenced_at), nothing else of them.
            (.submissions, "SELECT, INSERT, UPDATE (seq, sequenced_at)"), (.submissionValues, "SELECT, INSERT"),
            (.seqCounter, "SELECT, UPDATE"),
            (.targets, "SELECT, INSERT, UPDATE"), (.deduplications, "SELECT, INSERT, UPDATE"),
            (.apiKeys, "SELECT, INSERT, UPDATE"), (.rollups, "SELECT"), (.aggregationPartitions, "SELECT"),
            (.schemaMigrations, "SELECT"),
        ],
        .aggregation: [
            (.submissions, "SELECT"), (.submissionValues, "SELECT"), (.seqCounter, "SELECT"),
            (.deduplications, "SELECT"), (.apiKeys, "SELECT"), (.schemaMigrations, "SELECT"),
            (.rollups, "SELECT, INSERT, UPDATE, DELETE"), (.rollupVersions, "SELECT, INSERT, UPDATE, DELETE"),
            (.aggregationPartitions, "SELECT, INSERT, UPDATE"),
            (.aggregationInstances, "SELECT, INSERT, UPDATE, DELETE"),
        ],
        .reporting: [
            (.submissions, "SELECT"), (.submissionValues, "SELECT"), (.seqCounter, "SELECT"),
            (.aggregationPartitions, "SELECT"), (.aggregationInstances, "SELECT"), (.rollups, "SELECT"),
            (.rollupVersions, "SELECT"), (.overlapPoints, "SELECT"), (.targets, "SELECT"), (.deduplications, "SELECT"),
            (.apiKeys, "SELECT"),
            (.schemaMigrations, "SELECT"), (.publications, "SELECT, INSERT"),
        ],
    ]

    /// A role's password, derived from a secret only the cluster's administrator holds (the
    /// superuser's password): stable, so every stack on one cluster agrees on it, and telling
    /// nothing of the secret.
    public static func password(of role: Role, derivedFrom secret: String) -> String {
        Secrets.hex(SHA256.hash(data: Array("rootcauses role \(role.rawValue):\(secret)".utf8)))
    }

    /// Makes each role if it is missing and sets its password (as a SCRAM verifier computed here,
    /// so the clear password is in no statement the server could log). Roles belong to the whole
    /// cluster while advisory locks belong to one database: two databases provisioned at once
    /// (parallel tests, two stacks) may collide on the catalog, and the loser tries again.
    static func ensureRoles(on connection: PostgresConnection, passwords: [Role: String]) throws {
        var verifiers: [Role: String] = [:]
        for role in Role.allCases {
            guard let given = passwords[role], !given.isEmpty, !given.unicodeScalars.contains("\u{0}") else {
                throw SchemaError(message: "no usable password for \(role.rawValue) (empty, or with a NUL)")
            }
            verifiers[role] = try connection.scramVerifier(password: given, user: role.rawValue)
        }
        for attempt in 1... {
            do {
                try connection.transaction { connection in
                    for role in Role.allCases {
                        let name = PostgresQuery.quoteIdentifier(role.rawValue)
                        // A verifier is base64, '$', ':' and digits: no quote to escape.
                        let verifier = verifiers[role, default: ""].replacingOccurrences(of: "'", with: "''")
                        try connection.execute(
                            """
                            DO $$ BEGIN
                                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(role.rawValue)') THEN
                                    CREATE ROLE \(name) LOGIN;
                                END IF;
                            END $$;
                            ALTER ROLE \(name) LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
                                PASSWORD '\(verifier)';
                            """
                        )
                    }
                }
                return
            } catch let error as PostgresError
                where attempt < 10 && ["23505", "42710", "XX000", "40001", "40P01"].contains(error.sqlState ?? "")
            {
                usleep(UInt32.random(in: 20_000...150_000))
            }
        }
    }

    /// Makes the roles (or resets their passwords), gives the database and its tables to the
    /// owner, then, as the owner and in one transaction, migrates the schema and grants each
    /// service its tables. Run as a superuser (or a role with CREATEROLE that owns the
    /// database), connected to the database.
    public static func provision(
        on connection: PostgresConnection,
        passwords: [Role: String],
        logger: Logger
    ) throws {
        let database =
            try connection.query("SELECT current_database() AS name" as PostgresQuery).first?
            .decode(column: "name", as: String.self) ?? "postgres"
        try ensureRoles(on: connection, passwords: passwords)
        try connection.transaction { connection in
            let owner = PostgresQuery.quoteIdentifier(Role.owner.rawValue)
            try connection.execute(
                """
                ALTER DATABASE \(PostgresQuery.quoteIdentifier(database)) OWNER TO \(owner);
                ALTER SCHEMA public OWNER TO \(owner);
                REVOKE ALL ON DATABASE \(PostgresQuery.quoteIdentifier(database)) FROM PUBLIC;
                REVOKE ALL ON SCHEMA public FROM PUBLIC;
                -- Tables and functions made before the owner existed (by the superuser) become the
                -- owner's; a table's sequences follow it.
                DO $$ DECLARE item record; BEGIN
                    FOR item IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relispartition = false
                                  AND pg_get_userbyid(c.relowner) <> '\(Role.owner.rawValue)' LOOP
                        EXECUTE format('ALTER TABLE public.%I OWNER TO \(Role.owner.rawValue)', item.relname);
                    END LOOP;
                    FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> '\(Role.owner.rawValue)' LOOP
                        EXECUTE format('ALTER FUNCTION %s OWNER TO \(Role.owner.rawValue)', item.signature);
                    END LOOP;
                END $$;
                """
            )
        }
        // The grants, as the owner of everything they name.
        var statements: [String] = []
        for (role, tables) in grants {
            let name = PostgresQuery.quoteIdentifier(role.rawValue)
            statements.append("GRANT CONNECT ON DATABASE \(PostgresQuery.quoteIdentifier(database)) TO \(name)")
            statements.append("GRANT USAGE ON SCHEMA public TO \(name)")
            statements.append("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \(name)")
            for (table, privileges) in tables {
                statements.append("GRANT \(privileges) ON \(table.rawValue) TO \(name)")
            }
            if role == .reporting {
                // Reads as of a time wait for a numbering in progress (migration 11).
                statements.append("GRANT EXECUTE ON FUNCTION wait_for_numbering() TO \(name)")
            }
            // Every service inserts rows with serial ids (reporting: publications).
            statements.append("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO \(name)")
        }
        // Sequences owned by a table follow it; the migrations run as the owner. The grants
        // commit with the migrations: a service that sees the new schema version (and becomes
        // ready) can already read the tables it added; granted after, it failed on them
        // between the two commits.
        try connection.execute("SET ROLE \(PostgresQuery.quoteIdentifier(Role.owner.rawValue))")
        do {
            try Schema.migrate(connection, logger: logger) { connection in
                try connection.execute(statements.joined(separator: ";\n"))
            }
        } catch {
            try? connection.execute("RESET ROLE")
            throw error
        }
        try connection.execute("RESET ROLE")
    }
}
