import Foundation
import Logging
import Metrics
import RootcausesJSON
import RootcausesProtocol
import RootcausesService
import ServiceLifecycle
import Synchronization

/// Live totals: every subscription of this process, refreshed when the applied watermark moves.
///
/// One loop looks at the watermark at every applied pass (one cheap read however many
/// subscribers there are; ``ReportingOperations/init`` says when it polls instead). When it
/// moves, each distinct query is read once, pinned to the new watermark, and every subscriber
/// whose rows differ from what it was last offered gets an event. A subscriber holds at most
/// one event not yet written: a newer one replaces it, so a client that reads slowly gets the
/// latest state, never a queue, and its writer waits on its own socket without holding anyone
/// else's. Events of one subscription follow its acknowledgement and each other in seq order.
public final class SubscriptionHub: Service, Sendable {
    /// What a subscription reads: a totals request's filters and grouping, pinned by the hub.
    typealias Read =
        @Sendable (_ request: ReportingOperations.TotalsRequest, _ asOfSeq: Int64) async throws ->
        AnswerFields

    static let maximumPerConnection = 100
    static let concurrentReads = min(4, max(1, ProcessInfo.processInfo.activeProcessorCount))
    static let maximumPerProcess = 10_000

    /// One subscriber: its connection's sink, one event being written at most, and the newest
    /// one waiting behind it. Writes chain from the completion of the one before, on the
    /// connection's event loop: no task per subscriber, and nothing queues behind a slow reader.
    final class Subscriber: Sendable {
        private struct Delivery {
            var writing = false
            var pending: String?
            /// No new events are taken (unsubscribed, ended, or the connection is gone).
            var closed = false
            /// Resumed when the write in flight completes, for `stop`.
            var waiters: [CheckedContinuation<Void, Never>] = []
        }

        let id: JSON
        let sink: any EventSink
        let keyID: String?
        let keyStillValid: @Sendable () async throws -> Bool
        private let delivery = Mutex(Delivery())

        init(
            id: JSON,
            sink: any EventSink,
            keyID: String?,
            keyStillValid: @escaping @Sendable () async throws -> Bool
        ) {
            self.id = id
            self.sink = sink
            self.keyID = keyID
            self.keyStillValid = keyStillValid
        }

        /// Replaces whatever was not written yet.
        func offer(_ event: JSON) {
            offer(serialized: event.serialized)
        }

        /// An event of `fields` (serialized, without braces): `{"id":…,` followed by them.
        func offer(sharedFields: String) {
            offer(serialized: "{\"id\":" + id.serialized + "," + sharedFields + "}")
        }

        /// Takes `line` as the last event: written after what is pending, then nothing more.
        func offerLast(_ event: JSON) {
            offer(serialized: event.serialized)
            delivery.withLock { $0.closed = true }
        }

        private func offer(serialized line: String) {
            let now: String? = delivery.withLock { state in
                guard !state.closed else { return nil }
                guard !state.writing else {
                    state.pending = line
                    return nil
                }
                state.writing = true
                return line
            }
            if let now { write(now) }
        }

        private func write(_ line: String) {
            sink.push(serialized: line) { [self] written in
                let (next, waiters) = delivery.withLock { state -> (String?, [CheckedContinuation<Void, Never>]) in
                    if !written {
                        state.closed = true
                        state.pending = nil
                    }
                    if let next = state.pending {
                        state.pending = nil
                        return (next, [])
                    }
                    state.writing = false
                    defer { state.waiters = [] }
                    return (nil, state.waiters)
                }
                for waiter in waiters { waiter.resume() }
                if let next { write(next) }
            }
        }

        /// Takes no more events and drops what is waiting; returns once the write in flight,
        /// if any, is done: nothing is written after.
        func stop() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let idle = delivery.withLock { state -> Bool in
                    state.closed = true
                    state.pending = nil
                    guard state.writing else { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if idle { continuation.resume() }
            }
        }

        /// Stops without waiting: for a connection that is gone.
        func abandon() {
            delivery.withLock { state in
                state.closed = true
                state.pending = nil
            }
        }
    }

