import Foundation

/// The words a phrased number may be qualified with.
public struct QualifierWords: Sendable, Equatable {
    /// When the exact total is above the rounded figure ("more than", "over").
    public var above: String = "more than"
    /// When the exact total is just below the rounded figure ("nearly").
    public var below: String = "nearly"
    /// When the total rests on estimated values ("an estimated", "approximately").
    public var estimate: String = "an estimated"
    /// When the total is an upper bound: reporters' figures may overlap and nobody has
    /// deduplicated them ("as many as").
    public var upper: String = "as many as"
    /// An upper bound resting on estimated values ("up to an estimated").
    public var upperEstimate: String = "up to an estimated"

    public init(
        above: String = "more than",
        below: String = "nearly",
        estimate: String = "an estimated",
        upper: String = "as many as",
        upperEstimate: String = "up to an estimated"
    ) {
        self.above = above
        self.below = below
        self.estimate = estimate
        self.upper = upper
        self.upperEstimate = upperEstimate
    }
}

/// A total as a fact sheet states it.
public struct PhrasedNumber: Sendable, Equatable {
    public let exact: Decimal
    public let rounded: Decimal
    /// The qualifier word(s), or `nil` when the figure is exact.
    public let qualifier: String?
    /// The figure alone: `8,000`, `$179 million`, `17 million`.
    public let figure: String
    /// Qualifier and figure: `nearly 8,000`.
    public var text: String { qualifier.map { "\($0) \(figure)" } ?? figure }
}

/// The rule that turns an exact total into honest words (see docs/CONTRACTS.md):
///
/// 1. If 0 < E < P, lower P to the largest power of ten not above E (not below a cent for
///    money, nor below 1 for counts).
/// 2. R = E rounded half-up to a multiple of P.
/// 3. Qualifier: estimate word if any value behind E is an estimate; none if E == R;
///    the "above" word if E > R; the "below" word if E < R.
/// 4. Figure: money in billions or millions above those marks, otherwise with thousands
///    separators; counts in millions when R >= 1e6 and P >= 100,000.
public enum NumberPhrasing {
    public static func phrase(
        exact: Decimal,
        precision requested: Decimal,
        isMoney: Bool,
        estimate: Bool,
        words: QualifierWords = QualifierWords(),
        bare: Bool = false,
        upperBound: Bool = false
    ) -> PhrasedNumber {
        // Money can be stated to the cent; counts are whole.
        let finest: Decimal = isMoney ? Decimal(string: "0.01")! : 1
        var precision = max(requested, finest)
        if exact > 0, exact < precision {
            precision = 1
            while precision * 10 <= exact { precision *= 10 }
            while precision > exact, precision > finest { precision /= 10 }
        }
        // Precision is a power of ten: rounding to it is rounding at its decimal place, exactly
        // and without Decimal's long division (most of a fact sheet's time went there).
        var toRound = exact
        var rounded = Decimal()
        // An upper bound rounds up: "as many as R" stays true.
        NSDecimalRound(&rounded, &toRound, -exponent(of: precision), upperBound ? .up : .plain)
        var qualifier: String?
        if upperBound {
            // Never bare: a sum that may count things twice is not stated as a fact.
            qualifier = estimate ? words.upperEstimate : words.upper
        } else if !bare {
            if estimate {
                qualifier = words.estimate
            } else if exact > rounded {
                qualifier = words.above
            } else if exact < rounded {
                qualifier = words.below
            }
        }
        let figure = isMoney ? moneyFigure(rounded, precision: precision) : countFigure(rounded, precision: precision)
        return PhrasedNumber(exact: exact, rounded: rounded, qualifier: qualifier, figure: figure)
    }

    static func roundHalfUp(_ value: Decimal) -> Decimal {
        var input = value
        var result = Decimal()
        NSDecimalRound(&result, &input, 0, .plain)
        return result
    }

    /// log10 of a power of ten (`0.01` is -2, `1000` is 3).
    static func exponent(of powerOfTen: Decimal) -> Int {
        // significand × 10^exponent, where the significand is a power of ten itself (1000 may be
        // stored as 1000 × 10^0 or 1 × 10^3): count its zeros without dividing.
        var digits = powerOfTen.significand.description
        var e = powerOfTen.exponent
        while digits.count > 1, digits.hasSuffix("0") {
            digits.removeLast()
            e += 1
        }
        return e
    }

