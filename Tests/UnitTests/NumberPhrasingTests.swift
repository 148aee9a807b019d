import Foundation
import RootcausesModel
import Testing

@Suite("NumberPhrasing")
struct NumberPhrasingTests {
    func d(_ text: String) -> Decimal { Decimal(string: text)! }

    func count(
        _ exact: String,
        _ precision: String,
        estimate: Bool = false,
        words: QualifierWords = QualifierWords(),
        bare: Bool = false
    ) -> PhrasedNumber {
        NumberPhrasing.phrase(
            exact: d(exact),
            precision: d(precision),
            isMoney: false,
            estimate: estimate,
            words: words,
            bare: bare
        )
    }

    func money(_ exact: String, _ precision: String, estimate: Bool = false) -> PhrasedNumber {
        NumberPhrasing.phrase(exact: d(exact), precision: d(precision), isMoney: true, estimate: estimate)
    }

    // MARK: The examples of CONTRACTS.md

    @Test func contractExamples() {
        #expect(count("7950", "1000").text == "nearly 8,000")
        #expect(count("90412", "1000").text == "more than 90,000")
        #expect(money("179000000", "1000000").text == "$179 million")
        #expect(money("4236000000", "100000000").text == "more than $4.2 billion")
        #expect(
            count("47", "1", estimate: true, words: QualifierWords(estimate: "approximately")).text
                == "approximately 47"
        )
        #expect(count("74", "1").text == "74")
    }

    @Test func phrasedParts() {
        let p = count("7950", "1000")
        #expect(p.exact == d("7950"))
        #expect(p.rounded == d("8000"))
        #expect(p.qualifier == "nearly")
        #expect(p.figure == "8,000")
        let exact = count("74", "1")
        #expect(exact.qualifier == nil)
        #expect(exact.rounded == d("74"))
    }

    // MARK: Qualifier edges

    /// An unresolved overlap is phrased on its upper bound, rounded up so the words stay true.
    @Test func upperBoundsRoundUpAndAreAlwaysQualified() {
        func bound(_ exact: String, _ precision: String, estimate: Bool = false, bare: Bool = false) -> String {
            NumberPhrasing.phrase(
                exact: d(exact),
                precision: d(precision),
                isMoney: false,
                estimate: estimate,
                bare: bare,
                upperBound: true
            ).text
        }
        #expect(bound("91662", "1000") == "as many as 92,000")
        #expect(bound("91000", "1000") == "as many as 91,000")
        #expect(bound("91001", "1000") == "as many as 92,000")
        #expect(bound("91662", "1000", estimate: true) == "up to an estimated 92,000")
        #expect(bound("91662", "1000", bare: true) == "as many as 92,000")
        let money = NumberPhrasing.phrase(
            exact: d("189389000"),
            precision: d("1000000"),
            isMoney: true,
            estimate: true,
            upperBound: true
        )
        #expect(money.text == "up to an estimated $190 million")
        var words = QualifierWords()
        words.upper = "at most"
        #expect(
            NumberPhrasing.phrase(
                exact: 7,
                precision: 1,
                isMoney: false,
                estimate: false,
                words: words,
                upperBound: true
            )
            .text == "at most 7"
        )
    }

    @Test func exactEqualsRoundedHasNoQualifier() {
        let p = count("8000", "1000")
        #expect(p.qualifier == nil)
        #expect(p.text == "8,000")
    }

    @Test func oneAboveIsMoreThan() {
        #expect(count("8001", "1000").text == "more than 8,000")
    }

    @Test func oneBelowIsNearly() {
        #expect(count("7999", "1000").text == "nearly 8,000")
    }

    @Test func halfRoundsUp() {
        #expect(count("7500", "1000").text == "nearly 8,000")
        #expect(count("7500", "1000").rounded == d("8000"))
        #expect(count("7499", "1000").text == "more than 7,000")
        #expect(count("7499", "1000").rounded == d("7000"))
        #expect(count("150", "100").text == "nearly 200")
        #expect(count("250", "100").text == "nearly 300")  // half-up, not banker's rounding
    }

    @Test func zeroIsZero() {
        let p = count("0", "1000")
        #expect(p.text == "0")
        #expect(p.qualifier == nil)
        #expect(money("0", "1000000").text == "$0")
    }

    @Test func belowPrecisionLowersIt() {
        #expect(count("300", "1000").text == "300")
        #expect(count("4", "10").text == "4")
        #expect(count("347", "1000").text == "more than 300")
        #expect(count("999", "1000").text == "nearly 1,000")
        #expect(count("1", "1000000").text == "1")
        #expect(money("950000", "100000000").text == "nearly $1 million")
    }

    @Test func estimateWinsOverAboveAndBelow() {
        let words = QualifierWords(above: "over", below: "almost", estimate: "approximately")
        #expect(count("7950", "1000", estimate: true, words: words).text == "approximately 8,000")
        #expect(count("8050", "1000", estimate: true, words: words).text == "approximately 8,000")
        #expect(count("8000", "1000", estimate: true, words: words).text == "approximately 8,000")
        #expect(count("8000", "1000", estimate: true).text == "an estimated 8,000")
    }

    @Test func customAboveAndBelowWords() {
        let words = QualifierWords(above: "over", below: "almost")
        #expect(count("90412", "1000", words: words).text == "over 90,000")
        #expect(count("7950", "1000", words: words).text == "almost 8,000")
        #expect(count("8000", "1000", words: words).text == "8,000")
    }

    @Test func bareHasNoQualifier() {
        #expect(count("7950", "1000", bare: true).text == "8,000")
        #expect(count("90412", "1000", bare: true).text == "90,000")
        #expect(count("47", "1", estimate: true, bare: true).text == "47")
        #expect(count("7950", "1000", bare: true).qualifier == nil)
    }

    // MARK: Money

    @Test func moneyFigures() {
        #expect(money("179000000", "1000000").text == "$179 million")
        #expect(money("4236000000", "100000000").text == "more than $4.2 billion")
        #expect(money("4000000000", "100000000").text == "$4 billion")
        #expect(money("419742000", "1000000").text == "nearly $420 million")
        #expect(money("12500", "1").text == "$12,500")
        #expect(money("1500000", "100000").text == "$1.5 million")
        #expect(money("999999999", "1000000").text == "nearly $1 billion")
        #expect(money("1234000000", "1000000").text == "$1.234 billion")
        #expect(money("950000", "1000").text == "$950,000")
    }

    /// CONTRACTS.md: R = E rounded half-up to a multiple of P (P >= 1 for every catalogue and option),
    /// so $12,500.50 at P=1 reads as whole dollars.
    @Test func moneyWithCentsAtPrecisionOne() {
        let p = money("12500.5", "1")
        #expect(p.rounded == d("12501"))
        #expect(p.text == "nearly $12,501")
        #expect(money("12500.49", "1").text == "more than $12,500")
    }

    /// CONTRACTS.md rule 1: when 0 < E < P, P becomes the largest power of ten <= E. For E = $0.40 that is
    /// 0.1, so R = 0.40 = E, no qualifier, and the figure shows its cents ("cents only when not zero").
    @Test func moneyBelowOneDollarKeepsItsCents() {
        #expect(money("0.4", "1").text == "$0.40")
        #expect(money("0.05", "1000").text == "$0.05")
    }

    // MARK: Counts

    @Test func countFigures() {
        #expect(count("17213480", "1000000").text == "more than 17 million")
        #expect(count("1500000", "100000").text == "1.5 million")
        #expect(count("1234567", "1").text == "1,234,567")
        #expect(count("1234567", "1000").text == "nearly 1,235,000")
        #expect(count("1000000", "1000000").text == "1 million")
        #expect(count("2000000", "10000").text == "2,000,000")
        #expect(count("123", "1").text == "123")
        #expect(count("1000", "1").text == "1,000")
    }
}
