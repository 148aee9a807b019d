import Foundation
import RootcausesJSON
import RootcausesProtocol

/// The three services, each its own process, against one database: what `rootcauses demo`
/// and `up` run, and what integration tests run.
public final class ServiceStack: @unchecked Sendable {
    public let databaseURL: String
    public let binDirectory: String
    public let logDirectory: String
    public let intakePort: Int
    public let reportingPort: Int
    public private(set) var aggregationPorts: [Int] = []
    public private(set) var intake: ManagedProcess?
    public private(set) var reporting: ManagedProcess?
    public private(set) var aggregations: [ManagedProcess] = []
    private let extraEnvironment: [String: String]

    /// Prepares a stack; nothing runs until `start()`. Ports of 0 are picked free.
    public init(
        databaseURL: String, binDirectory: String = ServiceStack.defaultBinDirectory, logDirectory: String,
        intakePort: Int = 0, aggregationPort: Int = 0, reportingPort: Int = 0, environment: [String: String] = [:]
    ) throws {
        self.databaseURL = databaseURL
        self.binDirectory = binDirectory
        self.logDirectory = logDirectory
        self.intakePort = intakePort == 0 ? try freeTCPPort() : intakePort
        self.reportingPort = reportingPort == 0 ? try freeTCPPort() : reportingPort
        self.aggregationPorts = [aggregationPort == 0 ? try freeTCPPort() : aggregationPort]
        self.extraEnvironment = environment
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
    }

    /// The folder of the running executable: where SwiftPM puts the service executables too.
    public static var defaultBinDirectory: String {
        if let override = ProcessInfo.processInfo.environment["ROOTCAUSES_BIN_DIR"] { return override }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
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
    public func start() async throws {
        try await startAggregation(index: 0)
        reporting = try launch("reporting", port: reportingPort)
        try await waitUntilReady(reporting!, port: reportingPort)
        intake = try launch("intake", port: intakePort, extra: ["--aggregation", aggregationAddresses.joined(separator: ",")])
        try await waitUntilReady(intake!, port: intakePort)
    }

    /// Starts (or restarts) aggregation instance `index` on its port.
    public func startAggregation(index: Int, extra: [String] = []) async throws {
        let port = aggregationPorts[index]
        let process = try launch("aggregation", port: port, label: "aggregation-\(index)", extra: ["--poll-interval-ms", "200"] + extra)
        if index < aggregations.count { aggregations[index] = process } else { aggregations.append(process) }
        try await waitUntilReady(process, port: port)
    }

    /// Adds one more aggregation instance on a new port and starts it. Returns its index.
    @discardableResult
    public func addAggregation() async throws -> Int {
        aggregationPorts.append(try freeTCPPort())
        let index = aggregationPorts.count - 1
        try await startAggregation(index: index)
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

    /// A new client connection to intake.
    public func intakeClient() async throws -> ProtocolClient { try await ProtocolClient.connect(host: "127.0.0.1", port: intakePort) }
    /// A new client connection to reporting.
    public func reportingClient() async throws -> ProtocolClient { try await ProtocolClient.connect(host: "127.0.0.1", port: reportingPort) }
    /// A new client connection to aggregation instance `index`.
    public func aggregationClient(_ index: Int = 0) async throws -> ProtocolClient {
        try await ProtocolClient.connect(host: "127.0.0.1", port: aggregationPorts[index])
    }

    private func launch(_ name: String, port: Int, label: String? = nil, extra: [String] = []) throws -> ManagedProcess {
        try ManagedProcess(
            name: label ?? name,
            executable: binDirectory + "/" + name,
            arguments: ["--listen", "127.0.0.1:\(port)", "--database-url", databaseURL] + extra,
            environment: extraEnvironment,
            logPath: logDirectory + "/\(label ?? name).log")
    }

    private func waitUntilReady(_ process: ManagedProcess, port: Int, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw LaunchError("\(process.name) exited with status \(process.exitStatus ?? -1) during start:\n\(process.logTail())")
            }
            if let client = try? await ProtocolClient.connect(host: "127.0.0.1", port: port) {
                let answer = try? await client.request(["op": "ping"])
                await client.close()
                if answer?["ok"] == .bool(true) { return }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LaunchError("\(process.name) did not answer on port \(port) within \(timeout):\n\(process.logTail())")
    }
}

/// A free TCP port on loopback, as the kernel hands them out.
public func freeTCPPort() throws -> Int {
    try LocalCluster.freePort()
}
