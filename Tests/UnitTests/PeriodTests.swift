import Foundation
import RootcausesModel
import Testing

@Suite("Period and Day")
struct PeriodTests {
    func day(_ y: Int, _ m: Int, _ d: Int) -> Day { Day(year: y, month: m, day: d) }

    func range(_ text: String) throws -> (Day, Day) {
        let period = try #require(Period.parse(text), "\(text) should parse")
        return (period.start, period.end)
    }

    @Test func daysAreWrittenAsPaddedISODates() {
        #expect(Day(year: 2023, month: 2, day: 6).description == "2023-02-06")
        #expect(Day(year: 2023, month: 12, day: 31).description == "2023-12-31")
        #expect(Day(year: 5, month: 1, day: 9).description == "0005-01-09")
        #expect(Day(year: 0, month: 1, day: 1).description == "0000-01-01")
        #expect(Day(year: 10_000, month: 3, day: 1).description == "10000-03-01")
    }

    @Test func todayIsTheUTCDate() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        let before = calendar.dateComponents([.year, .month, .day], from: Date())
        let today = Day.today()
        let after = calendar.dateComponents([.year, .month, .day], from: Date())
        let candidates = [before, after].map { Day(year: $0.year!, month: $0.month!, day: $0.day!) }
        #expect(candidates.contains(today))
    }

    @Test func calendarYear() throws {
        let (s, e) = try range("2023")
        #expect(s == day(2023, 1, 1))
        #expect(e == day(2023, 12, 31))
    }

    @Test(arguments: [
        ("2023Q1", 1, 1, 3, 31), ("2023Q2", 4, 1, 6, 30), ("2023Q3", 7, 1, 9, 30), ("2023Q4", 10, 1, 12, 31),
    ])
    func calendarQuarters(_ text: String, _ sm: Int, _ sd: Int, _ em: Int, _ ed: Int) throws {
        let (s, e) = try range(text)
        #expect(s == day(2023, sm, sd))
        #expect(e == day(2023, em, ed))
    }

    @Test func everyMonthOf2023() throws {
        let lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        for month in 1...12 {
            let text = "2023-" + (month < 10 ? "0" : "") + "\(month)"
            let (s, e) = try range(text)
            #expect(s == day(2023, month, 1), "\(text)")
            #expect(e == day(2023, month, lengths[month - 1]), "\(text)")
        }
    }

    @Test func februaryOfLeapYears() throws {
        #expect(try range("2024-02").1 == day(2024, 2, 29))
        #expect(try range("2023-02").1 == day(2023, 2, 28))
        #expect(try range("2000-02").1 == day(2000, 2, 29))
        #expect(try range("2100-02").1 == day(2100, 2, 28))
        #expect(try range("2024Q1").1 == day(2024, 3, 31))
    }

    @Test func fiscalYear() throws {
        let (s, e) = try range("FY2023")
        #expect(s == day(2022, 10, 1))
        #expect(e == day(2023, 9, 30))
    }

    @Test(arguments: [
        ("FY2023Q1", 2022, 10, 12, 31), ("FY2023Q2", 2023, 1, 3, 31), ("FY2023Q3", 2023, 4, 6, 30),
        ("FY2023Q4", 2023, 7, 9, 30),
    ])
    func fiscalQuarters(_ text: String, _ year: Int, _ sm: Int, _ em: Int, _ ed: Int) throws {
        let (s, e) = try range(text)
        #expect(s == day(year, sm, 1))
        #expect(e == day(year, em, ed))
    }

    @Test func lowercaseIsAccepted() throws {
        let lower = try #require(Period.parse("fy2023q1"))
        #expect(lower.start == day(2022, 10, 1))
        #expect(lower.end == day(2022, 12, 31))
        #expect(Period.parse("2023q3") == Period.parse("2023Q3"))
        #expect(Period.parse("fy2023") == Period.parse("FY2023"))
    }

    @Test func sameRangeIsTheSamePeriod() throws {
        #expect(Period.parse("FY2023Q1") == Period.parse("2022Q4"))
        #expect(Period.parse("FY2023Q2") == Period.parse("2023Q1"))
        #expect(Period.parse("FY2023Q1") != Period.parse("2023Q1"))
        #expect(Set([Period.parse("FY2023Q1")!, Period.parse("2022Q4")!]).count == 1)
    }

    @Test(arguments: [
        ("FY2023Q1", "2022Q4"), ("FY2023Q4", "2023Q3"), ("FY2023", "FY2023"), ("2023", "2023"),
        ("2023-01", "2023-01"), ("2023-12", "2023-12"), ("2023Q2", "2023Q2"), ("fy2024q2", "2024Q1"),
    ])
    func labels(_ text: String, _ label: String) throws {
        let period = try #require(Period.parse(text))
        #expect(period.label == label)
        #expect(period.description == label)
        // The label parses back to the same range.
        #expect(Period.parse(label) == period)
    }

    @Test func irregularRangeIsLabelledByItsDays() {
        let period = Period(start: day(2023, 1, 15), end: day(2023, 2, 10))
        #expect(period.label == "2023-01-15..2023-02-10")
    }

    @Test(arguments: [
        "2023Q5", "2023-13", "FY23", "", "20231", "2023Q0", "1800", "2023-00", "FY2023Q5", "FY2023Q0",
        "2023-1", "Q1 2023", " 2023", "2023 ", "FY", "FY20231", "-2023", "+2023", "2023-1a", "3000", "FY1800",
        "２０２３",
    ])
    func invalidPeriods(_ text: String) {
        #expect(Period.parse(text) == nil, "\(text.debugDescription) should not parse")
    }

    @Test func dayParsingAndFormatting() {
        #expect(Day(iso: "2024-02-29") == day(2024, 2, 29))
        #expect(Day(iso: "2023-02-29") == nil)
        #expect(Day(iso: "2023-13-01") == nil)
        #expect(Day(iso: "2023-1-01") == nil)
        #expect(day(2023, 2, 5).description == "2023-02-05")
        #expect(day(2023, 2, 5).monthAndYear == "February 2023")
        #expect(day(2022, 12, 31) < day(2023, 1, 1))
        #expect(day(2024, 2, 3).endOfMonth == day(2024, 2, 29))
    }
}
