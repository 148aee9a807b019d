/// A reporting period, stored as the date range it covers.
///
/// Accepted forms: `2023` (calendar year), `2023Q1`, `2023-01` (month), `FY2023`
/// (U.S. fiscal year: October 2022 to September 2023) and `FY2023Q1` (October to December 2022).
/// Two spellings of the same range (`FY2023Q1` and `2022Q4`) are the same period.
public struct Period: Hashable, Sendable, CustomStringConvertible {
    /// The first day of the period.
    public let start: Day
    /// The last day of the period (inclusive).
    public let end: Day

    public init(start: Day, end: Day) {
        self.start = start
        self.end = end
    }

    /// The range's conventional label: `2022Q4` for FY2023Q1, `FY2023`, `2023`, `2023-01`, or `start..end`.
    public var description: String { label }

    public var label: String {
        if start.day == 1, end == end.endOfMonth {
            if start.year == end.year, start.month == 1, end.month == 12 { return "\(start.year)" }
            if start.month == 10, end.month == 9, end.year == start.year + 1 { return "FY\(end.year)" }
            if start.year == end.year, start.month == end.month {
                return "\(start.year)-" + (start.month < 10 ? "0" : "") + "\(start.month)"
            }
            if start.year == end.year, (start.month - 1) % 3 == 0, end.month == start.month + 2 {
                return "\(start.year)Q\((start.month - 1) / 3 + 1)"
            }
        }
        return "\(start)..\(end)"
    }

    /// Parses a period in any accepted form; `nil` when the text is not one.
    public static func parse(_ raw: String) -> Period? {
        let text = raw.uppercased()
        let bytes = Array(text.utf8)
        func number(_ slice: ArraySlice<UInt8>) -> Int? {
            guard !slice.isEmpty, slice.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            return Int(String(decoding: slice, as: UTF8.self))
        }
        func validYear(_ year: Int) -> Bool { (1900...2999).contains(year) }

        if text.hasPrefix("FY") {
            let rest = bytes.dropFirst(2)
            if rest.count == 4, let fy = number(rest), validYear(fy) {
                return Period(start: Day(year: fy - 1, month: 10, day: 1), end: Day(year: fy, month: 9, day: 30))
            }
            if rest.count == 6, rest[rest.startIndex + 4] == UInt8(ascii: "Q"),
                let fy = number(rest.prefix(4)), validYear(fy), let q = number(rest.suffix(1)), (1...4).contains(q)
            {
                // FY quarter 1 starts in October of the previous calendar year.
                let startMonthIndex = 9 + (q - 1) * 3  // months since January of fy-1, zero-based
                let year = fy - 1 + startMonthIndex / 12
                let month = startMonthIndex % 12 + 1
                let start = Day(year: year, month: month, day: 1)
                let end = Day(year: year, month: month + 2, day: 1).endOfMonth
                return Period(start: start, end: end)
            }
            return nil
        }
        if bytes.count == 4, let year = number(bytes[...]), validYear(year) {
            return Period(start: Day(year: year, month: 1, day: 1), end: Day(year: year, month: 12, day: 31))
        }
        if bytes.count == 6, bytes[4] == UInt8(ascii: "Q"), let year = number(bytes[0..<4]), validYear(year),
            let q = number(bytes[5..<6]), (1...4).contains(q)
        {
            let month = (q - 1) * 3 + 1
            return Period(
                start: Day(year: year, month: month, day: 1),
                end: Day(year: year, month: month + 2, day: 1).endOfMonth
            )
        }
        if bytes.count == 7, bytes[4] == UInt8(ascii: "-"), let year = number(bytes[0..<4]), validYear(year),
            let month = number(bytes[5..<7]), (1...12).contains(month)
        {
            let start = Day(year: year, month: month, day: 1)
            return Period(start: start, end: start.endOfMonth)
        }
        return nil
    }
}
