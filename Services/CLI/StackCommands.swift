import ArgumentParser
import Foundation
import Logging
import RootcausesJSON
import RootcausesLocalStack
import RootcausesPostgres
import RootcausesService
import RootcausesStorage
import Subprocess
import SystemPackage
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// Options shared by `demo` and `up`.
struct StackOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "Use this PostgreSQL instead of a private one. Env: DATABASE_URL.")
    var databaseURL: String?

    @Option(
        name: .customLong("data-dir"),
        help: "Where the private PostgreSQL cluster and the logs live. Default: ./.rootcauses"
    )
    var dataDirectory: String = ".rootcauses"
}

/// A running local stack and what must be undone when it stops.
struct LocalStack {
    let stack: ServiceStack
    let cluster: LocalCluster?
    /// Where the admin key's token is kept (0600).
    let tokenFile: String

    /// Starts PostgreSQL (unless a URL is given) and the three services. Fixed ports (non-zero)
    /// are checked first: a taken one fails at once, naming it, before anything starts.
    static func start(
        options: StackOptions,
        ports: (Int, Int, Int),
        database: String = "rootcauses",
        log: (String) -> Void
    ) async throws -> LocalStack {
        for (service, port, flag) in [
            ("intake", ports.0, "--intake-port"), ("aggregation", ports.1, "--aggregation-port"),
            ("reporting", ports.2, "--reporting-port"),
        ] where port != 0 {
            if let reason = whyPortIsUnavailable(port) {
                throw CLIError(
                    "port \(port) for \(service) is not free on 127.0.0.1 (\(reason)): is another stack running? Stop it, or choose another port with \(flag)"
                )
            }
        }
        let dataDirectory = URL(fileURLWithPath: options.dataDirectory).standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        var logger = Logger(label: "rootcauses") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        var cluster: LocalCluster?
        let databaseURL: String
        if let url = options.databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
            databaseURL = url
            log("using the PostgreSQL at DATABASE_URL")
        } else {
            var clusterDirectory = dataDirectory + "/postgres"
            if geteuid() == 0, !LocalCluster.postgresUserCanReach(clusterDirectory) {
                // PostgreSQL runs as the postgres user, which cannot enter this folder: keep its files elsewhere.
                clusterDirectory =
                    "/var/tmp/rootcauses-\(UInt32(truncatingIfNeeded: dataDirectory.hashValueStable))/postgres"
                log("the postgres user cannot reach \(dataDirectory); keeping the cluster in \(clusterDirectory)")
            }
            log("starting a private PostgreSQL cluster in \(clusterDirectory)")
            let started = try await LocalCluster.start(dataDirectory: clusterDirectory, durable: true, logger: logger)
            if started.startedHere {
                // Ours to stop, also if this process dies before it can (a crash, a closed pipe).
                try started.stopWhenProcessExits(getpid())
                cluster = started
            } else {
                log("PostgreSQL is already running in \(clusterDirectory); leaving it running afterwards")
            }
            databaseURL = try ensureDatabase(named: database, on: started, logger: logger)
        }
        try await buildServicesIfMissing(binDirectory: ServiceStack.defaultBinDirectory, log: log)
        let stack = try ServiceStack(
            databaseURL: databaseURL,
            logDirectory: dataDirectory + "/logs",
            intakePort: ports.0,
            aggregationPort: ports.1,
            reportingPort: ports.2
        )
        log("starting intake, aggregation and reporting (logs in \(dataDirectory)/logs)")
        let tokenFile = dataDirectory + "/admin.token"
        do {
            let previous = try? readToken(tokenFile)
            try await stack.start(adminToken: previous)
            let found =
                tokenFile == URL(fileURLWithPath: ServiceAddresses.localAdminTokenFile).standardizedFileURL.path
                ? "the CLI run from this folder uses it" : "give it to the CLI with --token-file \(tokenFile)"
            if let token = stack.adminToken, token != previous {
                try Secrets.writePrivateFile(tokenFile, contents: token + "\n")
                log("a new admin key's token is in \(tokenFile) (readable by you only); \(found)")
            } else {
                log("the admin key's token is in \(tokenFile); \(found)")
            }
        } catch {
            await stack.stop()
            try? await cluster?.stop()
            throw error
        }
        return LocalStack(stack: stack, cluster: cluster, tokenFile: tokenFile)
    }

    /// Stops the services gracefully, then the private cluster if one was started.
    func stop(log: (String) -> Void) async {
        let statuses = await stack.stop()
        let unclean = statuses.filter { $0.value != 0 }
        if !unclean.isEmpty {
            log(
                "some services did not exit cleanly: \(unclean.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ", "))"
            )
        }
        if let cluster {
            do { try await cluster.stop() } catch { log("could not stop PostgreSQL: \(error)") }
        }
    }
}

