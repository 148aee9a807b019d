import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RootcausesJSON

/// Why a client call failed before an answer arrived.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A client connection for the line protocol, used by the CLI, by intake to nudge aggregation,
/// and by tests. Requests may be pipelined: each call writes a line and waits for the next
/// answer line, and answers arrive in request order.
public final class ProtocolClient: Sendable {
    private let channel: any Channel
    private let handler: ResponseCollector
    private let sendLock = NIOLock()

    private init(channel: any Channel, handler: ResponseCollector) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects to `host:port`.
    public static func connect(
        host: String, port: Int, maximumLineBytes: Int = 256 << 20,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ProtocolClient {
        let collector = ResponseCollector()
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(LineFrameDecoder(maximumLineLength: maximumLineBytes)))
                        try channel.pipeline.syncOperations.addHandler(collector)
                    }
                }
                .connect(host: host, port: port).get()
            return ProtocolClient(channel: channel, handler: collector)
        } catch {
            throw ClientError("cannot connect to \(host):\(port): \(error)")
        }
    }

    /// Connects to an address written `host:port`.
    public static func connect(address: String) async throws -> ProtocolClient {
        let (host, port) = try parseAddress(address)
        return try await connect(host: host, port: port)
    }

    /// Sends `request` and returns the answer.
    public func request(_ request: JSON) async throws -> JSON {
        let line = try await send(line: request.serialized)
        do { return try JSONParser.parse(line) } catch { throw ClientError("the server sent a line that is not JSON: \(error)") }
    }

    /// Sends many requests at once (pipelined) and returns their answers in order.
    public func pipeline(_ requests: [JSON]) async throws -> [JSON] {
        try await pipeline(lines: requests.map(\.serialized)).map { line in
            do { return try JSONParser.parse(line) } catch { throw ClientError("the server sent a line that is not JSON: \(error)") }
        }
    }

    /// Sends already-serialized request lines at once (pipelined) and returns the answer lines in order.
    public func pipeline(lines: [String]) async throws -> [String] {
        let futures = try lines.map { try enqueue(line: $0) }
        channel.flush()
        var answers: [String] = []
        answers.reserveCapacity(lines.count)
        for future in futures { answers.append(try await future.get()) }
        return answers
    }

    /// Sends one raw line (a newline is added) and returns the raw answer line.
    public func send(line: String) async throws -> String {
        let future = try enqueue(line: line)
        channel.flush()
        return try await future.get()
    }

    /// Writes raw bytes as they are (no newline added), for tests of framing.
    public func write(raw bytes: [UInt8]) async throws {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try await channel.writeAndFlush(buffer)
    }

    /// Waits for the next answer line that no request is waiting for (after `write(raw:)`).
    public func readLine() async throws -> String {
        let promise = channel.eventLoop.makePromise(of: String.self)
        sendLock.withLock { handler.expect(promise) }
        return try await promise.futureResult.get()
    }

    /// Shuts down our sending side (half-close); answers can still be read.
    public func shutdownOutput() async throws {
        try await channel.close(mode: .output)
    }

    public func close() async {
        try? await channel.close()
    }

    private func enqueue(line: String) throws -> EventLoopFuture<String> {
        let promise = channel.eventLoop.makePromise(of: String.self)
        var buffer = channel.allocator.buffer(capacity: line.utf8.count + 1)
        buffer.writeString(line)
        buffer.writeInteger(UInt8(ascii: "\n"))
        // Waiters and writes must line up one to one even when tasks share this client.
        sendLock.withLock {
            handler.expect(promise)
            channel.write(buffer, promise: nil)
        }
        return promise.futureResult
    }
}

/// Parses `host:port` (or `[v6]:port`).
public func parseAddress(_ address: String) throws -> (host: String, port: Int) {
    guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else {
        throw ClientError("'\(address)' is not an address; write host:port")
    }
    var host = String(address[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host.isEmpty ? "127.0.0.1" : host, port)
}

/// Completes waiting promises with answer lines, oldest first.
final class ResponseCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = InboundFrame

    private struct State {
        var waiting: [EventLoopPromise<String>] = []
        /// Lines that arrived before anyone asked for them.
        var unclaimed: [Result<String, ClientError>] = []
        /// Set once the connection is gone: later waiters fail at once.
        var closed: ClientError?
    }
    private let state = NIOLockedValueBox(State())

    func expect(_ promise: EventLoopPromise<String>) {
        let ready = state.withLockedValue { state -> Result<String, ClientError>? in
            if !state.unclaimed.isEmpty { return state.unclaimed.removeFirst() }
            if let closed = state.closed { return .failure(closed) }
            state.waiting.append(promise)
            return nil
        }
        if let ready { promise.completeWith(ready.mapError { $0 as any Error }) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line: Result<String, ClientError>
        switch Self.unwrapInboundIn(data) {
        case .line(let buffer): line = .success(String(buffer: buffer))
        case .lineTooLong: line = .failure(ClientError("the server's answer was longer than this client accepts"))
        }
        let next = state.withLockedValue { state -> EventLoopPromise<String>? in
            if state.waiting.isEmpty {
                state.unclaimed.append(line)
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.completeWith(line.mapError { $0 as any Error })
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(ClientError("the server closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(ClientError("connection error: \(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: ClientError) {
        let all = state.withLockedValue { state -> [EventLoopPromise<String>] in
            if state.closed == nil { state.closed = error }
            defer { state.waiting = [] }
            return state.waiting
        }
        for promise in all { promise.fail(error) }
    }
}
