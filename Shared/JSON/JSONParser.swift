/// Why a text is not acceptable JSON, with the byte offset where parsing stopped.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "\(reason) at byte \(offset)" }
}

/// A strict RFC 8259 parser over UTF-8 bytes.
///
/// Rejects duplicate object keys (an ambiguous request must not be half-understood),
/// invalid UTF-8, and nesting deeper than `maximumDepth`.
public struct JSONParser {
    public static let maximumDepth = 64

    /// Parses one JSON document from `bytes`; only whitespace may follow it.
    public static func parse<Bytes: Collection>(_ bytes: Bytes) throws(JSONParseError) -> JSON
    where Bytes.Element == UInt8 {
        let result: Result<JSON, JSONParseError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONParseError) -> JSON in try parseBuffer(buffer) }
        }
        if let result { return try result.get() }
        let array = Array(bytes)
        return try array.withUnsafeBufferPointer { buffer throws(JSONParseError) -> JSON in try parseBuffer(buffer) }
    }

    /// Parses one JSON document from a string.
    public static func parse(_ text: String) throws(JSONParseError) -> JSON {
        try parse(Array(text.utf8))
    }

    private static func parseBuffer(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONParseError) -> JSON {
        var reader = Reader(bytes: buffer)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        guard reader.position == buffer.count else {
            throw JSONParseError(offset: reader.position, reason: "unexpected data after the JSON value")
        }
        return value
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: position, reason: reason) }

        var atEnd: Bool { position >= bytes.count }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: StaticString, value: JSON) throws(JSONParseError) -> JSON {
            let count = literal.utf8CodeUnitCount
            guard position + count <= bytes.count else { throw fail("unexpected end of input") }
            let start = literal.utf8Start
            for i in 0..<count where bytes[position + i] != start[i] {
                throw fail("invalid literal")
            }
            position += count
            return value
        }

        mutating func parseValue(depth: Int) throws(JSONParseError) -> JSON {
            guard !atEnd else { throw fail("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): return try expect("true", value: .bool(true))
            case UInt8(ascii: "f"): return try expect("false", value: .bool(false))
            case UInt8(ascii: "n"): return try expect("null", value: .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            default: throw fail("unexpected character")
            }
        }

        mutating func parseObject(depth: Int) throws(JSONParseError) -> JSON {
            guard depth <= JSONParser.maximumDepth else { throw fail("nesting too deep") }
            position += 1
            var members: [(String, JSON)] = []
            // Names compared by code points, as JSON does: Swift's String equality would take
            // canonically equivalent names ("é", "e\u{301}") for duplicates. Small objects (every
            // value of a submission) are searched in place; a set is made only for large ones.
            var seen: Set<[UInt8]>? = nil
            skipWhitespace()
            if !atEnd, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard !atEnd, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected an object key") }
                let keyOffset = position
                let key = try parseString()
                let duplicate: Bool
                if members.count < 16 {
                    duplicate = members.contains { sameName($0.0, key) }
                } else {
                    if seen == nil { seen = Set(members.map { Array($0.0.utf8) }) }
                    duplicate = !seen!.insert(Array(key.utf8)).inserted
                }
                guard !duplicate else {
                    throw JSONParseError(offset: keyOffset, reason: "duplicate key \"\(key)\"")
                }
                skipWhitespace()
                guard !atEnd, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                position += 1
                skipWhitespace()
                let value = try parseValue(depth: depth)
                members.append((key, value))
                skipWhitespace()
                guard !atEnd else { throw fail("unexpected end of input") }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                if bytes[position] == UInt8(ascii: "}") {
                    position += 1
                    return .object(members)
                }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func parseArray(depth: Int) throws(JSONParseError) -> JSON {
            guard depth <= JSONParser.maximumDepth else { throw fail("nesting too deep") }
            position += 1
            var elements: [JSON] = []
            skipWhitespace()
            if !atEnd, bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth))
                skipWhitespace()
                guard !atEnd else { throw fail("unexpected end of input") }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                if bytes[position] == UInt8(ascii: "]") {
                    position += 1
                    return .array(elements)
                }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func parseNumber() throws(JSONParseError) -> String {
            let start = position
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard !atEnd else { throw fail("invalid number") }
            if bytes[position] == UInt8(ascii: "0") {
                position += 1
            } else if isDigit(bytes[position]) {
                while !atEnd, isDigit(bytes[position]) { position += 1 }
            } else {
                throw fail("invalid number")
            }
            if !atEnd, bytes[position] == UInt8(ascii: ".") {
                position += 1
                guard !atEnd, isDigit(bytes[position]) else { throw fail("invalid number") }
                while !atEnd, isDigit(bytes[position]) { position += 1 }
            }
            if !atEnd, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                position += 1
                if !atEnd, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                    position += 1
                }
                guard !atEnd, isDigit(bytes[position]) else { throw fail("invalid number") }
                while !atEnd, isDigit(bytes[position]) { position += 1 }
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        }

        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

        mutating func parseString() throws(JSONParseError) -> String {
            position += 1  // opening quote
            let start = position
            // Fast path: no escapes.
            var ascii = true
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    let slice = UnsafeBufferPointer(rebasing: bytes[start..<position])
                    if ascii {
                        // ASCII is valid UTF-8: decoding it cannot repair anything, and skips
                        // `String(validating:)`'s generic lookups (a third of intake's parsing).
                        position += 1
                        return String(decoding: slice, as: UTF8.self)
                    }
                    guard let text = String(validating: slice, as: UTF8.self) else {
                        throw JSONParseError(offset: start, reason: "invalid UTF-8 in string")
                    }
                    position += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw fail("control character in string") }
                if byte >= 0x80 { ascii = false }
                position += 1
            }
            var scratch = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<position]))
            while true {
                guard !atEnd else { throw fail("unterminated string") }
                let byte = bytes[position]
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    guard let text = String(validating: scratch, as: UTF8.self) else {
                        throw JSONParseError(offset: start, reason: "invalid UTF-8 in string")
                    }
                    return text
                case UInt8(ascii: "\\"):
                    position += 1
                    guard !atEnd else { throw fail("unterminated string") }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""): scratch.append(0x22)
                    case UInt8(ascii: "\\"): scratch.append(0x5C)
                    case UInt8(ascii: "/"): scratch.append(0x2F)
                    case UInt8(ascii: "b"): scratch.append(0x08)
                    case UInt8(ascii: "f"): scratch.append(0x0C)
                    case UInt8(ascii: "n"): scratch.append(0x0A)
                    case UInt8(ascii: "r"): scratch.append(0x0D)
                    case UInt8(ascii: "t"): scratch.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try parseHex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                                bytes[position + 1] == UInt8(ascii: "u")
                            else { throw fail("unpaired surrogate") }
                            position += 2
                            let low = try parseHex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw fail("unpaired surrogate")
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid unicode escape") }
                        scratch.append(contentsOf: Array(String(Character(unicode)).utf8))
                    default:
                        throw fail("invalid escape")
                    }
                default:
                    if byte < 0x20 { throw fail("control character in string") }
                    scratch.append(byte)
                    position += 1
                }
            }
        }

        mutating func parseHex4() throws(JSONParseError) -> UInt32 {
            guard position + 4 <= bytes.count else { throw fail("invalid unicode escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw fail("invalid unicode escape")
                }
                value = value << 4 | digit
                position += 1
            }
            return value
        }
    }
}
