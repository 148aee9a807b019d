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
}

extension PostgresRows: RandomAccessCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { rows.count }
}

/// One row, with typed accessors over the text values.
public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    private func index(_ column: String) -> Int {
        guard let i = columns.firstIndex(of: column) else {
            preconditionFailure("no column \(column) in \(columns)")
        }
        return i
    }

    public subscript(column: String) -> String? { values[index(column)] }
    public subscript(position: Int) -> String? { values[position] }

    public func string(_ column: String) -> String { self[column] ?? "" }
    public func int64(_ column: String) -> Int64? { self[column].flatMap { Int64($0) } }
    public func int(_ column: String) -> Int? { self[column].flatMap { Int($0) } }
    /// PostgreSQL's boolean text form is `t` or `f`.
    public func bool(_ column: String) -> Bool? { self[column].map { $0 == "t" } }
}

/// A value that can be sent as a statement parameter in PostgreSQL's text form.
public protocol PostgresEncodable: Sendable {
    /// The text form, or `nil` for SQL NULL.
    var postgresText: String? { get }
}

extension String: PostgresEncodable { public var postgresText: String? { self } }
extension Int: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Int64: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Int32: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Bool: PostgresEncodable { public var postgresText: String? { self ? "true" : "false" } }
extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresText: String? { self.flatMap { $0.postgresText } }
}
extension Array: PostgresEncodable where Element: PostgresEncodable {
    /// A one-dimensional array literal (`{"a","b",NULL}`), each element quoted and escaped.
    public var postgresText: String? {
        var text = "{"
        for (i, element) in enumerated() {
            if i > 0 { text += "," }
            if let value = element.postgresText {
                text += "\""
                for ch in value.unicodeScalars {
                    if ch == "\"" || ch == "\\" { text += "\\" }
                    text.unicodeScalars.append(ch)
                }
                text += "\""
            } else {
                text += "NULL"
            }
        }
        return text + "}"
    }
}

/// Escapes a field for COPY's text format (tab-separated, `\N` for NULL).
public func postgresCopyEscape(_ value: String?) -> String {
    guard let value else { return "\\N" }
    var out = ""
    out.reserveCapacity(value.utf8.count)
    for ch in value.unicodeScalars {
        switch ch {
        case "\\": out += "\\\\"
        case "\t": out += "\\t"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        default: out.unicodeScalars.append(ch)
        }
    }
    return out
}
