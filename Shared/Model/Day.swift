import Foundation

/// A calendar day (no time, no zone), the unit periods are made of.
public struct Day: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let year: Int
    public let month: Int
    public let day: Int

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// The years a day may fall in: wide enough for any result and any "as of", narrow enough
    /// for every date type on the way (PostgreSQL's `date` has no year 0).
    public static let supportedYears = 1900...9999

    /// Parses `YYYY-MM-DD` (ASCII digits only), rejecting days that do not exist and years
    /// outside `years` (by default the years a request may name; a stored period may start a
    /// little earlier: FY1900 begins on 1899-10-01).
    public init?(iso text: String, years: ClosedRange<Int> = Day.supportedYears) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].utf8.count == 4, parts[1].utf8.count == 2, parts[2].utf8.count == 2,
            parts.allSatisfy({ $0.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }),
            let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
            years.contains(y), (1...12).contains(m), d >= 1, d <= Day.daysIn(year: y, month: m)
        else { return nil }
        self.init(year: y, month: m, day: d)
    }

    /// Today in UTC.
    public static func today() -> Day {
        // From the clock through `gmtime_r`, as the JSON log handler stamps its lines: intake
        // asks at every submit, and making a `Calendar` each time was a visible part of its time.
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return Day(year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday))
    }

    public static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// The last day of this day's month.
    public var endOfMonth: Day { Day(year: year, month: month, day: Day.daysIn(year: year, month: month)) }

    public static func < (lhs: Day, rhs: Day) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// `YYYY-MM-DD`.
    public var description: String {
        // Padded by hand: every submission's canonical content names its period's days, and
        // `String(format:)` was a visible part of intake's time.
        guard (0...9999).contains(year), (1...12).contains(month), (1...31).contains(day) else {
            return String(format: "%04d-%02d-%02d", year, month, day)
        }
        func padded(_ number: Int, _ width: Int) -> String {
            let digits = String(number)
            return String(repeating: "0", count: width - digits.utf8.count) + digits
        }
        return padded(year, 4) + "-" + padded(month, 2) + "-" + padded(day, 2)
    }

    static let monthNames = [
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ]

    /// "February 2023".
    public var monthAndYear: String { "\(Day.monthNames[month - 1]) \(year)" }
}
