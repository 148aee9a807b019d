import RootcausesJSON

/// Comma-separated values as RFC 4180 writes them: a header row, CRLF after every row, a field
/// quoted when it holds a comma, a double quote, CR or LF (a quote doubled inside). Numbers are
/// written exactly as the JSON answer spells them, so nothing is rounded on the way to a sheet.
public enum CSV {
    /// One field, quoted when it must be.
    public static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A JSON value as a field's text: strings as they are, numbers as written, `true`/`false`,
    /// nothing for null (arrays and objects as JSON text).
    public static func text(of value: JSON?) -> String {
        guard let value, !value.isNull else { return "" }
        if let text = value.stringValue { return text }
        if let number = value.numberLiteral { return number }
        if let flag = value.boolValue { return flag ? "true" : "false" }
        return value.serialized
    }

    /// The table: `columns` as the header, then one row per object, each column's member (an
    /// empty field when the object has none).
    public static func table(columns: [String], rows: [JSON]) -> String {
        var text = columns.map(field).joined(separator: ",") + "\r\n"
        for row in rows {
            text += columns.map { field(self.text(of: row[$0])) }.joined(separator: ",") + "\r\n"
        }
        return text
    }
}
