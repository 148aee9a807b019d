import Foundation
import Logging
import Metrics
import Prometheus
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol
import RootcausesStorage
import RootcausesTransport
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// Everything a service needs once started: configuration, catalogue, database pool.
public struct ServiceContext: Sendable {
    public let name: String
    public let logger: Logger
    public let catalogue: Catalogue
    public let pool: PostgresPool
    public let host: String
    public let port: Int
    public let limits: ConnectionLimits
}

/// Starts a service process: logging, catalogue, database (migrated, waiting for it if it is
/// not up yet), then runs the protocol server and the service's own background services in a
/// `ServiceGroup` until SIGTERM or SIGINT, shutting down gracefully.
public func runService(
    name: String,
    defaultPort: Int,
    options: ServiceOptions,
    readsStandby: Bool = false,
    planCacheMode: PostgresConnection.PlanCacheMode = .forceCustom,
    makeOperations: @Sendable (ServiceContext) async throws -> (operations: OperationRegistry, services: [any Service])
) async throws {
    let logger = makeLogger(
        label: "rootcauses.\(name)",
        level: try options.resolvedLogLevel(),
        format: try options.resolvedLogFormat()
    )
    let (host, port) = try options.listenAddress(defaultPort: defaultPort)
    let metricsAddress = try options.metricsAddress()
    // Before anything makes a metric: metrics made earlier would go nowhere.
    let metricsRegistry = bootstrapMetrics(service: name)
    let cataloguePath = try options.resolvedCataloguePath()
    let catalogue = try Catalogue.load(path: cataloguePath)
    logger.info(
        "catalogue loaded",
        metadata: ["path": "\(cataloguePath)", "indicators": "\(catalogue.indicators.count)"]
    )
    let pool = PostgresPool(
        conninfo: try options.resolvedDatabaseURL(),
        maximumConnections: options.resolvedConnections(),
        applicationName: "rootcauses-\(name)",
        planCacheMode: planCacheMode,
        logger: logger
    )
    try await migrateWhenReachable(pool: pool, acceptsStandby: readsStandby, logger: logger)
    let context = ServiceContext(
        name: name,
        logger: logger,
        catalogue: catalogue,
        pool: pool,
        host: host,
        port: port,
        limits: try options.resolvedLimits()
    )
    let (operations, extra) = try await makeOperations(context)
    let health = HealthChecks(service: name, pool: pool, acceptsStandby: readsStandby, logger: logger)
    let responder = Responder(
        registry: OperationRegistry(service: operations.service, health.operations + operations.operations),
        version: rootcausesVersion,
        authenticator: KeyAuthenticator(pool: pool, logger: logger),
        mapError: protocolError(for:logger:)
    )
    let tls = try options.resolvedTLS()
    let server = ProtocolServer(
        host: host,
        port: port,
        limits: context.limits,
        responder: responder,
        logger: logger,
        tls: try tls?.makeContext()
    )
    if let tls {
        logger.info(
            "serving TLS",
            metadata: ["certificate": "\(tls.certificatePath)", "client_ca": "\(tls.clientCAPath ?? "-")"]
        )
    }
    // The pool first: the group stops services in reverse order, so it closes only after the
    // server has answered the requests in flight.
    // The service's other pools (reporting's primary) likewise come before the server.
    let extraPools = extra.filter { $0 is PostgresPool }
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: pool)]
    services += extraPools.map { .init(service: $0) }
    services.append(.init(service: server))
    services += extra.filter { !($0 is PostgresPool) }.map { .init(service: $0) }
    if let metricsAddress {
        let metricsServer = MetricsServer(
            host: metricsAddress.host,
            port: metricsAddress.port,
            registry: metricsRegistry,
            health: health,
            logger: logger
        )
        services.append(.init(service: metricsServer))
    }
    if let parent = ProcessInfo.processInfo.environment["ROOTCAUSES_PARENT_PID"].flatMap({ Int32($0) }) {
        services.append(.init(service: ParentWatch(pid: parent), successTerminationBehavior: .gracefullyShutdownGroup))
    }
    var configuration = ServiceGroupConfiguration(
        services: services,
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
    // Below Kubernetes' default 30 s grace period.
    configuration.maximumGracefulShutdownDuration = .seconds(20)
    let group = ServiceGroup(configuration: configuration)
    try await group.run()
    logger.info("exited cleanly")
}

