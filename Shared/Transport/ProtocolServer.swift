import CMalloc
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RootcausesJSON
import RootcausesProtocol
import ServiceLifecycle
import Synchronization

/// How much one process lets its clients hold.
public struct ConnectionLimits: Sendable {
    /// The longest request line, in bytes.
    public var maximumLineBytes: Int
    /// Connections served at once; one more is answered `overloaded` and closed.
    public var maximumConnections: Int
    /// Bytes all connections together may hold in incomplete lines.
    public var maximumBufferedBytes: Int
    /// A connection that sends nothing for this long, with no request in progress, is closed.
    public var idleTimeout: Duration

    public init(
        maximumLineBytes: Int = 1 << 20,
        maximumConnections: Int = 1024,
        maximumBufferedBytes: Int = 64 << 20,
        idleTimeout: Duration = .seconds(600)
    ) {
        self.maximumLineBytes = maximumLineBytes
        self.maximumConnections = maximumConnections
        self.maximumBufferedBytes = maximumBufferedBytes
        self.idleTimeout = idleTimeout
    }
}

/// A TCP server for the line-delimited JSON protocol.
///
/// Each connection is served by two tasks: one reads and starts its requests one after the
/// other (an overlapping op lets the next start once its ordered part is done; see
/// `Operation.overlapping`), the other writes their answers in request order. A failure while
/// setting up or serving one connection closes that connection only. On graceful shutdown the
/// server stops accepting, lets every connection finish the requests it is working on, then
/// closes them.
public final class ProtocolServer: Service, Sendable {
    public let host: String
    public let port: Int
    public let limits: ConnectionLimits
    private let responder: Responder
    private let logger: Logger
    private let group: any EventLoopGroup
    private let configureConnection: @Sendable (any Channel) throws -> Void
    /// When set, every connection speaks TLS (a plain-text client gets `tls_required`).
    private let tls: NIOSSLContext?
    private let connections: ConnectionRegistry
    private let budget: BufferBudget
    private let boundPort = Atomic<Int>(0)
    private let metrics = ConnectionMetrics()

    /// `configureConnection` runs on each accepted channel before it is served (by default it
    /// turns Nagle's algorithm off); if it throws, that connection is closed and logged.
    public init(
        host: String,
        port: Int,
        limits: ConnectionLimits = ConnectionLimits(),
        responder: Responder,
        logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        tls: NIOSSLContext? = nil,
        configureConnection: @escaping @Sendable (any Channel) throws -> Void = ProtocolServer.disableNagle
    ) {
        self.tls = tls
        self.host = host
        self.port = port
        self.limits = limits
        self.responder = responder
        self.logger = logger
        self.group = group
        self.configureConnection = configureConnection
        self.connections = ConnectionRegistry(maximumConnections: limits.maximumConnections)
        self.budget = BufferBudget(limit: limits.maximumBufferedBytes)
    }

    /// Answers are small and come one per request: sending each at once matters more than
    /// filling packets. TCP_NODELAY is a TCP-level option (at the socket level its number is
    /// SO_DEBUG, which an unprivileged process may not set).
    @Sendable public static func disableNagle(_ channel: any Channel) throws {
        try channel.syncOptions?.setOption(.tcpOption(.tcp_nodelay), value: 1)
    }

    /// The port actually bound (useful with port 0); 0 until listening.
    public var listeningPort: Int { boundPort.load(ordering: .relaxed) }

    /// Connections open now.
    public var openConnections: Int { connections.count }

