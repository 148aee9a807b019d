import Logging
import NIOPosix
import RootcausesPostgres
import ServiceLifecycle
import Synchronization

/// Calls `wake` at every notification on a PostgreSQL channel, from a session of its own that
/// LISTENs, for as long as the service runs.
///
/// Aggregation listens to every numbering (`Storage.numberedChannel`, notified by the seq
/// counter's trigger, migration 13), so every instance hears every commit, also an instance
/// intake was never told of. Reporting listens to every applied pass
/// (`Storage.appliedChannel`, migration 14), so a read waiting for `min_seq` and the live
/// subscriptions learn of it at once instead of at their next look at the watermark.
///
/// Notifications are wake-ups, never data: whoever wakes reads what changed. If the session is
/// cut, the listener reconnects with a backoff (100 ms doubling to 5 s, from the shortest again
/// once it listens), and wakes once on listening again, for whatever it missed meanwhile. The
/// caller polls meanwhile (``isListening``). A hot standby cannot LISTEN: there it tries again
/// every minute (the standby may be promoted), and says so once.
public final class NotificationListener: Service, Sendable {
    private let conninfo: String
    private let channel: String
    private let applicationName: String
    private let logger: Logger
    private let wake: @Sendable () -> Void
    /// One wait on the session: graceful shutdown is noticed within it.
    private let waitSlice: Duration = .milliseconds(250)
    private let listening = Atomic(false)

    /// True while the session listens: every notification from now on wakes. False before it
    /// first listens and while it reconnects, when the caller must poll.
    public var isListening: Bool { listening.load(ordering: .acquiring) }

    /// `applicationName` names the session in `pg_stat_activity`.
    public init(
        conninfo: String,
        channel: String,
        applicationName: String,
        logger: Logger,
        wake: @escaping @Sendable () -> Void
    ) {
        self.conninfo = conninfo
        self.channel = channel
        self.applicationName = applicationName
        var logger = logger
        logger[metadataKey: "channel"] = "\(channel)"
        self.logger = logger
        self.wake = wake
    }

    public func run() async throws {
        // libpq blocks while it waits: on a thread of its own, never an event loop or the pool's.
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        var pause = Duration.milliseconds(100)
        var failed = false
        var standby = false
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            var wait = pause
            do {
                try await listen(on: thread) {
                    // Listening again: the next loss starts its backoff from the shortest pause.
                    pause = .milliseconds(100)
                    if failed || standby { logger.info("listening for notifications again") }
                    failed = false
                    standby = false
                }
            } catch let error as PostgresError where error.sqlState == "25006" {
                // "cannot execute LISTEN during recovery": a hot standby, until it is promoted.
                if !standby {
                    logger.info("the database is a hot standby, which cannot listen for notifications; polling instead")
                }
                standby = true
                wait = .seconds(60)
            } catch {
                failed = true
                logger.warning(
                    "not listening for notifications; reconnecting (polling meanwhile)",
                    metadata: ["error": "\(error)", "retry_in": "\(pause)"]
                )
                pause = min(pause * 2, .seconds(5))
            }
            // Not listening any more: waiters wake now, and poll until it listens again.
            if listening.exchange(false, ordering: .acquiringAndReleasing) { wake() }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { break }
            // Cut short by graceful shutdown: the service using the wake-ups may stop after
            // this one (aggregation hands its partitions over), and must not wait for a backoff.
            try? await cancelWhenGracefulShutdown { [wait] in try await Task.sleep(for: wait) }
        }
        try? await thread.shutdownGracefully()
    }

    /// Opens the session, listens (then calls `listening`), and wakes at every notification
    /// until shutdown.
    private func listen(on thread: NIOThreadPool, listening: () -> Void) async throws {
        let (conninfo, channel, applicationName, logger) = (
            self.conninfo, self.channel, self.applicationName, self.logger
        )
        let connection = try await thread.runIfActive {
            let connection = try PostgresConnection(
                conninfo: conninfo,
                applicationName: applicationName,
                logger: logger
            )
            do {
                try connection.execute("LISTEN \(PostgresQuery.quoteIdentifier(channel))")
            } catch {
                connection.close()
                throw error
            }
            return connection
        }
        logger.debug("listening for notifications")
        listening()
        self.listening.store(true, ordering: .releasing)
        // Whatever was notified while no session listened (at start, or while reconnecting).
        wake()
        do {
            let slice = waitSlice
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                let arrived = try await thread.runIfActive { try connection.notifications(waitingUpTo: slice) }
                if !arrived.isEmpty { wake() }
            }
        } catch {
            try? await thread.runIfActive { connection.close() }
            throw error
        }
        try? await thread.runIfActive { connection.close() }
    }
}
