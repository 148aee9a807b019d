/// A SQL statement and the values bound to its parameters, built together.
///
/// Modelled on postgres-nio's `PostgresQuery`: write the statement as a string literal, and
/// every interpolated value becomes a parameter (`$1`, `$2`, …) sent apart from the SQL text,
/// never spliced into it. Casts stay in the SQL.
///
/// ```swift
/// let query: PostgresQuery = """
///     SELECT seq FROM submissions WHERE reporter = \(reporter) AND seq <= \(asOf)::bigint
///     """
/// // query.sql == "SELECT seq FROM submissions WHERE reporter = $1 AND seq <= $2::bigint"
/// // query.binds.texts == [reporter, String(asOf)]
/// ```
///
/// Arrays bind as one array parameter (`\(codes)::text[]`) and optionals as NULL when `nil`.
/// An optional filter goes in with `\(filter: value, { "col = ANY(\($0)::text[])" })`: `true`
/// when `nil`, else the condition with the value bound (the closure must use only constants and
/// the placeholder it is given). Trusted fragments (fixed column lists, table names) go in with
/// `\(unescaped: …)`, identifiers that are not constants with `\(identifier: …)`, which quotes them.
///
/// The SQL text of a given code path and shape (which filters it has) is always the same,
/// whatever the values, so each connection prepares it once and reuses it (and its generic
/// plan, where `plan_cache_mode` allows one).
public struct PostgresQuery: Sendable, Hashable {
    /// The statement, with `$n` placeholders.
    public var sql: String
    /// The values for the placeholders, in order.
    public var binds: PostgresBindings

    /// A statement from SQL text as is. Nothing in `sql` is checked or escaped: use it only for
    /// text built from constants, with the values in `binds`.
    public init(unsafeSQL sql: String, binds: PostgresBindings = PostgresBindings()) {
        self.sql = sql
        self.binds = binds
    }

    /// `text` as a PostgreSQL string literal, for constants spliced in with `\(unescaped: …)`:
    /// an escape string (`E'…'`) with backslashes and quotes doubled, so it reads the same
    /// whatever `standard_conforming_strings` says.
    public static func literal(_ text: String) -> String {
        "E'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// `name` quoted as a PostgreSQL identifier: `a"b` becomes `"a""b"`. Quoting keeps the name's
    /// case and makes any text a single identifier (never SQL).
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// The parameter values of a `PostgresQuery`, in PostgreSQL's text form.
public struct PostgresBindings: Sendable, Hashable {
    /// Each parameter's text form in `$1, $2, …` order; `nil` is SQL NULL.
    public private(set) var texts: [String?]

    public init() { texts = [] }

    /// The number of parameters.
    public var count: Int { texts.count }

    /// Adds a parameter; its placeholder is `$count` afterwards.
    public mutating func append<Value: PostgresEncodable>(_ value: Value) {
        texts.append(value.postgresText)
    }
}

extension PostgresQuery: ExpressibleByStringInterpolation {
    public init(stringLiteral value: String) {
        self.init(unsafeSQL: value)
    }

    public init(stringInterpolation: StringInterpolation) {
        self.init(unsafeSQL: stringInterpolation.sql, binds: stringInterpolation.binds)
    }

    /// Builds a `PostgresQuery` from an interpolated literal.
    public struct StringInterpolation: StringInterpolationProtocol, Sendable {
        public typealias StringLiteralType = String

        var sql: String
        var binds: PostgresBindings

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql = ""
            sql.reserveCapacity(literalCapacity + 3 * interpolationCount)
            binds = PostgresBindings()
        }

        public mutating func appendLiteral(_ literal: String) {
            sql.append(literal)
        }

        /// A value, bound as the next parameter (`$n`).
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            binds.append(value)
            sql.append("$\(binds.count)")
        }

        /// An optional value, bound as the next parameter: SQL NULL when `nil`. (Its own overload,
        /// as in postgres-nio, so the compiler does not take it for text interpolation of an optional.)
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            binds.append(value)
            sql.append("$\(binds.count)")
        }

        /// Trusted SQL text, spliced in as is: only for text built from constants.
        public mutating func appendInterpolation(unescaped fragment: String) {
            sql.append(fragment)
        }

        /// `condition` with `value` bound as its parameter (the closure is given the
        /// placeholder), or `true` when `value` is `nil`. The SQL text then says which filters a
        /// statement has, so one generic plan per shape serves every value: a `$1 IS NULL OR …`
        /// test hides from a generic plan whether an index can serve the filter.
        public mutating func appendInterpolation<Value: PostgresEncodable>(
            filter value: Value?,
            _ condition: (String) -> String
        ) {
            guard let value else {
                sql.append("true")
                return
            }
            binds.append(value)
            sql.append(condition("$\(binds.count)"))
        }

        /// An identifier (a table, column or database name), quoted: safe for names that are
        /// not constants. Quoted names are case-sensitive.
        public mutating func appendInterpolation(identifier name: String) {
            sql.append(PostgresQuery.quoteIdentifier(name))
        }
    }
}

extension PostgresQuery: CustomStringConvertible {
    /// The SQL and the bound values, for logs and test failures.
    public var description: String {
        binds.count == 0 ? sql : "\(sql) \(binds.texts.map { $0.map { "\"\($0)\"" } ?? "NULL" })"
    }
}