    public func run() async throws {
        let limits = self.limits
        let budget = self.budget
        let configureConnection = self.configureConnection
        let tls = self.tls
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(host: host, port: port) { channel in
                // Never fail here: a failed child initializer ends the whole accept loop.
                channel.eventLoop.makeCompletedFuture { () -> AcceptedConnection in
                    do {
                        try configureConnection(channel)
                        if let tls { try channel.pipeline.syncOperations.addHandler(TLSRequiredHandler(context: tls)) }
                        let pending = PendingLines(budget: budget)
                        try channel.pipeline.syncOperations.addHandlers(
                            // Reads and writes both count as activity: an answer written after
                            // a long request restarts the clock.
                            IdleStateHandler(allTimeout: TimeAmount(limits.idleTimeout)),
                            IdleConnectionCloser(pending: pending),
                            ByteToMessageHandler(
                                LineFrameDecoder(maximumLineLength: limits.maximumLineBytes, pending: pending)
                            )
                        )
                        // Decoded lines waiting in the channel's queue stay charged to the budget
                        // (PendingLines), so the queue's default depth bounds nothing that matters;
                        // a depth of 2 cost a fifth of intake's throughput in `rootcauses bench`.
                        let wrapped = try NIOAsyncChannel<InboundFrame, ByteBuffer>(
                            wrappingChannelSynchronously: channel
                        )
                        return .ready(wrapped, pending)
                    } catch {
                        channel.close(promise: nil)
                        return .failed(error, peer: channel.remoteAddress?.description ?? "unknown")
                    }
                }
            }
        boundPort.store(server.channel.localAddress?.port ?? port, ordering: .relaxed)
        logger.info(
            "listening",
            metadata: ["service": "\(responder.registry.service)", "address": "\(host):\(listeningPort)"]
        )
        let serverChannel = server.channel
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await accepted in inbound {
                        switch accepted {
                        case .ready(let connection, let pending):
                            group.addTask { await self.serve(connection, pending: pending) }
                        case .failed(let error, let peer):
                            logger.warning(
                                "connection set-up failed; closed it",
                                metadata: ["peer": "\(peer)", "error": "\(error)"]
                            )
                        }
                    }
                }
            }
        } onGracefulShutdown: { [connections, logger] in
            logger.info("shutting down: no new connections, finishing requests in flight")
            serverChannel.close(promise: nil)
            connections.beginShutdown()
        }
        logger.info("stopped", metadata: ["service": "\(responder.registry.service)"])
    }

    private func serve(_ connection: NIOAsyncChannel<InboundFrame, ByteBuffer>, pending: PendingLines) async {
        // Lines still queued when the connection ends will never be answered: free their share.
        defer { pending.releaseAll() }
        let channel = connection.channel
        var logger = self.logger
        logger[metadataKey: "peer"] = "\(channel.remoteAddress?.description ?? "unknown")"
        let token: Int
        switch connections.register(channel) {
        case .registered(let registered):
            token = registered
            metrics.opened()
        case .shuttingDown:
            try? await connection.executeThenClose { _, _ in }
            return
        case .full:
            metrics.refused.increment()
            logger.warning(
                "connection refused: too many connections",
                metadata: ["limit": "\(limits.maximumConnections)"]
            )
            let refusal = Response.failure(
                id: .null,
                ProtocolError(
                    .overloaded,
                    "the server is serving its maximum of \(limits.maximumConnections) connections; retry later",
                    details: [["limit": .int(limits.maximumConnections)]]
                )
            )
            try? await connection.executeThenClose { _, outbound in
                try await outbound.write(Response.encode(refusal, allocator: channel.allocator))
            }
            return
        }
        defer {
            connections.unregister(token)
            metrics.closed()
            returnMemoryAfterBurst()
        }
        // A connection's requests start one after the other, each once the one before it is
        // answered, or (an overlapping op) has let the connection go on; the session is only
        // touched there, so it needs no lock. The answers go out in request order, written by a
        // second task as they come.
        let events = ConnectionEvents(channel: channel)
        defer { events.closed() }
        let progress = AnswerProgress()
        var session = Session(peer: Self.host(of: channel.remoteAddress), events: events)
        let (queue, enqueue) = AsyncStream.makeStream(of: QueuedAnswer.self)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.writeAnswers(
                    queue,
                    channel: channel,
                    token: token,
                    events: events,
                    pending: pending,
                    progress: progress
                )
            }
            do {
                try await connection.executeThenClose { inbound, _ in
                    var started = 0
                    for try await frame in inbound {
                        // No request starts once its answer could not be written (the peer is
                        // gone, or the serve task was cancelled).
                        guard !progress.isAbandoned, !Task.isCancelled, connections.beginRequest(token) else { break }
                        started += 1
                        let earlier = started - 1
                        session.earlierRequestsAnswered = { await progress.waitUntilWritten(earlier) }
                        let (answer, keepOpen) = await begin(frame, session: &session, logger: logger)
                        enqueue.yield(QueuedAnswer(answer: answer, frame: frame, keepOpen: keepOpen))
                        guard keepOpen else { break }
                        // Bounds the requests a connection has in the works at once.
                        await progress.waitUntilWritten(started - Self.maximumOverlappingRequests)
                    }
                    enqueue.finish()
                    // The channel stays open until every answer is written.
                    await group.waitForAll()
                }
            } catch {
                logger.debug("connection ended with an error", metadata: ["error": "\(error)"])
            }
            enqueue.finish()
        }
    }

    /// Requests one connection may have started and not yet had answered.
    static let maximumOverlappingRequests = 32

    /// Writes a connection's answers in request order, each once it is there; closes the
    /// connection after an answer that ends it, or when the server shuts down and nothing is
    /// left to answer.
    private func writeAnswers(
        _ queue: AsyncStream<QueuedAnswer>,
        channel: any Channel,
        token: Int,
        events: ConnectionEvents,
        pending: PendingLines,
        progress: AnswerProgress
    ) async {
        var writable = true
        // Ended early only by cancellation: nobody may wait for answers that will not come.
        defer { progress.abandon() }
        for await queued in queue {
            let answer = await queued.answer.value
            if writable, let answer {
                do {
                    // Written on the channel and awaited until it reached the socket: the
                    // outbound writer's finish-then-close would drop an answer still queued
                    // (a large one, or the last before a half-close or shutdown).
                    try await channel.writeAndFlush(Response.encode(answer, allocator: channel.allocator))
                } catch {
                    // The peer is gone: later answers are still awaited (their work goes on)
                    // but not written.
                    writable = false
                    progress.abandon()
                    channel.close(promise: nil)
                }
            }
            events.answered(succeeded: writable && answer?["ok"] == true)
            if case .line(let line) = queued.frame { pending.answered(line) }
            progress.recordWritten()
            let stayOpen = connections.endRequest(token)
            if !queued.keepOpen || !stayOpen { channel.close(promise: nil) }
        }
    }

    /// The answer to one frame (`nil` for a blank line), maybe still being worked out, and
    /// whether the connection stays open.
    func begin(
        _ frame: InboundFrame,
        session: inout Session,
        logger: Logger
    ) async -> (answer: PendingAnswer, keepOpen: Bool) {
        switch frame {
        case .lineTooLong(let limit):
            metrics.linesTooLong.increment()
            return (
                .ready(
                    Response.failure(
                        id: .null,
                        ProtocolError(
                            .lineTooLong,
                            "the line is longer than \(limit) bytes; it was discarded",
                            details: [["limit": .int(limit)]]
                        )
                    )
                ), true
            )
        case .overBudget(let limit):
            metrics.overBudget.increment()
            logger.warning("connection closed: the process's buffer budget is spent", metadata: ["limit": "\(limit)"])
            return (
                .ready(
                    Response.failure(
                        id: .null,
                        ProtocolError(
                            .overloaded,
                            "the server is holding too much unfinished input from its clients; this connection is closed, retry later",
                            details: [["limit": .int(limit)]]
                        )
                    )
                ), false
            )
        case .line(let line):
            return (await responder.begin(line.readableBytesView, session: &session, logger: logger), true)
        }
    }

    /// The peer's IP address without its port: failed `auth` attempts are counted per host.
    static func host(of address: SocketAddress?) -> String {
        address?.ipAddress ?? address?.description ?? "unknown"
    }

    /// Hands freed memory back to the system once a burst of large buffers is over: glibc keeps
    /// freed heap for reuse, so a process would otherwise stay at its high-water mark.
    private func returnMemoryAfterBurst() {
        guard budget.heldBytes < 1 << 20 else { return }
        guard budget.takeReleasedBytes(atLeast: 4 << 20) else { return }
        _ = rootcauses_malloc_trim()
    }
}