    private struct Key: Hashable {
        var connection: ObjectIdentifier
        /// The subscription's id as the client wrote it (serialized).
        var id: String
    }

    private struct Member {
        var subscriber: Subscriber
        /// Pending members wait for their acknowledgement to be written.
        var active: Bool
        /// The rows it was last offered (or answered with) and their seq.
        var rows: JSON
        var seq: Int64
    }

    private struct Group {
        var request: ReportingOperations.TotalsRequest
        var members: [Key: Member] = [:]
        /// The newest answer read for the group, for members acknowledged after it was read.
        var latest: (fields: AnswerFields, rows: JSON, seq: Int64)?
    }

    private struct State {
        var groups: [String: Group] = [:]
        var groupOf: [Key: String] = [:]
        var count = 0
        /// Connections whose end already removes their subscriptions.
        var watched: Set<ObjectIdentifier> = []
        /// The seq of the last refresh, and whether a group joined since with older rows (read
        /// before that refresh, which did not know it): then the next poll reads again.
        var refreshedSeq: Int64 = -1
        var refreshAgain = false
        /// Shut down: no new subscriptions.
        var stopped = false
    }

    /// Subscriptions open in this process.
    private let openGauge = Gauge(label: "rootcauses_subscriptions_open")
    /// Events handed to subscribers (a newer one may replace one a slow reader had not taken).
    private let eventsOffered = Counter(label: "rootcauses_subscription_events_total")
    private let state = Mutex(State())
    private let reader = Mutex<Read?>(nil)
    private let appliedSeq: @Sendable () async throws -> Int64
    /// Signalled at every applied pass.
    private let applied: WakeSignal
    /// How long the hub goes without looking at the watermark when no pass was signalled.
    private let pollInterval: @Sendable () -> Duration
    private let logger: Logger

