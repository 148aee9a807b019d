import Foundation
import RootcausesPostgres
import Testing

@Suite("PostgresRows decoding and parameter text")
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

    @Test func copyRowsAreTabSeparatedEscapedAndCounted() {
        var rows = PostgresCopyRows()
        rows.append(Int64(-7))
        rows.append("a\tb\\c\nd\re")
        rows.append(nil as String?)
        rows.append(true)
        rows.endRow()
        rows.append("é😀")
        rows.append(false)
        rows.append(#"\N"#)
        rows.endRow()
        #expect(rows.rowCount == 2)
        #expect(String(decoding: rows.bytes, as: UTF8.self) == "-7\ta\\tb\\\\c\\nd\\re\t\\N\tt\né😀\tf\t\\\\N\n")
    }

    @Test func rowsMadeAheadTakeTheirFirstColumnWhenAppended() {
        // Made ahead without their first column, as intake makes a submission's values before
        // its row id exists; a field's newline stays escaped, so rows still end where they did.
        var ahead = PostgresCopyRows()
        ahead.append(0)
        ahead.append("line one\nline two")
        ahead.endRow()
        ahead.append(1)
        ahead.append("é")
        ahead.endRow()
        var rows = PostgresCopyRows()
        rows.append(Int64(41))
        rows.append("first")
        rows.endRow()
        rows.append(ahead, prefixedBy: 42)
        rows.append(PostgresCopyRows(), prefixedBy: 43)
        rows.append(ahead, prefixedBy: -44)
        #expect(rows.rowCount == 5)
        #expect(
            String(decoding: rows.bytes, as: UTF8.self)
                == "41\tfirst\n42\t0\tline one\\nline two\n42\t1\té\n-44\t0\tline one\\nline two\n-44\t1\té\n"
        )
    }

    static let rows = PostgresRows(
        columns: ["seq", "name", "flag", "missing", "seqs", "value"],
        rows: [["5", "x", "t", nil, "{1,2,3}", "12.50"], ["6", "y", "f", nil, "{}", "-0.001"]],
        affectedRows: 0
    )

    @Test func decodesColumnsByName() throws {
        let row = try #require(Self.rows.first)
        #expect(try row.decode(column: "seq", as: Int64.self) == 5)
        #expect(try row.decode(column: "seq", as: Int.self) == 5)
        #expect(try row.decode(column: "seq", as: Int32.self) == 5)
        #expect(try row.decode(column: "name", as: String.self) == "x")
        #expect(try row.decode(column: "flag", as: Bool.self) == true)
        #expect(try Self.rows[1].decode(column: "flag", as: Bool.self) == false)
        #expect(try row.decode(column: "missing", as: String?.self) == nil)
        #expect(try row.decode(column: "seq", as: Int64?.self) == 5)
        #expect(try row.decode(column: "seqs", as: [Int64].self) == [1, 2, 3])
        #expect(try Self.rows[1].decode(column: "seqs", as: [Int64].self) == [])
        #expect(try row.decode(column: "value", as: Decimal.self) == Decimal(string: "12.5"))
        #expect(try Self.rows[1].decode(column: "value", as: Decimal.self) == Decimal(string: "-0.001"))
        #expect(try Self.rows.map { try $0.decode(column: "seq", as: Int.self) } == [5, 6])
    }

    @Test func decodesRowsAsTuples() throws {
        let rows = PostgresRows(columns: ["id", "seq"], rows: [["10", "1"], ["11", "2"]], affectedRows: 2)
        let (id, seq) = try rows[1].decode(Int64.self, Int64.self)
        #expect(id == 11 && seq == 2)
        let error = #expect(throws: PostgresError.self) { try rows[0].decode(Int64.self, Int64.self, Int64.self) }
        #expect(error?.code == .decodingFailed)
        #expect(error?.message.contains("2 columns") == true)
    }

    struct Named: PostgresRowDecodable, Equatable {
        var seq: Int64
        var name: String
        init(seq: Int64, name: String) {
            self.seq = seq
            self.name = name
        }
        init(postgresRow row: PostgresRow) throws {
            seq = try row.decode(column: "seq")
            name = try row.decode(column: "name")
        }
    }

    @Test func decodesRowsAsStructs() throws {
        #expect(try Self.rows.decode(Named.self) == [Named(seq: 5, name: "x"), Named(seq: 6, name: "y")])
    }

    /// The failure names the column and the text, and is an error, never a crash.
    private func decodingFailure(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch let error as PostgresError {
            return error.code == .decodingFailed ? error.message : "wrong code \(error.code)"
        } catch {
            return "wrong error \(error)"
        }
    }

    @Test func missingColumnIsAThrownError() throws {
        let row = try #require(Self.rows.first)
        let message = decodingFailure { _ = try row.decode(column: "nope", as: Int64.self) }
        #expect(message.contains("no column \"nope\""), "\(message)")
        #expect(message.contains("seq, name"), "\(message)")
    }

    @Test func nullWhereTheTypeHasNoneIsAThrownError() throws {
        let row = try #require(Self.rows.first)
        let message = decodingFailure { _ = try row.decode(column: "missing", as: String.self) }
        #expect(message.contains("\"missing\""), "\(message)")
        #expect(message.contains("NULL"), "\(message)")
    }

    @Test func unparsableTextIsAThrownError() throws {
        let row = try #require(Self.rows.first)
        let notInt = decodingFailure { _ = try row.decode(column: "name", as: Int64.self) }
        #expect(notInt.contains("\"name\"") && notInt.contains("\"x\"") && notInt.contains("Int64"), "\(notInt)")
        let notBool = decodingFailure { _ = try row.decode(column: "seq", as: Bool.self) }
        #expect(notBool.contains("\"5\""), "\(notBool)")
        let notArray = decodingFailure { _ = try row.decode(column: "name", as: [Int64].self) }
        #expect(notArray.contains("malformed array"), "\(notArray)")
        let badElement = decodingFailure {
            _ = try PostgresRow(columns: ["a"], values: ["{1,x}"]).decode(column: "a", as: [Int].self)
        }
        #expect(badElement.contains("element 2") && badElement.contains("\"x\""), "\(badElement)")
        let nullElement = decodingFailure {
            _ = try PostgresRow(columns: ["a"], values: ["{1,NULL}"]).decode(column: "a", as: [Int].self)
        }
        #expect(nullElement.contains("element 2") && nullElement.contains("NULL"), "\(nullElement)")
        #expect(try PostgresRow(columns: ["a"], values: ["{1,NULL}"]).decode(column: "a", as: [Int?].self) == [1, nil])
        let badPosition = decodingFailure { _ = try row.decode(position: 9, as: Int.self) }
        #expect(badPosition.contains("position 9"), "\(badPosition)")
    }

    @Test func decimalsAreReadWhole() throws {
        for text in ["12abc", "", "1.2.3", "NaN", "Infinity", "e5", ".", "1e", "--1"] {
            #expect(throws: PostgresDecodingFailure.self, "\(text)") { try Decimal.decode(postgresText: text) }
        }
        #expect(try Decimal.decode(postgresText: "1e3") == 1000)
        #expect(
            try Decimal.decode(postgresText: "123456789012345678901234567.5")
                == Decimal(string: "123456789012345678901234567.5")
        )
        #expect(try Decimal?.decode(postgresText: nil) == nil)
    }

    @Test func longTextIsCutInMessages() throws {
        let long = String(repeating: "z", count: 500)
        let message = decodingFailure {
            _ = try PostgresRow(columns: ["a"], values: [long]).decode(column: "a", as: Int.self)
        }
        #expect(message.count < 200, "\(message)")
        #expect(message.contains("500 bytes"), "\(message)")
    }
}
