import Foundation
import RootcausesJSON
import RootcausesModel
import RootcausesProtocol
import Testing

/// Input found to slip past the checks when the running stack was tried with hostile input:
/// each case once reached the database and failed there, or was read as something else.
@Suite("Hostile input")
struct HostileInputTests {
    let validator = SubmissionValidator(catalogue: Fixtures.catalogue)

    func submission(id: String = "H-1", activity: String? = nil, value: String = "1") -> JSON {
        var members: [(String, JSON)] = [
            ("submission_id", .string(id)), ("reporter", "USAID"), ("period", "FY2022Q1"),
        ]
        if let activity { members.append(("activity", .string(activity))) }
        members.append(("values", [["indicator": "jobs_created", "country": "HN", "value": .number(value)]]))
        return .object(members)
    }

    func problemCodes(_ check: SubmissionCheck) -> [String] {
        switch check {
        case .valid: return []
        case .invalid(let problems), .malformed(let problems): return problems.map(\.code)
        }
    }

    @Test func integersAreReadFromTheLiteralNeverThroughDouble() throws {
        let reader = FieldReader(
            Fixtures.json(
                #"{"a":1.0000000000000001,"b":5.0000000000000001,"c":5.0,"d":1e3,"e":50e-1,"f":-0,"g":9223372036854775807,"h":9223372036854775808,"i":1e19,"j":0e999999}"#
            )
        )
        #expect(reader.integer("a") == nil)
        #expect(reader.integer("b") == nil)
        #expect(reader.integer("c") == 5)
        #expect(reader.integer("d") == 1000)
        #expect(reader.integer("e") == 5)
        #expect(reader.integer("f") == 0)
        #expect(reader.integer("g") == Int64.max)
        #expect(reader.integer("h") == nil)
        #expect(reader.integer("i") == nil)
        #expect(reader.integer("j") == 0)
        #expect(reader.problems.map(\.path) == ["a", "b", "h", "i"])
        #expect(reader.problems.allSatisfy { $0.code == "invalid" })
    }

    @Test func theReaderListsEveryProblemWithItsPath() throws {
        let reader = FieldReader(
            Fixtures.json(
                #"{"s":1,"b":"yes","n":"2","list":["GT",3],"o":{"x":true},"req":null}"#
            )
        )
        _ = reader.string("s")
        _ = reader.bool("b")
        _ = reader.integer("n")
        _ = reader.stringList("list")
        let nested = reader.object("o")
        _ = nested?.string("x")
        _ = reader.string("req", required: true)
        _ = reader.string("absent", required: true)
        _ = reader.string("optional")
        #expect(reader.problems.map(\.path) == ["s", "b", "n", "list[1]", "o.x", "req", "absent"])
        #expect(
            reader.problems.map(\.code) == [
                "wrong_type", "wrong_type", "wrong_type", "wrong_type", "wrong_type", "wrong_type", "missing",
            ]
        )
    }

    @Test func elementReadersNameTheirElementInEveryPath() throws {
        let reader = FieldReader(
            Fixtures.json(
                #"{"values":[{"a":"x","d":{"sex":"female"}},{"a":1,"d":{"sex":2}},7,{"d":[],"o":{"x":null}}]}"#
            ),
            path: "submission"
        )
        let elements = try #require(reader.objects("values", elementName: "value"))
        #expect(elements.map(\.path) == ["submission.values[0]", "submission.values[1]", "submission.values[3]"])
        for element in elements {
            _ = element.string("a", required: true)
            _ = element.stringMembers("d")
            _ = element.object("o")?.string("x", required: true)
        }
        #expect(
            reader.problems.map(\.path) == [
                "submission.values[2]", "submission.values[1].a", "submission.values[1].d.sex",
                "submission.values[3].a", "submission.values[3].d", "submission.values[3].o.x",
            ]
        )
        #expect(
            reader.problems.map(\.code) == [
                "wrong_type", "wrong_type", "wrong_type", "missing", "wrong_type", "wrong_type",
            ]
        )
    }

    @Test func zeroWithAHugeExponentIsZero() throws {
        guard case .valid(let valid) = validator.check(submission(value: "0e999999"), today: Fixtures.today) else {
            Issue.record("0e999999 was rejected")
            return
        }
        #expect(valid.values.first?.value == "0")
        #expect(problemCodes(validator.check(submission(value: "1e999999"), today: Fixtures.today)) == ["out_of_range"])
    }

    @Test func canonicallyEquivalentKeysAreDifferentKeys() throws {
        // "é" precomposed and "e" + combining acute: equal to Swift's ==, different to JSON.
        let text = "{\"\u{E9}\":1,\"e\u{301}\":2}"
        let object = try JSONParser.parse(text)
        #expect(object["\u{E9}"] == 1)
        #expect(object["e\u{301}"] == 2)
        // A true duplicate is still rejected.
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\"\u{E9}\":1,\"\u{E9}\":2}") }
    }

    @Test func submissionIDLengthCountsUTF8Bytes() throws {
        // One letter and 20,000 combining marks is one Character but 40,001 bytes: it once
        // passed validation and failed in PostgreSQL's index ("index row requires 36616 bytes").
        let combining = "a" + String(repeating: "\u{301}", count: 20_000)
        #expect(combining.count == 1)
        #expect(
            problemCodes(validator.check(submission(id: combining), today: Fixtures.today)) == ["invalid_submission_id"]
        )
        #expect(
            problemCodes(validator.check(submission(id: String(repeating: "é", count: 100)), today: Fixtures.today))
                == []
        )
        #expect(
            problemCodes(validator.check(submission(id: String(repeating: "é", count: 101)), today: Fixtures.today))
                == ["invalid_submission_id"]
        )
    }

    @Test func activityLengthCountsUnicodeScalars() throws {
        let hidden = "a" + String(repeating: "\u{301}", count: 200_000)
        #expect(
            problemCodes(validator.check(submission(activity: hidden), today: Fixtures.today)) == ["invalid_activity"]
        )
        let atLimit = String(repeating: "\u{1F600}", count: SubmissionValidator.maximumActivityScalars)
        #expect(problemCodes(validator.check(submission(activity: atLimit), today: Fixtures.today)) == [])
        #expect(
            problemCodes(validator.check(submission(activity: atLimit + "x"), today: Fixtures.today)) == [
                "invalid_activity"
            ]
        )
    }

    @Test func daysOutsideTheSupportedYearsAreNotDays() throws {
        for text in ["0000-01-01", "+999-01-01", "-999-01-01", "1899-12-31", "10000-01-01", " 202-01-01", "２０２３-01-01"]
        {
            #expect(Day(iso: text) == nil, "\(text)")
        }
        #expect(Day(iso: "1900-01-01") == Day(year: 1900, month: 1, day: 1))
        #expect(Day(iso: "9999-12-31") == Day(year: 9999, month: 12, day: 31))
    }
}
