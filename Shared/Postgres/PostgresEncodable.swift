/// A value that can be sent as a statement parameter in PostgreSQL's text form.
///
/// Values interpolated into a `PostgresQuery` must conform: they become parameters
/// (`$1`, `$2`, …) sent apart from the SQL text, never spliced into it.
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
    /// The server infers the array's type from the statement: write a cast (`$1::text[]`) where
    /// it cannot.
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