/// `swift run rootcauses demo` builds only `rootcauses`: when the three service executables
/// are not next to it and this is a package checkout, build them (same configuration) first.
func buildServicesIfMissing(binDirectory: String, log: (String) -> Void) async throws {
    let services = ["intake", "aggregation", "reporting"]
    let fileManager = FileManager.default
    guard services.contains(where: { !fileManager.isExecutableFile(atPath: binDirectory + "/" + $0) }) else { return }
    // binDirectory is <package>/.build/<triple>/<configuration> (or .build/<configuration>).
    var root = URL(fileURLWithPath: binDirectory)
    let configuration = root.lastPathComponent
    while root.path != "/", !fileManager.fileExists(atPath: root.path + "/Package.swift") {
        root.deleteLastPathComponent()
    }
    guard root.path != "/", configuration == "debug" || configuration == "release" else {
        throw CLIError(
            "the service executables (intake, aggregation, reporting) are not next to rootcauses in \(binDirectory)"
        )
    }
    guard
        let swift = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
            .map({ "\($0)/swift" }).first(where: { fileManager.isExecutableFile(atPath: $0) })
    else { throw CLIError("the service executables are not built and no swift toolchain is on PATH to build them") }
    for service in services {
        log("building \(service) (\(configuration))")
        // Its progress goes straight to our standard error, where the demo's progress goes.
        let result = try await Subprocess.run(
            .path(FilePath(swift)),
            arguments: ["build", "--package-path", root.path, "-c", configuration, "--product", service],
            output: .currentStandardError,
            error: .currentStandardError
        )
        guard result.terminationStatus.isSuccess else {
            throw CLIError("swift build --product \(service) failed (\(result.terminationStatus))")
        }
    }
}

/// Creates `name` on the cluster if it does not exist; returns its URL.
///
/// Whether it exists is asked by connecting to it (only the plain connection API is used here).
func ensureDatabase(named name: String, on cluster: LocalCluster, logger: Logger) throws -> String {
    let url = cluster.url(database: name)
    func exists() -> Bool {
        guard let connection = try? PostgresConnection(conninfo: url, applicationName: "rootcauses-cli", logger: logger)
        else {
            return false
        }
        connection.close()
        return true
    }
    if exists() { return url }
    let connection = try PostgresConnection(
        conninfo: cluster.url(database: "postgres"),
        applicationName: "rootcauses-cli",
        logger: logger
    )
    defer { connection.close() }
    do {
        try connection.execute("CREATE DATABASE \(PostgresQuery.quoteIdentifier(name))")
    } catch {
        // Another rootcauses may have created it meanwhile.
        guard exists() else { throw error }
    }
    return url
}

extension String {
    /// A hash that is the same in every run (Swift's `hashValue` is seeded per process).
    var hashValueStable: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}

