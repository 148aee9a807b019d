import Testing

@testable import IntakeService

/// When intake tries a nudge again after an aggregation instance did not take one.
@Suite("NudgeBackoff")
struct NudgeBackoffTests {
    private let address = "10.0.0.7:7002"

    @Test func anAddressNeverMissedIsTriedAtOnce() {
        let backoff = NudgeBackoff()
        #expect(backoff.mayTry(address, at: .now))
    }

    @Test func failuresInARowDoubleTheWaitUpToTheLongest() {
        var backoff = NudgeBackoff(first: .milliseconds(100), longest: .seconds(1))
        let start = ContinuousClock.now
        let waits = (0..<6).map { _ in backoff.failed(address, at: start) }
        #expect(
            waits == [
                .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1),
                .seconds(1),
            ]
        )
        #expect(!backoff.mayTry(address, at: start + .milliseconds(999)))
        #expect(backoff.mayTry(address, at: start + .seconds(1)))
        // Other instances are not held back by this one.
        #expect(backoff.mayTry("10.0.0.8:7002", at: start))
    }

    @Test func aDeliveredNudgeEndsTheBackoff() {
        var backoff = NudgeBackoff(first: .milliseconds(100), longest: .seconds(5))
        let start = ContinuousClock.now
        backoff.failed(address, at: start)
        backoff.failed(address, at: start)
        #expect(!backoff.mayTry(address, at: start + .milliseconds(150)))
        backoff.succeeded(address)
        #expect(backoff.mayTry(address, at: start))
        // The next failure waits the first delay again, not the doubled one.
        #expect(backoff.failed(address, at: start) == .milliseconds(100))
    }
}
