import Logging
import NIOConcurrencyHelpers
import NIOPosix

/// A bounded pool of libpq connections with its own threads.
///
/// libpq blocks, so each use runs on a thread of the pool's `NIOThreadPool` (one thread per
/// connection), never on an event loop or the Swift concurrency pool. Connections are opened
/// lazily, reused while healthy, and dropped after a connection problem, so the pool recovers
/// by itself when the database comes back.
public final class PostgresPool: Sendable {
    public let conninfo: String
    public let maximumConnections: Int
    private let applicationName: String
    private let logger: Logger
    private let threadPool: NIOThreadPool
    private let state: NIOLockedValueBox<State>

    private struct State {
        var idle: [PostgresConnection] = []
        var leased = 0
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var shutDown = false
    }

    public init(conninfo: String, maximumConnections: Int = 8, applicationName: String, logger: Logger) {
        precondition(maximumConnections > 0)
        self.conninfo = conninfo
        self.maximumConnections = maximumConnections
        self.applicationName = applicationName
        self.logger = logger
        self.threadPool = NIOThreadPool(numberOfThreads: maximumConnections)
        self.threadPool.start()
        self.state = NIOLockedValueBox(State())
    }

    /// Runs `body` with a connection, on a pool thread. Waits while all connections are in use.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await acquireSlot()
        defer { releaseSlot() }
        let logger = self.logger
        return try await threadPool.runIfActive { [self] in
            var candidate = state.withLockedValue { $0.idle.popLast() }
            // Drop idle connections the server has closed meanwhile (restart, failover).
            while let idle = candidate, !idle.isAliveAfterIdle() {
                idle.close()
                candidate = state.withLockedValue { $0.idle.popLast() }
            }
            let connection: PostgresConnection
            if let reused = candidate {
                connection = reused
            } else {
                connection = try PostgresConnection(conninfo: conninfo, applicationName: applicationName, logger: logger)
            }
            do {
                let value = try body(connection)
                recycle(connection)
                return value
            } catch {
                recycle(connection)
                throw error
            }
        }
    }

    /// Closes idle connections and refuses new work. Call once, when the service stops.
    public func shutdown() async {
        let (idle, waiters) = state.withLockedValue { state in
            state.shutDown = true
            defer { state.idle = []; state.waiters = [] }
            return (state.idle, state.waiters)
        }
        for waiter in waiters {
            waiter.resume(throwing: PostgresError(code: .poolShutDown, message: "the connection pool is shut down"))
        }
        for connection in idle { connection.close() }
        try? await threadPool.shutdownGracefully()
    }

    private func recycle(_ connection: PostgresConnection) {
        // A connection that broke, or one left inside a transaction, is not reused.
        if connection.isIdle {
            let keep = state.withLockedValue { state -> Bool in
                guard !state.shutDown else { return false }
                state.idle.append(connection)
                return true
            }
            if !keep { connection.close() }
        } else {
            connection.close()
        }
    }

    private func acquireSlot() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = state.withLockedValue { state -> Result<Bool, PostgresError> in
                if state.shutDown { return .failure(PostgresError(code: .poolShutDown, message: "the connection pool is shut down")) }
                if state.leased < maximumConnections {
                    state.leased += 1
                    return .success(true)
                }
                state.waiters.append(continuation)
                return .success(false)
            }
            switch outcome {
            case .success(true): continuation.resume()
            case .success(false): break
            case .failure(let error): continuation.resume(throwing: error)
            }
        }
    }

    private func releaseSlot() {
        // Hand the slot straight to the next waiter, if any.
        let next = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
            if state.waiters.isEmpty {
                state.leased -= 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
