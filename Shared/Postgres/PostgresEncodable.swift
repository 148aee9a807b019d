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
        // Built as UTF-8 bytes: a multi-byte character never contains the bytes of `"` or `\`,
        // so escaping byte by byte is exact, and much cheaper than appending scalars to a String
        // (intake spent a sixth of its time here, binding a submission's values).
        let quote = UInt8(ascii: "\"")
        let backslash = UInt8(ascii: "\\")
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(2 + count * 8)
        for (i, element) in enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let value = element.postgresText else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(quote)
            for byte in value.utf8 {
                if byte == quote || byte == backslash { bytes.append(backslash) }
                bytes.append(byte)
            }
            bytes.append(quote)
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
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
