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
