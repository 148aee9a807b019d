import RootcausesModel
import Testing

@Suite("NumberLiteral")
struct NumberLiteralTests {
    @Test(arguments: [
        ("0", false, 0, 0, nil as Int?),
        ("-0", false, 0, 0, nil),
        ("-0.000", false, 0, 0, nil),
        ("1250", false, 0, 3, 3),
        ("1250.0", false, 0, 3, 3),
        ("12.50", false, 1, 3, 1),
        ("-4", true, 0, 1, 0),
        ("0.05", false, 2, 1, -2),
        ("1e3", false, 0, 1, 3),
        ("1.5e1", false, 0, 2, 1),
        ("1.25e1", false, 1, 3, 1),
        ("15E-1", false, 1, 2, 0),
        ("1.000000000000000000000000000000000000000001", false, 42, 43, 0),
        ("123456789012345678901234567890123456789012345", false, 0, 45, 44),
    ])
    func readsTheLiteralExactly(text: String, negative: Bool, places: Int, significant: Int, magnitude: Int?) throws {
        let literal = try #require(NumberLiteral(text))
        #expect(literal.isNegative == negative)
        #expect(literal.decimalPlaces == places)
        #expect(literal.significantDigits == significant)
        #expect(literal.magnitude == magnitude)
    }

    @Test(arguments: ["", "-", "1.", ".5", "1e", "1e+", "01x", "1e1234567", "abc"])
    func rejectsWhatIsNotANumber(text: String) {
        #expect(NumberLiteral(text) == nil)
    }
}
