/// The rows a statement returned, copied out of libpq as text.
public struct PostgresRows: Sendable {
    /// Column names in order.
    public let columns: [String]
    /// Each row's values as PostgreSQL's text form; `nil` is SQL NULL.
    public let rows: [[String?]]
    /// The number of rows the statement affected (for INSERT, UPDATE, DELETE, COPY).
    public let affectedRows: Int
    /// The server's command tag: `INSERT 0 1`, `COMMIT`, or `ROLLBACK` for a COMMIT that failed.
    public let commandTag: String

    public init(columns: [String], rows: [[String?]], affectedRows: Int, commandTag: String = "") {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        self.commandTag = commandTag
    }

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }
    public var first: PostgresRow? { rows.first.map { PostgresRow(columns: columns, values: $0) } }

    public subscript(index: Int) -> PostgresRow { PostgresRow(columns: columns, values: rows[index]) }

    /// Every row decoded as `Row` (see `PostgresRowDecodable`).
    public func decode<Row: PostgresRowDecodable>(_ type: Row.Type) throws -> [Row] {
        try map { try Row(postgresRow: $0) }
    }
}

extension PostgresRows: RandomAccessCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { rows.count }
}

/// A type made from a whole result row, reading its columns by name.
///
/// ```swift
/// struct Progress: PostgresRowDecodable {
///     var applied: Int64
///     var latest: Int64
///     init(postgresRow row: PostgresRow) throws {
///         applied = try row.decode(column: "applied", as: Int64.self)
///         latest = try row.decode(column: "latest", as: Int64.self)
///     }
/// }
/// let progress = try connection.query(query).decode(Progress.self)
/// ```
public protocol PostgresRowDecodable {
    init(postgresRow row: PostgresRow) throws
}

/// One row of a result: decode its columns by name or position into Swift types.
///
/// Every failure (a missing column, NULL where the type has none, text that is not a value of
/// the type) throws a `PostgresError` with code `.decodingFailed` that names the column.
public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    public init(columns: [String], values: [String?]) {
        self.columns = columns
        self.values = values
    }

    /// The column named `column`, decoded as `type`.
    ///
    /// `try row.decode(column: "seq", as: Int64.self)`; decode as `Int64?` to accept NULL.
    public func decode<Value: PostgresDecodable>(
        column: String,
        as type: Value.Type = Value.self
    ) throws(PostgresError) -> Value {
        guard let position = columns.firstIndex(of: column) else {
            throw PostgresError(
                code: .decodingFailed,
                message: "no column \"\(column)\" in the result (columns: \(columns.joined(separator: ", ")))"
            )
        }
        return try decode(position: position, as: type)
    }

    /// The column at `position` (counting from 0), decoded as `type`.
    public func decode<Value: PostgresDecodable>(
        position: Int,
        as type: Value.Type = Value.self
    ) throws(PostgresError) -> Value {
        guard values.indices.contains(position) else {
            throw PostgresError(
                code: .decodingFailed,
                message: "no column at position \(position) in a result of \(values.count) columns"
            )
        }
        do {
            return try Value.decode(postgresText: values[position])
        } catch {
            let name = columns.indices.contains(position) ? "\"\(columns[position])\"" : "at position \(position)"
            throw PostgresError(code: .decodingFailed, message: "column \(name): \(error.reason)")
        }
    }

    /// The row's columns, in order, decoded as a tuple of `types`; the row must have exactly
    /// that many columns.
    ///
    /// `let (seq, reporter) = try row.decode(Int64.self, String.self)`
    public func decode<each Value: PostgresDecodable>(
        _ types: repeat (each Value).Type
    ) throws(PostgresError) -> (repeat each Value) {
        var expected = 0
        for _ in repeat each types { expected += 1 }
        guard expected == values.count else {
            throw PostgresError(
                code: .decodingFailed,
                message:
                    "cannot decode \(values.count) columns (\(columns.joined(separator: ", "))) as \(expected) values"
            )
        }
        var position = 0
        func next<Column: PostgresDecodable>(_ type: Column.Type) throws(PostgresError) -> Column {
            defer { position += 1 }
            return try decode(position: position, as: type)
        }
        return (repeat try next(each types))
    }

    /// The row decoded as `Row` (see `PostgresRowDecodable`).
    public func decode<Row: PostgresRowDecodable>(_ type: Row.Type) throws -> Row {
        try Row(postgresRow: self)
    }
}