/// A progress line on standard error (a plain write: no buffering, no exception on a closed pipe).
func progress(_ message: String) {
    // What was printed to standard output comes first, also when both go to one pipe.
    fflush(nil)  // every output stream; `stdout` itself is not concurrency-safe to name
    let line = Array(("rootcauses: " + message + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Run the whole pipeline once: start PostgreSQL and the services, submit the sample data, print the fact sheet, shut down.",
        discussion:
            "Progress goes to standard error, the fact sheet to standard output. Running it again finds the sample already stored: every submission answers 'duplicate' and the numbers do not change."
    )

    @OptionGroup var stackOptions: StackOptions

    @Option(help: "Submissions to load (NDJSON). Default: Deploy/sample/submissions.ndjson.")
    var sample: String?

    @Option(help: "The fact sheet's date, YYYY-MM-DD. The sample data is as of the seed fact sheet's date.")
    var date: String = "2023-02-06"

    @Option(help: "markdown, json or html.")
    var format: String = "markdown"

    @Flag(help: "Print one JSON object: what was loaded, and the fact sheet's answer in --format.")
    var json = false

    func validate() throws {
        try validateFactSheetOptions(date: date, format: format, allowed: ["markdown", "json", "html"])
    }

    func run() async throws {
        guard let samplePath = sample ?? findSample() else {
            throw CLIError("no sample data found: pass --sample FILE")
        }
        let submissions = try parseSubmissions(try readSubmissionFile(samplePath), source: samplePath)
        let running = try await LocalStack.start(options: stackOptions, ports: (0, 0, 0), log: progress)
        do {
            progress("submitting \(samplePath) to intake at \(running.stack.intakeAddress)")
            let summary = try await submitLines(
                submissions,
                to: running.stack.intakeAddress,
                token: running.stack.adminToken,
                dryRun: false
            ) { line, _ in
                if !line.hasSuffix("accepted seq \(line.split(separator: " ").last ?? "")")
                    && !line.contains(": duplicate")
                {
                    progress(line)
                }
            }
            progress(summary.description)
            // What happened after the submissions: corrections, a retraction, targets, and the
            // analysts' resolutions of overlapping figures.
            var lastSeq = summary.lastSeq
            var historyStatuses: [String: Int]?
            if let history = historyPath(besides: samplePath) {
                // Deduplications are checked against the aggregated figures: let them catch up first.
                _ = try await call(
                    "reporting",
                    at: running.stack.reportingAddress,
                    token: running.stack.adminToken,
                    ["op": "indicators", "min_seq": .int(summary.lastSeq), "timeout_ms": 30_000]
                )
                let loaded = try await loadHistory(
                    history,
                    to: running.stack.intakeAddress,
                    token: running.stack.adminToken
                )
                lastSeq = max(lastSeq, loaded.newest)
                historyStatuses = loaded.statuses
            }
            let answer = try await call(
                "reporting",
                at: running.stack.reportingAddress,
                token: running.stack.adminToken,
                [
                    "op": "factsheet", "format": .string(format), "date": .string(date),
                    "min_seq": .int(lastSeq), "timeout_ms": 30_000,
                ]
            )
            if json {
                // One object for scripts: what was loaded, and the fact sheet's answer.
                var result: [(String, JSON)] = [
                    (
                        "submissions",
                        [
                            "accepted": .int(Int64(summary.accepted)), "duplicate": .int(Int64(summary.duplicate)),
                            "failed": .int(Int64(summary.failed)), "last_seq": .int(summary.lastSeq),
                        ]
                    )
                ]
                if let historyStatuses {
                    result.append(
                        (
                            "history",
                            .object(historyStatuses.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })
                        )
                    )
                }
                result.append(("factsheet", answer.withoutEnvelope))
                print(JSON.object(result).prettyPrinted)
            } else if format == "json" {
                print(answer.withoutEnvelope.prettyPrinted)
            } else {
                print(answer["text"]?.stringValue ?? "")
            }
            progress("shutting down")
            await running.stop(log: progress)
            if summary.failed > 0 { throw ExitCode(1) }
            // The data stays in the data folder: every number can be traced from there.
            progress(
                "to see every submission behind a number: 'rootcauses up', then 'rootcauses explain --indicator jobs_created --date \(date) --all' (any indicator code of 'rootcauses indicators')"
            )
        } catch {
            await running.stop(log: progress)
            throw error
        }
    }

    /// `history.ndjson` in the sample's folder, if there is one.
    private func historyPath(besides sample: String) -> String? {
        let path = URL(fileURLWithPath: sample).deletingLastPathComponent().path + "/history.ndjson"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// Sends each line of `path` (an intake request) in order; returns the newest seq. Sent
    /// again, every request answers duplicate: nothing changes.
    private func loadHistory(
        _ path: String,
        to address: String,
        token: String?
    ) async throws -> (newest: Int64, statuses: [String: Int]) {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var newest: Int64 = 0
        var statuses: [String: Int] = [:]
        for (index, line) in text.split(separator: "\n").enumerated() where !line.allSatisfy(\.isWhitespace) {
            let request = try JSONParser.parse(String(line))
            guard request["op"]?.stringValue != nil else {
                throw CLIError("\(path):\(index + 1): not an intake request")
            }
            let answer = try await call("intake", at: address, token: token, request)
            newest = max(newest, answer["seq"]?.int64Value ?? 0)
            statuses[answer["status"]?.stringValue ?? "?", default: 0] += 1
        }
        progress(
            "history: " + statuses.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        )
        return (newest, statuses)
    }

    private func findSample() -> String? {
        guard let catalogue = findShippedFile("catalogue.json") else { return nil }
        let path =
            URL(fileURLWithPath: catalogue).deletingLastPathComponent().deletingLastPathComponent().path
            + "/sample/submissions.ndjson"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run PostgreSQL and the three services in the foreground until Ctrl-C."
    )

    @OptionGroup var stackOptions: StackOptions

    @Option(name: .customLong("intake-port")) var intakePort: Int = 7401
    @Option(name: .customLong("aggregation-port")) var aggregationPort: Int = 7402
    @Option(name: .customLong("reporting-port")) var reportingPort: Int = 7403
    @Flag(
        help:
            "Print one JSON line when the stack is up (its addresses and admin token file) and one when it stops, for scripts that wait on it."
    )
    var json = false

    func run() async throws {
        // Trap the signals before anything starts, so Ctrl-C during start-up still cleans up.
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let running = try await LocalStack.start(
            options: stackOptions,
            ports: (intakePort, aggregationPort, reportingPort),
            log: progress
        )
        progress(
            "up: intake \(running.stack.intakeAddress), aggregation \(running.stack.aggregationAddresses[0]), reporting \(running.stack.reportingAddress). Ctrl-C to stop."
        )
        if json {
            let up: JSON = [
                "event": "up", "intake": .string(running.stack.intakeAddress),
                "aggregation": .array(running.stack.aggregationAddresses.map(JSON.string)),
                "reporting": .string(running.stack.reportingAddress),
                "admin_token_file": .string(running.tokenFile),
            ]
            // Written straight to the descriptor: a script reading a pipe sees it now, not at exit.
            FileHandle.standardOutput.write(Data((up.serialized + "\n").utf8))
        }
        // Until Ctrl-C, or until one of our services exits on its own: then the stack is broken.
        let exited = await withTaskGroup(of: ManagedProcess?.self) { group in
            group.addTask { await running.stack.firstExit() }
            group.addTask {
                for await _ in signals { break }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let exited else {
            progress("stopping")
            await running.stop(log: progress)
            if json { FileHandle.standardOutput.write(Data(#"{"event":"stopped"}"#.utf8 + [0x0A])) }
            return
        }
        progress(
            "\(exited.name) exited with status \(exited.exitStatus ?? -1); stopping the rest. The end of its log (\(exited.logPath)):\n\(exited.logTail(lines: 10))"
        )
        await running.stop(log: progress)
        if json {
            let stopped: JSON = [
                "event": "stopped", "failed": .string(exited.name), "exit_status": .int(Int64(exited.exitStatus ?? -1)),
            ]
            FileHandle.standardOutput.write(Data((stopped.serialized + "\n").utf8))
        }
        throw ExitCode(1)
    }
}
