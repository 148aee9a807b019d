import Foundation

/// A one-line progress bar on standard error, for a person at a terminal: submissions done,
/// values per second, time left. Callers make one only when standard error is a terminal, so
/// pipes and files never see it.
final class ProgressBar {
    private let submissions: Int
    private let values: Int
    private let started = ContinuousClock.now
    private var lastDrawn: ContinuousClock.Instant?
    private var shown = false
    private static let width = 24

    init(submissions: Int, values: Int) {
        self.submissions = max(submissions, 1)
        self.values = values
    }

    /// Redraws the bar (at most ten times a second, and always at the end).
    func update(submissions done: Int, values valuesDone: Int) {
        let now = ContinuousClock.now
        if let lastDrawn, now - lastDrawn < .milliseconds(100), done < submissions { return }
        lastDrawn = now
        let elapsed = max((now - started) / .seconds(1), 0.001)
        let fraction = min(Double(done) / Double(submissions), 1)
        let filled = Int(fraction * Double(Self.width))
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: Self.width - filled)
        let rate = Double(valuesDone) / elapsed
        let remaining = done > 0 ? elapsed * Double(submissions - done) / Double(done) : 0
        let line =
            "[\(bar)] \(groupThousands(String(done)))/\(groupThousands(String(submissions))) submissions, "
            + "\(groupThousands(String(Int(rate)))) values/s, ETA \(Self.clock(remaining))"
        write("\r\u{1B}[K" + line)
        shown = true
    }

    /// Clears the bar so a line can be printed; the next update draws it again.
    func clear() {
        guard shown else { return }
        write("\r\u{1B}[K")
        shown = false
        lastDrawn = nil
    }

    /// Leaves the terminal as it was.
    func finish() { clear() }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// `m:ss`, or `h:mm:ss` past an hour.
    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        let (hours, minutes, rest) = (total / 3600, total / 60 % 60, total % 60)
        let two = { (value: Int) in value < 10 ? "0\(value)" : "\(value)" }
        return hours > 0 ? "\(hours):\(two(minutes)):\(two(rest))" : "\(minutes):\(two(rest))"
    }
}

/// A plain decimal literal with its whole part grouped by thousands: `91662` → `91,662`,
/// `-1234567.50` → `-1,234,567.50`. Anything else (an exponent, a word) is returned as is.
func groupThousands(_ literal: String) -> String {
    var text = Substring(literal)
    let sign = text.first == "-" ? "-" : ""
    if !sign.isEmpty { text = text.dropFirst() }
    let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy({ $0.isASCII && $0.isNumber }),
        parts.count == 1 || parts[1].allSatisfy({ $0.isASCII && $0.isNumber })
    else { return literal }
    var grouped = ""
    for (index, digit) in whole.enumerated() {
        if index > 0 && (whole.count - index) % 3 == 0 { grouped.append(",") }
        grouped.append(digit)
    }
    return sign + grouped + (parts.count == 2 ? "." + parts[1] : "")
}
