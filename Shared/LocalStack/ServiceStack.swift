import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import RootcausesJSON
import RootcausesPostgres
import RootcausesProtocol
import RootcausesStorage
import RootcausesTransport

#if canImport(Glibc)
import Glibc
#endif

/// The three services, each its own process, against one database: what `rootcauses demo`
/// and `up` run, and what integration tests run.
public final class ServiceStack: Sendable {
    public let databaseURL: String
    public let binDirectory: String
    public let logDirectory: String
    /// The user the services run as, when not ours (see `ManagedProcess.init`).
    public let runAs: String?
    /// TLS on every port, when given.
    public let tls: TLS?
    /// The TLS the stack's own clients (and readiness checks) use, for clients of one's own.
    public let clientTLS: NIOSSLContext?

    /// A stack whose ports speak TLS: the services' certificate and key, the CA the clients
    /// trust, and optionally a CA whose client certificates the services require, with the
    /// certificate and key the stack's own clients present.
    public struct TLS: Sendable {
        public var certificatePath: String
        public var keyPath: String
        public var caPath: String
        public var clientCAPath: String?
        public var clientCertificatePath: String?
        public var clientKeyPath: String?

        public init(
            certificatePath: String,
            keyPath: String,
            caPath: String,
            clientCAPath: String? = nil,
            clientCertificatePath: String? = nil,
            clientKeyPath: String? = nil
        ) {
            self.certificatePath = certificatePath
            self.keyPath = keyPath
            self.caPath = caPath
            self.clientCAPath = clientCAPath
            self.clientCertificatePath = clientCertificatePath
            self.clientKeyPath = clientKeyPath
        }

        /// What a client of the stack uses: the CA, and the client certificate when required.
        public var clientSettings: TLSClientSettings {
            TLSClientSettings(caPath: caPath, certificatePath: clientCertificatePath, keyPath: clientKeyPath)
        }
    }
    private let extraEnvironment: [String: String]
    private let state: NIOLockedValueBox<State>

    /// Ports of 0 given to `init`: picked by us, so we may pick again (see `startService`).
    private let portsArePicked: (intake: Bool, aggregation: Bool, reporting: Bool)

    private struct State {
        var intakePort: Int
        var reportingPort: Int
        var aggregationPorts: [Int]
        var intake: ManagedProcess?
        var reporting: ManagedProcess?
        var aggregations: [ManagedProcess] = []
        var adminToken: String?
        var serviceToken: String?
        /// Each service's own database URL (its role); empty when the roles could not be made.
        var serviceURLs: [String: String] = [:]
        /// Each process's metrics port, by label (`intake`, `aggregation-0`, …), when serving metrics.
        var metricsPorts: [String: Int] = [:]
    }

    /// The services serve `/metrics`, `/healthz` and `/readyz` on ports of their own.
    public let servesMetrics: Bool

    /// The HTTP address of a process's metrics port (`intake`, `reporting`, `aggregation-0`, …);
    /// `nil` without `metrics: true` or before it started.
    public func metricsAddress(_ label: String) -> String? {
        state.withLockedValue { $0.metricsPorts[label] }.map { "127.0.0.1:\($0)" }
    }

    public var intakePort: Int { state.withLockedValue { $0.intakePort } }
    public var reportingPort: Int { state.withLockedValue { $0.reportingPort } }
    public var aggregationPorts: [Int] { state.withLockedValue { $0.aggregationPorts } }
    public var intake: ManagedProcess? { state.withLockedValue { $0.intake } }
    public var reporting: ManagedProcess? { state.withLockedValue { $0.reporting } }
    public var aggregations: [ManagedProcess] { state.withLockedValue { $0.aggregations } }
    /// The admin key's token (scopes `admin`, `read`) the stack's clients authenticate with;
    /// set by `start()`.
    public var adminToken: String? { state.withLockedValue { $0.adminToken } }
    /// The database URL each service connects with (`intake`, `aggregation`, `reporting`): its
    /// own role when `start()` could make the roles, else `databaseURL`.
    public func serviceDatabaseURL(_ service: String) -> String {
        state.withLockedValue { $0.serviceURLs[service] } ?? databaseURL
    }
    /// Every process started so far.
    public var processes: [ManagedProcess] {
        state.withLockedValue { [$0.intake, $0.reporting].compactMap { $0 } + $0.aggregations }
    }

