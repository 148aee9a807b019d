import Foundation
import Logging
import NIOConcurrencyHelpers
import RootcausesLocalStack
import RootcausesPostgres

#if canImport(Glibc)
import Glibc
#endif

/// Throwaway PostgreSQL for tests: one private cluster per test process (or the server in
/// `DATABASE_URL` when set), and a fresh database per test so tests never see each other's data.
///
/// The cluster is stopped and deleted when the process exits, and a detached watcher does the
/// same if the process dies without exiting normally.
public enum TestDatabase {
    private static let shared = NIOLockedValueBox<Result<String, any Error>?>(nil)
    private static let counter = NIOLockedValueBox(0)

    /// A URL for a new, empty database.
    public static func create() async throws -> String {
        let serverURL = try server()
        let name = counter.withLockedValue { value -> String in
            value += 1
            return "rootcauses_test_\(getpid())_\(value)_\(Int.random(in: 0..<1_000_000))"
        }
        let pool = PostgresPool(conninfo: serverURL, maximumConnections: 1, applicationName: "rootcauses-tests", logger: quietLogger)
        defer { Task { await pool.shutdown() } }
        try await pool.withConnection { connection in _ = try connection.query("CREATE DATABASE \(name)") }
        return replacingDatabase(in: serverURL, with: name)
    }

    /// Starts a separate cluster that the caller owns (to stop and restart it in failure tests).
    public static func privateCluster() throws -> LocalCluster {
        let directory = "/tmp/rootcauses-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cluster = try LocalCluster.start(dataDirectory: directory + "/data", durable: false, logger: quietLogger)
        try cluster.stopWhenProcessExits(getpid(), removing: directory)
        return cluster
    }

    static let quietLogger: Logger = {
        var logger = Logger(label: "rootcauses.tests") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = .warning
        return logger
    }()

    private static func server() throws -> String {
        try shared.withLockedValue { state -> String in
            if let state { return try state.get() }
            let result = Result { () throws -> String in
                if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty { return url }
                let directory = "/tmp/rootcauses-tests-\(getpid())"
                try? FileManager.default.removeItem(atPath: directory)
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let cluster = try LocalCluster.start(dataDirectory: directory + "/data", durable: false, logger: quietLogger)
                try cluster.stopWhenProcessExits(getpid(), removing: directory)
                sharedCluster = cluster
                atexit {
                    try? sharedCluster?.kill()
                    if let directory = sharedCluster?.dataDirectory {
                        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: directory).deletingLastPathComponent().path)
                    }
                }
                return cluster.url(database: "postgres")
            }
            state = result
            return try result.get()
        }
    }

    /// Puts `database` in place of the database name of a postgresql:// URL.
    static func replacingDatabase(in url: String, with database: String) -> String {
        guard var components = URLComponents(string: url), url.hasPrefix("postgres") else {
            return url + " dbname=\(database)"
        }
        components.path = "/" + database
        return components.string ?? url
    }
}

nonisolated(unsafe) private var sharedCluster: LocalCluster?
