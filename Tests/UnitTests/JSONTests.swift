import RootcausesJSON
import Testing

@Suite("JSON parser and serializer")
struct JSONTests {
    // MARK: Helpers

    func parse(_ text: String) throws -> JSON { try JSONParser.parse(text) }
    func parse(bytes: [UInt8]) throws -> JSON { try JSONParser.parse(bytes) }

    func rejects(_ text: String) -> Bool {
        do {
            _ = try JSONParser.parse(text)
            return false
        } catch { return true }
    }

    func rejects(bytes: [UInt8]) -> Bool {
        do {
            _ = try JSONParser.parse(bytes)
            return false
        } catch { return true }
    }

    func reason(_ text: String) -> String? {
        do throws(JSONParseError) {
            _ = try JSONParser.parse(text)
            return nil
        } catch { return error.reason }
    }

    func reason(bytes: [UInt8]) -> String? {
        do throws(JSONParseError) {
            _ = try JSONParser.parse(bytes)
            return nil
        } catch { return error.reason }
    }

    // MARK: Round trip

    @Test func roundTripOfACompactDocument() throws {
        let text =
            #"{"id":7,"op":"submit","ok":true,"none":null,"list":[1,-2.5,"x",false,{},[]],"nested":{"a":{"b":[0]}}}"#
        let value = try parse(text)
        #expect(value.serialized == text)
        #expect(try parse(value.serialized) == value)
    }

