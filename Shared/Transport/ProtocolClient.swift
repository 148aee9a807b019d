import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import RootcausesJSON

/// Why a client call failed before an answer arrived.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A client connection for the line protocol, used by the CLI, by intake to nudge aggregation,
/// and by tests. Requests may be pipelined: answers arrive in request order, and NIOExtras'
/// `RequestResponseHandler` pairs each with the request that was written with its promise, so
/// callers on different tasks can share one client without a lock.
public final class ProtocolClient: Sendable {
    /// What goes out with each promise: the bytes of one request line (or raw bytes in tests).
    typealias Exchange = (ByteBuffer, EventLoopPromise<InboundFrame>)

    private let channel: any Channel
    /// The first answer the server sent before any request (a refusal such as `overloaded`);
    /// fails with `NoUnaskedAnswer` if the connection closed without one.
    private let unaskedAnswer: EventLoopFuture<InboundFrame>

    /// Lines the server pushed (subscription events: an `event` and no `ok`), in order, kept
    /// apart from answers. The stream ends when the connection does; it buffers what is not
    /// read yet, so a client that subscribes reads it.
    public let events: AsyncStream<JSON>

    private init(channel: any Channel, unaskedAnswer: EventLoopFuture<InboundFrame>, events: AsyncStream<JSON>) {
        self.channel = channel
        self.unaskedAnswer = unaskedAnswer
        self.events = events
    }

