import RootcausesModel
import RootcausesPostgres
import RootcausesStorage

/// Intake's SQL for targets: one statement stores a target, replacing the current one of its
/// key when the value differs, or finds it was set before.
struct TargetStore: Sendable {
    let pool: PostgresPool

    enum Outcome: Sendable, Equatable {
        /// Stored as `id`; `replacedValue` is the value it replaces, if any.
        case accepted(id: Int64, replacedValue: String?)
        /// The current target of the key has this value already.
        case duplicate(id: Int64)
    }

    /// Stores `target`, set with the key `keyID`.
    func store(_ target: Target, keyID: String?) async throws -> Outcome {
        let query: PostgresQuery = """
            WITH same AS (
                SELECT id FROM \(Storage.Table.targets)
                WHERE reporter = \(target.reporter) AND indicator = \(target.indicator) AND country = \(target.country)
                  AND fiscal_year = \(target.fiscalYear)::integer AND current AND value = \(target.value)::numeric
            ), old AS (
                UPDATE \(Storage.Table.targets) SET current = false
                WHERE reporter = \(target.reporter) AND indicator = \(target.indicator) AND country = \(target.country)
                  AND fiscal_year = \(target.fiscalYear)::integer AND current AND value <> \(target.value)::numeric
                RETURNING id, value
            ), new AS (
                INSERT INTO \(Storage.Table.targets) (reporter, indicator, country, fiscal_year, value, replaces, current, api_key_id)
                SELECT \(target.reporter), \(target.indicator), \(target.country), \(target.fiscalYear)::integer,
                       \(target.value)::numeric, (SELECT id FROM old), true, \(keyID)
                WHERE NOT EXISTS (SELECT 1 FROM same)
                RETURNING id
            )
            SELECT (SELECT id FROM new) AS new_id, (SELECT value::text FROM old) AS replaced_value,
                   (SELECT id FROM same) AS same_id
            """
        // Two corrections of one key at once: the second's insert meets the first's new row
        // (unique violation). Run again, it sees that row and replaces it, or finds it the same.
        for attempt in 0..<3 {
            do {
                return try await pool.withConnection(idempotent: true) { connection in
                    guard let row = try connection.query(query).first else {
                        throw PostgresError(code: .unexpectedResult, message: "storing a target returned no row")
                    }
                    if let id = try row.decode(column: "new_id", as: Int64?.self) {
                        return .accepted(
                            id: id,
                            replacedValue: try row.decode(column: "replaced_value", as: String?.self)
                        )
                    }
                    guard let same = try row.decode(column: "same_id", as: Int64?.self) else {
                        throw PostgresError(code: .unexpectedResult, message: "a target was neither stored nor found")
                    }
                    return .duplicate(id: same)
                }
            } catch let error as PostgresError where error.sqlState == "23505" && attempt < 2 {
                continue
            }
        }
        throw PostgresError(code: .unexpectedResult, message: "a target could not be stored")
    }
}
