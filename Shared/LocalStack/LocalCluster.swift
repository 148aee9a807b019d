import Foundation
import Logging

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
    /// The folder holding `initdb`, `pg_ctl` and `postgres`.
    public let binDirectory: String
    /// False for throwaway clusters (no fsync).
    public let durable: Bool
    /// False when `start` found the server already running (someone else started it).
    public var startedHere: Bool = true

    /// A libpq URL for `database` on this cluster.
    public func url(database: String = "postgres") -> String {
        "postgresql://\(user)@127.0.0.1:\(port)/\(database)"
    }

    /// Creates the cluster if `dataDirectory` holds none, starts it unless it already runs,
    /// and returns it. `durable: false` turns off fsync (for throwaway test clusters).
    public static func start(dataDirectory: String, durable: Bool = true, logger: Logger) throws -> LocalCluster {
        let binDirectory = try findBinDirectory()
        let user = "rootcauses"
        let fileManager = FileManager.default
        let runAsPostgres = geteuid() == 0

        if !fileManager.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            try fileManager.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            if runAsPostgres { try handToPostgresUser(dataDirectory) }
            chmod(dataDirectory, 0o700)
            logger.info("creating local PostgreSQL cluster", metadata: ["directory": "\(dataDirectory)"])
            var arguments = ["-D", dataDirectory, "-U", user, "-A", "trust", "-E", "UTF8", "--locale=C"]
            if !durable { arguments.append("--no-sync") }
            try run(binDirectory + "/initdb", arguments, asPostgres: runAsPostgres, what: "initdb")
        }

        if let running = runningPort(dataDirectory: dataDirectory, binDirectory: binDirectory, asPostgres: runAsPostgres) {
            logger.info("local PostgreSQL already running", metadata: ["port": "\(running)"])
            var cluster = LocalCluster(dataDirectory: dataDirectory, port: running, user: user, binDirectory: binDirectory, durable: durable)
            cluster.startedHere = false
            return cluster
        }

        let cluster = LocalCluster(
            dataDirectory: dataDirectory, port: try freePort(), user: user, binDirectory: binDirectory, durable: durable)
        try cluster.restart()
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
    public func stop() throws {
        try LocalCluster.run(
            binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"],
            asPostgres: geteuid() == 0, what: "pg_ctl stop"
        )
    }

    /// Stops the server at once, the way a crash would (for failure tests). Data stays consistent.
    public func kill() throws {
        try LocalCluster.run(
            binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"],
            asPostgres: geteuid() == 0, what: "pg_ctl stop -m immediate"
        )
    }

    /// Starts the server (again) on this cluster's port.
    public func restart() throws {
        let options = LocalCluster.serverOptions(port: port, durable: durable)
        let logFile = dataDirectory + "/server.log"
        try LocalCluster.run(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", options, "start"],
            asPostgres: geteuid() == 0, what: "pg_ctl start", logFile: logFile
        )
    }

    /// Starts a detached watcher that stops this cluster (and deletes `removing`, a folder that
    /// holds it, when given) once process `pid` is gone, so a crashed test run leaves nothing behind.
    public func stopWhenProcessExits(_ pid: Int32, removing folder: String? = nil) throws {
        let pgCtl = LocalCluster.commandLine(
            binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"], asPostgres: geteuid() == 0)
        // Stop only the server running now: a later run may have started a new one in the same folder.
        let pidFile = shellQuote(dataDirectory + "/postmaster.pid")
        let postmaster = (try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first.map(String.init) ?? ""
        var script = "while kill -0 \(pid) 2>/dev/null; do sleep 1; done; "
            + "if [ \"$(head -n 1 \(pidFile) 2>/dev/null)\" = \(shellQuote(postmaster)) ]; then \(pgCtl) >/dev/null 2>&1; fi"
        if let folder { script += "; rm -rf \(shellQuote(folder))" }
        let pid = try ChildProcess.spawn("/usr/bin/setsid", ["/bin/sh", "-c", script], outputPath: "/dev/null")
        // Reap it whenever it ends, so it never lingers as a zombie of ours.
        Thread.detachNewThread { _ = ChildProcess.exitStatus(of: pid, wait: true) }
    }

    // MARK: - Helpers

    /// Finds the server binaries: next to `initdb` on PATH, else the newest under /usr/lib/postgresql.
    static func findBinDirectory() throws -> String {
        let fileManager = FileManager.default
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = String(directory) + "/initdb"
            if fileManager.isExecutableFile(atPath: candidate) {
                let resolved = URL(fileURLWithPath: candidate).resolvingSymlinksInPath().deletingLastPathComponent().path
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
            message: "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql; install the 'postgresql' package or set DATABASE_URL")
    }

    static func runningPort(dataDirectory: String, binDirectory: String, asPostgres: Bool) -> Int? {
        guard (try? run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "status"], asPostgres: asPostgres, what: "pg_ctl status", quiet: true)) != nil,
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
            throw LocalClusterError(message: "could not give \(directory) to the postgres user: \(String(cString: strerror(errno)))")
        }
    }

    /// True when the `postgres` user can reach `path` (every folder above it lets others pass).
    public static func postgresUserCanReach(_ path: String) -> Bool {
        var current = URL(fileURLWithPath: path).standardizedFileURL
        while current.path != "/" {
            current.deleteLastPathComponent()
            var info = stat()
            if stat(current.path, &info) != 0 { continue }
            if info.st_mode & S_IXOTH == 0 { return false }
        }
        return true
    }

    static func commandLine(_ executable: String, _ arguments: [String], asPostgres: Bool) -> String {
        let words = (asPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []) + [executable] + arguments
        return words.map(shellQuote).joined(separator: " ")
    }

    @discardableResult
    static func run(
        _ executable: String, _ arguments: [String], asPostgres: Bool, what: String,
        logFile: String? = nil, quiet: Bool = false
    ) throws -> String {
        let command = asPostgres ? "/usr/sbin/runuser" : executable
        let commandArguments = asPostgres ? ["-u", "postgres", "--", executable] + arguments : arguments
        // Output goes to a file, not a pipe: the server pg_ctl starts would hold a pipe open forever.
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("rootcauses-\(UUID().uuidString).out")
        defer { try? FileManager.default.removeItem(at: capture) }
        let status = try ChildProcess.run(command, commandArguments, outputPath: capture.path)
        let output = (try? String(contentsOf: capture, encoding: .utf8)) ?? ""
        guard status == 0 else {
            if quiet { throw LocalClusterError(message: "\(what) failed") }
            var message = "\(what) failed (exit \(status)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
            if let logFile, let log = try? String(contentsOfFile: logFile, encoding: .utf8) {
                message += "\nserver log:\n" + log.split(separator: "\n").suffix(15).joined(separator: "\n")
            }
            throw LocalClusterError(message: message)
        }
        return output
    }

    /// Asks the kernel for a free loopback port.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalClusterError(message: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw LocalClusterError(message: "could not find a free port") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
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