    /// Connects to `host:port`; with `tls`, over TLS (the server's certificate is verified for
    /// `host`, a name or an IP address).
    public static func connect(
        host: String,
        port: Int,
        tls: NIOSSLContext? = nil,
        maximumLineBytes: Int = 256 << 20,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ProtocolClient {
        let unasked = group.any().makePromise(of: InboundFrame.self)
        let (events, pushed) = AsyncStream.makeStream(of: JSON.self)
        do {
            let channel = try await Self.bootstrap(group: group, host: host, tls: tls) { pipeline in
                try pipeline.addHandlers(
                    ByteToMessageHandler(LineFrameDecoder(maximumLineLength: maximumLineBytes)),
                    PushedEventSplitter(events: pushed),
                    UnaskedAnswerCatcher(unasked: unasked),
                    RequestResponseHandler<ByteBuffer, InboundFrame>()
                )
            }
            .connect(host: host, port: port).get()
            return ProtocolClient(channel: channel, unaskedAnswer: unasked.futureResult, events: events)
        } catch {
            pushed.finish()
            unasked.fail(UnaskedAnswerCatcher.NoUnaskedAnswer())
            throw ClientError("cannot connect to \(host):\(port): \(error)")
        }
    }

    /// A bootstrap for a connection to one of the services at `host`: no Nagle delay, a 5 s
    /// connect timeout, TLS first in the pipeline when `tls` is given (the server's certificate
    /// is verified for `host`), then the handlers `handlers` adds. For clients of the protocol
    /// that are not a `ProtocolClient` (the bench's load generator).
    public static func bootstrap(
        group: any EventLoopGroup,
        host: String,
        tls: NIOSSLContext?,
        handlers: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) -> ClientBootstrap {
        ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // An IP address is checked against the certificate's IP names (SNI takes names only).
                        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : host)
                        )
                    }
                    try handlers(channel.pipeline.syncOperations)
                }
            }
    }

    /// Connects to an address written `host:port` (over TLS with `tls`).
    public static func connect(address: String, tls: NIOSSLContext? = nil) async throws -> ProtocolClient {
        let (host, port) = try parseAddress(address)
        return try await connect(host: host, port: port, tls: tls)
    }

    /// Sends `request` and returns the answer.
    public func request(_ request: JSON) async throws -> JSON {
        try Self.parseAnswer(try await send(line: request.serialized))
    }

    /// Sends many requests at once (pipelined) and returns their answers in order.
    public func pipeline(_ requests: [JSON]) async throws -> [JSON] {
        try await pipeline(lines: requests.map(\.serialized)).map(Self.parseAnswer)
    }

    /// Sends already-serialized request lines at once (pipelined) and returns the answer lines in order.
    public func pipeline(lines: [String]) async throws -> [String] {
        try await begin(lines: lines).lines()
    }

    /// The answer lines of `answers`, in order. When the connection ends before they came, a
    /// refusal the server sent before any request (why it closed) answers the first of them.
    fileprivate func answerLines(_ answers: [EventLoopFuture<InboundFrame>]) async throws -> [String] {
        var lines: [String] = []
        lines.reserveCapacity(answers.count)
        for answer in answers {
            do {
                lines.append(try await Self.line(of: answer))
            } catch {
                guard lines.isEmpty, let refusal = try? await unaskedAnswer.get(), case .line(let text) = refusal
                else { throw error }
                // The rest of the requests were never read: the connection is gone.
                if answers.count > 1 {
                    throw ClientError("the server refused the connection: \(String(buffer: text))")
                }
                return [String(buffer: text)]
            }
        }
        return lines
    }

    /// Sends one raw line (a newline is added) and returns the raw answer line.
    public func send(line: String) async throws -> String {
        try await pipeline(lines: [line])[0]
    }

    /// Sends request lines at once (pipelined) and returns their answers to wait for later: a
    /// client that keeps a number of requests in flight sends the next one as each answer comes.
    public func begin(lines: [String]) -> PendingAnswers {
        let answers = lines.map { line -> EventLoopFuture<InboundFrame> in
            var buffer = channel.allocator.buffer(capacity: line.utf8.count + 1)
            buffer.writeString(line)
            buffer.writeInteger(UInt8(ascii: "\n"))
            return enqueue(buffer)
        }
        channel.flush()
        return PendingAnswers(client: self, futures: answers)
    }

    /// Answers the caller will wait for after requests sent with `begin(lines:)`, or after raw
    /// writes (`write(raw:)`), registered before the writes so that no answer arrives with
    /// nobody expecting it.
    public struct PendingAnswers: Sendable {
        fileprivate let client: ProtocolClient
        fileprivate let futures: [EventLoopFuture<InboundFrame>]

        /// The answer lines, in order, once they all arrived.
        public func lines() async throws -> [String] {
            try await client.answerLines(futures)
        }
    }

    /// Expects the next `count` answers, for tests of framing that write raw bytes: a partial
    /// line, several lines in one write, an over-long line in pieces.
    public func expectAnswers(_ count: Int) -> PendingAnswers {
        let futures = (0..<count).map { _ in enqueue(channel.allocator.buffer(capacity: 0)) }
        channel.flush()
        return PendingAnswers(client: self, futures: futures)
    }

    /// Writes raw bytes as they are, expecting no answer to them (a partial line).
    public func write(raw bytes: [UInt8]) async throws {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        let written = channel.eventLoop.makePromise(of: Void.self)
        let channel = self.channel
        let bytesToWrite = buffer
        // Written below the request/response handler, which wants a promise with every write.
        channel.eventLoop.execute {
            do {
                let context = try channel.pipeline.syncOperations.context(
                    handlerType: UnaskedAnswerCatcher.self
                )
                context.writeAndFlush(NIOAny(bytesToWrite), promise: written)
            } catch {
                written.fail(error)
            }
        }
        try await written.futureResult.get()
    }

    /// Waits for the next answer line without sending anything.
    public func readLine() async throws -> String {
        try await expectAnswers(1).lines()[0]
    }

    /// Shuts down our sending side (half-close); answers can still be read.
    public func shutdownOutput() async throws {
        try await channel.close(mode: .output)
    }

    public func close() async {
        try? await channel.close()
    }

    private func enqueue(_ bytes: ByteBuffer) -> EventLoopFuture<InboundFrame> {
        let promise = channel.eventLoop.makePromise(of: InboundFrame.self)
        let exchange: Exchange = (bytes, promise)
        // A write that cannot be made (the connection is closed and its handlers are gone)
        // must fail the answer too, or its caller would wait forever.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { promise.fail($0) }
        channel.write(exchange, promise: written)
        return promise.futureResult
    }

    fileprivate static func line(of answer: EventLoopFuture<InboundFrame>) async throws -> String {
        let frame: InboundFrame
        do {
            frame = try await answer.get()
        } catch is NIOExtrasErrors.ClosedBeforeReceivingResponse {
            throw ClientError("the server closed the connection")
        } catch let error as ChannelError where error == .ioOnClosedChannel || error == .alreadyClosed {
            throw ClientError("the server closed the connection")
        } catch {
            throw ClientError("connection error: \(error)")
        }
        switch frame {
        case .line(let buffer): return String(buffer: buffer)
        case .lineTooLong, .overBudget: throw ClientError("the server's answer was longer than this client accepts")
        }
    }

    private static func parseAnswer(_ line: String) throws -> JSON {
        do { return try JSONParser.parse(line) } catch {
            throw ClientError("the server sent a line that is not JSON: \(error)")
        }
    }
}

