/// What a JSON number literal says, read from its digits so nothing is lost to rounding.
///
/// `Decimal` keeps 38 significant digits: `1.000000000000000000000000000000000000000001`
/// would round to 1 and pass as a whole number. The checks that matter for exactness
/// (whole number? how many decimal places?) are made on the literal itself.
public struct NumberLiteral: Sendable, Equatable {
    /// True when the value is below zero (`-0` is not).
    public let isNegative: Bool
    /// Digits after the decimal point once trailing zeros are dropped, exponent applied (`1.50e1` has 0).
    public let decimalPlaces: Int
    /// Digits from the first to the last non-zero digit (`0.00120` has 2).
    public let significantDigits: Int
    /// The power of ten of the leading digit (`1234` is 3, `0.05` is -2); `nil` for zero.
    public let magnitude: Int?
    /// The significant digits as ASCII, from the first to the last non-zero one (`0.00120`
    /// has `12`); empty for zero.
    public let significand: [UInt8]

    /// Reads a JSON number literal; `nil` if `text` is not one (or its exponent is absurd).
    public init?(_ text: String) {
        var bytes = Substring(text).utf8[...]
        var negative = false
        if bytes.first == UInt8(ascii: "-") {
            negative = true
            bytes = bytes.dropFirst()
        }
        let integerPart = bytes.prefix { $0 >= 48 && $0 <= 57 }
        bytes = bytes.dropFirst(integerPart.count)
        guard !integerPart.isEmpty else { return nil }
        var fractionPart = Substring("").utf8[...]
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            fractionPart = bytes.prefix { $0 >= 48 && $0 <= 57 }
            bytes = bytes.dropFirst(fractionPart.count)
            guard !fractionPart.isEmpty else { return nil }
        }
        var exponent = 0
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            var exponentNegative = false
            if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") {
                exponentNegative = bytes.first == UInt8(ascii: "-")
                bytes = bytes.dropFirst()
            }
            guard !bytes.isEmpty, bytes.count <= 6, bytes.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let value = Int(String(decoding: bytes, as: UTF8.self))
            else { return nil }
            exponent = exponentNegative ? -value : value
            bytes = bytes.dropFirst(bytes.count)
        }
        guard bytes.isEmpty else { return nil }
        // All digits, and where the decimal point sits counted from the right.
        var digits = Array(integerPart) + Array(fractionPart)
        var scale = fractionPart.count - exponent
        while let last = digits.last, last == 48, digits.count > 1 {
            digits.removeLast()
            scale -= 1
        }
        let leadingZeros = digits.prefix { $0 == 48 }.count
        let significant = digits.count - leadingZeros
        self.isNegative = negative && significant > 0
        self.significantDigits = significant
        self.decimalPlaces = significant == 0 ? 0 : max(0, scale)
        self.magnitude = significant == 0 ? nil : significant - 1 - scale
        self.significand = significant == 0 ? [] : Array(digits.dropFirst(leadingZeros))
    }

    /// The absolute value in plain decimal notation without insignificant zeros: `1.50e1` is
    /// `15`, `0.00120` is `0.0012`, zero is `0`: what `Decimal`'s description writes (stored
    /// digests rely on it), and what `numeric` reads back unchanged. Made from the digits
    /// themselves: no rounding at any length, and none of the cost of a `Decimal` (a fifth
    /// of intake's time went to them).
    public var canonicalText: String {
        guard let magnitude else { return "0" }
        var text: [UInt8] = []
        text.reserveCapacity(significand.count + abs(magnitude) + 2)
        if magnitude < 0 {
            text.append(contentsOf: "0.".utf8)
            text.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: -magnitude - 1))
            text.append(contentsOf: significand)
        } else if significand.count <= magnitude + 1 {
            text.append(contentsOf: significand)
            text.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: magnitude + 1 - significand.count))
        } else {
            text.append(contentsOf: significand[..<(magnitude + 1)])
            text.append(UInt8(ascii: "."))
            text.append(contentsOf: significand[(magnitude + 1)...])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Whether this literal's absolute value is larger than `other`'s, compared exactly on
    /// their digits.
    public func isGreater(than other: NumberLiteral) -> Bool {
        guard let magnitude else { return false }
        guard let otherMagnitude = other.magnitude else { return true }
        if magnitude != otherMagnitude { return magnitude > otherMagnitude }
        // Same leading power of ten: the digits decide, a longer run (no trailing zeros) being larger.
        return significand.lexicographicallyPrecedes(other.significand) == false && significand != other.significand
    }
}

/// PostgreSQL's numeric text without insignificant trailing zeros (`12.50` becomes `12.5`).
public func canonicalNumber(_ text: String) -> String {
    // Bytes, not `String.contains`, which Foundation turns into a locale-aware search.
    guard text.utf8.contains(UInt8(ascii: ".")) else { return text }
    var trimmed = Substring(text)
    while trimmed.hasSuffix("0") { trimmed.removeLast() }
    if trimmed.hasSuffix(".") { trimmed.removeLast() }
    return String(trimmed)
}
