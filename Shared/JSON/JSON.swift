/// A JSON value that keeps what matters for exact, auditable numbers:
/// numbers stay as their decimal literal (never rounded through `Double`),
/// and object members keep their order (so output is deterministic and readable).
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number, as its JSON literal (for example `"1250"`, `"12.50"`, `"1e3"`).
    case number(String)
    case string(String)
    case array([JSON])
    /// Members in document order. Duplicate keys are rejected by the parser.
    case object([(String, JSON)])

    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            guard a.count == b.count else { return false }
            return zip(a, b).allSatisfy { sameName($0.0, $1.0) && $0.1 == $1.1 }
        default: return false
        }
    }
}

extension JSON {
    /// An integer as a JSON number.
    public static func int<I: BinaryInteger>(_ value: I) -> JSON { .number(String(value)) }

    /// The member named `key` of an object, or `nil`. Names are compared code point by code
    /// point, as JSON does (`"é"` and `"e\u{301}"` are different names, although Swift's `==`
    /// holds them equal).
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        for (name, value) in members where sameName(name, key) { return value }
        return nil
    }

    /// The element at `index` of an array, or `nil`.
    public subscript(index: Int) -> JSON? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [(String, JSON)]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The literal of a number.
    public var numberLiteral: String? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// The number as an `Int64`, when its literal is exactly an integer that fits: `5`, `5.0`,
    /// `5e0` and `50e-1` are 5; `5.0000000000000001` is not an integer. Read from the literal's
    /// digits, never through `Double`, which would round it.
    public var int64Value: Int64? {
        guard case .number(let literal) = self else { return nil }
        if let value = Int64(literal) { return value }
        return JSON.exactInteger(literal)
    }

    /// The integer a number literal denotes exactly, or `nil` (a fraction, too large, not a literal).
    static func exactInteger(_ literal: String) -> Int64? {
        var bytes = Substring(literal).utf8[...]
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { bytes = bytes.dropFirst() }
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        var digits = Array(bytes.prefix(while: isDigit))
        bytes = bytes.dropFirst(digits.count)
        guard !digits.isEmpty else { return nil }
        var scale = 0  // digits after the decimal point
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            let fraction = bytes.prefix(while: isDigit)
            guard !fraction.isEmpty else { return nil }
            digits += fraction
            scale = fraction.count
            bytes = bytes.dropFirst(fraction.count)
        }
        if let marker = bytes.first, marker == UInt8(ascii: "e") || marker == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            var exponentNegative = false
            if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
                exponentNegative = sign == UInt8(ascii: "-")
                bytes = bytes.dropFirst()
            }
            let exponentDigits = bytes.drop { $0 == UInt8(ascii: "0") }
            guard !bytes.isEmpty, bytes.allSatisfy(isDigit), exponentDigits.count <= 6 else { return nil }
            let exponent = Int(String(decoding: exponentDigits, as: UTF8.self)) ?? 0
            scale += exponentNegative ? exponent : -exponent
            bytes = bytes.dropFirst(bytes.count)
        }
        guard bytes.isEmpty else { return nil }
        while let first = digits.first, first == UInt8(ascii: "0"), digits.count > 1 { digits.removeFirst() }
        if digits == [UInt8(ascii: "0")] { return 0 }
        // Digits right of the point must all be zeros; zeros are appended for a positive exponent.
        while scale > 0 {
            guard digits.last == UInt8(ascii: "0") else { return nil }
            digits.removeLast()
            scale -= 1
        }
        guard digits.count - scale <= 19 else { return nil }
        if scale < 0 { digits += Array(repeating: UInt8(ascii: "0"), count: -scale) }
        return Int64((negative ? "-" : "") + String(decoding: digits, as: UTF8.self))
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// A short name of the kind of value, for error messages.
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// A copy of an object with `key` set (replaced in place, or appended).
    public func setting(_ key: String, to value: JSON) -> JSON {
        guard case .object(var members) = self else { return self }
        if let i = members.firstIndex(where: { sameName($0.0, key) }) {
            members[i].1 = value
        } else {
            members.append((key, value))
        }
        return .object(members)
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByNilLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(elements) }
}

/// Whether two member names are the same name: the same UTF-8 bytes, as JSON compares them.
/// Lengths first (most names differ there), then the bytes in place: comparing through the
/// `utf8` views byte by byte took most of the time intake spent finding a value's fields.
func sameName(_ a: String, _ b: String) -> Bool {
    let (x, y) = (a.utf8, b.utf8)
    guard x.count == y.count else { return false }
    let same = x.withContiguousStorageIfAvailable { xBytes in
        y.withContiguousStorageIfAvailable { yBytes in xBytes.elementsEqual(yBytes) }
    }
    return (same ?? nil) ?? x.elementsEqual(y)
}
