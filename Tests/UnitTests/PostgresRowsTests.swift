import Testing
import RootcausesPostgres

@Suite("PostgresRows helpers")
struct PostgresRowsTests {
    @Test func stringArrayLiteral() {
        #expect(["a", "b c"].postgresText == #"{"a","b c"}"#)
        #expect(([] as [String]).postgresText == "{}")
        #expect(["say \"hi\""].postgresText == #"{"say \"hi\""}"#)
        #expect([#"back\slash"#].postgresText == #"{"back\\slash"}"#)
        #expect([#"\""#].postgresText == #"{"\\\""}"#)
        #expect(["a,b", "{x}", "NULL", ""].postgresText == #"{"a,b","{x}","NULL",""}"#)
        #expect(["é😀"].postgresText == #"{"é😀"}"#)
    }

    @Test func optionalStringArrayLiteral() {
        let values: [String?] = ["a", nil, "c\"d", nil]
        #expect(values.postgresText == #"{"a",NULL,"c\"d",NULL}"#)
        let none: [String]? = nil
        #expect(none.postgresText == nil)
    }

    @Test func scalarTexts() {
        #expect(42.postgresText == "42")
        #expect(Int64(-7).postgresText == "-7")
        #expect(true.postgresText == "true")
        #expect((nil as String?).postgresText == nil)
        #expect([Int64(1), 2].postgresText == #"{"1","2"}"#)
    }

    @Test func copyEscape() {
        #expect(postgresCopyEscape("plain") == "plain")
        #expect(postgresCopyEscape("a\tb") == #"a\tb"#)
        #expect(postgresCopyEscape("a\nb") == #"a\nb"#)
        #expect(postgresCopyEscape("a\rb") == #"a\rb"#)
        #expect(postgresCopyEscape("a\r\nb") == #"a\r\nb"#)
        #expect(postgresCopyEscape(#"a\b"#) == #"a\\b"#)
        #expect(postgresCopyEscape(#"\N"#) == #"\\N"#)
        #expect(postgresCopyEscape(nil) == #"\N"#)
        #expect(postgresCopyEscape("") == "")
        #expect(postgresCopyEscape("é\t😀") == "é\\t😀")
    }

    @Test func rowAccessors() {
        let rows = PostgresRows(columns: ["seq", "name", "flag", "missing"], rows: [["5", "x", "t", nil], ["6", "y", "f", nil]], affectedRows: 0)
        #expect(rows.count == 2)
        #expect(rows.first?.int64("seq") == 5)
        #expect(rows[1].string("name") == "y")
        #expect(rows[0].bool("flag") == true)
        #expect(rows[1].bool("flag") == false)
        #expect(rows[0]["missing"] == nil)
        #expect(rows[0].string("missing") == "")
        #expect(rows.map { $0.int("seq") } == [5, 6])
    }
}
