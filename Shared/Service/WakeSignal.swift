import Synchronization

/// A wake-up that any number of tasks can wait for, with a timeout: the way reporting's reads
/// waiting for `min_seq` and its subscriptions learn that aggregation applied a pass.
///
/// Each ``signal()`` starts a new generation. A waiter takes the ``generation`` *before* it
/// looks at what it waits for, and waits for a later one: a signal sent between its look and
/// its wait is never lost.
public final class WakeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The signals so far.
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Wakes every waiter, and any that comes later with an earlier generation.
    public func signal() {
        let waiters = state.withLock { state in
            state.generation += 1
            defer { state.waiters = [:] }
            return state.waiters
        }
        for waiter in waiters.values { waiter.resume() }
    }

    /// Returns once a signal after generation `seen` came (at once if one already did), after
    /// `timeout`, or when the task is cancelled.
    public func wait(after seen: UInt64, upTo timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal(after: seen) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal(after seen: UInt64) async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Cancelled before this registered: the handler below found nothing to resume.
                let now = state.withLock { state in
                    guard state.generation <= seen, !Task.isCancelled else { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
