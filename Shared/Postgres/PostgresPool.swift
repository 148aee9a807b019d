import DequeModule
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOPosix
import ServiceLifecycle

/// A bounded pool of libpq connections with its own threads, run as a `Service`.
///
/// libpq blocks, so each use runs on a thread of the pool's `NIOThreadPool` (one thread per
/// connection), never on an event loop or the Swift concurrency pool. Connections are opened
/// lazily, reused while healthy, and dropped after a connection problem, so the pool recovers
/// by itself when the database comes back.
///
/// The pool is usable as soon as it is made (a service migrates its schema before its
/// `ServiceGroup` runs). Add it to the group before the services that use it: the group shuts
/// services down in reverse order, so the pool closes after they finished their work.
/// Without a `ServiceGroup`, call `shutdown()`.
public final class PostgresPool: Service, Sendable {
    public let conninfo: String
    public let maximumConnections: Int
    private let applicationName: String
    private let planCacheMode: PostgresConnection.PlanCacheMode
    private let logger: Logger
    private let threadPool: NIOThreadPool
    private let state: NIOLockedValueBox<State>
    private let metrics: PoolMetrics

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var idle: [PostgresConnection] = []
        /// Slots taken: connections in use, or about to be.
        var leased = 0
        /// Tasks waiting for a slot, first come first served.
        var waiters: Deque<Waiter> = []
        var nextWaiterID: UInt64 = 0
        var shutDown = false
    }

    /// `metricsName` labels this pool's metrics (`pool`), for processes with more than one.
    public init(
        conninfo: String,
        maximumConnections: Int = 8,
        applicationName: String,
        planCacheMode: PostgresConnection.PlanCacheMode = .forceCustom,
        logger: Logger,
        metricsName: String = "main"
    ) {
        precondition(maximumConnections > 0)
        self.metrics = PoolMetrics(pool: metricsName, maximumConnections: maximumConnections)
        self.conninfo = conninfo
        self.maximumConnections = maximumConnections
        self.applicationName = applicationName
        self.planCacheMode = planCacheMode
        self.logger = logger
        self.threadPool = NIOThreadPool(numberOfThreads: maximumConnections)
        self.threadPool.start()
        self.state = NIOLockedValueBox(State())
    }

    /// Keeps the pool open until graceful shutdown or cancellation, then closes its idle
    /// connections and fails the tasks still waiting for one.
    public func run() async throws {
        // Returns on graceful shutdown and throws on cancellation: the pool closes either way.
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Runs `body` with a connection, on a pool thread. Waits while all connections are in use;
    /// a task cancelled while waiting stops waiting and throws `CancellationError`.
    ///
    /// - Parameter idempotent: `body` may run a second time without harm: it only reads, or
    ///   its writes cannot take effect twice (unique keys with `ON CONFLICT DO NOTHING`, or
    ///   watermarks). Then, when a reused connection turns out to have been dropped by the
    ///   server (a restart), `body` runs again once on a fresh connection instead of failing.
    public func withConnection<T: Sendable>(
        idempotent: Bool = false,
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await acquireSlot()
        defer { releaseSlot() }
        return try await threadPool.runIfActive { [self] in
            let (connection, reused) = try checkOut()
            do {
                let value = try body(connection)
                checkIn(connection)
                return value
            } catch let error as PostgresError where error.isConnectionProblem && reused {
                // The health check on checkout misses a server that went away after it; the
                // idle connections went with it, so none is handed out again.
                connection.close()
                let discarded = discardIdleConnections()
                logger.notice(
                    "database connection lost; idle connections discarded",
                    metadata: [
                        "error": "\(error.message)", "discarded": "\(discarded)", "retrying": "\(idempotent)",
                    ]
                )
                guard idempotent else { throw error }
                let fresh = try openConnection()
                do {
                    let value = try body(fresh)
                    checkIn(fresh)
                    return value
                } catch {
                    checkIn(fresh)
                    throw error
                }
            } catch {
                checkIn(connection)
                throw error
            }
        }
    }

    /// Closes the idle connections, fails waiting tasks with `.poolShutDown`, refuses new work
    /// and stops the threads. `run()` calls it; call it yourself when the pool runs outside a
    /// `ServiceGroup`. Later calls do nothing.
    public func shutdown() async {
        let closing = state.withLockedValue { state -> (idle: [PostgresConnection], waiters: Deque<Waiter>)? in
            guard !state.shutDown else { return nil }
            state.shutDown = true
            defer {
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        guard let closing else { return }
        for waiter in closing.waiters {
            waiter.continuation.resume(
                throwing: PostgresError(code: .poolShutDown, message: "the connection pool is shut down")
            )
        }
        // PQfinish sends the server a goodbye: blocking I/O, so on the pool's own threads.
        let idle = closing.idle
        try? await threadPool.runIfActive { for connection in idle { connection.close() } }
        try? await threadPool.shutdownGracefully()
    }

    // MARK: - Connections (on pool threads)

    /// An idle connection still alive, or a new one; `reused` tells which.
    private func checkOut() throws -> (connection: PostgresConnection, reused: Bool) {
        while let idle = state.withLockedValue({ $0.idle.popLast() }) {
            if idle.isAliveAfterIdle() { return (idle, true) }
            // Closed by the server meanwhile (restart, failover, pg_terminate_backend).
            logger.debug("dropping a pooled connection the server closed", metadata: ["pid": "\(idle.backendPID)"])
            idle.close()
        }
        return (try openConnection(), false)
    }

    private func openConnection() throws -> PostgresConnection {
        try PostgresConnection(
            conninfo: conninfo,
            applicationName: applicationName,
            planCacheMode: planCacheMode,
            logger: logger
        )
    }

    private func checkIn(_ connection: PostgresConnection) {
        // A connection that broke, or one left inside a transaction, is not reused.
        guard connection.isIdle else {
            connection.close()
            return
        }
        let kept = state.withLockedValue { state -> Bool in
            guard !state.shutDown else { return false }
            state.idle.append(connection)
            return true
        }
        if !kept { connection.close() }
    }

    /// Closes every idle connection; returns how many there were.
    private func discardIdleConnections() -> Int {
        let idle = state.withLockedValue { state -> [PostgresConnection] in
            defer { state.idle = [] }
            return state.idle
        }
        for connection in idle { connection.close() }
        return idle.count
    }

    // MARK: - Slots

    private func acquireSlot() async throws {
        let started = ContinuousClock.now
        defer { metrics.wait.record(duration: ContinuousClock.now - started) }
        let id = state.withLockedValue { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLockedValue { state -> Result<Bool, any Error> in
                    if state.shutDown {
                        return .failure(PostgresError(code: .poolShutDown, message: "the connection pool is shut down"))
                    }
                    if state.leased < maximumConnections {
                        state.leased += 1
                        metrics.inUse.record(state.leased)
                        return .success(true)
                    }
                    // Checked under the lock: a cancellation that came before this point found no
                    // waiter to remove, so it must be seen here, or the task would wait forever.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    metrics.waiters.record(state.waiters.count)
                    return .success(false)
                }
                switch outcome {
                case .success(true): continuation.resume()
                case .success(false): break
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                defer { metrics.waiters.record(state.waiters.count) }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func releaseSlot() {
        // Hand the slot straight to the next waiter, if any.
        let next = state.withLockedValue { state -> Waiter? in
            guard let next = state.waiters.popFirst() else {
                state.leased -= 1
                metrics.inUse.record(state.leased)
                return nil
            }
            metrics.waiters.record(state.waiters.count)
            return next
        }
        next?.continuation.resume()
    }
}

/// A pool's metrics, created once: how long tasks wait for a connection, how many are in use.
struct PoolMetrics: Sendable {
    /// Time from asking for a connection to getting one (zero when one was free).
    let wait: Timer
    /// Connections in use now.
    let inUse: Gauge
    /// Tasks waiting for a connection now.
    let waiters: Gauge

    init(pool: String, maximumConnections: Int) {
        let dimensions = [("pool", pool)]
        wait = Timer(label: "rootcauses_db_pool_wait_seconds", dimensions: dimensions)
        inUse = Gauge(label: "rootcauses_db_pool_connections_in_use", dimensions: dimensions)
        waiters = Gauge(label: "rootcauses_db_pool_waiters", dimensions: dimensions)
        Gauge(label: "rootcauses_db_pool_connections_max", dimensions: dimensions).record(maximumConnections)
    }
}
