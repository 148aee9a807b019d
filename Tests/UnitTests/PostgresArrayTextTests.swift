import RootcausesPostgres
import Testing

@Suite("PostgreSQL array text form")
struct PostgresArrayTextTests {
    @Test func plainElements() throws {
        #expect(try PostgresArrayText.elements(of: "{1,2,3}") == ["1", "2", "3"])
        #expect(try PostgresArrayText.elements(of: "{abc}") == ["abc"])
    }

    @Test func empty() throws {
        #expect(try PostgresArrayText.elements(of: "{}") == [])
        #expect(try PostgresArrayText.elements(of: " { } ") == [])
    }

    @Test func quotedElementsKeepDelimitersBracesAndSpaces() throws {
        #expect(try PostgresArrayText.elements(of: #"{"a b","c,d","{x}",""}"#) == ["a b", "c,d", "{x}", ""])
    }

    @Test func escapesInsideQuotes() throws {
        #expect(try PostgresArrayText.elements(of: #"{"a b","c\"d",NULL}"#) == ["a b", "c\"d", nil])
        #expect(try PostgresArrayText.elements(of: #"{"back\\slash"}"#) == [#"back\slash"#])
        #expect(try PostgresArrayText.elements(of: #"{a\,b}"#) == ["a,b"])
    }

    @Test func nullOnlyWhenUnquoted() throws {
        #expect(try PostgresArrayText.elements(of: #"{NULL,null,"NULL",\NULL}"#) == [nil, nil, "NULL", "NULL"])
    }

    @Test func whitespaceAroundUnquotedElementsIsIgnored() throws {
        #expect(try PostgresArrayText.elements(of: "{ 1 , 2 }") == ["1", "2"])
        #expect(try PostgresArrayText.elements(of: #"{a\ }"#) == ["a "])
    }

    @Test func unicode() throws {
        #expect(try PostgresArrayText.elements(of: #"{é,"😀 x"}"#) == ["é", "😀 x"])
    }

    @Test func dimensionDecorationIsSkipped() throws {
        #expect(try PostgresArrayText.elements(of: "[0:2]={7,8,9}") == ["7", "8", "9"])
    }

    @Test func nestedArraysComeBackAsText() throws {
        #expect(try PostgresArrayText.elements(of: #"{{1,2},{3,"}"}}"#) == ["{1,2}", #"{3,"}"}"#])
        #expect(try [[Int]].decode(postgresText: "{{1,2},{3,4}}") == [[1, 2], [3, 4]])
    }

    @Test func roundTripsWhatWeSend() throws {
        let values: [String?] = ["a", "b c", #"q"uote"#, #"back\slash"#, "{}", ",", "NULL", "", nil, "é😀"]
        #expect(try PostgresArrayText.elements(of: values.postgresText!) == values)
        #expect(try [String?].decode(postgresText: values.postgresText) == values)
    }

    @Test(arguments: ["", "1,2", "{1,2", #"{"a}"#, "{1,,2}", "{1}x", "{a\"b}", "{,}", "[1:2]{1,2}", "{1 2}x"])
    func malformedTextIsAnError(_ text: String) {
        #expect(throws: PostgresDecodingFailure.self) { try PostgresArrayText.elements(of: text) }
    }
}
