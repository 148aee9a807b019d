import RootcausesService
import Testing

/// The wake-up reporting's reads and subscriptions wait for. Every wait here that a signal
/// should end has an hour's timeout: if the signal were lost, the time limit fails the test.
@Suite("WakeSignal", .timeLimit(.minutes(1)))
struct WakeSignalTests {
    @Test func aWaitEndsAtTheNextSignal() async {
        let signal = WakeSignal()
        let seen = signal.generation
        async let woken: Void = signal.wait(after: seen, upTo: .seconds(3600))
        // Signal until the waiter is woken: it may not be registered yet at the first.
        let signaller = Task {
            while !Task.isCancelled {
                signal.signal()
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        await woken
        signaller.cancel()
        #expect(signal.generation > seen)
    }

    @Test func aSignalBeforeTheWaitIsNotLost() async {
        let signal = WakeSignal()
        let seen = signal.generation
        // Sent between the waiter's look and its wait: the wait returns at once.
        signal.signal()
        await signal.wait(after: seen, upTo: .seconds(3600))
        #expect(signal.generation == seen + 1)
    }

    @Test func everyWaiterWakes() async {
        let signal = WakeSignal()
        let seen = signal.generation
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { await signal.wait(after: seen, upTo: .seconds(3600)) } }
            group.addTask {
                // Again and again until every waiter is gone, for waiters that registered late.
                while !Task.isCancelled {
                    signal.signal()
                    try? await Task.sleep(for: .milliseconds(10))
                }
            }
            for _ in 0..<50 { await group.next() }
            group.cancelAll()
        }
    }

    @Test func aWaitWithoutASignalEndsAtItsTimeout() async {
        let signal = WakeSignal()
        await signal.wait(after: signal.generation, upTo: .milliseconds(20))
        #expect(signal.generation == 0)
    }

    @Test func aCancelledWaitEnds() async {
        let signal = WakeSignal()
        let waiter = Task { await signal.wait(after: signal.generation, upTo: .seconds(3600)) }
        try? await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        await waiter.value
        #expect(signal.generation == 0)
    }
}
