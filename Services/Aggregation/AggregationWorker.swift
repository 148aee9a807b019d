import Logging
import Metrics
import NIOConcurrencyHelpers
import RootcausesService
import ServiceLifecycle

/// Runs passes of the applier: at start, on every nudge, and every poll interval, each time
/// there is work (an idle instance only looks).
final class AggregationWorker: Service, Sendable {
    private let applier: Applier
    private let pollInterval: Duration
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let lastShare = NIOLockedValueBox<[Int]>([])
    private let metrics: AggregationMetrics

    init(applier: Applier, pollInterval: Duration, metrics: AggregationMetrics, logger: Logger) {
        self.applier = applier
        self.metrics = metrics
        self.pollInterval = pollInterval
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Partitions this instance worked on in its last pass, or owns while it has nothing to apply.
    var share: [Int] { lastShare.withLockedValue { $0 } }

    /// Asks for a pass now (a nudge).
    func nudge() { wake.yield() }

    func run() async throws {
        // A timer feeds the same stream as nudges, so one loop handles both.
        let interval = pollInterval
        let wake = self.wake
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                wake.yield()
            }
        }
        defer { ticker.cancel() }
        wake.yield()
        var ownership = OwnershipState()
        await withGracefulShutdownHandler {
            for await _ in wakeups {
                await runPasses(&ownership)
            }
        } onGracefulShutdown: { [wake] in
            wake.finish()
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

    /// When this instance last renewed its leases, and what it held then.
    private struct OwnershipState {
        var lastHeartbeat: ContinuousClock.Instant?
        var held: Applier.Ownership?
    }

    /// Heartbeats often enough that a lease never runs out while the instance lives.
    private var heartbeatInterval: Duration { min(pollInterval, applier.lease / 3) }

    private func heartbeatIfDue(_ state: inout OwnershipState) async throws {
        let now = ContinuousClock.now
        if let last = state.lastHeartbeat, now - last < heartbeatInterval { return }
        let ownership = try await applier.heartbeat()
        state.lastHeartbeat = now
        if ownership != state.held {
            logger.info(
                "partitions owned",
                metadata: ["count": "\(ownership.partitions.count)", "instances": "\(ownership.instances)"]
            )
            state.held = ownership
        }
    }

    private func runPasses(_ ownership: inout OwnershipState) async {
        // Keep going while there is a backlog, so a burst is applied without waiting for the timer.
        while !Task.isShuttingDownGracefully {
            do {
                try await heartbeatIfDue(&ownership)
                let pending = try await applier.pendingWork()
                if pending.gap <= 0 {
                    lastShare.withLockedValue { $0 = pending.owned }
                    metrics.partitionsHeld.record(pending.owned.count)
                    return
                }
                let started = ContinuousClock.now
                let pass = try await applier.applyPass(gap: pending.gap)
                lastShare.withLockedValue { $0 = pass.held }
                metrics.partitionsHeld.record(pass.held.count)
                metrics.advanced.increment(by: pass.advanced)
                metrics.passDuration.record(duration: ContinuousClock.now - started)
                if pass.applied > 0 {
                    logger.debug(
                        "applied submissions",
                        metadata: [
                            "partitions": "\(pass.held)", "applied": "\(pass.applied)",
                            "duration": "\(ContinuousClock.now - started)",
                        ]
                    )
                }
                if !pass.moreWork { return }
            } catch {
                metrics.failedPasses.increment()
                logger.warning("aggregation pass failed; will retry", metadata: ["error": "\(error)"])
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
    /// Partitions this instance worked on in its last pass, or owns while it has nothing to apply.
    let partitionsHeld = Gauge(label: "rootcauses_aggregation_partitions_held")
    /// Seqs (submissions, retractions, deduplications) applied by this instance, counted once
    /// per partition they were applied in.
    let advanced = Counter(label: "rootcauses_aggregation_partition_seqs_applied_total")
    /// Passes that failed (and will be retried).
    let failedPasses = Counter(label: "rootcauses_aggregation_failed_passes_total")
    /// How long a pass took.
    let passDuration = Timer(label: "rootcauses_aggregation_pass_duration_seconds")
}
