import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RootcausesJSON
import ServiceLifecycle

/// What a service does with requests; the server handles framing, envelope, `hello` and `ping`.
public protocol RequestHandler: Sendable {
    /// `intake`, `aggregation` or `reporting`.
    var serviceName: String { get }
    /// The ops this handler answers (besides `hello` and `ping`).
    var operations: [String] { get }
    /// Answers one request with the result fields of a success, or throws a `ProtocolError`.
    func handle(_ request: Request, logger: Logger) async throws(ProtocolError) -> [(String, JSON)]
}

/// A TCP server for the line-delimited JSON protocol.
///
/// Each connection is served by one task: requests are answered one at a time, in order, so
/// pipelined requests get their answers in request order. On graceful shutdown the server stops
/// accepting, lets every connection finish the request it is working on, then closes them.
public final class ProtocolServer: Service, Sendable {
    public let host: String
    public let port: Int
    public let maximumLineBytes: Int
    public let version: String
    private let handler: any RequestHandler
    private let logger: Logger
    private let group: any EventLoopGroup
    private let connections = ConnectionRegistry()

    public init(
        host: String, port: Int, maximumLineBytes: Int, version: String,
        handler: any RequestHandler, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.maximumLineBytes = maximumLineBytes
        self.version = version
        self.handler = handler
        self.logger = logger
        self.group = group
    }

    public func run() async throws {
        let maximumLineBytes = self.maximumLineBytes
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(LineFrameDecoder(maximumLineLength: maximumLineBytes)))
                    return try NIOAsyncChannel<InboundFrame, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        logger.info("listening", metadata: ["service": "\(handler.serviceName)", "address": "\(host):\(port)"])
        let serverChannel = server.channel
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: { [connections, logger] in
            logger.info("shutting down: no new connections, finishing requests in flight")
            serverChannel.close(promise: nil)
            connections.beginShutdown()
        }
        logger.info("stopped", metadata: ["service": "\(handler.serviceName)"])
    }

    private func serve(_ connection: NIOAsyncChannel<InboundFrame, ByteBuffer>) async {
        let channel = connection.channel
        let peer = channel.remoteAddress?.description ?? "unknown"
        var logger = self.logger
        logger[metadataKey: "peer"] = "\(peer)"
        guard let token = connections.register(channel) else {
            channel.close(promise: nil)
            return
        }
        defer { connections.unregister(token) }
        do {
            try await connection.executeThenClose { inbound, _ in
                for try await frame in inbound {
                    guard connections.markBusy(token) else { break }
                    let answer = await respond(to: frame, logger: logger)
                    if let answer {
                        // Written on the channel and awaited until it reached the socket: the
                        // outbound writer's finish-then-close would drop an answer still queued
                        // (a large one, or the last before a half-close or shutdown).
                        try await channel.writeAndFlush(Response.encode(answer, allocator: channel.allocator))
                    }
                    guard connections.markIdle(token) else { break }
                }
            }
        } catch {
            logger.debug("connection ended with an error", metadata: ["error": "\(error)"])
        }
    }

    /// The answer to one frame; `nil` for an empty line.
    func respond(to frame: InboundFrame, logger: Logger) async -> JSON? {
        let line: ByteBuffer
        switch frame {
        case .lineTooLong(let limit):
            return Response.failure(id: .null, ProtocolError(.lineTooLong,
                "the line is longer than \(limit) bytes; it was discarded", details: [["limit": .int(limit)]]))
        case .line(let buffer):
            line = buffer
        }
        if line.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
        let request: Request
        switch Request.parse(line: line) {
        case .success(let parsed): request = parsed
        case .failure(let failure): return Response.failure(id: failure.id, failure.error)
        }
        var logger = logger
        logger[metadataKey: "op"] = "\(request.op)"
        switch request.op {
        case "hello":
            if let asked = request.body["protocol"], !asked.isNull, asked.int64Value == nil {
                return Response.failure(id: request.id, ProtocolError(.invalidRequest, "'protocol' must be an integer version number",
                    details: [["path": "protocol", "code": "wrong_type", "message": "'protocol' must be an integer"]]))
            }
            if let asked = request.body["protocol"], !asked.isNull, asked.int64Value != Int64(protocolVersion) {
                return Response.failure(id: request.id, ProtocolError(.unsupportedProtocol,
                    "this server speaks protocol version \(protocolVersion)", details: [["supported": [.int(protocolVersion)]]]))
            }
            return Response.success(id: request.id, [
                ("service", .string(handler.serviceName)),
                ("protocol", .int(protocolVersion)),
                ("version", .string(version)),
                ("ops", .array((["hello", "ping"] + handler.operations).map(JSON.string))),
            ])
        case "ping":
            return Response.success(id: request.id, [("pong", true)])
        case let op where handler.operations.contains(op):
            do {
                let fields = try await handler.handle(request, logger: logger)
                return Response.success(id: request.id, fields)
            } catch {
                if error.code == .internal {
                    logger.error("request failed", metadata: ["error": "\(error.message)"])
                }
                return Response.failure(id: request.id, error)
            }
        default:
            return Response.failure(id: request.id, ProtocolError(.unknownOp,
                "'\(request.op)' is not an operation of \(handler.serviceName)",
                details: [["supported": .array((["hello", "ping"] + handler.operations).map(JSON.string))]]))
        }
    }
}

/// Tracks open connections so a graceful shutdown closes idle ones at once and busy ones
/// right after their request in flight.
final class ConnectionRegistry: Sendable {
    private struct Entry {
        let channel: any Channel
        var busy: Bool
    }
    private struct State {
        var next = 0
        var entries: [Int: Entry] = [:]
        var shuttingDown = false
    }
    private let state = NIOLockedValueBox(State())

    func register(_ channel: any Channel) -> Int? {
        state.withLockedValue { state in
            guard !state.shuttingDown else { return nil }
            state.next += 1
            state.entries[state.next] = Entry(channel: channel, busy: false)
            return state.next
        }
    }

    func unregister(_ token: Int) {
        state.withLockedValue { _ = $0.entries.removeValue(forKey: token) }
    }

    /// Returns false when shutting down: the request must not be started.
    func markBusy(_ token: Int) -> Bool {
        state.withLockedValue { state in
            guard !state.shuttingDown else { return false }
            state.entries[token]?.busy = true
            return true
        }
    }

    /// Returns false when shutting down: the connection should close now.
    func markIdle(_ token: Int) -> Bool {
        state.withLockedValue { state in
            state.entries[token]?.busy = false
            return !state.shuttingDown
        }
    }

    func beginShutdown() {
        let idle = state.withLockedValue { state -> [any Channel] in
            state.shuttingDown = true
            return state.entries.values.filter { !$0.busy }.map(\.channel)
        }
        for channel in idle { channel.close(promise: nil) }
    }
}
