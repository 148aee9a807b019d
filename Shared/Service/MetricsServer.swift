import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import RootcausesJSON
import ServiceLifecycle
import Synchronization

/// A small HTTP server beside the protocol port (`--metrics-listen`), for what speaks HTTP:
/// Prometheus scrapes `GET /metrics`, orchestrators probe `GET /healthz` (live) and
/// `GET /readyz` (database reachable, schema current; 503 when not).
///
/// Written on NIOHTTP1 (already part of swift-nio) rather than with a web framework: three
/// read-only routes do not justify the build time and surface of one.
public final class MetricsServer: Service, Sendable {
    public let host: String
    public let port: Int
    private let registry: PrometheusCollectorRegistry
    private let health: HealthChecks
    private let logger: Logger
    private let group: any EventLoopGroup
    private let openConnections = Atomic<Int>(0)
    /// Scrapers and probes need a few connections; more are refused (closed at once).
    public static let maximumConnections = 64
    /// A connection that sends nothing for this long is closed (a slow or forgotten client).
    public static let idleTimeout = TimeAmount.seconds(30)

    public init(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry,
        health: HealthChecks,
        logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.registry = registry
        self.health = health
        self.logger = logger
        self.group = group
    }

    public func run() async throws {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        IdleStateHandler(readTimeout: MetricsServer.idleTimeout),
                        CloseWhenIdle()
                    )
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        logger.info(
            "metrics listening",
            metadata: ["address": "\(host):\(server.channel.localAddress?.port ?? port)"]
        )
        // Scrapers keep connections open between scrapes: on shutdown every connection is
        // cancelled (an answer being written is cut short, which a scraper retries), not waited for.
        do {
            try await cancelWhenGracefulShutdown {
                try await server.executeThenClose { inbound in
                    try await withThrowingDiscardingTaskGroup { group in
                        for try await connection in inbound {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                }
            }
        } catch  where Task.isShuttingDownGracefully || Task.isCancelled {
            // Stopped by the shutdown: not a failure.
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let open = openConnections.add(1, ordering: .relaxed).newValue
        defer { openConnections.subtract(1, ordering: .relaxed) }
        guard open <= Self.maximumConnections else {
            try? await connection.executeThenClose { _, _ in }
            return
        }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var request: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let head):
                        request = head
                    case .body:
                        continue
                    case .end:
                        guard let head = request else { continue }
                        request = nil
                        let (status, contentType, body) = await answer(head)
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: contentType)
                        headers.add(name: "Content-Length", value: "\(body.count)")
                        headers.add(name: "Cache-Control", value: "no-store")
                        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
                        try await outbound.write(
                            .head(HTTPResponseHead(version: head.version, status: status, headers: headers))
                        )
                        if head.method != .HEAD {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
                        }
                        try await outbound.write(.end(nil))
                        if !head.isKeepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("metrics connection ended with an error", metadata: ["error": "\(error)"])
        }
    }

    /// The status, content type and body for one request.
    func answer(_ head: HTTPRequestHead) async -> (HTTPResponseStatus, String, [UInt8]) {
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, "text/plain; charset=utf-8", Array("only GET and HEAD\n".utf8))
        }
        // The path without a query string.
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        switch path {
        case "/metrics":
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", bytes)
        case "/healthz":
            return (.ok, "application/json", Self.jsonLine(.object(health.liveness)))
        case "/readyz":
            let readiness = await health.readiness()
            return (readiness.ready ? .ok : .serviceUnavailable, "application/json", Self.jsonLine(readiness.json))
        default:
            return (
                .notFound, "text/plain; charset=utf-8", Array("not found: try /metrics, /healthz or /readyz\n".utf8)
            )
        }
    }

    private static func jsonLine(_ json: JSON) -> [UInt8] {
        var bytes: [UInt8] = []
        json.write(into: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}

/// Closes a connection when its `IdleStateHandler` reports it idle.
final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
