import AggregationService
import IntakeService
import Logging
import NIOConcurrencyHelpers
import ReportingService
import RootcausesJSON
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol
import RootcausesService
import RootcausesStorage
import RootcausesTesting
import RootcausesTransport
import ServiceLifecycle
import Testing

extension Integration {
    /// The services' ops driven in process, through the same `Responder` the server uses, against
    /// a real database: no socket and no child process, so a handler's answers can be checked
    /// (and stepped through) directly.
    @Suite struct InProcessServiceTests {
        static let logger = Logger(label: "rootcauses.tests.in-process") { _ in SwiftLogNoOpLogHandler() }

        struct Services {
            let intake: Responder
            let aggregation: AggregationOperations
            let reporting: Responder
            let nudged: NIOLockedValueBox<[Int64]>
            /// An admin key's token, made in the database as `rootcauses up` makes its own.
            let token: String

            /// Asks on a new session authenticated with the admin key.
            func ask(_ responder: Responder, _ request: JSON) async throws -> JSON {
                var session = Session()
                let auth: JSON = ["op": "auth", "token": .string(token)]
                let authenticated = await responder.respond(
                    to: Array(auth.serialized.utf8),
                    session: &session,
                    logger: logger
                )
                #expect(authenticated?["ok"] == true)
                return try #require(
                    await responder.respond(to: Array(request.serialized.utf8), session: &session, logger: logger)
                )
            }
        }

        func withServices(_ body: (Services) async throws -> Void) async throws {
            let url = try await TestDatabase.create()
            let pool = PostgresPool(conninfo: url, maximumConnections: 2, applicationName: "tests", logger: Self.logger)
            try await pool.withConnection { try Schema.migrate($0, logger: Self.logger) }
            let catalogue = try Catalogue.load(path: packageRoot + "/Deploy/config/catalogue.json")
            let template = try FactSheetTemplate.load(
                path: packageRoot + "/Deploy/config/factsheet.md",
                catalogue: catalogue
            )
            let nudged = NIOLockedValueBox<[Int64]>([])
            let intake = IntakeOperations(catalogue: catalogue, pool: pool) { seq in
                nudged.withLockedValue { $0.append(seq) }
            }
            let aggregation = AggregationOperations(
                catalogue: catalogue,
                pool: pool,
                instance: "in-process",
                batchSize: 500,
                pollInterval: .milliseconds(50),
                logger: Self.logger
            )
            let reporting = ReportingOperations(catalogue: catalogue, template: template, pool: pool)
            let token = try await pool.withConnection { connection in
                try ApiKeys.create(on: connection, reporter: nil, scopes: ["admin"], label: "tests", createdBy: nil)
                    .token
            }
            let authenticator = KeyAuthenticator(pool: pool, logger: Self.logger)
            let services = Services(
                intake: Responder(registry: intake.registry, version: "test", authenticator: authenticator),
                aggregation: aggregation,
                reporting: Responder(registry: reporting.registry, version: "test", authenticator: authenticator),
                nudged: nudged,
                token: token.description
            )
            do {
                try await body(services)
            } catch {
                await pool.shutdown()
                throw error
            }
            await pool.shutdown()
        }

