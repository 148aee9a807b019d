import Logging
import Metrics
import NIOConcurrencyHelpers
import RootcausesService
import ServiceLifecycle

/// Runs passes of the applier: at start, on every nudge, and every poll interval, each time
/// there is work (an idle instance only looks). The instance's partitions are split into
/// `concurrentPasses` lanes, each with a loop of its own that takes a pooled connection for
/// each pass, so passes over different partitions run at once on the database's cores: a pass
/// is one statement, and one statement runs on one core.
final class AggregationWorker: Service, Sendable {
    private let applier: Applier
    private let pollInterval: Duration
    private let logger: Logger
    private let loops: [LaneLoop]
    /// The partitions each lane worked on in its last pass, or owns while it has nothing to apply.
    private let laneShares: NIOLockedValueBox<[[Int]]>
    /// The last heartbeat (nil before the first): passes work only on the partitions it kept,
    /// so one to give up is held by at most the pass in progress.
    private let lastHeartbeat = NIOLockedValueBox<Heartbeat?>(nil)
    private let metrics: AggregationMetrics

    /// One lane's wake-ups: a nudge or a tick wakes every lane.
    private struct LaneLoop: Sendable {
        let lane: Applier.Lane
        let wakeups: AsyncStream<Void>
        let wake: AsyncStream<Void>.Continuation
    }

    init(
        applier: Applier,
        concurrentPasses: Int,
        pollInterval: Duration,
        metrics: AggregationMetrics,
        logger: Logger
    ) {
        self.applier = applier
        self.metrics = metrics
        self.pollInterval = pollInterval
        self.logger = logger
        precondition(concurrentPasses >= 1, "an aggregation worker needs at least one lane")
        let count = concurrentPasses
        self.loops = (0..<count).map { index in
            let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            return LaneLoop(lane: Applier.Lane(index: index, count: count), wakeups: wakeups, wake: wake)
        }
        self.laneShares = NIOLockedValueBox(Array(repeating: [], count: count))
    }

    /// Partitions this instance worked on in its last passes, or owns while it has nothing to apply.
    var share: [Int] { laneShares.withLockedValue { $0.joined().sorted() } }

    /// Asks for a pass now (a nudge), in every lane.
    func nudge() {
        for loop in loops { loop.wake.yield() }
    }