    init(
        appliedSeq: @escaping @Sendable () async throws -> Int64,
        applied: WakeSignal,
        pollInterval: @escaping @Sendable () -> Duration,
        logger: Logger
    ) {
        self.appliedSeq = appliedSeq
        self.applied = applied
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// How groups are read: given once, by the ops that own the hub (they read with themselves).
    func attach(read: @escaping Read) {
        reader.withLock { $0 = read }
    }

    /// Subscriptions open now.
    var count: Int { state.withLock { $0.count } }

    /// Registers a subscription answered with `rows` as of `seq`. It receives events only once
    /// ``activate(id:sink:)`` runs (after its acknowledgement is written).
    func add(
        request: ReportingOperations.TotalsRequest,
        queryKey: String,
        subscriber: Subscriber,
        rows: JSON,
        seq: Int64
    ) throws {
        let key = Key(connection: ObjectIdentifier(subscriber.sink), id: subscriber.id.serialized)
        let behind = try state.withLock { state -> Bool in
            guard !state.stopped else {
                throw ProtocolError(.unavailable, "this reporting instance is shutting down; subscribe again elsewhere")
            }
            guard state.groupOf[key] == nil else {
                throw ProtocolError.validationFailed(
                    [
                        Problem(
                            path: "id",
                            code: "duplicate_subscription",
                            message:
                                "this connection already has a subscription with id \(key.id): give each its own id"
                        )
                    ],
                    lead: "id already subscribed"
                )
            }
            let onConnection = state.groupOf.keys.filter { $0.connection == key.connection }.count
            guard onConnection < Self.maximumPerConnection, state.count < Self.maximumPerProcess else {
                let limit =
                    onConnection >= Self.maximumPerConnection ? Self.maximumPerConnection : Self.maximumPerProcess
                throw ProtocolError(
                    .overloaded,
                    onConnection >= Self.maximumPerConnection
                        ? "a connection may hold \(limit) subscriptions; unsubscribe one first"
                        : "this reporting instance holds its maximum of \(limit) subscriptions; retry later or elsewhere",
                    details: [["limit": .int(limit)]]
                )
            }
            state.groups[queryKey, default: Group(request: request)].members[key] = Member(
                subscriber: subscriber,
                active: false,
                rows: rows,
                seq: seq
            )
            state.groupOf[key] = queryKey
            state.count += 1
            guard seq < state.refreshedSeq else { return false }
            state.refreshAgain = true
            return true
        }
        openGauge.record(count)
        // Behind the others: the loop reads again now, not at the next pass.
        if behind { applied.signal() }
    }

    /// Whether the connection is new to the hub (its end must then remove its subscriptions):
    /// `true` once per connection.
    func watchConnection(_ sink: any EventSink) -> Bool {
        state.withLock { $0.watched.insert(ObjectIdentifier(sink)).inserted }
    }

    /// The subscribe request was answered with an error after all: forget it.
    func discard(id: JSON, sink: any EventSink) {
        detach(Key(connection: ObjectIdentifier(sink), id: id.serialized))?.abandon()
    }

    /// The acknowledgement is written: events may follow. If the group moved on meanwhile,
    /// the newer rows go out at once.
    func activate(id: JSON, sink: any EventSink) {
        let key = Key(connection: ObjectIdentifier(sink), id: id.serialized)
        let catchUp: (Subscriber, JSON)? = state.withLock { state in
            guard let queryKey = state.groupOf[key], var member = state.groups[queryKey]?.members[key] else {
                return nil
            }
            member.active = true
            var catchUp: (Subscriber, JSON)?
            if let latest = state.groups[queryKey]?.latest, latest.seq > member.seq, latest.rows != member.rows {
                member.rows = latest.rows
                member.seq = latest.seq
                catchUp = (
                    member.subscriber, .object([("id", member.subscriber.id), ("event", "totals")] + latest.fields)
                )
            }
            state.groups[queryKey]?.members[key] = member
            return catchUp
        }
        if let (subscriber, event) = catchUp { subscriber.offer(event) }
    }

    /// Removes a subscription; `false` when the connection has none with this id. No event
    /// for it is written after this returns.
    func remove(id: JSON, sink: any EventSink) async -> Bool {
        guard let subscriber = detach(Key(connection: ObjectIdentifier(sink), id: id.serialized)) else {
            return false
        }
        await subscriber.stop()
        return true
    }

    /// Removes every subscription of a connection that ended.
    func removeAll(of sink: any EventSink) {
        let connection = ObjectIdentifier(sink)
        let keys = state.withLock { state in
            state.watched.remove(connection)
            return state.groupOf.keys.filter { $0.connection == connection }
        }
        for key in keys { detach(key)?.abandon() }
    }

    @discardableResult
    private func detach(_ key: Key) -> Subscriber? {
        defer { openGauge.record(count) }
        return state.withLock { state in
            guard let queryKey = state.groupOf.removeValue(forKey: key),
                let member = state.groups[queryKey]?.members.removeValue(forKey: key)
            else { return nil }
            if state.groups[queryKey]?.members.isEmpty == true { state.groups[queryKey] = nil }
            state.count -= 1
            return member.subscriber
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.poll() }
        // Subscribers learn that this instance is going away, and subscribe again elsewhere.
        let all = state.withLock { state in
            state.stopped = true
            return state.groups.values.flatMap { $0.members.values.map(\.subscriber) }
        }
        for subscriber in all {
            subscriber.offerLast([
                "id": subscriber.id, "event": "ended", "reason": "shutdown",
                "message": "this reporting instance is shutting down; subscribe again (elsewhere)",
            ])
        }
    }

    /// Watches the applied watermark (at every applied pass, or after `pollInterval` without
    /// one) and refreshes every group when it moves (or when a group joined with rows older
    /// than the last refresh). A refresh that failed is tried again.
    private func poll() async {
        var seen = applied.generation
        // A failed look or refresh is tried again soon, whether or not a pass comes.
        var retry = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await applied.wait(after: seen, upTo: retry ? min(pollInterval(), .milliseconds(50)) : pollInterval())
            retry = false
            // Taken before the look: a pass applied during it wakes the next wait at once.
            seen = applied.generation
            guard count > 0 else { continue }
            do {
                let applied = try await appliedSeq()
                let due = state.withLock { state in
                    guard applied > state.refreshedSeq || state.refreshAgain else { return false }
                    state.refreshAgain = false
                    return true
                }
                guard due else { continue }
                if await refresh(at: applied) {
                    state.withLock { $0.refreshedSeq = max($0.refreshedSeq, applied) }
                } else {
                    state.withLock { $0.refreshAgain = true }
                    retry = true
                }
            } catch {
                logger.warning("subscriptions not refreshed; retrying", metadata: ["error": "\(error)"])
                retry = true
            }
        }
    }

