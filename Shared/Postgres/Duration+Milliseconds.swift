extension Duration {
    /// The whole milliseconds in this duration (truncated), for SQL intervals, poll(2)
    /// timeouts and the `*_ms` fields of answers.
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
