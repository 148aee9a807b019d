import Foundation
import Logging
import RootcausesPostgres
import RootcausesStorage
import Subprocess
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL cluster run with the machine's own `initdb` and `pg_ctl`.
///
/// Used by `rootcauses demo`/`up` when no `DATABASE_URL` is given, and by the tests.
/// When the current user is root, the server runs as the `postgres` user (PostgreSQL refuses
/// to run as root), so the data folder is handed to that user.
public struct LocalCluster: Sendable {
    /// Where the cluster's files live.
    public let dataDirectory: String
    /// The TCP port it listens on (loopback only).
    public let port: Int
    /// The superuser the cluster was created with.
    public let user: String
    /// The superuser's password (generated at `initdb`, kept in `passwordFile`).
    public let password: String
    /// The folder holding `initdb`, `pg_ctl` and `postgres`.
    public let binDirectory: String
    /// False for throwaway clusters (no fsync).
    public let durable: Bool
    /// False when `start` found the server already running (someone else started it).
    public var startedHere: Bool = true

    /// A libpq URL for `database` on this cluster, as its superuser (with the password).
    public func url(database: String = "postgres") -> String {
        "postgresql://\(user):\(password)@127.0.0.1:\(port)/\(database)"
    }

    /// Where the superuser's password is kept: beside the data folder (which the `postgres`
    /// user may own), readable by us only.
    public static func passwordFile(for dataDirectory: String) -> String { dataDirectory + ".password" }

    /// The only connections the cluster accepts: TCP on loopback, every role with its password
    /// (SCRAM); no Unix socket (`unix_socket_directories` is empty), no replication.
    static let hostBasedAuthentication = """
        # Written by rootcauses at every start: loopback TCP only, each role with its password.
        # No Unix socket, no replication, no trust.
        host    all    all    127.0.0.1/32    scram-sha-256

        """

    /// Creates the cluster if `dataDirectory` holds none, starts it unless it already runs,
    /// and returns it. `durable: false` turns off fsync (for throwaway test clusters).
    public static func start(dataDirectory: String, durable: Bool = true, logger: Logger) async throws -> LocalCluster {
        let binDirectory = try findBinDirectory()
        let user = "rootcauses"
        let fileManager = FileManager.default
        let runAsPostgres = geteuid() == 0

        let passwordFile = Self.passwordFile(for: dataDirectory)
        var password = try? Secrets.read(passwordFile)
        // A cluster made before passwords (it trusted every local connection): secured below.
        var legacy = false
        if !fileManager.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            try fileManager.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            if runAsPostgres { try handToPostgresUser(dataDirectory) }
            chmod(dataDirectory, 0o700)
            logger.info("creating local PostgreSQL cluster", metadata: ["directory": "\(dataDirectory)"])
            let made = Secrets.randomHex()
            try Secrets.writePrivateFile(passwordFile, contents: made + "\n")
            password = made
            // initdb reads the password from a file the postgres user can read, deleted at once.
            let pwfile = "/tmp/rootcauses-initdb-\(getpid())-\(UUID().uuidString.prefix(8))"
            try Secrets.writePrivateFile(pwfile, contents: made + "\n")
            defer { unlink(pwfile) }
            if runAsPostgres { try handToPostgresUser(pwfile) }
            var arguments = [
                "-D", dataDirectory, "-U", user, "--pwfile", pwfile, "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C",
            ]
            if !durable { arguments.append("--no-sync") }
            try await runTool(binDirectory + "/initdb", arguments, what: "initdb")
        } else if password == nil {
            legacy = true
        }
        // At every start: only what hostBasedAuthentication allows.
        try writeConfigurationFile(dataDirectory + "/pg_hba.conf", Self.hostBasedAuthentication, legacy: legacy)

        if let running = await runningPort(dataDirectory: dataDirectory, binDirectory: binDirectory) {
            logger.info("local PostgreSQL already running", metadata: ["port": "\(running)"])
            var cluster = LocalCluster(
                dataDirectory: dataDirectory,
                port: running,
                user: user,
                password: password ?? "",
                binDirectory: binDirectory,
                durable: durable
            )
            cluster.startedHere = false
            if legacy { cluster = try await cluster.secureLegacyCluster(logger: logger) }
            return cluster
        }

