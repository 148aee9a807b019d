import Logging
import RootcausesJSON
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol
import RootcausesService
import RootcausesStorage
import ServiceLifecycle

/// Aggregation's ops, each declared once in `registry`: `status` reports progress, `nudge`
/// asks for a pass now. The work itself is done by `worker`, a background service.
public struct AggregationOperations: Sendable {
    let applier: Applier
    let worker: AggregationWorker
    let sampler: BacklogSampler
    let listener: NotificationListener

    /// Passes an instance runs at once, over different partitions, unless told otherwise: two
    /// keep the lag from an acknowledgement to the totals low under a steady load, where one
    /// pass at a time fell behind (docs/OPERATIONS.md, *Scaling aggregation*, has the figures).
    public static let defaultConcurrentPasses = 2

    /// The passes to run at once with a pool of `databaseConnections`, or nil when `requested`
    /// cannot be: each pass holds a connection for its whole statement, and one more stays free
    /// for heartbeats, `status` and the backlog metrics (with a pool of one, one pass shares it).
    /// Unrequested, the default, lowered to what the pool allows.
    public static func concurrentPasses(requested: Int?, databaseConnections: Int) -> Int? {
        let most = mostConcurrentPasses(databaseConnections: databaseConnections)
        guard let requested else { return min(defaultConcurrentPasses, most) }
        return (1...most).contains(requested) ? requested : nil
    }

    /// The most passes a pool of `databaseConnections` can run at once: one connection less,
    /// or the only one.
    public static func mostConcurrentPasses(databaseConnections: Int) -> Int {
        max(1, databaseConnections - 1)
    }

    /// `instance` names this process in `status` and in the partitions it holds.
    /// `lease`: how long this instance's partitions stay its own without a heartbeat (a killed
    /// instance's partitions move to the others after it). `concurrentPasses`: how many passes
    /// this instance runs at once, each over its own part of the instance's partitions; nil for
    /// the default that `pool` leaves room for (see
    /// ``concurrentPasses(requested:databaseConnections:)``). The `catalogue` says which
    /// indicators are snapshots (`latest`), whose newest submission per cell and period wins.
    public init(
        catalogue: Catalogue,
        pool: PostgresPool,
        instance: String,
        batchSize: Int,
        concurrentPasses: Int? = nil,
        pollInterval: Duration,
        lease: Duration = .seconds(10),
        logger: Logger
    ) {
        self.applier = Applier(
            pool: pool,
            instance: instance,
            batchSize: batchSize,
            lease: lease,
            latestIndicators: catalogue.indicators.filter { $0.timeAggregation == .latest }.map(\.code)
        )
        let metrics = AggregationMetrics()
        self.worker = AggregationWorker(
            applier: applier,
            concurrentPasses: concurrentPasses
                ?? Self.concurrentPasses(requested: nil, databaseConnections: pool.maximumConnections) ?? 1,
            pollInterval: pollInterval,
            metrics: metrics,
            logger: logger
        )
        self.sampler = BacklogSampler(applier: applier, interval: .seconds(2), metrics: metrics, logger: logger)
        // Every numbering, whoever made it: nudges over TCP reach only the instances intake was
        // given, and one scaled out later would wait for its poll (and every read with min_seq
        // with it). While the session reconnects, nudges and the poll still wake the worker.
        self.listener = NotificationListener(
            conninfo: pool.conninfo,
            channel: Storage.numberedChannel,
            applicationName: "rootcauses-aggregation-listener",
            logger: logger
        ) { [worker] in worker.nudge() }
    }

    public var registry: OperationRegistry {
        OperationRegistry(
            service: "aggregation",
            [
                Operation("status", NoInput.self, access: .admin, handler: status),
                Operation("nudge", NudgeRequest.self, access: .admin, handler: nudge),
            ]
        )
    }

    /// The services to run beside the protocol server: the worker that applies submissions,
    /// the listener that wakes it at every numbering, and the sampler that keeps the backlog
    /// metrics current.
    public var services: [any Service] { [worker, listener, sampler] }

    /// `{"op":"nudge","seq":42}`: `seq` (optional) is the newest committed seq, a hint.
    struct NudgeRequest: OperationInput {
        var seq: Int64?

        static func decode(from reader: FieldReader) -> NudgeRequest? {
            NudgeRequest(seq: reader.integer("seq"))
        }
    }

    func nudge(_ request: NudgeRequest, context: RequestContext) async throws -> AnswerFields {
        worker.nudge()
        return []
    }

    func status(_ request: NoInput, context: RequestContext) async throws -> AnswerFields {
        let progress = try await applier.progress()
        let instances = try await applier.instances()
        return [
            ("instance", .string(applier.instance)),
            ("applied_seq", .int(progress.applied)),
            ("latest_seq", .int(progress.latest)),
            ("backlog", .int(max(0, progress.latest - progress.applied))),
            ("partitions", .int(Schema.aggregationPartitions)),
            ("share", .array(worker.share.map { JSON.int($0) })),
            (
                "instances",
                .array(
                    instances.map { state in
                        [
                            "instance": .string(state.instance),
                            "heartbeat_at": .string(state.heartbeatAt),
                            "partitions": .array(
                                state.partitions.map {
                                    ["partition": .int($0.partition), "applied_seq": .int($0.appliedSeq)]
                                }
                            ),
                        ]
                    }
                )
            ),
        ]
    }
}
