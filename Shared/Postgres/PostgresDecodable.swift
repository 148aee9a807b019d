import Foundation

/// A type whose values can be read from a result column in PostgreSQL's text form.
///
/// `PostgresRow.decode(column:as:)` and friends use it; a failure there becomes a
/// `PostgresError` with code `.decodingFailed` naming the column and the text.
///
/// ```swift
/// let seq = try row.decode(column: "seq", as: Int64.self)
/// let seqs = try row.decode(column: "seqs", as: [Int64].self)   // from `{1,2,3}`
/// let activity = try row.decode(column: "activity", as: String?.self)
/// ```
public protocol PostgresDecodable: Sendable {
    /// Decodes a value from its text form; `text` is `nil` for SQL NULL.
    ///
    /// - Throws: `PostgresDecodingFailure` when the value is NULL and the type has no NULL
    ///   (decode as an `Optional` to accept NULL), or when the text is not a value of the type.
    static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> Self
}

/// Why a value could not be decoded. `PostgresRow` adds the column and turns it into a `PostgresError`.
public struct PostgresDecodingFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    /// NULL where the type has no NULL.
    public static func unexpectedNull<T>(_ type: T.Type) -> PostgresDecodingFailure {
        PostgresDecodingFailure("NULL is not a \(T.self) (decode as \(T.self)? to accept NULL)")
    }

    /// Text that is not a value of the type.
    public static func invalidText<T>(_ text: String, _ type: T.Type) -> PostgresDecodingFailure {
        PostgresDecodingFailure("\(quotedForMessage(text)) is not a \(T.self)")
    }

    public var description: String { reason }
}

/// Text quoted for an error message, cut short: a wrong column can hold a whole document.
func quotedForMessage(_ text: String, limit: Int = 80) -> String {
    text.count <= limit ? "\"\(text)\"" : "\"\(text.prefix(limit))…\" (\(text.utf8.count) bytes)"
}

/// Decodes non-NULL text with `parse`, which returns `nil` for text that is not a value.
private func decodeNonNull<T>(
    _ text: String?,
    as type: T.Type,
    _ parse: (String) -> T?
) throws(PostgresDecodingFailure) -> T {
    guard let text else { throw .unexpectedNull(T.self) }
    guard let value = parse(text) else { throw .invalidText(text, T.self) }
    return value
}

extension String: PostgresDecodable {
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> String {
        try decodeNonNull(text, as: String.self) { $0 }
    }
}

extension Int: PostgresDecodable {
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> Int {
        try decodeNonNull(text, as: Int.self) { Int($0) }
    }
}

extension Int64: PostgresDecodable {
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> Int64 {
        try decodeNonNull(text, as: Int64.self) { Int64($0) }
    }
}

extension Double: PostgresDecodable {
    /// A `float8` (or any number PostgreSQL prints); `NaN` and `Infinity` as PostgreSQL spells them.
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> Double {
        try decodeNonNull(text, as: Double.self) { text in
            switch text {
            case "Infinity": .infinity
            case "-Infinity": -.infinity
            case "NaN": .nan
            default: Double(text)
            }
        }
    }
}

extension Int32: PostgresDecodable {
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> Int32 {
        try decodeNonNull(text, as: Int32.self) { Int32($0) }
    }
}

extension Bool: PostgresDecodable {
    /// PostgreSQL writes booleans as `t` and `f`.
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> Bool {
        try decodeNonNull(text, as: Bool.self) { text in
            switch text {
            case "t": true
            case "f": false
            default: nil
            }
        }
    }
}

extension Decimal: PostgresDecodable {
    /// `numeric`'s text form (`-12.50`, `1e3`). `NaN` and the infinities, which `numeric` can
    /// hold and `Decimal` cannot represent faithfully, fail rather than become a number.
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> Decimal {
        try decodeNonNull(text, as: Decimal.self) { text in
            // Decimal(string:) stops at the first character it cannot read ("12abc" is 12): check the whole text first.
            guard isNumericLiteral(text) else { return nil }
            return Decimal(string: text, locale: posix)
        }
    }

    /// Made once: a `Locale` per decoded value was a fifth of the decoding's time.
    private static let posix = Locale(identifier: "en_US_POSIX")

    /// `[+-]digits[.digits][e[+-]digits]`, with at least one digit before the exponent.
    private static func isNumericLiteral(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        func digits() -> Int {
            let count = bytes.prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }.count
            bytes = bytes.dropFirst(count)
            return count
        }
        if let sign = bytes.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        var mantissaDigits = digits()
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            mantissaDigits += digits()
        }
        guard mantissaDigits > 0 else { return false }
        if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if let sign = bytes.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") {
                bytes = bytes.dropFirst()
            }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    /// NULL is `nil`; anything else must decode as `Wrapped`.
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> Wrapped? {
        guard let text else { return nil }
        return try Wrapped.decode(postgresText: text)
    }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    /// An array's text form (`{1,2,3}`, `{"a b",NULL}`), parsed by `PostgresArrayText`: quoting,
    /// escapes and NULL elements are handled, never by trimming braces. A NULL element needs an
    /// optional `Element` (`[String?]`).
    public static func decode(postgresText text: String?) throws(PostgresDecodingFailure) -> [Element] {
        guard let text else { throw .unexpectedNull([Element].self) }
        let elements = try PostgresArrayText.elements(of: text)
        var decoded: [Element] = []
        decoded.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            do {
                decoded.append(try Element.decode(postgresText: element))
            } catch {
                throw PostgresDecodingFailure("element \(index + 1) of \(quotedForMessage(text)): \(error.reason)")
            }
        }
        return decoded
    }
}
