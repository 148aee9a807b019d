import RootcausesModel
import Testing

@Suite("Timestamp (RFC 3339)")
struct TimestampTests {
    @Test(arguments: [
        "2023-02-06T15:04:05Z", "2023-02-06t15:04:05z", "2023-02-06 15:04:05Z", "2023-02-06T15:04:05.5Z",
        "2023-02-06T15:04:05.123456789+00:00", "2023-02-06T10:04:05-05:00", "2016-12-31T23:59:60Z",
        "2024-02-29T00:00:00+14:00",
    ])
    func acceptsRFC3339(_ text: String) throws {
        let timestamp = try #require(Timestamp(rfc3339: text))
        #expect(timestamp.rfc3339 == text)
    }

    @Test(arguments: [
        // Words and forms PostgreSQL would read, but RFC 3339 does not have.
        "now", "epoch", "infinity", "2023-02-06", "2023-02-06T15:04Z", "2023-02-06T15:04:05",
        "2023-02-06T15:04:05 UTC", "2023-02-06T15:04:05+0500", "2023-02-06T15:04:05+05",
        "2023-02-06T15:04:05America/New_York",
        // Numbers out of range, days that do not exist, years outside those supported.
        "2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2023-02-06T24:00:00Z", "2023-02-06T15:60:00Z",
        "2023-02-06T15:04:61Z", "2023-02-06T15:04:05+24:00", "2023-02-06T15:04:05+16:00", "2023-02-06T15:04:05+05:60",
        "0999-01-01T00:00:00Z",
        // A fraction of no digits or more than nine; trailing text; digits that are not ASCII.
        "2023-02-06T15:04:05.Z", "2023-02-06T15:04:05.1234567890Z", "2023-02-06T15:04:05Zjunk",
        "2023-02-06T15:04:05+05:00 ", "٢٠٢٣-02-06T15:04:05Z", "",
    ])
    func rejectsEverythingElse(_ text: String) {
        #expect(Timestamp(rfc3339: text) == nil, "\(text)")
    }

    @Test func keepsTheDayAsWritten() throws {
        #expect(try #require(Timestamp(rfc3339: "2023-02-06T23:30:00-05:00")).day == Day(year: 2023, month: 2, day: 6))
    }
}