    @Test func parsedStructure() throws {
        let value = try parse(#" { "a" : [ 1 , true , null ] , "b" : "x" } "#)
        #expect(value == .object([("a", .array([.number("1"), .bool(true), .null])), ("b", .string("x"))]))
        #expect(value["a"]?[1] == .bool(true))
        #expect(value["b"]?.stringValue == "x")
        #expect(value["missing"] == nil)
    }

    @Test func whitespaceAroundTheDocumentIsAllowed() throws {
        #expect(try parse(" \t\r\n 42 \n") == .number("42"))
    }

    // MARK: Numbers stay literals

    @Test(arguments: ["12.50", "1e400", "-0", "0.000", "1E+3", "-12.5e-7", "123456789012345678901234567890"])
    func numbersKeepTheirLiteral(_ literal: String) throws {
        let value = try parse(literal)
        #expect(value == .number(literal))
        #expect(value.numberLiteral == literal)
        #expect(value.serialized == literal)
        let wrapped = try parse("[\(literal)]")
        #expect(wrapped.serialized == "[\(literal)]")
    }

    @Test func twelveFiftyStaysTwelveFifty() throws {
        let value = try parse(#"{"value":12.50}"#)
        #expect(value["value"] == .number("12.50"))
        #expect(value.serialized == #"{"value":12.50}"#)
    }

    @Test(arguments: ["01", "-", "1.", ".5", "1e", "1e+", "+1", "--1", "0x10", "NaN", "Infinity", "1.2.3"])
    func invalidNumbersAreRejected(_ text: String) {
        #expect(rejects(text))
    }

    // MARK: Strict rejections

    @Test func duplicateKeysAreRejected() {
        #expect(reason(#"{"a":1,"a":2}"#) == #"duplicate key "a""#)
        #expect(rejects(#"{"x":{"a":1,"b":2,"a":3}}"#))
        // Same key in different objects is fine.
        #expect(!rejects(#"[{"a":1},{"a":2}]"#))
        // Names are compared by code points: canonically equivalent names are two names, also
        // when their UTF-8 is as long (two combining marks in either order, 5 bytes each).
        #expect(!rejects("{\"\u{E9}\":1,\"e\u{301}\":2}"))
        #expect(!rejects("{\"a\u{301}\u{323}\":1,\"a\u{323}\u{301}\":2}"))
        // Large objects (a set past 16 members) find duplicates before and after the switch.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }
        #expect(!rejects("{" + many.joined(separator: ",") + "}"))
        #expect(rejects("{" + (many + ["\"k3\":0"]).joined(separator: ",") + "}"))
        #expect(rejects("{" + (many + ["\"k39\":0"]).joined(separator: ",") + "}"))
        #expect(rejects("{" + (many.prefix(10) + ["\"k9\":0"]).joined(separator: ",") + "}"))
    }

    @Test func duplicateKeyErrorPointsAtTheSecondKey() {
        do throws(JSONParseError) {
            _ = try JSONParser.parse(#"{"a":1,"a":2}"#)
            Issue.record("accepted a duplicate key")
        } catch {
            #expect(error.offset == 7)
        }
    }

    @Test func invalidUTF8IsRejected() {
        // A lone continuation byte inside a string.
        #expect(reason(bytes: Array(#"[""#.utf8) + [0x80] + Array(#""]"#.utf8)) == "invalid UTF-8 in string")
        // 0xFF never appears in UTF-8.
        #expect(rejects(bytes: [0x22, 0xFF, 0x22]))
        // Truncated two-byte sequence.
        #expect(rejects(bytes: [0x22, 0xC3, 0x22]))
        // An overlong encoding of '/'.
        #expect(rejects(bytes: [0x22, 0xC0, 0xAF, 0x22]))
        // A UTF-8 encoded surrogate (U+D800).
        #expect(rejects(bytes: [0x22, 0xED, 0xA0, 0x80, 0x22]))
        // Invalid UTF-8 after an escape (the slow path).
        #expect(rejects(bytes: [0x22, 0x5C, 0x6E, 0xFF, 0x22]))
        // Invalid byte outside any string.
        #expect(rejects(bytes: [0xFF]))
    }

    @Test func validMultibyteUTF8IsAccepted() throws {
        #expect(try parse(bytes: Array(#""Centroamérica — ✓ 😀""#.utf8)) == .string("Centroamérica — ✓ 😀"))
    }

    @Test(arguments: [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F] as [UInt8])
    func rawControlCharactersInStringsAreRejected(_ byte: UInt8) {
        #expect(reason(bytes: [0x22, 0x61, byte, 0x62, 0x22]) == "control character in string")
        // Also after an escape sequence (slow path).
        #expect(reason(bytes: [0x22, 0x5C, 0x6E, byte, 0x22]) == "control character in string")
    }

    @Test(arguments: [#""\x41""#, #""\a""#, #""\U0041""#, #""\u12""#, #""\u12G4""#, #""\"#, #""\'""#, #""\0""#])
    func badEscapesAreRejected(_ text: String) {
        #expect(rejects(text))
    }

    @Test func unpairedSurrogatesAreRejected() {
        #expect(reason(#""\uD83D""#) == "unpaired surrogate")
        #expect(reason(#""\uD83Dx""#) == "unpaired surrogate")
        #expect(reason(#""\uD83D\u0041""#) == "unpaired surrogate")
        #expect(reason(#""\uDE00""#) == "unpaired surrogate")
        #expect(reason(#""\uDE00\uD83D""#) == "unpaired surrogate")
        #expect(reason(#""\uD83D\uD83D""#) == "unpaired surrogate")
    }

    @Test func trailingGarbageIsRejected() {
        #expect(reason("{} x") == "unexpected data after the JSON value")
        #expect(rejects("1 2"))
        #expect(rejects(#"{"a":1}}"#))
        #expect(rejects("[1],"))
        #expect(rejects("truex"))
        #expect(rejects("nulll"))
    }

    @Test func otherSyntaxErrorsAreRejected() {
        for text in [
            "", " ", "[", "{", "[1,]", #"{"a":1,}"#, #"{"a"}"#, #"{a:1}"#, "[1 2]", "tru", "nul", #""abc"#,
            "'a'", "[,1]", #"{"a" 1}"#, "undefined",
        ] {
            #expect(rejects(text), "accepted \(text.debugDescription)")
        }
    }

    @Test func nestingUpTo64IsAcceptedAndDeeperIsRejected() throws {
        let arrays64 = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(!rejects(arrays64))
        let arrays65 = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(reason(arrays65) == "nesting too deep")

        let objects64 = String(repeating: #"{"a":"#, count: 63) + "{}" + String(repeating: "}", count: 63)
        #expect(!rejects(objects64))
        let objects65 = String(repeating: #"{"a":"#, count: 64) + "{}" + String(repeating: "}", count: 64)
        #expect(reason(objects65) == "nesting too deep")

        let mixed65 = String(repeating: #"[{"a":"#, count: 33) + "0" + String(repeating: "}]", count: 33)
        #expect(reason(mixed65) == "nesting too deep")
        // Very deep input fails cleanly (no stack overflow).
        #expect(rejects(String(repeating: "[", count: 100_000)))
    }

    // MARK: Escapes decoded

    @Test func simpleEscapesAreDecoded() throws {
        #expect(try parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{08}\u{0C}\n\r\t"))
    }

    @Test func unicodeEscapesAreDecoded() throws {
        #expect(try parse(#""\u0041\u00e9\u20AC""#) == .string("Aé€"))
        #expect(try parse(#""\u0000""#) == .string("\u{0}"))
        #expect(try parse(#""x\uD83D\uDE00y""#) == .string("x😀y"))
        #expect(try parse(#""\ud834\udd1e""#) == .string("𝄞"))
        #expect(try parse(#""\uDBFF\uDFFF""#) == .string("\u{10FFFF}"))
    }

    @Test func escapedKeysAreComparedDecodedForDuplicates() {
        #expect(rejects(#"{"a":1,"\u0061":2}"#))
    }

    // MARK: Serializer

    @Test func serializerEscapesQuotesBackslashesAndControlCharacters() {
        let value = JSON.string("q\"b\\n\nr\rt\tnul\u{0}bell\u{07}us\u{1F}del\u{7F}é/")
        #expect(value.serialized == #""q\"b\\n\nr\rt\tnul\u0000bell\u0007us\u001fdel"# + "\u{7F}é/\"")
    }

    @Test func serializedStringsParseBackToTheSameString() throws {
        var all = ""
        for scalar in 0..<0x80 { all.unicodeScalars.append(Unicode.Scalar(UInt8(scalar))) }
        all += "Ωé😀\u{2028}"
        let value = JSON.string(all)
        #expect(try parse(value.serialized) == value)
        #expect(!value.serialized.utf8.contains { $0 < 0x20 })
    }

    @Test func serializerEscapesKeysToo() {
        let value = JSON.object([("a\"\n", .null)])
        #expect(value.serialized == #"{"a\"\n":null}"#)
    }

    @Test func memberOrderIsPreserved() throws {
        let text = #"{"z":1,"a":2,"m":{"y":true,"b":false},"c":3}"#
        let value = try parse(text)
        #expect(value.objectValue?.map(\.0) == ["z", "a", "m", "c"])
        #expect(value["m"]?.objectValue?.map(\.0) == ["y", "b"])
        #expect(value.serialized == text)
        // Order matters for equality.
        #expect(try parse(#"{"a":1,"b":2}"#) != (try parse(#"{"b":2,"a":1}"#)))
    }

    @Test func literalsBuildTheExpectedText() {
        let value: JSON = ["b": 1, "a": [true, nil, "s"]]
        #expect(value.serialized == #"{"b":1,"a":[true,null,"s"]}"#)
        #expect(JSON.int(Int64(-42)).serialized == "-42")
    }

    @Test func settingReplacesInPlaceOrAppends() {
        let value: JSON = ["a": 1, "b": 2]
        #expect(value.setting("a", to: 9).serialized == #"{"a":9,"b":2}"#)
        #expect(value.setting("c", to: 3).serialized == #"{"a":1,"b":2,"c":3}"#)
    }

    /// Member names are looked up, replaced and compared byte for byte, as JSON compares them:
    /// Swift's `==` holds these two names (the same marks in another order, as many bytes) equal.
    @Test func namesAreFoundByTheirBytes() {
        let (written, reordered) = ("a\u{301}\u{323}", "a\u{323}\u{301}")
        #expect(written == reordered)
        let value = JSON.object([(written, .int(1))])
        #expect(value[written] == .int(1))
        #expect(value[reordered] == nil)
        #expect(value.setting(reordered, to: 2) == .object([(written, .int(1)), (reordered, .int(2))]))
        #expect(value != JSON.object([(reordered, .int(1))]))
    }

    @Test func prettyPrintedKeepsOrderAndIndents() {
        let value: JSON = ["b": [1, 2], "a": [:], "c": []]
        #expect(value.prettyPrinted == "{\n  \"b\": [\n    1,\n    2\n  ],\n  \"a\": {},\n  \"c\": []\n}")
    }

    @Test func int64ValueAcceptsIntegralFormsOnly() {
        #expect(JSON.number("1250").int64Value == 1250)
        #expect(JSON.number("5.0").int64Value == 5)
        #expect(JSON.number("1e3").int64Value == 1000)
        #expect(JSON.number("5.5").int64Value == nil)
        #expect(JSON.number("1e400").int64Value == nil)
        #expect(JSON.string("5").int64Value == nil)
    }
}
