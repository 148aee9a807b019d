import NIOConcurrencyHelpers
import RootcausesService
import Testing

/// The shared look-up behind every key check: one look-up at a time, each answering the
/// questions asked while the one before it ran, and none answered by a look-up that began
/// before it was asked.
@Suite("SharedLookUp", .timeLimit(.minutes(1)))
struct SharedLookUpTests {
    /// A look-up that waits for the test to let it finish, and records what it was asked.
    final class Gate: Sendable {
        private let state = NIOLockedValueBox<(asked: [[String]], waiting: [CheckedContinuation<Void, Never>])>(
            ([], [])
        )
        let members = NIOLockedValueBox<Set<String>>(["a", "b"])

        func lookUp(_ keys: [String]) async -> Set<String> {
            let snapshot = members.withLockedValue { $0 }
            await withCheckedContinuation { continuation in
                state.withLockedValue {
                    $0.asked.append(keys.sorted())
                    $0.waiting.append(continuation)
                }
            }
            return snapshot.intersection(keys)
        }

        var asked: [[String]] { state.withLockedValue { $0.asked } }

        /// Waits until `count` look-ups began; false after five seconds without.
        func waitForLookUps(_ count: Int) async throws -> Bool {
            try await eventually { self.state.withLockedValue { $0.asked.count } >= count }
        }

        /// Lets the running look-up return.
        func release() {
            state.withLockedValue { $0.waiting.isEmpty ? nil : $0.waiting.removeFirst() }?.resume()
        }
    }

    @Test func questionsAskedDuringALookUpShareTheNextAndSeeWhatChangedBeforeThem() async throws {
        let gate = Gate()
        let lookUp = SharedLookUp<String> { await gate.lookUp($0) }
        async let first = lookUp.contains("a")
        #expect(try await gate.waitForLookUps(1))
        // "a" leaves the set while the first look-up runs: questions asked from now on must
        // not get that look-up's answer.
        gate.members.withLockedValue { _ = $0.remove("a") }
        async let second = lookUp.contains("a")
        async let third = lookUp.contains("b")
        async let fourth = lookUp.contains("c")
        #expect(try await eventually { lookUp.questionsWaiting == 3 })
        gate.release()
        #expect(try await first)
        #expect(try await gate.waitForLookUps(2), "the questions asked during the first look-up got its answer")
        gate.release()
        #expect(try await second == false)
        #expect(try await third)
        #expect(try await fourth == false)
        #expect(gate.asked == [["a"], ["a", "b", "c"]])
    }

    @Test func aFailedLookUpFailsItsQuestionsOnlyAndTheNextOneRuns() async throws {
        struct Broken: Error {}
        let calls = NIOLockedValueBox(0)
        let lookUp = SharedLookUp<String> { keys in
            let call = calls.withLockedValue {
                $0 += 1
                return $0
            }
            if call == 1 { throw Broken() }
            return Set(keys)
        }
        await #expect(throws: Broken.self) { try await lookUp.contains("x") }
        #expect(try await lookUp.contains("x"))
    }
}
