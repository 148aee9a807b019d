import RootcausesJSON

/// A connection's way to send lines the client did not ask for: a subscription's events.
///
/// A pushed line carries the subscription's `id` and an `event`, never `ok`, so a client that
/// matches answers by `ok` is not confused (PROTOCOL.md §4). The server's connection gives one
/// to every request through ``RequestContext/events``; in-process responders have none.
public protocol EventSink: AnyObject, Sendable {
    /// Writes one line (serialized, without its newline) and calls `completion` once it
    /// reached the socket (`true`) or cannot (`false`: the connection is gone). A client that
    /// stops reading leaves the completion pending: its subscriptions then keep only their
    /// newest event rather than a queue. Called from any thread; lines are written whole, in
    /// the order of the calls.
    func push(serialized line: String, completion: @escaping @Sendable (Bool) -> Void)

    /// Connections with the same writer write on the same thread: a change going to many
    /// subscribers is handed to each writer once (``onWriter(_:)``), not once per line.
    var writer: ObjectIdentifier { get }

    /// Runs `body` on this connection's writer; pushes made there go out without a hop.
    func onWriter(_ body: @escaping @Sendable () -> Void)

    /// Runs `action` right after the answer to the request being handled is written, with
    /// whether that answer was a success (`ok`): a subscription's events must follow its
    /// acknowledgement, and a request answered with an error (a key found revoked beside it)
    /// must leave nothing behind.
    func afterAnswer(_ action: @escaping @Sendable (_ succeeded: Bool) -> Void)

    /// Runs `action` once, when the connection ends (at once if it already has).
    func onClose(_ action: @escaping @Sendable () -> Void)
}
