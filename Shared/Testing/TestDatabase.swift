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
    /// The one start of the shared server, awaited by every test that needs it.
    private static let server = NIOLockedValueBox<Task<String, any Error>?>(nil)
    /// The shared cluster, for the exit handler to stop (it cannot await).
    private static let sharedCluster = NIOLockedValueBox<LocalCluster?>(nil)
    private static let counter = NIOLockedValueBox(0)

    /// A URL for a new, empty database.
    public static func create() async throws -> String {
        let serverURL = try await serverURL()
        let name = counter.withLockedValue { value -> String in
            value += 1
            return "rootcauses_test_\(getpid())_\(value)_\(Int.random(in: 0..<1_000_000))"
        }
        let connection = try PostgresConnection(
            conninfo: serverURL,
            applicationName: "rootcauses-tests",
            logger: quietLogger
        )
        defer { connection.close() }
        try connection.execute("CREATE DATABASE \(PostgresQuery.quoteIdentifier(name))")
        return replacingDatabase(in: serverURL, with: name)
    }

    /// Starts a separate cluster that the caller owns (to stop and restart it in failure tests).
    /// It is stopped and deleted when this process exits, whatever the caller does.
    public static func privateCluster() async throws -> LocalCluster {
        try await throwawayCluster(in: "/tmp/rootcauses-test-\(getpid())-\(UUID().uuidString.prefix(8))")
    }

    /// A cluster without fsync in `directory`, stopped and deleted (folder and all) once this
    /// process is gone.
    private static func throwawayCluster(in directory: String) async throws -> LocalCluster {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cluster = try await LocalCluster.start(
            dataDirectory: directory + "/data",
            durable: false,
            logger: quietLogger
        )
        try cluster.stopWhenProcessExits(getpid(), removing: directory)
        return cluster
    }

    static let quietLogger: Logger = {
        var logger = Logger(label: "rootcauses.tests") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = .warning
        return logger
    }()

    private static func serverURL() async throws -> String {
        let start = server.withLockedValue { task in
            if let task { return task }
            let started = Task { try await startServer() }
            task = started
            return started
        }
        return try await start.value
    }

    private static func startServer() async throws -> String {
        if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty { return url }
        let directory = "/tmp/rootcauses-tests-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        let cluster = try await throwawayCluster(in: directory)
        sharedCluster.withLockedValue { $0 = cluster }
        // The watcher would do this too, a second later; at a normal exit, do it now.
        atexit {
            guard let cluster = TestDatabase.sharedCluster.withLockedValue({ $0 }) else { return }
            cluster.stopImmediatelyFromExitHandler()
            try? FileManager.default.removeItem(
                atPath: URL(fileURLWithPath: cluster.dataDirectory).deletingLastPathComponent().path
            )
        }
        return cluster.url(database: "postgres")
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
