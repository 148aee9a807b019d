import Logging
import NIOConcurrencyHelpers
import NIOSSL
import RootcausesJSON
import RootcausesTransport
import ServiceLifecycle

/// Tells aggregation instances that new submissions are committed.
///
/// A nudge is only a hint (aggregation also hears every numbering from PostgreSQL, and catches
/// up on a timer), so it never delays or fails an acknowledgement: nudges are coalesced into
/// the newest seq and sent in the background.
public final class AggregationNudger: Service, Sendable {
    private let addresses: [String]
    /// The key intake nudges with (aggregation's `nudge` needs `admin`).
    private let token: String?
    /// TLS to aggregation, when its ports speak it.
    private let tls: NIOSSLContext?
    private let logger: Logger
    private let stream: AsyncStream<Int64>
    private let continuation: AsyncStream<Int64>.Continuation

    /// Without a `token` no nudge is sent: aggregation still hears every numbering from
    /// PostgreSQL (it listens), and catches up on its poll.
    public init(addresses: [String], token: String?, tls: NIOSSLContext? = nil, logger: Logger) {
        self.addresses = addresses
        self.token = token
        self.tls = tls
        self.logger = logger
        if token == nil {
            logger.warning(
                "no key to nudge aggregation with: it learns of new submissions from PostgreSQL and its poll"
            )
        }
        (stream, continuation) = AsyncStream.makeStream(of: Int64.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func nudge(seq: Int64) {
        guard token != nil else { return }
        continuation.yield(seq)
    }

    public func run() async throws {
        let clients = NudgeConnections(token: token, tls: tls)
        await withGracefulShutdownHandler {
            for await seq in stream {
                // All instances at once, each with a deadline: one stuck instance must not
                // delay the nudges of the others.
                await withTaskGroup(of: Void.self) { group in
                    for address in addresses {
                        group.addTask { await self.nudge(address, seq: seq, clients: clients) }
                    }
                }
            }
        } onGracefulShutdown: { [continuation] in
            continuation.finish()
        }
        await clients.closeAll()
    }

    private func nudge(_ address: String, seq: Int64, clients: NudgeConnections) async {
        guard await clients.mayNudge(address) else { return }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let client = try await clients.client(for: address)
                    let answer = try await client.request(["op": "nudge", "seq": .int(seq)])
                    guard answer["ok"] == .bool(true) else {
                        throw RefusedNudge(code: answer["error"]?["code"]?.stringValue ?? "error")
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(500))
                    // Closing the connection fails the request still waiting, so the group can end.
                    await clients.drop(address)
                    throw ClientError("no answer to the nudge within 500 ms")
                }
                try await group.next()
                group.cancelAll()
            }
            await clients.delivered(address)
        } catch {
            // Aggregation may be down or restarting; it catches up by itself.
            logger.debug("nudge not delivered", metadata: ["address": "\(address)", "error": "\(error)"])
            await clients.drop(address)
            // A refused key would be refused again at every nudge, and each refusal counts
            // against this host's address there (throttling every client on it): pause instead.
            let refused = (error as? RefusedNudge)?.isAboutTheKey ?? "\(error)".contains("the key was refused")
            if refused {
                if await clients.pause(address, for: .seconds(60)) {
                    logger.warning(
                        "aggregation refused intake's key; nudges to it paused for 60 s (it still hears commits from PostgreSQL)",
                        metadata: ["address": "\(address)", "error": "\(error)"]
                    )
                }
            } else {
                await clients.failed(address)
            }
        }
    }
}

/// When to try an address again after nudges to it failed: not before a delay that doubles
/// with each failure in a row, from `first` up to `longest`; at once again after a success.
///
/// Without it, an instance that is down (stopped, restarting, scaled in) cost intake a
/// connection attempt, and a name resolution, at every commit: a twentieth of intake's CPU
/// under a steady load. Nudges are hints, so skipping them loses nothing.
struct NudgeBackoff: Sendable {
    let first: Duration
    let longest: Duration
    private var failures: [String: (delay: Duration, retryAt: ContinuousClock.Instant)] = [:]

    init(first: Duration = .milliseconds(100), longest: Duration = .seconds(5)) {
        self.first = first
        self.longest = longest
    }

    /// Whether a nudge to `address` may be tried at `now`.
    func mayTry(_ address: String, at now: ContinuousClock.Instant) -> Bool {
        failures[address].map { now >= $0.retryAt } ?? true
    }

    /// A nudge to `address` failed at `now`; returns how long it now waits.
    @discardableResult
    mutating func failed(_ address: String, at now: ContinuousClock.Instant) -> Duration {
        let delay = failures[address].map { min($0.delay * 2, longest) } ?? min(first, longest)
        failures[address] = (delay, now + delay)
        return delay
    }

    /// A nudge to `address` went through.
    mutating func succeeded(_ address: String) {
        failures[address] = nil
    }
}

/// A nudge aggregation answered with an error.
private struct RefusedNudge: Error, CustomStringConvertible {
    var code: String
    var isAboutTheKey: Bool { ["unauthenticated", "forbidden", "throttled"].contains(code) }
    var description: String { "aggregation answered \(code)" }
}

/// One open connection per aggregation address, reopened after a failure; none to an address
/// whose refusals paused it.
private actor NudgeConnections {
    private let token: String?
    private let tls: NIOSSLContext?
    private var open: [String: ProtocolClient] = [:]
    private var pausedUntil: [String: ContinuousClock.Instant] = [:]
    private var backoff = NudgeBackoff()

    /// Pauses nudges to `address`; false when they were paused already.
    func pause(_ address: String, for duration: Duration) -> Bool {
        let wasPaused = pausedUntil[address].map { $0 > .now } ?? false
        pausedUntil[address] = .now.advanced(by: duration)
        return !wasPaused
    }

    init(token: String?, tls: NIOSSLContext?) {
        self.token = token
        self.tls = tls
    }

    /// Whether to nudge `address` now: not while its key's refusals pause it, nor while it
    /// backs off after failures.
    func mayNudge(_ address: String) -> Bool {
        let now = ContinuousClock.now
        if let until = pausedUntil[address], until > now { return false }
        return backoff.mayTry(address, at: now)
    }

    func failed(_ address: String) {
        backoff.failed(address, at: .now)
    }

    func delivered(_ address: String) {
        backoff.succeeded(address)
    }

    /// The open connection to `address`, or a new one. A new one is kept before its key is
    /// checked, so that the nudge's deadline (`drop`) closes it, ending an `auth` left
    /// unanswered (an instance that accepts connections and hangs would otherwise hold every
    /// later round of nudges).
    func client(for address: String) async throws -> ProtocolClient {
        if let client = open[address] { return client }
        let client = try await ProtocolClient.connect(address: address, tls: tls)
        open[address] = client
        if let token { try await client.authenticate(token: token) }
        return client
    }

    func drop(_ address: String) async {
        await open.removeValue(forKey: address)?.close()
    }

    func closeAll() async {
        for client in open.values { await client.close() }
        open = [:]
    }
}