    /// Prepares a stack; nothing runs until `start()`. Ports of 0 are picked free. With
    /// `runAs`, the services run as that user (we must be root), as they would in a container.
    public init(
        databaseURL: String,
        binDirectory: String = ServiceStack.defaultBinDirectory,
        logDirectory: String,
        intakePort: Int = 0,
        aggregationPort: Int = 0,
        reportingPort: Int = 0,
        environment: [String: String] = [:],
        runAs: String? = nil,
        tls: TLS? = nil,
        metrics: Bool = false
    ) throws {
        self.tls = tls
        self.servesMetrics = metrics
        self.clientTLS = try tls?.clientSettings.makeContext()
        self.databaseURL = databaseURL
        self.binDirectory = binDirectory
        self.logDirectory = logDirectory
        self.portsArePicked = (intakePort == 0, aggregationPort == 0, reportingPort == 0)
        self.state = NIOLockedValueBox(
            State(
                intakePort: intakePort == 0 ? try freeTCPPort() : intakePort,
                reportingPort: reportingPort == 0 ? try freeTCPPort() : reportingPort,
                aggregationPorts: [aggregationPort == 0 ? try freeTCPPort() : aggregationPort]
            )
        )
        self.extraEnvironment = environment
        self.runAs = runAs
        try FileManager.default.createDirectory(
            atPath: logDirectory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        chmod(logDirectory, 0o700)
    }

    /// The folder of the running executable: where SwiftPM puts the service executables too.
    public static var defaultBinDirectory: String {
        if let override = ProcessInfo.processInfo.environment["ROOTCAUSES_BIN_DIR"] { return override }
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The test runner may live inside a bundle folder (Foo.xctest/...): climb out of it.
        while directory.path != "/", !FileManager.default.isExecutableFile(atPath: directory.path + "/intake") {
            directory.deleteLastPathComponent()
        }
        return directory.path == "/" ? URL(fileURLWithPath: exe).deletingLastPathComponent().path : directory.path
    }

    public var intakeAddress: String { "127.0.0.1:\(intakePort)" }
    public var reportingAddress: String { "127.0.0.1:\(reportingPort)" }
    public var aggregationAddresses: [String] { aggregationPorts.map { "127.0.0.1:\($0)" } }

    /// Starts aggregation, reporting and intake, and waits until each answers `ping`.
    ///
    /// Fails at once, naming the port, when one of the ports is already taken: otherwise the
    /// process holding it would answer the readiness check while our service had exited.
    public func start(adminToken: String? = nil) async throws {
        let given = [
            ("intake", intakePort, portsArePicked.intake),
            ("aggregation", aggregationPorts[0], portsArePicked.aggregation),
            ("reporting", reportingPort, portsArePicked.reporting),
        ]
        for (service, port, picked) in given where !picked {
            if let reason = whyPortIsUnavailable(port) {
                throw LaunchError(
                    "\(service) cannot listen on 127.0.0.1:\(port): \(reason) (is another stack running? stop it or choose another port)"
                )
            }
        }
        try prepareDatabase(reusingAdminToken: adminToken)
        try await startAggregation(index: 0)
        let (_, reportingPort) = try await startService(
            "reporting",
            port: self.reportingPort,
            mayPickAnotherPort: portsArePicked.reporting
        ) { process in self.state.withLockedValue { $0.reporting = process } }
        state.withLockedValue { $0.reportingPort = reportingPort }
        let (_, intakePort) = try await startService(
            "intake",
            port: self.intakePort,
            mayPickAnotherPort: portsArePicked.intake,
            extra: ["--aggregation", aggregationAddresses.joined(separator: ",")],
            environment: state.withLockedValue { $0.serviceToken }.map { ["ROOTCAUSES_AGGREGATION_TOKEN": $0] } ?? [:]
        ) { process in self.state.withLockedValue { $0.intake = process } }
        state.withLockedValue { $0.intakePort = intakePort }
    }

    /// Readies the database: the services' roles with least privilege (docs/SECURITY.md) when
    /// `databaseURL` is a superuser's with a password, the schema migrated, and the keys the
    /// stack needs: the admin key its clients use (`reusingAdminToken` when still valid, else a
    /// new one) and a key for intake's nudges to aggregation (new at each start; the previous
    /// one is revoked).
    private func prepareDatabase(reusingAdminToken token: String?) throws {
        var logger = Logger(label: "rootcauses.stack") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .warning
        let connection = try PostgresConnection(
            conninfo: databaseURL,
            applicationName: "rootcauses-stack",
            logger: logger
        )
        defer { connection.close() }
        if let secret = URLComponents(string: databaseURL)?.password, !secret.isEmpty,
            try connection.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user" as PostgresQuery)
                .first?.decode(column: "rolsuper", as: Bool.self) == true
        {
            var passwords: [DatabaseRoles.Role: String] = [:]
            for role in DatabaseRoles.Role.allCases {
                passwords[role] = DatabaseRoles.password(of: role, derivedFrom: secret)
            }
            try DatabaseRoles.provision(on: connection, passwords: passwords, logger: logger)
            var urls: [String: String] = [:]
            for (service, role) in [
                ("intake", DatabaseRoles.Role.intake), ("aggregation", .aggregation), ("reporting", .reporting),
            ] {
                var components = URLComponents(string: databaseURL)
                components?.user = role.rawValue
                components?.password = passwords[role]
                urls[service] = components?.string
            }
            state.withLockedValue { $0.serviceURLs = urls }
        } else {
            // Not a superuser's URL (an operator's database): the services use it as given.
            try Schema.migrate(connection, logger: logger)
        }
        let admin: String
        if let token, let parsed = ApiToken(parsing: token),
            try ApiKeys.find(id: parsed.keyID, on: connection)?.accepts(parsed) == true
        {
            admin = token
        } else {
            admin = try ApiKeys.create(
                on: connection,
                reporter: nil,
                scopes: ["admin", "read"],
                label: Self.adminKeyLabel,
                createdBy: nil
            ).token.description
        }
        let service = try connection.transaction { connection in
            let previous = try ApiKeys.list(on: connection).filter {
                $0.label == Self.nudgeKeyLabel && $0.revokedAt == nil
            }
            for key in previous { _ = try ApiKeys.revoke(id: key.id, by: nil, on: connection) }
            let made = try ApiKeys.create(
                on: connection,
                reporter: nil,
                scopes: ["admin"],
                label: Self.nudgeKeyLabel,
                createdBy: nil
            )
            return made.token.description
        }
        state.withLockedValue {
            $0.adminToken = admin
            $0.serviceToken = service
        }
    }

    /// The label of the admin key a local stack makes for its clients.
    public static let adminKeyLabel = "local stack: admin (CLI)"
    /// The label of the key a local stack gives intake for its nudges.
    public static let nudgeKeyLabel = "local stack: intake nudges aggregation"

    /// Starts (or restarts) aggregation instance `index` on its port.
    public func startAggregation(index: Int, extra: [String] = []) async throws {
        let (isNew, port) = state.withLockedValue { (index >= $0.aggregations.count, $0.aggregationPorts[index]) }
        // A restart keeps its port: intake nudges the addresses it was started with.
        let mayPickAnotherPort = isNew && (index > 0 || portsArePicked.aggregation)
        let record = { @Sendable (process: ManagedProcess) in
            self.state.withLockedValue { state in
                if index < state.aggregations.count {
                    state.aggregations[index] = process
                } else {
                    state.aggregations.append(process)
                }
            }
        }
        let (_, boundPort) = try await startService(
            "aggregation",
            label: "aggregation-\(index)",
            port: port,
            mayPickAnotherPort: mayPickAnotherPort,
            // A poll of its own in `extra` replaces the stack's.
            extra: (extra.contains("--poll-interval-ms") ? [] : ["--poll-interval-ms", "200"]) + extra,
            record: record
        )
        state.withLockedValue { $0.aggregationPorts[index] = boundPort }
    }

    /// Adds one more aggregation instance on a new port and starts it. Returns its index.
    /// Intake is not told of it (it nudges the addresses it started with), as with an
    /// instance an operator scales out.
    @discardableResult
    public func addAggregation(extra: [String] = []) async throws -> Int {
        let port = try freeTCPPort()
        let index = state.withLockedValue { state in
            state.aggregationPorts.append(port)
            return state.aggregationPorts.count - 1
        }
        try await startAggregation(index: index, extra: extra)
        return index
    }

    /// Stops every process gracefully (SIGTERM). Returns their exit statuses by name.
    @discardableResult
    public func stop() async -> [String: Int32] {
        var statuses: [String: Int32] = [:]
        if let intake { statuses["intake"] = await intake.stop() }
        if let reporting { statuses["reporting"] = await reporting.stop() }
        for (i, aggregation) in aggregations.enumerated() { statuses["aggregation-\(i)"] = await aggregation.stop() }
        return statuses
    }

    /// Returns the first of the running services to exit, once it has; never returns while
    /// all keep running (cancel the task to stop waiting: then it returns nil).
    public func firstExit(pollingEvery interval: Duration = .milliseconds(100)) async -> ManagedProcess? {
        while !Task.isCancelled {
            if let exited = processes.first(where: { !$0.isRunning }) { return exited }
            try? await Task.sleep(for: interval)
        }
        return nil
    }

    /// A new client connection to intake, authenticated with `token` (default: the stack's admin key).
    public func intakeClient(token: String? = nil) async throws -> ProtocolClient {
        try await ProtocolClient.connect(address: intakeAddress, token: token ?? adminToken, tls: clientTLS)
    }
    /// A new client connection to reporting, authenticated with `token` (default: the stack's admin key).
    public func reportingClient(token: String? = nil) async throws -> ProtocolClient {
        try await ProtocolClient.connect(address: reportingAddress, token: token ?? adminToken, tls: clientTLS)
    }
    /// A new client connection to aggregation instance `index`, authenticated with the admin key.
    public func aggregationClient(_ index: Int = 0) async throws -> ProtocolClient {
        try await ProtocolClient.connect(address: aggregationAddresses[index], token: adminToken, tls: clientTLS)
    }

    /// Launches `name` on `port` and waits until it answers there; `record` sees each process
    /// launched (so a failure's log can be shown). A port we picked may be taken by someone else
    /// before the service binds it (outgoing connections draw from the same range): then the
    /// service exits on the bind, and with `mayPickAnotherPort` we try again on a new one.
    private func startService(
        _ name: String,
        label: String? = nil,
        port: Int,
        mayPickAnotherPort: Bool,
        extra: [String] = [],
        environment: [String: String] = [:],
        record: (ManagedProcess) -> Void
    ) async throws -> (ManagedProcess, Int) {
        var port = port
        var attempts = 1
        while true {
            let process = try launch(name, port: port, label: label, extra: extra, environment: environment)
            record(process)
            do {
                try await process.waitUntilServing(port: port, tls: clientTLS)
                return (process, port)
            } catch let error as LaunchError {
                let lostThePort = !process.isRunning && process.logTail(lines: 3).contains("Address already in use")
                guard mayPickAnotherPort, lostThePort, attempts < 5 else { throw error }
                attempts += 1
                port = try freeTCPPort()
            }
        }
    }

    private func launch(
        _ name: String,
        port: Int,
        label: String? = nil,
        extra: [String] = [],
        environment: [String: String] = [:]
    ) throws -> ManagedProcess {
        var tlsArguments: [String] = []
        var tlsEnvironment: [String: String] = [:]
        if let tls {
            tlsArguments = ["--tls-cert", tls.certificatePath, "--tls-key", tls.keyPath]
            if let clientCA = tls.clientCAPath { tlsArguments += ["--tls-client-ca", clientCA] }
            // intake nudges aggregation over TLS too, presenting its own certificate.
            tlsEnvironment["ROOTCAUSES_AGGREGATION_TLS_CA"] = tls.caPath
        }
        var metricsArguments: [String] = []
        if servesMetrics {
            // A restarted process keeps its metrics port, as it keeps its protocol port.
            let known = state.withLockedValue { $0.metricsPorts[label ?? name] }
            let metricsPort = try known ?? freeTCPPort()
            state.withLockedValue { $0.metricsPorts[label ?? name] = metricsPort }
            metricsArguments = ["--metrics-listen", "127.0.0.1:\(metricsPort)"]
        }
        // The URL (with its password) goes in the environment, which only the service's user and
        // root can read, never on the command line, which every user can.
        return try ManagedProcess(
            name: label ?? name,
            executable: binDirectory + "/" + name,
            arguments: ["--listen", "127.0.0.1:\(port)"] + tlsArguments + metricsArguments + extra,
            environment: extraEnvironment.merging(environment) { _, new in new }
                .merging(tlsEnvironment) { _, new in new }
                .merging(["DATABASE_URL": serviceDatabaseURL(name)]) { _, new in new },
            logPath: logDirectory + "/\(label ?? name).log",
            runAs: runAs
        )
    }

}
