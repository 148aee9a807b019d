import Metrics

/// Requests by op and answer code, and their latency by op (swift-metrics).
///
/// Every metric is created once, when the service starts, for the ops its registry declares:
/// a request only looks its op up in a dictionary. Names that are not ops (a typo, a line that
/// is not JSON) are counted under `unknown`, so a client cannot grow the label set.
struct RequestMetrics: Sendable {
    /// The label of requests whose op is not one of the service's.
    static let unknownOp = "unknown"

    private struct PerOp: Sendable {
        let duration: Timer
        /// By answer code: `ok`, or an error code.
        let answers: [String: Counter]
    }

    private let byOp: [String: PerOp]

    init(ops: [String]) {
        let codes = ["ok"] + ErrorCode.all.map(\.rawValue)
        var byOp: [String: PerOp] = [:]
        for op in ops + [Self.unknownOp] {
            byOp[op] = PerOp(
                duration: Timer(label: "rootcauses_request_duration_seconds", dimensions: [("op", op)]),
                answers: Dictionary(
                    uniqueKeysWithValues: codes.map { code in
                        (code, Counter(label: "rootcauses_requests_total", dimensions: [("op", op), ("code", code)]))
                    }
                )
            )
        }
        self.byOp = byOp
    }

    /// Counts one answered request and its time.
    func record(op: String, code: String, duration: Duration) {
        guard let metrics = byOp[op] ?? byOp[Self.unknownOp] else { return }
        metrics.duration.record(duration: duration)
        (metrics.answers[code] ?? metrics.answers[ErrorCode.internal.rawValue])?.increment()
    }
}
