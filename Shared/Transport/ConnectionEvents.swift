import NIOConcurrencyHelpers
import NIOCore
import RootcausesProtocol

/// One connection's ``EventSink``: pushed lines are written on its channel beside the answers
/// (each write is one whole line, so lines never interleave), and the serve loop runs the
/// after-answer and on-close actions.
final class ConnectionEvents: EventSink {
    private struct State {
        var afterAnswer: [@Sendable (Bool) -> Void] = []
        var onClose: [@Sendable () -> Void] = []
        var closed = false
    }

    private let channel: any Channel
    private let state = NIOLockedValueBox(State())

    init(channel: any Channel) {
        self.channel = channel
    }

    func push(serialized line: String, completion: @escaping @Sendable (Bool) -> Void) {
        var buffer = channel.allocator.buffer(capacity: line.utf8.count + 1)
        buffer.writeString(line)
        buffer.writeInteger(UInt8(ascii: "\n"))
        // Completes when written to the socket: a peer that does not read keeps it pending.
        channel.writeAndFlush(buffer).whenComplete { result in
            switch result {
            case .success: completion(true)
            case .failure: completion(false)
            }
        }
    }

    var writer: ObjectIdentifier { ObjectIdentifier(channel.eventLoop) }

    func onWriter(_ body: @escaping @Sendable () -> Void) {
        channel.eventLoop.execute(body)
    }

    func afterAnswer(_ action: @escaping @Sendable (_ succeeded: Bool) -> Void) {
        state.withLockedValue { $0.afterAnswer.append(action) }
    }

    func onClose(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLockedValue { state -> Bool in
            if state.closed { return true }
            state.onClose.append(action)
            return false
        }
        if runNow { action() }
    }

    /// After the current answer is written (or when there was none to write).
    func answered(succeeded: Bool) {
        let actions = state.withLockedValue { state -> [@Sendable (Bool) -> Void] in
            defer { state.afterAnswer = [] }
            return state.afterAnswer
        }
        for action in actions { action(succeeded) }
    }

    /// The connection ended.
    func closed() {
        let actions = state.withLockedValue { state -> [@Sendable () -> Void] in
            state.closed = true
            state.afterAnswer = []
            defer { state.onClose = [] }
            return state.onClose
        }
        for action in actions { action() }
    }
}
