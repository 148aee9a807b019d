import Foundation
import Logging
import RootcausesJSON
import RootcausesLocalStack
import RootcausesPostgres
import RootcausesTesting
import RootcausesTransport
import Subprocess
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// The back-up procedure of docs/OPERATIONS.md: `pg_dump` of the database, `pg_restore` into
    /// an empty one, and a reporting process on the copy answers a published fact sheet byte
    /// for byte, and the same totals.
    @Suite struct BackupRestoreTests {
        /// Runs one of PostgreSQL's client tools with the superuser's password in its environment.
        static func run(_ tool: String, _ arguments: [String], cluster: LocalCluster) async throws {
            let result = try await runProgram(
                cluster.binDirectory + "/" + tool,
                arguments,
                environment: ["PGPASSWORD": cluster.password]
            )
            guard result.status == 0 else { throw LaunchError("\(tool) failed: \(result.output)") }
        }

        @Test func aDumpRestoredIntoAnEmptyDatabaseReproducesAPublishedFactSheetExactly() async throws {
            let cluster = try await TestDatabase.privateCluster()
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            let setup = try PostgresConnection(conninfo: cluster.url(), applicationName: "backup-test", logger: logger)
            try setup.execute("CREATE DATABASE rootcauses")
            let dump = cluster.dataDirectory + ".dump"
            var published: JSON = .null
            var totals: JSON = .null
            var adminToken = ""
            var reportingURL = ""
            try await withServiceStack(databaseURL: cluster.url(database: "rootcauses")) { stack in
                adminToken = try #require(stack.adminToken)
                reportingURL = stack.serviceDatabaseURL("reporting")
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()
                var lastSeq: Int64 = 0
                for line in try sampleSubmissions() {
                    let answer = try await intake.request(["op": "submit", "submission": line])
                    try #require(answer["ok"] == true, "\(answer)")
                    lastSeq = max(lastSeq, answer["seq"]?.int64Value ?? 0)
                }
                // Deduplications in the history resolve figures that must be aggregated first.
                let caughtUp = try await reporting.request([
                    "op": "indicators", "min_seq": .int(lastSeq), "timeout_ms": 30_000,
                ])
                try #require(caughtUp["ok"] == true)
                for request in try sampleHistory() {
                    let answer = try await intake.request(request)
                    try #require(answer["ok"] == true, "\(answer)")
                    lastSeq = max(lastSeq, answer["seq"]?.int64Value ?? 0)
                }
                await intake.close()
                let publish = try await reporting.request([
                    "op": "publish", "publication_id": "before-backup", "date": "2023-02-06", "min_seq": .int(lastSeq),
                    "timeout_ms": 30_000,
                ])
                try #require(publish["ok"] == true, "\(publish)")
                published = try await reporting.request(["op": "factsheet", "published_id": "before-backup"])
                totals = try await reporting.request([
                    "op": "totals", "group_by": ["indicator", "country"], "as_of_seq": .int(lastSeq),
                ])
                await reporting.close()
                // The back-up, taken while the services run (pg_dump reads one snapshot).
                try await Self.run(
                    "pg_dump",
                    ["-h", "127.0.0.1", "-p", "\(cluster.port)", "-U", cluster.user, "-Fc", "-f", dump, "rootcauses"],
                    cluster: cluster
                )
            }
            // The restore: an empty database, the roles already there (`rootcauses provision`
            // makes them on a new server), owners and grants from the dump.
            try setup.execute("CREATE DATABASE restored")
            setup.close()
            try await Self.run(
                "pg_restore",
                [
                    "-h", "127.0.0.1", "-p", "\(cluster.port)", "-U", cluster.user, "-d", "restored", "--exit-on-error",
                    dump,
                ],
                cluster: cluster
            )
            // Reporting on the copy as its own role, with nothing re-provisioned: its grants, and
            // the key the client authenticates with, come from the dump.
            var restoredURL = URLComponents(string: reportingURL)!
            restoredURL.path = "/restored"
            let logs = "/tmp/rootcauses-tests-\(getpid())/logs/restore"
            try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
            let (process, address) = try await Integration.ReplicaTests.startReporting(
                name: "reporting-restored",
                databaseURL: restoredURL.string!,
                primaryURL: nil,
                logDirectory: logs
            )
            defer { kill(process.pid, SIGKILL) }
            let reporting = try await ProtocolClient.connect(address: address, token: adminToken)
            let again = try await reporting.request(["op": "factsheet", "published_id": "before-backup"])
            #expect(again["text"] != nil)
            #expect(again["text"] == published["text"])
            #expect(again["as_of_seq"] == published["as_of_seq"])
            #expect(again["template_digest"] == published["template_digest"])
            let sameTotals = try await reporting.request([
                "op": "totals", "group_by": ["indicator", "country"], "as_of_seq": totals["as_of_seq"] ?? .null,
            ])
            #expect(sameTotals["rows"] == totals["rows"])
            #expect(sameTotals["rows"]?.arrayValue?.isEmpty == false)
            await reporting.close()
            #expect(await process.stop() == 0)
            try? FileManager.default.removeItem(atPath: dump)
            try await cluster.stop()
        }
    }
}
