import NIOCore
import NIOPosix
import NIOSSL
import RootcausesJSON
import RootcausesTransport

/// The throughput run's load generator: keeps `window` already-serialized request lines in
/// flight on one connection, writing the next as each answer arrives, all on the connection's
/// event loop.
///
/// Written against NIO directly, not `ProtocolClient`: a future, a task and a string per
/// request made the generator a sixth of the CPU the run used, on the two cores intake shares
/// with PostgreSQL (the raw COPY it is compared with makes its text before the clock starts).
/// Each answer is checked for `"status":"accepted"` and its `seq`, nothing more.
final class IntakeLoad: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<Handler>

    private init(channel: any Channel, handler: NIOLoopBound<Handler>) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects to `host:port` (over TLS with `tls`) and authenticates with `token`, within
    /// `timeout` for the answer.
    static func connect(
        host: String,
        port: Int,
        token: String,
        tls: NIOSSLContext?,
        timeout: TimeAmount = .seconds(10),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> IntakeLoad {
        let eventLoop = group.any()
        let authenticated = eventLoop.makePromise(of: Void.self)
        let channel: any Channel
        do {
            channel = try await ProtocolClient.bootstrap(group: eventLoop, host: host, tls: tls) { pipeline in
                try pipeline.addHandlers(
                    ByteToMessageHandler(LineFrameDecoder(maximumLineLength: 1 << 20)),
                    Handler(authenticated: authenticated)
                )
            }
            .connect(host: host, port: port).get()
        } catch {
            // The handler never saw the connection: nothing else completes the promise.
            authenticated.fail(error)
            throw ClientError("cannot connect to \(host):\(port): \(error)")
        }
        let deadline = eventLoop.scheduleTask(in: timeout) {
            authenticated.fail(ClientError("no answer to auth from \(host):\(port) within \(timeout)"))
        }
        do {
            let handler = try await channel.eventLoop.submit {
                NIOLoopBound(
                    try channel.pipeline.syncOperations.handler(type: Handler.self),
                    eventLoop: channel.eventLoop
                )
            }.get()
            let auth: JSON = ["op": "auth", "token": .string(token)]
            channel.writeAndFlush(ByteBuffer(string: auth.serialized + "\n"), promise: nil)
            try await authenticated.futureResult.get()
            deadline.cancel()
            return IntakeLoad(channel: channel, handler: handler)
        } catch {
            deadline.cancel()
            try? await channel.close()
            throw error
        }
    }

    /// Sends `lines` (each ending in a newline), `window` at a time, and returns the highest
    /// seq answered once every line was accepted; throws at the first answer that was not, when
    /// the connection ends, or when the calling task is cancelled (the connection is closed).
    /// Once per connection.
    func run(_ lines: [ByteBuffer], window: Int) async throws -> Int64 {
        let done = channel.eventLoop.makePromise(of: Int64.self)
        channel.eventLoop.execute { [handler, channel] in
            handler.value.start(lines, window: window, done: done, context: channel)
        }
        // Waiting on a future ignores cancellation: closing the connection ends the wait.
        return try await withTaskCancellationHandler {
            try await done.futureResult.get()
        } onCancel: { [channel] in
            channel.close(promise: nil)
        }
    }

    func close() async {
        try? await channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = InboundFrame

        private var authenticated: EventLoopPromise<Void>?
        private var lines: [ByteBuffer] = []
        private var next = 0
        private var answered = 0
        private var newestSeq: Int64 = 0
        private var done: EventLoopPromise<Int64>?
        /// Why the connection ended, once it did: a run started after that fails at once.
        private var closedBy: (any Error)?

        private static let accepted = Array(#""status":"accepted""#.utf8)
        private static let seqKey = Array(#""seq":"#.utf8)
        private static let authenticatedOK = Array(#""ok":true"#.utf8)

        init(authenticated: EventLoopPromise<Void>) {
            self.authenticated = authenticated
        }

        func start(_ lines: [ByteBuffer], window: Int, done: EventLoopPromise<Int64>, context channel: any Channel) {
            precondition(self.done == nil && next == 0, "an IntakeLoad runs once")
            self.lines = lines
            self.done = done
            if let closedBy { return fail(closedBy) }
            guard !lines.isEmpty else { return finish(.success(0)) }
            while next < min(window, lines.count) {
                channel.write(lines[next], promise: nil)
                next += 1
            }
            channel.flush()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            if let authenticated {
                self.authenticated = nil
                if case .line(let line) = frame, line.readableBytesView.firstRange(of: Self.authenticatedOK) != nil {
                    authenticated.succeed()
                } else if case .line(let line) = frame {
                    authenticated.fail(ClientError("the key was refused: \(String(buffer: line).prefix(300))"))
                } else {
                    authenticated.fail(ClientError("the answer to auth was too long"))
                }
                return
            }
            guard case .line(let line) = frame else {
                return fail(ClientError("an answer from intake was too long"))
            }
            let bytes = line.readableBytesView
            guard done != nil else { return }
            guard bytes.firstRange(of: Self.accepted) != nil else {
                return fail(ClientError("bench submission failed: \(String(buffer: line).prefix(300))"))
            }
            if let key = bytes.firstRange(of: Self.seqKey) {
                var seq: Int64 = 0
                for byte in bytes[key.upperBound...] {
                    guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
                    seq = seq * 10 + Int64(byte - UInt8(ascii: "0"))
                }
                newestSeq = max(newestSeq, seq)
            }
            answered += 1
            if next < lines.count {
                context.writeAndFlush(NIOAny(lines[next]), promise: nil)
                next += 1
            } else if answered == lines.count {
                finish(.success(newestSeq))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            ended(by: ClientError("intake closed the connection after \(answered) answers"))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            ended(by: error)
            context.close(promise: nil)
        }

        /// The connection ended (or is ending) for `error`: whatever waits fails with it.
        private func ended(by error: any Error) {
            closedBy = closedBy ?? error
            authenticated?.fail(error)
            authenticated = nil
            fail(error)
        }

        private func fail(_ error: any Error) { finish(.failure(error)) }

        private func finish(_ result: Result<Int64, any Error>) {
            guard let done else { return }
            self.done = nil
            done.completeWith(result)
        }
    }
}