extension Response {
    /// The JSON text of `response` plus `\n`, in a buffer.
    public static func encode(_ response: JSON, allocator: ByteBufferAllocator) -> ByteBuffer {
        var bytes = [UInt8]()
        bytes.reserveCapacity(256)
        response.write(into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }
}

/// The server's connection metrics, created once.
struct ConnectionMetrics: Sendable {
    /// Connections open now.
    let open = Meter(label: "rootcauses_connections")
    /// Connections served since start.
    let accepted = Counter(label: "rootcauses_connections_accepted_total")
    /// Connections refused at the connection limit (`overloaded`).
    let refused = Counter(label: "rootcauses_connections_refused_total")
    /// Lines discarded for their length (`line_too_long`).
    let linesTooLong = Counter(label: "rootcauses_lines_too_long_total")
    /// Connections closed because all clients together held too much unfinished input.
    let overBudget = Counter(label: "rootcauses_connections_over_budget_total")

    func opened() {
        open.increment()
        accepted.increment()
    }

    func closed() { open.decrement() }
}

/// An accepted connection, ready to serve, or the reason its set-up failed.
enum AcceptedConnection: Sendable {
    case ready(NIOAsyncChannel<InboundFrame, ByteBuffer>, PendingLines)
    case failed(any Error, peer: String)
}

/// Closes a connection that neither sent nor received anything for the idle timeout while
/// none of its lines waited for an answer: a client waiting for a slow answer (a read waiting
/// for `min_seq`) or with requests queued is not idle.
final class IdleConnectionCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let pending: PendingLines