    func run() async throws {
        // A timer feeds the same streams as nudges, so one loop per lane handles both.
        let interval = pollInterval
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                self.nudge()
            }
        }
        defer { ticker.cancel() }
        nudge()
        logger.info("aggregation worker started", metadata: ["concurrent_passes": "\(loops.count)"])
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for loop in loops {
                    group.addTask {
                        for await _ in loop.wakeups {
                            await self.runPasses(loop.lane)
                        }
                    }
                }
            }
        } onGracefulShutdown: { [loops] in
            for loop in loops { loop.wake.finish() }
        }
        // Hand the partitions over now rather than when the leases run out.
        do {
            try await applier.resign()
        } catch {
            logger.warning(
                "could not give up partitions; they move once their leases run out",
                metadata: ["error": "\(error)"]
            )
        }
        logger.info("aggregation worker stopped")
    }

    /// When this instance last renewed its leases, and what it kept then.
    private struct Heartbeat: Sendable {
        let at: ContinuousClock.Instant
        let ownership: Applier.Ownership
    }

    /// Heartbeats often enough that a lease never runs out while the instance lives.
    private var heartbeatInterval: Duration { min(pollInterval, applier.lease / 3) }

    /// Renews the leases when due, if `lane` is the one that heartbeats for the instance; when
    /// the partitions held change, every other lane is woken to look at its new ones.
    private func heartbeatIfDue(_ lane: Applier.Lane) async throws {
        guard lane.heartbeats else { return }
        let now = ContinuousClock.now
        let previous = lastHeartbeat.withLockedValue { $0 }
        if let previous, now - previous.at < heartbeatInterval { return }
        let ownership = try await applier.heartbeat()
        lastHeartbeat.withLockedValue { $0 = Heartbeat(at: now, ownership: ownership) }
        if ownership != previous?.ownership {
            logger.info(
                "partitions owned",
                metadata: ["count": "\(ownership.partitions.count)", "instances": "\(ownership.instances)"]
            )
            for loop in loops where loop.lane != lane { loop.wake.yield() }
        }
    }

    /// Records what `lane` worked on, and the instance's whole share in the gauge (under the
    /// lock, so two lanes cannot leave the gauge at an older total).
    private func recordShare(_ partitions: [Int], of lane: Applier.Lane) {
        laneShares.withLockedValue { shares in
            shares[lane.index] = partitions
            metrics.partitionsHeld.record(shares.reduce(0) { $0 + $1.count })
        }
    }

    private func runPasses(_ lane: Applier.Lane) async {
        var lockedRetryDelay: Duration = .milliseconds(10)
        // Keep going while there is a backlog, so a burst is applied without waiting for the timer.
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await heartbeatIfDue(lane)
                // Before the first heartbeat there is nothing to work on; it wakes every lane.
                guard let kept = lastHeartbeat.withLockedValue({ $0?.ownership.partitions }) else { return }
                let pending = try await applier.pendingWork(lane: lane, among: kept)
                if pending.gap <= 0 {
                    recordShare(pending.owned, of: lane)
                    return
                }
                let started = ContinuousClock.now
                let pass = try await applier.applyPass(lane: lane, among: kept, gap: pending.gap)
                recordShare(pass.held, of: lane)
                metrics.advanced.increment(by: pass.advanced)
                metrics.passDuration.record(duration: ContinuousClock.now - started)
                if pass.applied > 0 {
                    logger.debug(
                        "applied submissions",
                        metadata: [
                            "lane": "\(lane.index)", "partitions": "\(pass.held)", "applied": "\(pass.applied)",
                            "duration": "\(ContinuousClock.now - started)",
                        ]
                    )
                }
                if pass.held.count < pending.owned.count {
                    // Some were locked just then: by a heartbeat, or by a pass that outlived its
                    // client (a restarted instance keeps its name, and PostgreSQL finishes the
                    // killed one's statement). Look again soon, then less and less often.
                    try? await Task.sleep(for: lockedRetryDelay)
                    lockedRetryDelay = min(lockedRetryDelay * 2, pollInterval)
                    continue
                }
                if !pass.moreWork { return }
            } catch {
                metrics.failedPasses.increment()
                logger.warning(
                    "aggregation pass failed; will retry",
                    metadata: ["lane": "\(lane.index)", "error": "\(error)"]
                )
                return
            }
        }
    }
}

/// Samples the backlog for metrics (an autoscaler scales aggregation on it): every instance
/// reports the same figures, read from the database, whether or not it is the one behind.
final class BacklogSampler: Service, Sendable {
    private let applier: Applier
    private let interval: Duration
    private let logger: Logger
    private let metrics: AggregationMetrics

    init(applier: Applier, interval: Duration, metrics: AggregationMetrics, logger: Logger) {
        self.applier = applier
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                let backlog = try await applier.backlog()
                metrics.backlog.record(backlog.submissions)
                metrics.lag.record(backlog.lagSeconds)
            } catch {
                logger.debug("backlog sample failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}

/// Aggregation's metrics, created once per process and shared by the worker and the sampler.
struct AggregationMetrics: Sendable {
    /// Seqs numbered but not yet applied in every partition.
    let backlog = Gauge(label: "rootcauses_aggregation_backlog_submissions")
    /// Seconds since the oldest unapplied submission was numbered; 0 with no backlog.
    let lag = Gauge(label: "rootcauses_aggregation_lag_seconds")
    /// Partitions this instance worked on in its last passes, or owns while it has nothing to apply.
    let partitionsHeld = Gauge(label: "rootcauses_aggregation_partitions_held")
    /// Seqs (submissions, retractions, deduplications) applied by this instance, counted once
    /// per partition they were applied in.
    let advanced = Counter(label: "rootcauses_aggregation_partition_seqs_applied_total")
    /// Passes that failed (and will be retried).
    let failedPasses = Counter(label: "rootcauses_aggregation_failed_passes_total")
    /// How long a pass took.
    let passDuration = Timer(label: "rootcauses_aggregation_pass_duration_seconds")
}
