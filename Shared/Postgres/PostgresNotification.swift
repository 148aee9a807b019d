/// A notification a session received on a channel it listens to (`LISTEN`), sent by
/// `NOTIFY` or `pg_notify` in a transaction that committed.
public struct PostgresNotification: Sendable, Equatable {
    /// The channel it was sent on.
    public var channel: String
    /// The text sent with it (empty when none was).
    public var payload: String
    /// The process id of the server session that sent it.
    public var senderPID: Int32

    public init(channel: String, payload: String, senderPID: Int32) {
        self.channel = channel
        self.payload = payload
        self.senderPID = senderPID
    }
}