    static func moneyFigure(_ rounded: Decimal, precision: Decimal) -> String {
        let p = exponent(of: precision)
        if rounded >= 1_000_000_000 {
            return "$" + scaled(rounded, by: 9, decimals: max(0, 9 - p)) + " billion"
        }
        if rounded >= 1_000_000 {
            return "$" + scaled(rounded, by: 6, decimals: max(0, 6 - p)) + " million"
        }
        // Below a million, cents show only when there are any, always as two digits.
        let text = grouped(rounded)
        if let dot = text.firstIndex(of: "."), text.distance(from: dot, to: text.endIndex) == 2 {
            return "$" + text + "0"
        }
        return "$" + text
    }

    static func countFigure(_ rounded: Decimal, precision: Decimal) -> String {
        if rounded >= 1_000_000, precision >= 100_000 {
            return scaled(rounded, by: 6, decimals: max(0, 6 - exponent(of: precision))) + " million"
        }
        return grouped(rounded)
    }

    /// `value / 10^power` with at most `decimals` decimals, trailing zeros trimmed.
    static func scaled(_ value: Decimal, by power: Int, decimals: Int) -> String {
        // Dividing by 10^power moves the exponent: exact, and no long division.
        var scaled = Decimal(sign: value.sign, exponent: value.exponent - power, significand: value.significand)
        var result = Decimal()
        NSDecimalRound(&result, &scaled, decimals, .plain)
        return grouped(result)
    }

    /// Thousands separators on the integer part; fractional digits kept as they are.
    static func grouped(_ value: Decimal) -> String {
        let text = "\(value)"
        let parts = text.split(separator: ".", maxSplits: 1)
        let integer = String(parts[0])
        var out = ""
        for (i, ch) in integer.reversed().enumerated() {
            if i > 0, i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        var result = String(out.reversed())
        if parts.count == 2 { result += "." + parts[1] }
        return result
    }
}

extension NumberPhrasing {
    /// A share of a target achieved, in whole percent rounded half-up (`73%`, `128%`); without a
    /// target (none set, or zero) the words say so rather than invent a figure.
    public static func share(of achieved: Decimal, target: Decimal?) -> PhrasedNumber {
        guard let target, target > 0 else {
            return PhrasedNumber(exact: achieved, rounded: achieved, qualifier: nil, figure: "no target set")
        }
        var percent = achieved * 100 / target
        var rounded = Decimal()
        NSDecimalRound(&rounded, &percent, 0, .plain)
        return PhrasedNumber(exact: achieved, rounded: rounded, qualifier: nil, figure: "\(rounded)%")
    }
}

extension NumberPhrasing {
    /// An exact figure for a table: every digit, thousands separated, money with `$`
    /// (`$4,278,572`, `1,312`, `$12.5`).
    public static func exactFigure(_ value: Decimal, isMoney: Bool) -> String {
        let sign = value < 0 ? "-" : ""
        let magnitude = grouped(value < 0 ? -value : value)
        return sign + (isMoney ? "$" : "") + magnitude
    }

    /// A short label for a chart, rounded to three significant figures at most
    /// (`$179M`, `$1.25B`, `90,412`, `17.3M`); the exact figure is in the chart's title.
    public static func compactFigure(_ value: Decimal, isMoney: Bool) -> String {
        let sign = value < 0 ? "-" : ""
        let magnitude = value < 0 ? -value : value
        let prefix = sign + (isMoney ? "$" : "")
        if magnitude >= 1_000_000_000 { return prefix + shortened(magnitude, by: 9) + "B" }
        if magnitude >= 1_000_000 { return prefix + shortened(magnitude, by: 6) + "M" }
        var rounded = Decimal()
        var copy = magnitude
        NSDecimalRound(&rounded, &copy, 0, .plain)
        return prefix + grouped(rounded)
    }

    /// `value / 10^power` with one or two decimals, as three significant figures need.
    private static func shortened(_ value: Decimal, by power: Int) -> String {
        let whole = Decimal(sign: .plus, exponent: value.exponent - power, significand: value.significand)
        let decimals = whole >= 100 ? 0 : whole >= 10 ? 1 : 2
        return scaled(value, by: power, decimals: decimals)
    }
}
