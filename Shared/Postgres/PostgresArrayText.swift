/// Reads PostgreSQL's text form of an array (`{1,2,3}`, `{"a b","c\"d",NULL}`), as `array_out`
/// writes it and `array_in` reads it.
///
/// Elements are split on top-level delimiters only: quoted elements keep their commas and braces,
/// backslash escapes are undone, and an unquoted `NULL` (any case) is SQL NULL while a quoted
/// `"NULL"` is the text. A nested array's element is returned as its own text form (`{1,2}`),
/// so arrays of arrays decode element by element. A leading dimension decoration
/// (`[0:2]={1,2,3}`, written for arrays whose lower bound is not 1) is skipped.
public enum PostgresArrayText {
    /// The elements of a one-dimensional array's text form, `nil` for NULL.
    ///
    /// - Parameter delimiter: `,` for every built-in type except `box` (`;`).
    /// - Throws: `PostgresDecodingFailure` when `text` is not an array's text form.
    public static func elements(
        of text: String,
        delimiter: Unicode.Scalar = ","
    ) throws(PostgresDecodingFailure) -> [String?] {
        var reader = Reader(bytes: Array(text.utf8), delimiter: UInt8(ascii: delimiter))
        return try reader.readArray()
    }

    private struct Reader {
        let bytes: [UInt8]
        let delimiter: UInt8
        var position = 0

        init(bytes: [UInt8], delimiter: UInt8) {
            self.bytes = bytes
            self.delimiter = delimiter
        }

        private static let quote = UInt8(ascii: "\"")
        private static let backslash = UInt8(ascii: "\\")
        private static let open = UInt8(ascii: "{")
        private static let close = UInt8(ascii: "}")

        private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        private func malformed(_ reason: String) -> PostgresDecodingFailure {
            PostgresDecodingFailure("malformed array literal: \(reason) at byte \(position)")
        }

        private mutating func skipWhitespace() {
            while let byte = current, Self.isWhitespace(byte) { position += 1 }
        }

        private static func isWhitespace(_ byte: UInt8) -> Bool {
            byte == 0x20 || (0x09...0x0D).contains(byte)
        }

        mutating func readArray() throws(PostgresDecodingFailure) -> [String?] {
            skipWhitespace()
            if current == UInt8(ascii: "[") {
                // Dimension decoration: the bounds do not change the elements.
                guard let equals = bytes[position...].firstIndex(of: UInt8(ascii: "=")) else {
                    throw malformed("dimensions without '='")
                }
                position = equals + 1
                skipWhitespace()
            }
            guard current == Self.open else { throw malformed("expected '{'") }
            position += 1
            var elements: [String?] = []
            skipWhitespace()
            if current == Self.close {
                position += 1
            } else {
                while true {
                    skipWhitespace()
                    switch current {
                    case Self.quote: elements.append(try readQuoted())
                    case Self.open: elements.append(try readNested())
                    case nil: throw malformed("unexpected end")
                    default: elements.append(try readUnquoted())
                    }
                    skipWhitespace()
                    guard let separator = current else { throw malformed("unexpected end") }
                    position += 1
                    if separator == Self.close { break }
                    guard separator == delimiter else {
                        position -= 1
                        throw malformed("expected '\(Character(Unicode.Scalar(delimiter)))' or '}'")
                    }
                }
            }
            skipWhitespace()
            guard position == bytes.count else { throw malformed("text after the closing '}'") }
            return elements
        }

        /// `"…"`: backslash escapes the next byte; quoted text is never NULL.
        private mutating func readQuoted() throws(PostgresDecodingFailure) -> String {
            position += 1
            var value: [UInt8] = []
            while let byte = current {
                position += 1
                if byte == Self.backslash {
                    guard let escaped = current else { break }
                    value.append(escaped)
                    position += 1
                } else if byte == Self.quote {
                    return String(decoding: value, as: UTF8.self)
                } else {
                    value.append(byte)
                }
            }
            throw malformed("unterminated quoted element")
        }

        /// A nested array, returned whole as its own text form.
        private mutating func readNested() throws(PostgresDecodingFailure) -> String {
            let start = position
            var depth = 0
            var inQuotes = false
            while let byte = current {
                position += 1
                if byte == Self.backslash {
                    position += 1
                } else if byte == Self.quote {
                    inQuotes.toggle()
                } else if !inQuotes, byte == Self.open {
                    depth += 1
                } else if !inQuotes, byte == Self.close {
                    depth -= 1
                    if depth == 0 { return String(decoding: bytes[start..<position], as: UTF8.self) }
                }
            }
            throw malformed("unterminated nested array")
        }

        /// Up to the next delimiter or `}`; surrounding whitespace is not part of the value.
        private mutating func readUnquoted() throws(PostgresDecodingFailure) -> String? {
            var value: [UInt8] = []
            var significantCount = 0  // trailing unescaped whitespace is dropped
            var escaped = false
            while let byte = current, byte != delimiter, byte != Self.close {
                if byte == Self.quote || byte == Self.open {
                    throw malformed("unexpected '\(Character(Unicode.Scalar(byte)))'")
                }
                position += 1
                if byte == Self.backslash {
                    guard let next = current else { break }
                    value.append(next)
                    position += 1
                    escaped = true
                    significantCount = value.count
                } else {
                    value.append(byte)
                    if !Self.isWhitespace(byte) { significantCount = value.count }
                }
            }
            value.removeLast(value.count - significantCount)
            guard !value.isEmpty else { throw malformed("empty element") }
            let text = String(decoding: value, as: UTF8.self)
            if !escaped, text.lowercased() == "null" { return nil }
            return text
        }
    }
}