/// Sends swift-metrics to a Prometheus registry, with buckets for this product's figures
/// (requests take milliseconds, not seconds); returns the registry `/metrics` shows.
func bootstrapMetrics(service: String) -> PrometheusCollectorRegistry {
    let registry = PrometheusCollectorRegistry()
    var factory = PrometheusMetricsFactory(registry: registry)
    factory.defaultDurationHistogramBuckets = [
        .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
    ]
    factory.valueHistogramBuckets["rootcauses_intake_group_commit_submissions"] = [1, 2, 4, 8, 16, 32, 64, 128, 200]
    factory.valueHistogramBuckets["rootcauses_intake_group_commit_values"] = [
        1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000,
    ]
    MetricsSystem.bootstrap(factory)
    Gauge(label: "rootcauses_build_info", dimensions: [("service", service), ("version", rootcausesVersion)])
        .record(1)
    return registry
}

/// Migrates the schema, retrying every second while the database cannot be reached, is not
/// provisioned for this service's role yet, or is a standby whose primary is not migrated yet.
func migrateWhenReachable(pool: PostgresPool, acceptsStandby: Bool, logger: Logger) async throws {
    var attempt = 0
    // Logs the first wait and every tenth, then waits a second.
    func wait(_ message: Logger.Message, _ metadata: Logger.Metadata) async throws {
        attempt += 1
        if attempt == 1 || attempt % 10 == 0 {
            logger.warning(message, metadata: metadata.merging(["attempt": "\(attempt)"]) { $1 })
        }
        try await Task.sleep(for: .seconds(1))
    }
    while true {
        do {
            // A hot standby takes no DDL: it is current once the primary is migrated and replayed.
            let standby = try await pool.withConnection { connection in
                try Schema.standbyVersion(connection)
            }
            if let standby {
                guard acceptsStandby else {
                    throw SchemaError(
                        message: "the database is a hot standby, which takes no writes: give this service the primary"
                    )
                }
                if standby > Schema.currentVersion {
                    throw SchemaError(
                        message:
                            "the database schema is at version \(standby), newer than this build knows (\(Schema.currentVersion)); upgrade the service"
                    )
                }
                if standby == Schema.currentVersion {
                    logger.info("reading a hot standby", metadata: ["schema_version": "\(Schema.currentVersion)"])
                    return
                }
                try await wait(
                    "the standby's schema is not current; waiting for the primary to be migrated",
                    [
                        "schema_version": "\(standby == 0 ? "none" : String(standby))",
                        "expected": "\(Schema.currentVersion)",
                    ]
                )
                continue
            }
            let synchronousCommit = try await pool.withConnection { connection in
                try Schema.migrate(connection, logger: logger)
                let query: PostgresQuery = "SELECT current_setting('synchronous_commit') AS value"
                return try connection.query(query).first?.decode(column: "value", as: String.self) ?? ""
            }
            if synchronousCommit == "off" {
                // An ack promises the submission is stored; with this setting a server crash can lose it.
                logger.warning("synchronous_commit is off: acknowledged submissions can be lost if PostgreSQL crashes")
            }
            return
        } catch let error as PostgresError where error.isConnectionProblem {
            try await wait("database not reachable yet; retrying", ["error": "\(error.message)"])
        } catch let error as PostgresError where error.meansNotProvisionedYet {
            // Started beside `rootcauses provision` (compose, a Kubernetes Job): its role may
            // exist before the schema is migrated and granted to it.
            try await wait(
                "the database is not migrated or granted to this service's role yet; waiting for rootcauses provision",
                ["error": "\(error.message)"]
            )
        }
    }
}

extension PostgresError {
    /// Insufficient privilege, or a table that does not exist: what a service's own role meets
    /// in a database its owner has not migrated and granted yet.
    var meansNotProvisionedYet: Bool { sqlState == "42501" || sqlState == "42P01" }
}

/// Ends the service when the process that started it is gone (`ROOTCAUSES_PARENT_PID`),
/// so a crashed test run or demo never leaves a server behind.
struct ParentWatch: Service {
    let pid: Int32

    func run() async throws {
        // Once the parent dies we are re-parented: our parent pid changes.
        let parentAtStart = getppid()
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            if kill(pid, 0) != 0 && errno == ESRCH { return }
            if getppid() != parentAtStart { return }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}
