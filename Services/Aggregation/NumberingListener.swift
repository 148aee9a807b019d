import Logging
import NIOPosix
import RootcausesPostgres
import ServiceLifecycle

/// Wakes the worker whenever new seqs are committed, whoever numbered them: a session of its
/// own listens on `Storage.numberedChannel`, which the seq counter's trigger notifies at every
/// commit (migration 13). So every instance hears every numbering, including instances intake
/// was never told of: its nudges over TCP reach only the addresses it was given, and an
/// instance started later (scaled out) waited for its poll, and every read with `min_seq` with
/// it. While the session is reconnecting, nudges and the poll still wake the worker.
final class NumberingListener: Service, Sendable {
    private let conninfo: String
    private let logger: Logger
    private let wake: @Sendable () -> Void
    /// One wait on the session: graceful shutdown is noticed within it.
    private let waitSlice: Duration = .milliseconds(250)

    init(conninfo: String, logger: Logger, wake: @escaping @Sendable () -> Void) {
        self.conninfo = conninfo
        self.logger = logger
        self.wake = wake
    }

    func run() async throws {
        // libpq blocks while it waits: on a thread of its own, never an event loop or the pool's.
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        var pause = Duration.milliseconds(100)
        var failed = false
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await listen(on: thread) {
                    // Listening again: the next loss starts its backoff from the shortest pause.
                    pause = .milliseconds(100)
                    if failed { logger.info("listening for numberings again") }
                    failed = false
                }
            } catch {
                failed = true
                logger.warning(
                    "not listening for numberings; reconnecting (nudges and the poll still wake aggregation)",
                    metadata: ["error": "\(error)", "retry_in": "\(pause)"]
                )
                // Cut short by graceful shutdown: the worker stops after this service, and its
                // hand-over of the partitions must not wait for a backoff.
                let wait = pause
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                pause = min(pause * 2, .seconds(5))
            }
        }
        try? await thread.shutdownGracefully()
    }

    /// Opens the session, listens (then calls `listening`), and wakes the worker at every
    /// notification until shutdown.
    private func listen(on thread: NIOThreadPool, listening: () -> Void) async throws {
        let (conninfo, logger) = (self.conninfo, self.logger)
        let connection = try await thread.runIfActive {
            let connection = try PostgresConnection(
                conninfo: conninfo,
                applicationName: "rootcauses-aggregation-listener",
                logger: logger
            )
            do {
                try Applier.listenForNumberings(on: connection)
            } catch {
                connection.close()
                throw error
            }
            return connection
        }
        logger.debug("listening for numberings")
        listening()
        // Seqs numbered while no session listened (at start, or while reconnecting).
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
