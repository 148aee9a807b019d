import AggregationService
import ArgumentParser
import Foundation
import RootcausesService

@main
struct AggregationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregation",
        abstract: "Applies accepted submissions to the aggregate tables exactly once (default port 7402).",
        discussion:
            "Work is split into partitions by indicator; each partition has a watermark that moves in the same transaction as the aggregates it covers, so a crash never loses or repeats work. Run as many instances as you like: they share the partitions through row locks. Catches up on start, on every numbering it hears from PostgreSQL (LISTEN) or nudge from intake, and on a timer."
    )

    @OptionGroup var options: ServiceOptions

    @Option(
        name: .customLong("poll-interval-ms"),
        help:
            "How often to catch up without a notification or nudge, in milliseconds. Env: ROOTCAUSES_POLL_INTERVAL_MS. Default: 1000."
    )
    var pollIntervalMilliseconds: Int?

    @Option(
        name: .customLong("batch-size"),
        help: "Most submissions applied per partition per transaction. Default: 500."
    )
    var batchSize: Int = 500

    @Option(
        name: .customLong("concurrent-passes"),
        help:
            "Passes run at once, each over its own part of this instance's partitions, holding a database connection while it runs (at most --db-connections less one). Env: ROOTCAUSES_CONCURRENT_PASSES. Default: 2, or fewer if --db-connections leaves fewer."
    )
    var concurrentPasses: Int?

    @Option(
        name: .customLong("lease-ms"),
        help:
            "How long this instance's partitions stay its own without a heartbeat; a killed instance's partitions move to the others after this. Env: ROOTCAUSES_LEASE_MS. Default: 10000."
    )
    var leaseMilliseconds: Int?

    func run() async throws {
        let interval =
            pollIntervalMilliseconds
            ?? ServiceOptions.environment["ROOTCAUSES_POLL_INTERVAL_MS"].flatMap { Int($0) } ?? 1000
        let lease = leaseMilliseconds ?? ServiceOptions.environment["ROOTCAUSES_LEASE_MS"].flatMap { Int($0) } ?? 10_000
        guard lease >= 100 else { throw ValidationError("--lease-ms must be at least 100") }
        guard interval > 0, batchSize > 0 else {
            throw ValidationError("--poll-interval-ms and --batch-size must be positive")
        }
        let connections = options.resolvedConnections()
        let requestedPasses =
            concurrentPasses ?? ServiceOptions.environment["ROOTCAUSES_CONCURRENT_PASSES"].flatMap { Int($0) }
        guard
            let passes = AggregationOperations.concurrentPasses(
                requested: requestedPasses,
                databaseConnections: connections
            )
        else {
            throw ValidationError(
                "--concurrent-passes must be from 1 to \(AggregationOperations.mostConcurrentPasses(databaseConnections: connections)): one less than --db-connections (\(connections)), or 1"
            )
        }
        try await runService(name: "aggregation", defaultPort: 7402, options: options) { context in
            // Host and port name the instance: unique among live ones (one process binds a port),
            // and the same after a restart, which then takes its own partitions back at once.
            let operations = AggregationOperations(
                catalogue: context.catalogue,
                pool: context.pool,
                instance: "\(ProcessInfo.processInfo.hostName):\(context.port)",
                batchSize: batchSize,
                concurrentPasses: passes,
                pollInterval: .milliseconds(interval),
                lease: .milliseconds(lease),
                logger: context.logger
            )
            return (operations.registry, operations.services)
        }
    }
}
