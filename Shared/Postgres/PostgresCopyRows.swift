/// Rows for `COPY … FROM STDIN` in the text format, built straight into the bytes sent.
///
/// Fields are separated by tabs, rows end in `\n`, NULL is `\N`, and a field's backslashes,
/// tabs, newlines and carriage returns are escaped. Escaping works byte by byte: those four
/// bytes never occur inside a multi-byte UTF-8 character. Building bytes instead of a `String`
/// per row keeps a submission's 50 values to a few appends (intake writes them this way).
/// PostgreSQL refuses NUL in text: a field holding one fails the whole COPY (nothing is stored).
///
/// ```swift
/// var rows = PostgresCopyRows()
/// rows.append(Int64(7)); rows.append("age=15-19;sex=female"); rows.append(nil as String?)
/// rows.endRow()
/// try connection.copyIn("COPY t (id, cell, note) FROM STDIN", rows: rows)
/// ```
public struct PostgresCopyRows: Sendable {
    /// The text sent to the server.
    public private(set) var bytes: [UInt8] = []
    /// Rows ended so far.
    public private(set) var rowCount = 0
    private var atRowStart = true

    public init(reservingCapacity capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    /// Appends a field's text form (`\N` for `nil`).
    public mutating func append(_ value: (some PostgresEncodable)?) {
        separate()
        guard let text = value?.postgresText else {
            bytes.append(contentsOf: #"\N"#.utf8)
            return
        }
        appendEscaped(text)
    }

    /// Appends a text field (escaped).
    public mutating func append(_ value: String) {
        separate()
        appendEscaped(value)
    }

    /// Appends an integer field.
    public mutating func append(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    /// Appends an integer field.
    public mutating func append(_ value: Int64) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    /// Appends a boolean as `t` or `f`.
    public mutating func append(_ value: Bool) {
        separate()
        bytes.append(value ? UInt8(ascii: "t") : UInt8(ascii: "f"))
    }

    /// Appends each row of `rows` with `field` in front of it as a first column: rows made
    /// ahead (on many threads) before the value they all start with was known.
    public mutating func append(_ rows: PostgresCopyRows, prefixedBy field: Int64) {
        precondition(atRowStart && rows.atRowStart, "whole rows are appended between rows")
        let prefix = Array(String(field).utf8) + [UInt8(ascii: "\t")]
        bytes.reserveCapacity(bytes.count + rows.bytes.count + rows.rowCount * prefix.count)
        // A row ends at its first raw newline: escaping turned every newline inside a field into `\n`.
        var rowStart = rows.bytes.startIndex
        while let rowEnd = rows.bytes[rowStart...].firstIndex(of: UInt8(ascii: "\n")) {
            bytes.append(contentsOf: prefix)
            bytes.append(contentsOf: rows.bytes[rowStart...rowEnd])
            rowStart = rowEnd + 1
        }
        rowCount += rows.rowCount
    }

    /// Ends the current row.
    public mutating func endRow() {
        bytes.append(UInt8(ascii: "\n"))
        atRowStart = true
        rowCount += 1
    }

    private mutating func appendEscaped(_ text: String) {
        // Most fields need no escaping: one scan, then one copy instead of a byte at a time.
        let escaped = text.utf8.contains { byte in
            byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
                || byte == UInt8(ascii: "\r")
        }
        guard escaped else {
            bytes.append(contentsOf: text.utf8)
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\t"): bytes.append(contentsOf: #"\t"#.utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): bytes.append(contentsOf: #"\r"#.utf8)
            default: bytes.append(byte)
            }
        }
    }

    private mutating func separate() {
        if !atRowStart { bytes.append(UInt8(ascii: "\t")) }
        atRowStart = false
    }
}
