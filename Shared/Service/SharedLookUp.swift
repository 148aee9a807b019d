import NIOConcurrencyHelpers

/// Answers "is this key in the set?" from a look-up that runs one at a time and answers every
/// question asked while the previous one ran: the group commit of reads. Each question is
/// answered by a look-up that began after it was asked, never by one already running, so what
/// was committed before the question is always seen.
///
/// Written here rather than taken from a library: none of the offline packages coalesces
/// requests this way (swift-async-algorithms batches a sequence, not callers waiting).
public final class SharedLookUp<Key: Hashable & Sendable>: Sendable {
    private struct State {
        var running = false
        var waiting: [(key: Key, continuation: CheckedContinuation<Bool, any Error>)] = []
    }

    private let lookUp: @Sendable ([Key]) async throws -> Set<Key>
    private let state = NIOLockedValueBox(State())

    /// `lookUp` returns which of the keys it is given are in the set.
    public init(lookUp: @escaping @Sendable ([Key]) async throws -> Set<Key>) {
        self.lookUp = lookUp
    }

    /// Questions waiting for the next look-up.
    public var questionsWaiting: Int { state.withLockedValue { $0.waiting.count } }

    /// Whether `key` is in the set, as a look-up that begins after this call finds it; throws
    /// what that look-up throws.
    public func contains(_ key: Key) async throws -> Bool {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLockedValue { state -> Bool in
                state.waiting.append((key, continuation))
                guard !state.running else { return false }
                state.running = true
                return true
            }
            if start { Task { await self.answerWaiting() } }
        }
    }

    /// Runs look-ups, each for the questions waiting when it begins, until none waits.
    private func answerWaiting() async {
        while true {
            let batch = state.withLockedValue { state in
                defer { state.waiting = [] }
                if state.waiting.isEmpty { state.running = false }
                return state.waiting
            }
            if batch.isEmpty { return }
            do {
                let found = try await lookUp(Array(Set(batch.map(\.key))))
                for question in batch { question.continuation.resume(returning: found.contains(question.key)) }
            } catch {
                for question in batch { question.continuation.resume(throwing: error) }
            }
        }
    }
}