        var cluster = LocalCluster(
            dataDirectory: dataDirectory,
            port: try freeTCPPort(),
            user: user,
            password: password ?? "",
            binDirectory: binDirectory,
            durable: durable
        )
        try await cluster.restart()
        if legacy { cluster = try await cluster.secureLegacyCluster(logger: logger) }
        logger.info("local PostgreSQL started", metadata: ["port": "\(cluster.port)", "directory": "\(dataDirectory)"])
        return cluster
    }

    /// Settings on the server's command line. A cluster that need not survive an OS crash skips
    /// fsync; commits stay synchronous either way, so a killed server never loses an acked commit.
    static func serverOptions(port: Int, durable: Bool) -> String {
        var options = "-p \(port) -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200"
        if !durable { options += " -c fsync=off -c full_page_writes=off" }
        return options
    }

    /// Stops the server (fast shutdown: sessions are ended, committed data is safe).
    public func stop() async throws {
        try await LocalCluster.runTool(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"],
            what: "pg_ctl stop"
        )
    }

    /// Stops the server at once, the way a crash would (for failure tests). Data stays consistent.
    public func kill() async throws {
        try await LocalCluster.runTool(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "-m", "immediate", "-w", "stop"],
            what: "pg_ctl stop -m immediate"
        )
    }

    /// Tells the server to stop at once (what `pg_ctl -m immediate` sends: SIGQUIT to the
    /// postmaster) and waits up to `timeout` for it to go, without starting a process: for
    /// exit handlers, which cannot await.
    public func stopImmediatelyFromExitHandler(timeout: Duration = .seconds(10)) {
        guard let pidFile = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
            let postmaster = pidFile.split(separator: "\n").first.flatMap({ Int32($0) }), postmaster > 0
        else { return }
        guard Glibc.kill(postmaster, SIGQUIT) == 0 else { return }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while Glibc.kill(postmaster, 0) == 0, ContinuousClock.now < deadline { usleep(20_000) }
    }

    /// Starts the server (again) on this cluster's port.
    public func restart() async throws {
        let options = LocalCluster.serverOptions(port: port, durable: durable)
        let logFile = dataDirectory + "/server.log"
        // The server's own output goes to `logFile` (-l); pg_ctl's to the capture file of runTool.
        try await LocalCluster.runTool(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", options, "start"],
            what: "pg_ctl start",
            serverLog: logFile
        )
    }

    /// Lets this cluster's superuser stream its WAL over loopback (with its password), for a
    /// standby made by `makeStandby`; the next `start` writes the strict `pg_hba.conf` again.
    public func allowReplication() async throws {
        try writeConfigurationFile(
            dataDirectory + "/pg_hba.conf",
            Self.hostBasedAuthentication + "host    replication    \(user)    127.0.0.1/32    scram-sha-256\n",
            legacy: false
        )
        try await LocalCluster.runTool(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "reload"],
            what: "pg_ctl reload"
        )
    }

    /// Makes a hot standby of this cluster in `standbyDirectory` (a new folder) with
    /// `pg_basebackup`, and starts it streaming from this one on a port of its own: the read
    /// replica an operator would add (docs/OPERATIONS.md), on one machine.
    public func makeStandby(dataDirectory standbyDirectory: String) async throws -> LocalCluster {
        try await allowReplication()
        try FileManager.default.createDirectory(atPath: standbyDirectory, withIntermediateDirectories: true)
        if geteuid() == 0 { try LocalCluster.handToPostgresUser(standbyDirectory) }
        chmod(standbyDirectory, 0o700)
        // -R writes the standby's primary_conninfo and standby.signal; the password goes in the
        // environment, not on a command line.
        try await LocalCluster.runTool(
            binDirectory + "/pg_basebackup",
            [
                "-h", "127.0.0.1", "-p", "\(port)", "-U", user, "-D", standbyDirectory, "-R", "-X", "stream",
                "-c", "fast", "--no-sync",
            ],
            what: "pg_basebackup",
            environment: ["PGPASSWORD": password]
        )
        try Secrets.writePrivateFile(Self.passwordFile(for: standbyDirectory), contents: password + "\n")
        let standby = LocalCluster(
            dataDirectory: standbyDirectory,
            port: try freeTCPPort(),
            user: user,
            password: password,
            binDirectory: binDirectory,
            durable: durable
        )
        try await standby.restart()
        return standby
    }

    /// Starts a detached watcher that stops this cluster (and deletes `removing`, a folder that
    /// holds it, when given) once process `pid` is gone, so a crashed test run leaves nothing behind.
    ///
    /// Hand-written rather than swift-subprocess: the watcher must outlive us in its own session
    /// (setsid), while `Subprocess.run` awaits its child's exit and ties it to the calling task.
    public func stopWhenProcessExits(_ pid: Int32, removing folder: String? = nil) throws {
        let pgCtl = LocalCluster.commandLine(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "-m", "immediate", "-w", "stop"],
            asPostgres: geteuid() == 0
        )
        // Stop only the server running now: a later run may have started a new one in the same folder.
        let pidFile = shellQuote(dataDirectory + "/postmaster.pid")
        let postmaster =
            (try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first.map(String.init) ?? ""
        var script =
            "while kill -0 \(pid) 2>/dev/null; do sleep 1; done; "
            + "if [ \"$(head -n 1 \(pidFile) 2>/dev/null)\" = \(shellQuote(postmaster)) ]; then \(pgCtl) >/dev/null 2>&1; fi"
        if let folder { script += "; rm -rf \(shellQuote(folder))" }
        let pid = try ChildProcess.spawn("/usr/bin/setsid", ["/bin/sh", "-c", script], outputPath: "/dev/null")
        // Reap it whenever it ends, so it never lingers as a zombie of ours.
        Thread.detachNewThread { _ = ChildProcess.exitStatus(of: pid, wait: true) }
    }

    /// Gives a cluster made before passwords (trusting local connections) its superuser password
    /// and then the strict `pg_hba.conf`, and reloads it.
    func secureLegacyCluster(logger: Logger) async throws -> LocalCluster {
        logger.notice(
            "securing a local PostgreSQL cluster made before passwords",
            metadata: ["directory": "\(dataDirectory)"]
        )
        // The transitional pg_hba.conf (trust for the superuser on loopback) is in place: make
        // a server already running read it, for the moment it takes to set the password.
        try await LocalCluster.runTool(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "reload"],
            what: "pg_ctl reload"
        )
        try await Task.sleep(for: .milliseconds(300))
        let made = Secrets.randomHex()
        do {
            let trusted = try PostgresConnection(
                conninfo: "postgresql://\(user)@127.0.0.1:\(port)/postgres",
                applicationName: "rootcauses-stack",
                logger: logger
            )
            defer { trusted.close() }
            // The verifier, computed here, so the clear password is in no statement the server logs.
            let verifier = try trusted.scramVerifier(password: made, user: user)
            try trusted.execute("ALTER ROLE \(PostgresQuery.quoteIdentifier(user)) PASSWORD '\(verifier)'")
            try Secrets.writePrivateFile(Self.passwordFile(for: dataDirectory), contents: made + "\n")
        } catch {
            // Whatever failed, the transitional trust rule must not stay loaded.
            try? writeConfigurationFile(dataDirectory + "/pg_hba.conf", Self.hostBasedAuthentication, legacy: false)
            _ = try? await LocalCluster.runTool(
                binDirectory + "/pg_ctl",
                ["-D", dataDirectory, "reload"],
                what: "pg_ctl reload"
            )
            throw error
        }
        try writeConfigurationFile(dataDirectory + "/pg_hba.conf", Self.hostBasedAuthentication, legacy: false)
        try await LocalCluster.runTool(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "reload"],
            what: "pg_ctl reload"
        )
        return LocalCluster(
            dataDirectory: dataDirectory,
            port: port,
            user: user,
            password: made,
            binDirectory: binDirectory,
            durable: durable,
            startedHere: startedHere
        )
    }

    // MARK: - Helpers

    /// Finds the server binaries: next to `initdb` on PATH, else the newest under /usr/lib/postgresql.
    static func findBinDirectory() throws -> String {
        let fileManager = FileManager.default
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = String(directory) + "/initdb"
            if fileManager.isExecutableFile(atPath: candidate) {
                let resolved = URL(fileURLWithPath: candidate).resolvingSymlinksInPath().deletingLastPathComponent()
                    .path
                if fileManager.isExecutableFile(atPath: resolved + "/pg_ctl") { return resolved }
            }
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? fileManager.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        for version in versions {
            let bin = "\(root)/\(version)/bin"
            if fileManager.isExecutableFile(atPath: bin + "/initdb") { return bin }
        }
        throw LocalClusterError(
            message:
                "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql; install the 'postgresql' package or set DATABASE_URL"
        )
    }

    static func runningPort(dataDirectory: String, binDirectory: String) async -> Int? {
        guard
            (try? await runTool(
                binDirectory + "/pg_ctl",
                ["-D", dataDirectory, "status"],
                what: "pg_ctl status",
                quiet: true
            )) != nil,
            let pidFile = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8)
        else { return nil }
        let lines = pidFile.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3 else { return nil }
        return Int(lines[3].trimmingCharacters(in: .whitespaces))
    }

    /// Gives `directory` (and nothing above it) to the `postgres` user.
    static func handToPostgresUser(_ directory: String) throws {
        guard let entry = getpwnam("postgres") else {
            throw LocalClusterError(message: "running as root, but there is no 'postgres' user to run PostgreSQL as")
        }
        guard chown(directory, entry.pointee.pw_uid, entry.pointee.pw_gid) == 0 else {
            throw LocalClusterError(
                message: "could not give \(directory) to the postgres user: \(String(cString: strerror(errno)))"
            )
        }
    }

    /// True when the `postgres` user can reach `path` (every folder above it lets others pass).
    public static func postgresUserCanReach(_ path: String) -> Bool {
        firstFolderOthersCannotEnter(above: path) == nil
    }

    static func commandLine(_ executable: String, _ arguments: [String], asPostgres: Bool) -> String {
        let words = (asPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []) + [executable] + arguments
        return words.map(shellQuote).joined(separator: " ")
    }

    /// Runs `initdb` or `pg_ctl` to completion (as the `postgres` user when we are root) and
    /// returns its output; throws with that output (and the server log's tail) when it fails.
    @discardableResult
    static func runTool(
        _ executable: String,
        _ arguments: [String],
        what: String,
        serverLog: String? = nil,
        quiet: Bool = false,
        environment: [String: String] = [:]
    ) async throws -> String {
        let asPostgres = geteuid() == 0
        let command = asPostgres ? "/usr/sbin/runuser" : executable
        let commandArguments = asPostgres ? ["-u", "postgres", "--", executable] + arguments : arguments
        // Output goes to a file, not a pipe: the server `pg_ctl start` forks inherits pg_ctl's
        // output, and a pipe it holds open would never reach end-of-file.
        let capturePath = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rootcauses-\(UUID().uuidString).out"
        ).path
        defer { try? FileManager.default.removeItem(atPath: capturePath) }
        let capture = try FileDescriptor.open(
            FilePath(capturePath),
            .writeOnly,
            options: [.create, .truncate],
            permissions: [.ownerReadWrite]
        )
        let result = try await Subprocess.run(
            .path(FilePath(command)),
            arguments: Arguments(commandArguments),
            environment: .inherit.updating(
                Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(rawValue: $0.key)!, $0.value) })
            ),
            output: .fileDescriptor(capture, closeAfterSpawningProcess: true),
            error: .combinedWithOutput
        )
        let output = (try? String(contentsOfFile: capturePath, encoding: .utf8)) ?? ""
        guard result.terminationStatus.isSuccess else {
            if quiet { throw LocalClusterError(message: "\(what) failed") }
            var message =
                "\(what) failed (\(result.terminationStatus)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
            if let serverLog, let log = try? String(contentsOfFile: serverLog, encoding: .utf8) {
                message += "\nserver log:\n" + log.split(separator: "\n").suffix(15).joined(separator: "\n")
            }
            throw LocalClusterError(message: message)
        }
        return output
    }
}

/// Why the local cluster could not be created, started or stopped.
public struct LocalClusterError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

func shellQuote(_ word: String) -> String {
    "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Writes a file of the cluster's configuration, owned by the `postgres` user when we are root
/// (the server must read it), readable by its owner only. `legacy`: a cluster that has no
/// password yet, which may only be reached by its superuser from loopback until it has one.
func writeConfigurationFile(_ path: String, _ contents: String, legacy: Bool) throws {
    let text =
        legacy
        ? "# Until rootcauses sets the superuser's password.\nhost    all    rootcauses    127.0.0.1/32    trust\n"
        : contents
    try Secrets.writePrivateFile(path, contents: text)
    if geteuid() == 0 { try LocalCluster.handToPostgresUser(path) }
}