    init(pending: PendingLines) { self.pending = pending }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case IdleStateHandler.IdleStateEvent.all = event, pending.isEmpty {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Tracks open connections so a graceful shutdown closes idle ones at once and busy ones
/// right after the answers to their requests in flight, and so the process serves at most so
/// many at once.
final class ConnectionRegistry: Sendable {
    enum Registration {
        case registered(Int)
        case full
        case shuttingDown
    }
    private struct Entry {
        let channel: any Channel
        /// Requests started and not yet answered.
        var outstanding: Int
    }
    private struct State {
        var next = 0
        var entries: [Int: Entry] = [:]
        var shuttingDown = false
    }
    private let maximumConnections: Int
    private let state = NIOLockedValueBox(State())

    init(maximumConnections: Int) { self.maximumConnections = maximumConnections }

    var count: Int { state.withLockedValue { $0.entries.count } }

    func register(_ channel: any Channel) -> Registration {
        state.withLockedValue { state in
            guard !state.shuttingDown else { return .shuttingDown }
            guard state.entries.count < maximumConnections else { return .full }
            state.next += 1
            state.entries[state.next] = Entry(channel: channel, outstanding: 0)
            return .registered(state.next)
        }
    }

    func unregister(_ token: Int) {
        state.withLockedValue { _ = $0.entries.removeValue(forKey: token) }
    }

    /// Counts a request the connection starts; false when shutting down: it must not start.
    func beginRequest(_ token: Int) -> Bool {
        state.withLockedValue { state in
            guard !state.shuttingDown else { return false }
            state.entries[token]?.outstanding += 1
            return true
        }
    }

    /// Counts an answer written; false when the connection should close now (shutting down,
    /// with nothing left to answer).
    func endRequest(_ token: Int) -> Bool {
        state.withLockedValue { state in
            state.entries[token]?.outstanding -= 1
            return !state.shuttingDown || (state.entries[token]?.outstanding ?? 0) > 0
        }
    }

    func beginShutdown() {
        let idle = state.withLockedValue { state -> [any Channel] in
            state.shuttingDown = true
            return state.entries.values.filter { $0.outstanding == 0 }.map(\.channel)
        }
        for channel in idle { channel.close(promise: nil) }
    }
}

/// An answer in a connection's queue, with what it answers.
struct QueuedAnswer: Sendable {
    var answer: PendingAnswer
    var frame: InboundFrame
    /// False after an answer that ends the connection.
    var keepOpen: Bool
}

/// How many of a connection's answers are written, for requests that wait on earlier ones.
final class AnswerProgress: Sendable {
    private struct State {
        var written = 0
        /// No more answers will be written: waits end at once.
        var abandoned = false
        var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let state = Mutex(State())

    /// Whether answers are no longer written (see `abandon`).
    var isAbandoned: Bool { state.withLock { $0.abandoned } }

    /// No more answers will be written (the peer is gone, or the writer was cancelled): ends
    /// every wait, now and later.
    func abandon() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.abandoned = true
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        for continuation in waiting { continuation.resume() }
    }

    /// One more answer is written.
    func recordWritten() {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.written += 1
            let written = state.written
            var ready: [CheckedContinuation<Void, Never>] = []
            state.waiters.removeAll { waiter in
                guard waiter.count <= written else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once at least `count` answers are written, or they are abandoned.
    func waitUntilWritten(_ count: Int) async {
        if state.withLock({ $0.written >= count || $0.abandoned }) { return }
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                guard state.written < count, !state.abandoned else { return true }
                state.waiters.append((count, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }
}
