import Foundation
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

    @Test(arguments: [
        ("0", "0"), ("-0.000", "0"), ("0e99", "0"), ("1250", "1250"), ("1250.0", "1250"), ("12.50", "12.5"),
        ("0.05", "0.05"), ("0.00120", "0.0012"), ("1e3", "1000"), ("1.5e1", "15"), ("15E-1", "1.5"),
        ("-4", "4"), ("123.456e1", "1234.56"), ("0.10", "0.1"), ("100.00", "100"), ("1e2", "100"),
        ("1.5e-1", "0.15"), ("0.0", "0"), ("1e29", "100000000000000000000000000000"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("12345678901234567890123456789.99", "12345678901234567890123456789.99"), ("7.000000000000000000000", "7"),
        ("1.000000000000000000000000000000000000000001", "1.000000000000000000000000000000000000000001"),
    ])
    func writesTheCanonicalText(text: String, canonical: String) throws {
        #expect(try #require(NumberLiteral(text)).canonicalText == canonical)
    }

    /// Submissions stored before the canonical text was made from the digits hold `Decimal`'s
    /// text in their content digest: for every value intake accepts (under 10^30, at most two
    /// places) both must agree, or a retry would be taken for a conflict.
    @Test func agreesWithDecimalOnEveryAcceptedShape() throws {
        // Every combination of these parts: whole numbers of 1 to 30 digits, with and without
        // zeros inside and at the end, fractions with zeros before and after, and exponents.
        let longest = "123456789012345678901234567890"
        let integers =
            ["0", "7", "10", "100", "1200", "9990", "1000000000000"]
            + (1...30).map { String(longest.prefix($0)) } + (1...30).map { String(repeating: "9", count: $0) }
        let fractions = ["", "0", "5", "50", "05", "25", "99", "1234", "0001", "1000"]
        let exponents = ["", "e0", "e1", "e-1", "e2", "e-2", "e3", "e-3", "E+2"]
        var checked = 0
        for integer in integers {
            for fraction in fractions {
                for exponent in exponents {
                    let text = (fraction.isEmpty ? integer : integer + "." + fraction) + exponent
                    let literal = try #require(NumberLiteral(text))
                    // The values intake accepts: under 10^30, at most two places (money).
                    guard (literal.magnitude ?? 0) < 30, literal.decimalPlaces <= 2 else { continue }
                    let decimal = try #require(Decimal(string: text))
                    #expect(literal.canonicalText == "\(decimal)", "\(text)")
                    checked += 1
                }
            }
        }
        #expect(checked > 2000)
    }

    @Test func comparesMagnitudesExactly() throws {
        let ordered = [
            "0", "0.001", "0.01", "0.0100001", "0.5", "1", "1.000000000000000000000000000000000000000001", "1.5",
            "9.99", "10", "10.5", "99", "100", "1e12", "1000000000000.01",
        ]
        let literals = try ordered.map { try #require(NumberLiteral($0)) }
        for (i, a) in literals.enumerated() {
            for (j, b) in literals.enumerated() {
                #expect(a.isGreater(than: b) == (i > j), "\(ordered[i]) > \(ordered[j])")
            }
        }
        #expect(try #require(NumberLiteral("1.50e1")).isGreater(than: #require(NumberLiteral("15"))) == false)
    }
}