/// Splits `host:port` (or `[v6]:port`) into its host (empty when not given) and port.
public func splitAddress(_ address: String) -> (host: String, port: Int)? {
    guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
        (0...65535).contains(port)
    else { return nil }
    var host = String(address[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host, port)
}

/// Parses an address to connect to, `host:port`; no host means this machine.
public func parseAddress(_ address: String) throws -> (host: String, port: Int) {
    guard let (host, port) = splitAddress(address) else {
        throw ClientError("'\(address)' is not an address; write host:port")
    }
    return (host.isEmpty ? "127.0.0.1" : host, port)
}

/// Sits before the `RequestResponseHandler`, which takes an answer nobody asked for as an error
/// and loses it: the first such answer (a server's refusal, sent before any request) is kept in
/// a promise instead. Counts the requests written below it; touched only on the event loop.
/// Takes the lines the server pushed out of the answers' way: a line that holds `"event":` is
/// parsed, and one whose top level has `event` and no `ok` goes to the client's `events`.
final class PushedEventSplitter: ChannelInboundHandler {
    typealias InboundIn = InboundFrame
    typealias InboundOut = InboundFrame

    private static let marker = Array(#""event":"#.utf8)
    private let events: AsyncStream<JSON>.Continuation

    init(events: AsyncStream<JSON>.Continuation) { self.events = events }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        if case .line(let buffer) = frame, Self.contains(Self.marker, in: buffer),
            let line = try? JSONParser.parse(Array(buffer.readableBytesView)), line["event"] != nil, line["ok"] == nil
        {
            events.yield(line)
            return
        }
        context.fireChannelRead(data)
    }

    /// Whether `needle` occurs in `buffer`'s readable bytes. A plain byte loop: the standard
    /// library's generic `firstRange(of:)` took 4 ms to search a 26 KB answer, which every
    /// answer paid (the read bench timed it as the server's).
    static func contains(_ needle: [UInt8], in buffer: ByteBuffer) -> Bool {
        guard let first = needle.first else { return true }
        return buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count >= needle.count else { return false }
            var start = 0
            while start <= bytes.count - needle.count {
                if bytes[start] == first {
                    var matched = 1
                    while matched < needle.count, bytes[start + matched] == needle[matched] { matched += 1 }
                    if matched == needle.count { return true }
                }
                start += 1
            }
            return false
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        events.finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        events.finish()
    }
}

final class UnaskedAnswerCatcher: ChannelDuplexHandler {
    typealias InboundIn = InboundFrame
    typealias InboundOut = InboundFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct NoUnaskedAnswer: Error {}

    private let unasked: EventLoopPromise<InboundFrame>
    private var awaitedAnswers = 0

    init(unasked: EventLoopPromise<InboundFrame>) { self.unasked = unasked }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        awaitedAnswers += 1
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard awaitedAnswers > 0 else {
            unasked.succeed(Self.unwrapInboundIn(data))
            return
        }
        awaitedAnswers -= 1
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        unasked.fail(NoUnaskedAnswer())
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        unasked.fail(NoUnaskedAnswer())
    }
}
