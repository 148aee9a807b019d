import RootcausesJSON
import RootcausesModel
import Testing

@Suite("CSV (RFC 4180)")
struct CSVTests {
    @Test func fieldsAreQuotedOnlyWhenTheyMustBe() {
        #expect(CSV.field("jobs_created") == "jobs_created")
        #expect(CSV.field("a,b") == "\"a,b\"")
        #expect(CSV.field("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSV.field("two\nlines") == "\"two\nlines\"")
        #expect(CSV.field("cr\rhere") == "\"cr\rhere\"")
        #expect(CSV.field("") == "")
    }

    @Test func numbersStayExactAndNullIsEmpty() {
        #expect(CSV.text(of: .number("179000000.50")) == "179000000.50")
        #expect(CSV.text(of: .number("1e3")) == "1e3")
        #expect(CSV.text(of: true) == "true")
        #expect(CSV.text(of: .null) == "")
        #expect(CSV.text(of: nil) == "")
    }

    @Test func aTableHasAHeaderAndCRLFAfterEveryRow() {
        let rows: [JSON] = [
            ["country": "HN", "value": .number("10599"), "estimate": false],
            ["country": "GT", "value": .number("0.5"), "note": "a, b"],
        ]
        let text = CSV.table(columns: ["country", "value", "estimate", "note"], rows: rows)
        #expect(text == "country,value,estimate,note\r\nHN,10599,false,\r\nGT,0.5,,\"a, b\"\r\n")
    }
}
