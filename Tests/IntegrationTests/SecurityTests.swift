import Foundation
import Logging
import RootcausesJSON
import RootcausesLocalStack
import RootcausesPostgres
import RootcausesStorage
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    /// Who may do what: keys per organisation, their scopes, revocation on open connections,
    /// the audit trail of keys, and throttled guessing.
    @Suite struct SecurityTests {
        @Test func keysDecideWhoMayDoWhatAndRevocationTakesEffectAtOnce() async throws {
            try await withServiceStack { stack in
                // No key: only hello, ping and auth.
                let anonymous = try await ProtocolClient.connect(address: stack.intakeAddress)
                let refused = try await anonymous.request(
                    submitRequest(submission("sec-1", reporter: "DOL", values: [value("firms_supported", "HN", 1)]))
                )
                #expect(refused.errorCode == "unauthenticated")
                #expect(try await anonymous.request(["op": "ping"])["ok"] == true)
                await anonymous.close()
                for address in [stack.reportingAddress, stack.aggregationAddresses[0]] {
                    let client = try await ProtocolClient.connect(address: address)
                    for op in ["totals", "status", "factsheet"] {
                        let answer = try await client.request(["op": .string(op)])
                        #expect(["unauthenticated", "unknown_op"].contains(answer.errorCode), "\(answer.serialized)")
                    }
                    await client.close()
                }

                // The admin makes a submit key for USAID and a read key; the secret is shown once.
                let admin = try await stack.intakeClient()
                let adminKey = try #require(stack.adminToken.flatMap { $0.split(separator: "_").dropFirst().first })
                let usaidKey = try await admin.expectOK([
                    "op": "keys_create", "reporter": "USAID", "scopes": ["submit"], "label": "USAID uploader",
                ])
                let usaidToken = try #require(usaidKey["token"]?.stringValue)
                #expect(usaidToken.hasPrefix("rck_"))
                #expect(usaidKey["created_by"] == .string(String(adminKey)))
                let readKey = try await admin.expectOK(["op": "keys_create", "scopes": ["read"], "label": "analyst"])
                let readToken = try #require(readKey["token"]?.stringValue)
                let badKey = try await admin.request(["op": "keys_create", "scopes": ["submit", "root"]])
                #expect(badKey.errorCode == "invalid_request")
                #expect(badKey["error"]?["details"]?.arrayValue?.count == 2, "\(badKey.serialized)")

                // A USAID submit key submits as USAID only: DOL's submission_id stays DOL's.
                let usaid = try await stack.intakeClient(token: usaidToken)
                let asDOL = try await usaid.request(
                    submitRequest(submission("sec-1", reporter: "DOL", values: [value("firms_supported", "HN", 3)]))
                )
                #expect(asDOL.errorCode == "forbidden")
                #expect(asDOL["error"]?["details"]?[0]?["path"] == "submission.reporter")
                let retractDOL = try await usaid.request([
                    "op": "retract", "reporter": "DOL", "submission_id": "sec-1", "reason": "not ours",
                ])
                #expect(retractDOL.errorCode == "forbidden")
                let asUSAID = try await usaid.expectOK(
                    submitRequest(submission("sec-1", values: [value("firms_supported", "HN", 5)]))
                )
                #expect(asUSAID["status"] == "accepted")
                let target = try await usaid.request([
                    "op": "target", "reporter": "USAID", "indicator": "firms_supported", "country": "HN",
                    "fiscal_year": "FY2022", "value": 10,
                ])
                #expect(target.errorCode == "forbidden")
                // DOL's own key may still use the id USAID also used.
                let dolKey = try await admin.expectOK(["op": "keys_create", "reporter": "DOL", "scopes": ["submit"]])
                let dol = try await stack.intakeClient(token: try #require(dolKey["token"]?.stringValue))
                let dolOwn = try await dol.expectOK(
                    submitRequest(submission("sec-1", reporter: "DOL", values: [value("firms_supported", "HN", 2)]))
                )
                #expect(dolOwn["status"] == "accepted")

                // A read key reads, and may not submit or see keys.
                let readerIntake = try await stack.intakeClient(token: readToken)
                let readerSubmits = try await readerIntake.request(
                    submitRequest(submission("sec-2", values: [value("firms_supported", "HN", 1)]))
                )
                #expect(readerSubmits.errorCode == "forbidden")
                #expect(try await readerIntake.request(["op": "keys_list"]).errorCode == "forbidden")
                let reader = try await stack.reportingClient(token: readToken)
                let totals = try await reader.expectOK([
                    "op": "totals", "indicator": "firms_supported", "min_seq": 2, "timeout_ms": 20_000,
                ])
                #expect(totals["rows"]?[0]?["value"] == 7)
                #expect(try await reader.request(["op": "publish", "publication_id": "x"]).errorCode == "forbidden")

                // The audit trail names the key behind each version.
                let history = try await reader.expectOK([
                    "op": "history", "reporter": "USAID", "submission_id": "sec-1",
                ])
                #expect(history["versions"]?[0]?["key_id"] == usaidKey["key_id"])

                // Keys are listed without their secrets.
                let list = try await admin.expectOK(["op": "keys_list"])
                #expect(list["keys"]?.arrayValue?.count == 5)  // the stack's two, and three here
                #expect(!list.serialized.contains(usaidToken.split(separator: "_").last.map(String.init) ?? "?"))
                #expect(!list.serialized.contains("sha256"))

                // Revoked: the next request of the open connections is refused.
                let revoked = try await admin.expectOK([
                    "op": "keys_revoke", "key_id": usaidKey["key_id"] ?? .null,
                ])
                #expect(revoked["status"] == "revoked")
                #expect(revoked["revoked_by"] == .string(String(adminKey)))
                _ = try await admin.expectOK(["op": "keys_revoke", "key_id": readKey["key_id"] ?? .null])
                let afterRevocation = try await usaid.request(
                    submitRequest(submission("sec-3", values: [value("firms_supported", "HN", 1)]))
                )
                #expect(afterRevocation.errorCode == "unauthenticated")
                #expect(afterRevocation["error"]?["details"]?[0]?["code"] == "revoked")
                #expect(try await reader.request(["op": "totals"]).errorCode == "unauthenticated")
                let again = try await admin.expectOK(["op": "keys_revoke", "key_id": usaidKey["key_id"] ?? .null])
                #expect(again["status"] == "duplicate")
                let unknown = try await admin.request(["op": "keys_revoke", "key_id": "0123456789abcdef"])
                #expect(unknown.errorCode == "validation_failed")
                // Nothing sent with the revoked key was stored.
                let stored = try await stack.reportingClient().request([
                    "op": "history", "reporter": "USAID", "submission_id": "sec-3",
                ])
                #expect(stored["error"]?["details"]?[0]?["code"] == "unknown_submission", "\(stored.serialized)")
                for client in [admin, usaid, dol, readerIntake, reader] { await client.close() }
            }
        }

        @Test func failedAuthenticationIsThrottledPerPeer() async throws {
            try await withServiceStack { stack in
                let client = try await ProtocolClient.connect(address: stack.reportingAddress)
                for attempt in 1...5 {
                    let answer = try await client.request([
                        "op": "auth", "token": .string("rck_0123456789abcdef_guess\(attempt)guessguessguessguess"),
                    ])
                    #expect(answer.errorCode == "unauthenticated")
                }
                // Now even the right token must wait.
                let throttled = try await client.request(["op": "auth", "token": .string(stack.adminToken ?? "")])
                #expect(throttled.errorCode == "throttled")
                #expect((throttled["error"]?["details"]?[0]?["retry_after_ms"]?.int64Value ?? 0) > 0)
                // A malformed token is refused as clearly.
                let other = try await stack.intakeClient()
                let malformed = try await other.request(["op": "auth", "token": "hunter2"])
                #expect(malformed.errorCode == "unauthenticated")
                #expect(malformed["error"]?["message"]?.stringValue?.contains("rck_") == true)
                // Until then, the connection has no key.
                #expect(try await client.request(["op": "totals"]).errorCode == "unauthenticated")
                await client.close()
                await other.close()
            }
        }

        /// Each service connects as its own role, with nothing a superuser has; the private
        /// cluster takes no connection without a password, and no replication.
        @Test func eachServiceHasItsOwnRoleWithoutSuperuserPowers() async throws {
            try await withServiceStack { stack in
                let logger = Logger(label: "rootcauses.tests.security") { _ in SwiftLogNoOpLogHandler() }
                func refusal(_ url: String, _ sql: String) -> String? {
                    guard
                        let connection = try? PostgresConnection(
                            conninfo: url,
                            applicationName: "tests",
                            logger: logger
                        )
                    else { return "no connection" }
                    defer { connection.close() }
                    do {
                        try connection.execute(sql)
                        return nil
                    } catch let error as PostgresError {
                        return error.sqlState ?? "\(error)"
                    } catch {
                        return "\(error)"
                    }
                }
                for service in ["intake", "aggregation", "reporting"] {
                    let url = stack.serviceDatabaseURL(service)
                    #expect(url != stack.databaseURL)
                    let connection = try PostgresConnection(conninfo: url, applicationName: "tests", logger: logger)
                    let role = try #require(
                        try connection.query(
                            """
                            SELECT current_user::text AS name, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
                            FROM pg_roles WHERE rolname = current_user
                            """ as PostgresQuery
                        ).first
                    )
                    connection.close()
                    #expect(try role.decode(column: "name", as: String.self) == "rootcauses_\(service)")
                    for power in ["rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls"] {
                        #expect(try role.decode(column: power, as: Bool.self) == false, "\(service) \(power)")
                    }
                    // What an attacker with the service's credentials would try first.
                    #expect(refusal(url, "COPY (SELECT 1) TO PROGRAM 'true'") == "42501", "\(service)")
                    #expect(refusal(url, "CREATE TABLE taken (x int)") == "42501", "\(service)")
                    #expect(refusal(url, "SELECT pg_read_file('PG_VERSION')") == "42501", "\(service)")
                    // The password is in the service's environment, never on its command line.
                    let process = try #require(
                        service == "aggregation"
                            ? stack.aggregations.first : service == "intake" ? stack.intake : stack.reporting
                    )
                    let commandLine =
                        (try? String(contentsOfFile: "/proc/\(process.pid)/cmdline", encoding: .utf8)) ?? ""
                    #expect(!commandLine.contains(URLComponents(string: url)?.password ?? "?"))
                }
                // Reporting reads; it writes nothing clients sent.
                #expect(refusal(stack.serviceDatabaseURL("reporting"), "DELETE FROM submissions") == "42501")
                #expect(refusal(stack.serviceDatabaseURL("aggregation"), "DELETE FROM submissions") == "42501")
                #expect(refusal(stack.serviceDatabaseURL("intake"), "DELETE FROM rollups") == "42501")

                // Without the password, nobody gets in: not the superuser, not a service's role.
                for user in ["rootcauses", "rootcauses_reporting"] {
                    var components = try #require(URLComponents(string: stack.databaseURL))
                    components.user = user
                    components.password = nil
                    let url = try #require(components.string)
                    #expect(
                        (try? PostgresConnection(
                            conninfo: url + "?connect_timeout=5",
                            applicationName: "tests",
                            logger: logger
                        ))
                            == nil,
                        "\(user) connected without a password"
                    )
                }
                // Every rule of the cluster asks for a password; none allows replication.
                let admin = try PostgresConnection(
                    conninfo: stack.databaseURL,
                    applicationName: "tests",
                    logger: logger
                )
                defer { admin.close() }
                let rules = try admin.query(
                    "SELECT auth_method, array_to_string(database, ',') AS databases FROM pg_hba_file_rules"
                        as PostgresQuery
                )
                for rule in rules {
                    #expect(try rule.decode(column: "auth_method", as: String.self) == "scram-sha-256")
                    #expect(try rule.decode(column: "databases", as: String.self).contains("replication") == false)
                }
                // The services' logs are their owner's only.
                for process in stack.processes {
                    var status = stat()
                    #expect(stat(process.logPath, &status) == 0 && status.st_mode & 0o077 == 0, "\(process.logPath)")
                }
            }
        }

        /// Every submission names a key that exists, and no key ever goes (revoking is how a key
        /// ends). Since migration 16 no foreign key does it: new rows are checked once per
        /// statement, a changed key alone, and the keys table refuses to lose a key.
        @Test func submissionsNameKeysThatExistAndKeysAreNeverDeleted() async throws {
            let url = try await TestDatabase.create()
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            try await PostgresConnection.withConnection(conninfo: url, logger: logger) { connection in
                try Schema.migrate(connection, logger: logger)
                let foreignKeys = try connection.query(
                    """
                    SELECT count(*) AS keys FROM pg_constraint
                    WHERE conrelid = 'submissions'::regclass AND confrelid = 'api_keys'::regclass
                    """ as PostgresQuery
                ).first?.decode(column: "keys", as: Int.self)
                #expect(foreignKeys == 0)
                try connection.execute(
                    """
                    INSERT INTO api_keys (id, reporter, scopes, secret_sha256)
                    VALUES ('00000000000000a1', 'USAID', ARRAY['submit'], sha256('secret'));
                    """
                )
                func submissions(_ rows: [(id: String, key: String?)]) throws {
                    let ids = rows.map(\.id)
                    let keys = rows.map(\.key)
                    try connection.query(
                        """
                        INSERT INTO submissions (reporter, submission_id, period, period_start, period_end,
                                                 value_count, content_digest, api_key_id)
                        SELECT 'USAID', id, 'FY2023Q1', '2022-10-01', '2022-12-31', 1, 'x', key
                        FROM unnest(\(ids)::text[], \(keys)::text[]) AS s (id, key)
                        ON CONFLICT DO NOTHING
                        """
                    )
                }
                func refusal(_ body: () throws -> Void) -> String? {
                    do {
                        try body()
                        return nil
                    } catch let error as PostgresError {
                        return "\(error.sqlState ?? "?") \(error.message)"
                    } catch {
                        return "\(error)"
                    }
                }
                func stored() throws -> [String] {
                    try connection.query("SELECT submission_id FROM submissions ORDER BY 1" as PostgresQuery)
                        .map { try $0.decode(column: "submission_id", as: String.self) }
                }

                try submissions([("s-1", "00000000000000a1"), ("s-2", nil)])
                #expect(try stored() == ["s-1", "s-2"])
                // One unknown key among several rows: the whole statement fails, nothing is stored.
                let unknown = refusal {
                    try submissions([("s-3", "00000000000000a1"), ("s-4", "00000000000000ff")])
                }
                #expect(unknown?.hasPrefix("23503") == true, "\(unknown ?? "stored")")
                #expect(unknown?.contains("names an API key that does not exist") == true)
                #expect(try stored() == ["s-1", "s-2"])
                // A row whose key changes is checked too.
                let changed = refusal {
                    try connection.execute(
                        "UPDATE submissions SET api_key_id = '00000000000000ff' WHERE submission_id = 's-2'"
                    )
                }
                #expect(changed?.hasPrefix("23503") == true, "\(changed ?? "changed")")
                try connection.execute(
                    "UPDATE submissions SET api_key_id = '00000000000000a1' WHERE submission_id = 's-2'"
                )

                for statement in [
                    "DELETE FROM api_keys WHERE id = '00000000000000a1'",
                    "UPDATE api_keys SET id = '00000000000000b2' WHERE id = '00000000000000a1'",
                    "TRUNCATE api_keys CASCADE",
                ] {
                    let kept = refusal { try connection.execute(statement) }
                    #expect(kept?.hasPrefix("23001") == true, "\(statement): \(kept ?? "done")")
                }
                // Revoking changes the key, and keeps it.
                try connection.execute("UPDATE api_keys SET revoked_at = now() WHERE id = '00000000000000a1'")
                #expect(
                    try connection.query("SELECT count(*) AS keys FROM api_keys" as PostgresQuery).first?
                        .decode(column: "keys", as: Int.self) == 1
                )
                #expect(try stored() == ["s-1", "s-2"])
            }
        }
    }
}
