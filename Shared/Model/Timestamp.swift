/// A moment written in RFC 3339: `2023-02-06T15:04:05Z`, `2023-02-06T10:04:05.25-05:00`.
///
/// Checked strictly here rather than left to PostgreSQL, whose `timestamptz` input also takes
/// words (`now`, `epoch`, `infinity`), time-zone names and dates without a time: a client
/// asking "as of" one of those never means what the server would read.
public struct Timestamp: Hashable, Sendable, CustomStringConvertible {
    /// The text as given: valid RFC 3339, which PostgreSQL reads as the same moment.
    public let rfc3339: String
    /// The calendar day as written (in the text's own offset).
    public let day: Day

    /// Parses `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`; `t`, `z` and a space for `T` are
    /// accepted as RFC 3339 allows. Years as `Day.supportedYears`; a fraction of 1 to 9 digits;
    /// offsets up to ±15:59.
    public init?(rfc3339 text: String) {
        let bytes = Array(text.utf8)
        // Date (10), separator (1), time (8): 19 bytes before the optional fraction and the offset.
        guard bytes.count >= 20, let day = Day(iso: String(decoding: bytes[0..<10], as: UTF8.self)) else { return nil }
        guard [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(bytes[10]),
            Timestamp.twoDigits(bytes, at: 11, max: 23), bytes[13] == UInt8(ascii: ":"),
            Timestamp.twoDigits(bytes, at: 14, max: 59), bytes[16] == UInt8(ascii: ":"),
            // 60: a leap second, which RFC 3339 allows.
            Timestamp.twoDigits(bytes, at: 17, max: 60)
        else { return nil }
        var index = 19
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            let digitsStart = index
            while index < bytes.count, Timestamp.isDigit(bytes[index]) { index += 1 }
            guard (1...9).contains(index - digitsStart) else { return nil }
        }
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard index + 1 == bytes.count else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            // PostgreSQL takes offsets up to 15 hours (real ones reach 14).
            guard index + 6 == bytes.count, Timestamp.twoDigits(bytes, at: index + 1, max: 15),
                bytes[index + 3] == UInt8(ascii: ":"), Timestamp.twoDigits(bytes, at: index + 4, max: 59)
            else { return nil }
        default:
            return nil
        }
        self.rfc3339 = text
        self.day = day
    }

    public var description: String { rfc3339 }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func twoDigits(_ bytes: [UInt8], at index: Int, max: Int) -> Bool {
        guard index + 1 < bytes.count, isDigit(bytes[index]), isDigit(bytes[index + 1]) else { return false }
        return Int(bytes[index] - UInt8(ascii: "0")) * 10 + Int(bytes[index + 1] - UInt8(ascii: "0")) <= max
    }
}