    /// Reads each group's query once as of `seq` and offers the rows to members that had others.
    /// A group whose read fails is logged and left for the next round; the others go on.
    private func refresh(at seq: Int64) async -> Bool {
        guard let read = reader.withLock({ $0 }) else { return false }
        let groups = state.withLock { state in state.groups.map { ($0.key, $0.value.request) } }
        // Each key is asked once a round, however many groups its subscriptions are in.
        var keys: [String: Bool] = [:]
        var succeeded = true
        let logger = self.logger
        await withTaskGroup(of: (String, AnswerFields?).self) { tasks in
            var pending = groups[...]
            func startNext() {
                guard let (queryKey, request) = pending.popFirst() else { return }
                tasks.addTask {
                    do {
                        return (queryKey, try await read(request, seq))
                    } catch {
                        logger.warning(
                            "a subscribed query could not be read; retrying",
                            metadata: ["error": "\(error)", "seq": "\(seq)"]
                        )
                        return (queryKey, nil)
                    }
                }
            }
            // As many reads at a time as cores, up to four: the pool is shared with requests,
            // and more reads than cores only slow each other (measured: 2 beat 4 and 8 on two).
            for _ in 0..<Self.concurrentReads { startNext() }
            // Each group's events go out as soon as its read is done.
            while let (queryKey, fields) = await tasks.next() {
                startNext()
                guard let fields else {
                    succeeded = false
                    continue
                }
                await publish(fields, queryKey: queryKey, seq: seq, keys: &keys)
            }
        }
        return succeeded
    }

    private func publish(
        _ fields: AnswerFields,
        queryKey: String,
        seq: Int64,
        keys validity: inout [String: Bool]
    ) async {
        let rows = fields.first { $0.0 == "rows" }?.1 ?? .null
        let changed: [Subscriber] = state.withLock { state in
            guard var group = state.groups[queryKey] else { return [] }
            group.latest = (fields, rows, seq)
            var changed: [Subscriber] = []
            for (key, member) in group.members where member.active && member.seq < seq && member.rows != rows {
                group.members[key]?.rows = rows
                group.members[key]?.seq = seq
                changed.append(member.subscriber)
            }
            state.groups[queryKey] = group
            return changed
        }
        guard !changed.isEmpty else { return }
        // What every member's event has in common, serialized once: `"event":"totals",…`.
        let body = JSON.object([("event", "totals")] + fields).serialized
        let shared = String(body.dropFirst().dropLast())
        // A revoked key's subscriptions end.
        for subscriber in changed {
            guard let keyID = subscriber.keyID else { continue }
            // A check that fails (the database, not the key) counts as valid: asked again next time.
            if validity[keyID] == nil { validity[keyID] = (try? await subscriber.keyStillValid()) ?? true }
        }
        var current: [Subscriber] = []
        for subscriber in changed {
            if let keyID = subscriber.keyID, validity[keyID] == false {
                detach(Key(connection: ObjectIdentifier(subscriber.sink), id: subscriber.id.serialized))
                subscriber.offerLast([
                    "id": subscriber.id, "event": "ended", "reason": "revoked",
                    "message": .string(
                        "the key \(keyID) was revoked; authenticate with another key and subscribe again"
                    ),
                ])
                continue
            }
            current.append(subscriber)
        }
        // One hand-over per writer thread rather than one per subscriber.
        for (_, sameWriter) in Dictionary(grouping: current, by: \.sink.writer) {
            sameWriter[0].sink.onWriter {
                for subscriber in sameWriter { subscriber.offer(sharedFields: shared) }
            }
        }
        eventsOffered.increment(by: Int64(current.count))
    }
}