        @Test func submitAnswersAndNudgesWithoutAServer() async throws {
            try await withServices { services in
                let request = submitRequest(submission("in-1", values: [value("firms_supported", "HN", 12)]), id: 1)
                let accepted = try await services.ask(services.intake, request)
                #expect(accepted["status"] == "accepted")
                #expect(accepted["seq"] == 1)
                #expect(services.nudged.withLockedValue { $0 } == [1])
                let again = try await services.ask(services.intake, request)
                #expect(again["status"] == "duplicate")
                let other = submitRequest(submission("in-1", values: [value("firms_supported", "HN", 13)]), id: 2)
                #expect(try await services.ask(services.intake, other)["error"]?["code"] == "conflict")
                let bad = submitRequest(submission("in-2", values: [value("firms_supported", "XX", 1)]), id: 3)
                let rejected = try await services.ask(services.intake, bad)
                #expect(rejected["error"]?["code"] == "validation_failed")
                #expect(rejected["error"]?["details"]?[0]?["path"] == "values[0].country")
                let hello = try await services.ask(services.intake, ["op": "hello"])
                #expect(
                    hello["ops"] == [
                        "hello", "ping", "auth", "submit", "retract", "target", "deduplicate", "keys_create",
                        "keys_list",
                        "keys_revoke",
                    ]
                )
                // Only the accepted submission nudged aggregation.
                #expect(services.nudged.withLockedValue { $0 } == [1])
            }
        }

        @Test func aggregationAndReportingInProcess() async throws {
            try await withServices { services in
                _ = try await services.ask(
                    services.intake,
                    submitRequest(submission("in-3", values: [value("firms_supported", "GT", 7)]))
                )
                // Nothing applied yet: a read that needs seq 1 is not ready.
                let early = try await services.ask(
                    services.reporting,
                    ["op": "totals", "min_seq": 1, "timeout_ms": 0]
                )
                #expect(early["error"]?["code"] == "not_ready")
                // Run the aggregation worker as the service would, until the read is ready.
                let group = ServiceGroup(
                    configuration: .init(services: services.aggregation.services, logger: Self.logger)
                )
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await group.run() }
                    let totals = try await services.ask(
                        services.reporting,
                        ["op": "totals", "indicator": "firms_supported", "min_seq": 1, "timeout_ms": 20_000]
                    )
                    #expect(totals["rows"]?[0]?["value"] == 7)
                    #expect(totals["as_of_seq"] == 1)
                    await group.triggerGracefulShutdown()
                    try await tasks.waitForAll()
                }
                let status = try await services.aggregation.registry["status"]!
                    .respond(to: ["op": "status"], context: RequestContext(logger: Self.logger))
                #expect(status.first { $0.0 == "applied_seq" }?.1 == 1)
            }
        }

        /// Checks arriving together share a look-up, and a check that began after a revocation
        /// committed always sees it, however many others are running.
        @Test func keyChecksShareLookUpsAndNeverMissARevocation() async throws {
            let url = try await TestDatabase.create()
            let pool = PostgresPool(conninfo: url, maximumConnections: 2, applicationName: "tests", logger: Self.logger)
            do {
                try await pool.withConnection { try Schema.migrate($0, logger: Self.logger) }
                let (kept, revoked) = try await pool.withConnection { connection in
                    (
                        try ApiKeys.create(
                            on: connection,
                            reporter: nil,
                            scopes: ["read"],
                            label: "kept",
                            createdBy: nil
                        ),
                        try ApiKeys.create(
                            on: connection,
                            reporter: nil,
                            scopes: ["read"],
                            label: "gone",
                            createdBy: nil
                        )
                    )
                }
                let authenticator = KeyAuthenticator(pool: pool, logger: Self.logger)
                func identity(_ key: ApiKeyRecord) -> Identity {
                    Identity(keyID: key.id, reporter: nil, scopes: [.read])
                }
                // Checks keep coming from many tasks while the key is revoked; each notes whether
                // the revocation had committed before it began.
                let revokedAt = NIOLockedValueBox(false)
                let results = try await withThrowingTaskGroup(of: [(Bool, Bool, Bool)].self) { group in
                    for _ in 0..<16 {
                        group.addTask {
                            var seen: [(Bool, Bool, Bool)] = []
                            // Until twenty checks began after the revocation.
                            while seen.filter(\.0).count < 20 {
                                let after = revokedAt.withLockedValue { $0 }
                                async let keptValid = authenticator.isValid(identity(kept.key))
                                let revokedValid = try await authenticator.isValid(identity(revoked.key))
                                seen.append((after, revokedValid, try await keptValid))
                            }
                            return seen
                        }
                    }
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(100))
                        _ = try await pool.withConnection { connection in
                            try ApiKeys.revoke(id: revoked.key.id, by: nil, on: connection)
                        }
                        revokedAt.withLockedValue { $0 = true }
                        return []
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                #expect(results.allSatisfy { $0.2 }, "the kept key stays valid")
                #expect(!results.contains { $0.0 && $0.1 }, "a check begun after the revocation passed")
                #expect(results.contains { !$0.0 && $0.1 }, "the key was valid before")
                #expect(results.contains { !$0.1 }, "the revocation was seen during the run")
            } catch {
                await pool.shutdown()
                throw error
            }
            await pool.shutdown()
        }
    }
}
