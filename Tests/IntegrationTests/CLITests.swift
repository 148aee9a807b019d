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
    @Suite struct CLITests {
        /// Runs the rootcauses CLI to completion; returns its exit status and its output
        /// (standard output and error together).
        /// With `token`, the CLI authenticates with it (`ROOTCAUSES_TOKEN`); `environment` adds
        /// variables.
        func runCLI(
            token: String? = nil,
            environment: [String: String] = [:],
            _ arguments: [String]
        ) async throws -> (status: Int32, output: String) {
            var variables: [String: String?] = ["ROOTCAUSES_TOKEN": token]
            for (name, value) in environment { variables[name] = value }
            return try await runRootcauses(arguments, environment: variables)
        }

        /// A file in this test process's scratch folder (removed with it).
        func scratchFile(_ name: String, lines: [String]) throws -> String {
            let folder = "/tmp/rootcauses-tests-\(getpid())"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let path = folder + "/" + name
            try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        @Test func probeSaysLiveAndReadyWithoutAKeyAndFailsWhenNothingAnswers() async throws {
            try await withServiceStack { stack in
                // No token; the address from ROOTCAUSES_LISTEN, as in a container (0.0.0.0 is loopback).
                let port = stack.reportingPort
                let live = try await runCLI(environment: ["ROOTCAUSES_LISTEN": "0.0.0.0:\(port)"], ["probe"])
                #expect(live.status == 0)
                #expect(live.output.contains(#""status":"live""#))
                let ready = try await runCLI(["probe", "--ready", "--address", stack.intakeAddress])
                #expect(ready.status == 0)
                #expect(ready.output.contains(#""ready":true"#))
                let closed = try freeTCPPort()
                let nothing = try await runCLI(["probe", "--address", "127.0.0.1:\(closed)", "--timeout-ms", "2000"])
                #expect(nothing.status == 1)
                #expect(nothing.output.contains("did not answer"))
                // A port that accepts (the kernel completes the handshake) and never answers.
                let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(silent) }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let bound = withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                        bind(silent, pointer, length) == 0 && listen(silent, 4) == 0
                            && getsockname(silent, pointer, &length) == 0
                    }
                }
                try #require(bound)
                let silentPort = Int(UInt16(bigEndian: address.sin_port))
                let started = ContinuousClock.now
                let hung = try await runCLI(["probe", "--address", "127.0.0.1:\(silentPort)", "--timeout-ms", "1000"])
                #expect(hung.status == 1)
                #expect(hung.output.contains("did not answer within 1000 ms"))
                #expect(ContinuousClock.now - started < .seconds(10))
            }
        }

        @Test func submitReportsEachSubmissionAndFailsOnAnyRejection() async throws {
            try await withServiceStack { stack in
                let good1 = submission("cli-1", values: [value("firms_supported", "GT", 10)]).serialized
                let negative = submission("cli-2", values: [value("firms_supported", "GT", -1)]).serialized
                let good3 = submission("cli-3", values: [value("firms_supported", "SV", 5)]).serialized

                // A file with a line that is not JSON is refused whole, before anything is sent.
                let broken = try scratchFile("cli-broken.ndjson", lines: [good1, "{broken", good3])
                let refused = try await runCLI(
                    token: stack.adminToken,
                    ["submit", broken, "--intake", stack.intakeAddress]
                )
                #expect(refused.status != 0)
                #expect(refused.output.contains("cli-broken.ndjson:2: not valid JSON"), "\(refused.output)")
                #expect(refused.output.contains("nothing was sent"))

                let file = try scratchFile("cli-input.ndjson", lines: [good1, negative, "", good3])
                let first = try await runCLI(
                    token: stack.adminToken,
                    ["submit", file, "--intake", stack.intakeAddress]
                )
                #expect(first.status == 1)
                #expect(first.output.contains("line 1 cli-1: accepted seq 1"), "\(first.output)")
                #expect(first.output.contains("line 2 cli-2: validation_failed"))
                #expect(first.output.contains("values[0].value: values cannot be negative"))
                #expect(first.output.contains("line 4 cli-3: accepted seq 2"))
                #expect(first.output.contains("submissions: 2 accepted, 0 duplicate, 1 failed"))

                let good = try scratchFile("cli-good.ndjson", lines: [good1, good3])
                let again = try await runCLI(
                    token: stack.adminToken,
                    ["submit", good, "--intake", stack.intakeAddress]
                )
                #expect(again.status == 0)
                #expect(again.output.contains("submissions: 0 accepted, 2 duplicate, 0 failed"))

                let totals = try await runCLI(
                    token: stack.adminToken,
                    [
                        "totals", "--group-by", "country", "--min-seq", "2", "--reporting", stack.reportingAddress,
                    ]
                )
                #expect(totals.status == 0)
                #expect(totals.output.split(separator: "\n").contains { $0.hasPrefix("GT") && $0.contains("10") })

                // Corrections: retract, then read the history and the totals before and after.
                let retracted = try await runCLI(
                    token: stack.adminToken,
                    [
                        "retract", "--reporter", "USAID", "--submission-id", "cli-1", "--reason", "typo",
                        "--intake", stack.intakeAddress,
                    ]
                )
                #expect(retracted.status == 0)
                #expect(
                    retracted.output.contains("retracted: cli-1 (seq 1) withdrawn as of seq 3"),
                    "\(retracted.output)"
                )
                let history = try await runCLI(
                    token: stack.adminToken,
                    [
                        "history", "--reporter", "USAID", "--submission-id", "cli-1", "--reporting",
                        stack.reportingAddress,
                    ]
                )
                #expect(history.status == 0)
                #expect(history.output.contains("seq 1  cli-1  retracted"), "\(history.output)")
                #expect(history.output.contains("reason: typo"))
                #expect(history.output.contains("firms_supported GT  10"))
                func countries(_ extra: [String]) async throws -> [String] {
                    let answer = try await runCLI(
                        token: stack.adminToken,
                        ["totals", "--group-by", "country", "--min-seq", "3", "--reporting", stack.reportingAddress]
                            + extra
                    )
                    #expect(answer.status == 0)
                    return answer.output.split(separator: "\n").dropFirst().compactMap {
                        $0.split(separator: " ").first
                    }
                    .map(String.init).filter { $0.count == 2 }
                }
                #expect(try await countries([]) == ["SV"])
                #expect(try await countries(["--as-of-seq", "2"]) == ["GT", "SV"])
                // Long before anything was sent, nothing was known.
                #expect(try await countries(["--as-of", "2023-04-10T12:00:00-05:00"]) == [])
                let oldSheet = try await runCLI(
                    token: stack.adminToken,
                    [
                        "factsheet", "--format", "json", "--as-of", "2023-04-10T17:00:00Z",
                        "--reporting", stack.reportingAddress,
                    ]
                )
                #expect(oldSheet.status == 0)
                #expect(oldSheet.output.contains("\"as_of_seq\": 0,"), "\(oldSheet.output.prefix(300))")

                // Publish as of seq 2 (before the retraction), list, read back, and diff against now.
                let reporting = ["--reporting", stack.reportingAddress]
                let published = try await runCLI(
                    token: stack.adminToken,
                    ["publish", "--id", "cli-pub", "--date", "2023-02-06", "--as-of-seq", "2"] + reporting
                )
                #expect(published.status == 0)
                #expect(
                    published.output.contains("published: cli-pub, the fact sheet of 2023-02-06 as of seq 2"),
                    "\(published.output)"
                )
                let list = try await runCLI(token: stack.adminToken, ["published"] + reporting)
                #expect(list.output.contains("cli-pub"), "\(list.output)")
                let sheetThen = try await runCLI(
                    token: stack.adminToken,
                    ["factsheet", "--date", "2023-02-06", "--as-of-seq", "2"] + reporting
                )
                let sheetStored = try await runCLI(
                    token: stack.adminToken,
                    ["factsheet", "--published-id", "cli-pub"] + reporting
                )
                #expect(sheetStored.status == 0)
                #expect(sheetStored.output == sheetThen.output)
                let diff = try await runCLI(
                    token: stack.adminToken,
                    ["diff", "--from", "cli-pub", "--min-seq", "3"] + reporting
                )
                #expect(diff.status == 0)
                #expect(diff.output.contains("cli-pub (seq 2) → now (seq 3)"), "\(diff.output)")
                #expect(
                    diff.output.contains("retraction  USAID cli-1  withdraws seq 1  reason: typo"),
                    "\(diff.output)"
                )
                let explained = try await runCLI(
                    token: stack.adminToken,
                    ["explain", "--indicator", "firms_supported", "--limit", "1", "--all"] + reporting
                )
                #expect(explained.status == 0)
                #expect(explained.output.contains("value 5 as of seq 3"), "\(explained.output)")
                #expect(explained.output.contains("excluded seq 1  USAID cli-1"), "\(explained.output)")
                #expect(explained.output.contains("(retracted by seq 3: typo)"), "\(explained.output)")
                let target = try await runCLI(
                    token: stack.adminToken,
                    [
                        "target", "--reporter", "USAID", "--indicator", "firms_supported", "--country", "SV",
                        "--fiscal-year", "FY2022", "--value", "20", "--intake", stack.intakeAddress,
                    ]
                )
                #expect(target.output.contains("accepted: USAID firms_supported SV FY2022 = 20"), "\(target.output)")
                let measured = try await runCLI(
                    token: stack.adminToken,
                    [
                        "totals", "--indicator", "firms_supported", "--reporter", "USAID", "--country", "SV", "--from",
                        "FY2022", "--to", "FY2022", "--targets",
                    ] + reporting
                )
                #expect(measured.output.contains("target"), "\(measured.output)")
                #expect(measured.output.contains("0.25"), "\(measured.output)")
            }
        }

        /// `--json` everywhere for scripts; a table with thousands separators for people.
        @Test func everyCommandSpeaksJSONForScriptsAndTotalsReadsWellForPeople() async throws {
            try await withServiceStack { stack in
                let token = stack.adminToken
                let addresses = [
                    "ROOTCAUSES_INTAKE": stack.intakeAddress, "ROOTCAUSES_REPORTING": stack.reportingAddress,
                    "ROOTCAUSES_AGGREGATION": stack.aggregationAddresses[0],
                ]
                let sample = packageRoot + "/Deploy/sample/submissions.ndjson"
                // submit --json: one answer per line, then the summary; no progress bar in a pipe.
                let submitted = try await runCLI(token: token, environment: addresses, ["submit", "--json", sample])
                #expect(submitted.status == 0)
                let lines = try submitted.output.split(separator: "\n").map { try JSONParser.parse(String($0)) }
                #expect(lines.count == 270)
                #expect(lines.dropLast().allSatisfy { $0["ok"] == true && $0["status"] == "accepted" })
                let summary = try #require(lines.last?["summary"])
                #expect(summary["accepted"] == 269)
                #expect(summary["failed"] == 0)
                let lastSeq = try #require(summary["last_seq"]?.int64Value)
                #expect(!submitted.output.contains("\r") && !submitted.output.contains("values/s"))

                // totals: an aligned table with thousands separators; --json and --csv for scripts.
                let arguments = [
                    "totals", "--indicator", "jobs_created", "--group-by", "country", "--min-seq", "\(lastSeq)",
                ]
                let table = try await runCLI(token: token, environment: addresses, arguments)
                #expect(table.status == 0)
                // The sample's jobs in Guatemala, El Salvador and Honduras.
                for figure in ["36,512", "30,136", "23,764"] {
                    #expect(table.output.contains(figure), "\(table.output)")
                }
                let asJSON = try await runCLI(token: token, environment: addresses, arguments + ["--json"])
                #expect(try JSONParser.parse(asJSON.output)["rows"]?.arrayValue?.count == 3)
                let asCSV = try await runCLI(token: token, environment: addresses, arguments + ["--csv"])
                #expect(asCSV.output.hasPrefix("country,unit,value,submissions,estimate"))
                #expect(parseCSV(asCSV.output).count == 4)

                // Every other command's --json prints one JSON answer.
                let commands: [[String]] = [
                    ["retract", "--reporter", "USAID", "--submission-id", "USAID-FY2021Q4-GT-001", "--reason", "test"],
                    [
                        "target", "--reporter", "USAID", "--indicator", "jobs_created", "--country", "HN",
                        "--fiscal-year", "FY2022", "--value", "12000",
                    ],
                    ["publish", "--id", "cli-json", "--date", "2023-02-06", "--min-seq", "\(lastSeq)"],
                    ["published"], ["status"], ["indicators"],
                    ["history", "--reporter", "USAID", "--submission-id", "USAID-FY2021Q4-GT-001"],
                    ["factsheet", "--date", "2023-02-06"],
                    ["keys", "create", "--scope", "read", "--label", "cli json"], ["keys", "list"],
                    ["probe", "--address", stack.intakeAddress],
                ]
                for command in commands {
                    let ran = try await runCLI(token: token, environment: addresses, command + ["--json"])
                    #expect(ran.status == 0, "\(command): \(ran.output)")
                    let parsed = try? JSONParser.parse(ran.output.trimmingCharacters(in: .whitespacesAndNewlines))
                    #expect(parsed != nil, "\(command) --json printed: \(ran.output)")
                }
            }
        }

        @Test func submitShowsAProgressBarOnATerminalOnly() async throws {
            try await withServiceStack { stack in
                let sample = packageRoot + "/Deploy/sample/submissions.ndjson"
                // script(1) gives the CLI a terminal.
                let command = [ServiceStack.defaultBinDirectory + "/rootcauses", "submit", "--quiet", sample]
                    .map { "'\($0)'" }.joined(separator: " ")
                let result = try await Subprocess.run(
                    .path(FilePath("/usr/bin/script")),
                    arguments: ["-q", "-e", "-c", command, "/dev/null"],
                    environment: .inherit.updating([
                        "ROOTCAUSES_TOKEN": stack.adminToken, "ROOTCAUSES_INTAKE": stack.intakeAddress,
                    ]),
                    output: .string(limit: 1 << 20),
                    error: .combinedWithOutput
                )
                #expect(result.terminationStatus.isSuccess)
                let output = result.standardOutput
                #expect(output.contains("269/269 submissions"), "\(output)")
                #expect(output.contains("values/s") && output.contains("ETA"))
                #expect(output.contains("submissions: 269 accepted, 0 duplicate, 0 failed"))
            }
        }

        /// `import` shows the same bar as `submit` on a terminal, and nothing of it in a pipe.
        @Test func importShowsAProgressBarOnATerminalOnly() async throws {
            try await withServiceStack { stack in
                _ = try await submitSample(through: try await stack.intakeClient())
                let export = try await runRootcauses(
                    ["totals", "--reporter", "DOL", "--dhis2", "--min-seq", "1"],
                    environment: ["ROOTCAUSES_TOKEN": stack.adminToken, "ROOTCAUSES_REPORTING": stack.reportingAddress]
                )
                #expect(export.status == 0, "\(export.output)")
                let file = "/tmp/rootcauses-tests-\(getpid())-dol-dhis2.json"
                try export.output.write(toFile: file, atomically: true, encoding: .utf8)
                defer { unlink(file) }
                let environment: [String: String?] = [
                    "ROOTCAUSES_TOKEN": stack.adminToken, "ROOTCAUSES_INTAKE": stack.intakeAddress,
                ]
                let command = [
                    ServiceStack.defaultBinDirectory + "/rootcauses", "import", "dhis2", file, "--reporter", "DOL",
                ]
                .map { "'\($0)'" }.joined(separator: " ")
                let onTerminal = try await runProgram(
                    "/usr/bin/script",
                    ["-q", "-e", "-c", command, "/dev/null"],
                    environment: environment
                )
                #expect(onTerminal.status == 0, "\(onTerminal.output)")
                #expect(
                    onTerminal.output.contains(" submissions, ") && onTerminal.output.contains("ETA"),
                    "\(onTerminal.output)"
                )
                let inPipe = try await runRootcauses(
                    ["import", "dhis2", file, "--reporter", "DOL"],
                    environment: environment
                )
                #expect(inPipe.status == 0, "\(inPipe.output)")
                #expect(!inPipe.output.contains("ETA"))
                #expect(!inPipe.output.contains("\u{1B}["))
            }
        }

        /// `totals --watch --json` prints the answer, then a line per change, until Ctrl-C.
        @Test func totalsWatchPrintsEachChangeUntilInterrupted() async throws {
            try await withServiceStack { stack in
                let folder = "/tmp/rootcauses-tests-\(getpid())/watch"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: folder) }
                let logPath = folder + "/watch.out"
                let log = try FileDescriptor.open(
                    FilePath(logPath),
                    .writeOnly,
                    options: [.create, .truncate],
                    permissions: [.ownerReadWrite]
                )
                let lines: @Sendable () -> [JSON] = {
                    ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n")
                        .compactMap { try? JSONParser.parse(String($0)) }
                }
                let intake = try await stack.intakeClient()
                let result = try await Subprocess.run(
                    .path(FilePath(ServiceStack.defaultBinDirectory + "/rootcauses")),
                    arguments: ["totals", "--watch", "--json", "--indicator", "jobs_created", "--group-by", "country"],
                    environment: .inherit.updating([
                        "ROOTCAUSES_TOKEN": stack.adminToken, "ROOTCAUSES_REPORTING": stack.reportingAddress,
                    ]),
                    input: .none,
                    output: .fileDescriptor(log, closeAfterSpawningProcess: true),
                    error: .discarded
                ) { execution in
                    try await waitFor(seconds: 30) { !lines().isEmpty }
                    _ = try await intake.expectOK(
                        submitRequest(submission("USAID-W-1", values: [value("jobs_created", "GT", 42)]))
                    )
                    try await waitFor(seconds: 30) { lines().count >= 2 }
                    try execution.send(signal: .interrupt)
                }
                #expect(result.terminationStatus.isSuccess)
                let seen = lines()
                #expect(seen.first?["subscription"] == "watch")
                #expect(seen.first?["rows"] == [])
                #expect(seen.last?["event"] == "totals")
                #expect(seen.last?["rows"]?[0]?["value"] == 42)
            }
        }

        /// `demo --json` prints one JSON object on standard output: what it loaded, and the fact sheet.
        @Test func demoWithJSONPrintsOneObject() async throws {
            let url = try await TestDatabase.create()
            let folder = "/tmp/rootcauses-tests-\(getpid())/demo-json"
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let result = try await Subprocess.run(
                .path(FilePath(ServiceStack.defaultBinDirectory + "/rootcauses")),
                arguments: ["demo", "--data-dir", folder, "--database-url", url, "--json"],
                output: .string(limit: 1 << 22),
                error: .string(limit: 1 << 22)
            )
            #expect(result.terminationStatus.isSuccess, "\(result.standardError)")
            let answer = try JSONParser.parse(result.standardOutput)
            #expect(answer["submissions"]?["accepted"] == 269)
            #expect(answer["submissions"]?["failed"] == 0)
            #expect(answer["history"]?["retracted"] == 1)
            #expect(answer["factsheet"]?["format"] == "markdown")
            #expect(answer["factsheet"]?["text"]?.stringValue?.contains("more than 90,000") == true)
        }

        /// The admin's key commands, and a reporter's key used from a private file.
        @Test func keysAreMadeListedUsedAndRevokedFromTheCommandLine() async throws {
            try await withServiceStack { stack in
                let intake = ["--intake", stack.intakeAddress]
                let folder = "/tmp/rootcauses-tests-\(getpid())"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                let tokenFile = folder + "/usaid.token"
                unlink(tokenFile)
                let made = try await runCLI(
                    token: stack.adminToken,
                    [
                        "keys", "create", "--reporter", "USAID", "--scope", "submit", "--label", "uploader", "--out",
                        tokenFile,
                    ]
                        + intake
                )
                #expect(made.status == 0, "\(made.output)")
                var status = stat()
                #expect(stat(tokenFile, &status) == 0 && status.st_mode & 0o777 == 0o600)
                let keyID = try #require(made.output.split(separator: " ").dropFirst().first.map(String.init))

                let own = try scratchFile(
                    "cli-keys-own.ndjson",
                    lines: [
                        submission("cli-k1", values: [value("firms_supported", "HN", 2)]).serialized,
                        submission("cli-k2", reporter: "DOL", values: [value("firms_supported", "HN", 2)]).serialized,
                    ]
                )
                let sent = try await runCLI(["submit", own, "--token-file", tokenFile] + intake)
                #expect(sent.status == 1)
                #expect(sent.output.contains("line 1 cli-k1: accepted"), "\(sent.output)")
                #expect(sent.output.contains("line 2 cli-k2: forbidden"), "\(sent.output)")

                let list = try await runCLI(token: stack.adminToken, ["keys", "list"] + intake)
                #expect(list.output.contains(keyID) && list.output.contains("uploader"), "\(list.output)")
                #expect(
                    try await runCLI(["keys", "list", "--token-file", tokenFile] + intake).output.contains("forbidden")
                )

                let revoked = try await runCLI(token: stack.adminToken, ["keys", "revoke", keyID] + intake)
                #expect(revoked.output.hasPrefix("revoked: key \(keyID)"), "\(revoked.output)")
                let refused = try await runCLI(["submit", own, "--token-file", tokenFile] + intake)
                #expect(refused.status != 0)
                #expect(refused.output.contains("refused the connection: the key was refused"), "\(refused.output)")

                // A token others may read is not used.
                chmod(tokenFile, 0o644)
                let open = try await runCLI(["submit", own, "--token-file", tokenFile] + intake)
                #expect(open.output.contains("chmod 600"), "\(open.output)")
            }
        }

        /// An operator's database gets the owner and the services' roles, with passwords from
        /// the environment or generated into private files; provisioning again changes nothing.
        @Test func provisionMakesLeastPrivilegeRolesInAnOperatorsDatabase() async throws {
            // A cluster of its own: roles are shared by a cluster's databases, and other tests'
            // services use theirs.
            let cluster = try await TestDatabase.privateCluster()
            let url = cluster.url(database: "postgres")
            let secrets = "/tmp/rootcauses-tests-\(getpid())/provision-\(UUID().uuidString.prefix(8))"
            let quoted = "it's a \\ password"
            let first = try await runCLI(
                environment: ["ROOTCAUSES_REPORTING_DB_PASSWORD": quoted],
                ["provision", "--database-url", url, "--secrets-dir", secrets]
            )
            #expect(first.status == 0, "\(first.output)")
            #expect(first.output.contains("generated \(secrets)/rootcauses_intake.password"), "\(first.output)")
            #expect(!first.output.contains("rootcauses_reporting.password"))
            var status = stat()
            #expect(stat(secrets + "/rootcauses_intake.password", &status) == 0 && status.st_mode & 0o077 == 0)

            let logger = Logger(label: "rootcauses.tests.provision") { _ in SwiftLogNoOpLogHandler() }
            func connect(_ role: String, _ password: String) throws -> PostgresConnection {
                var components = try #require(URLComponents(string: url))
                components.user = role
                components.password = password
                return try PostgresConnection(
                    conninfo: try #require(components.string),
                    applicationName: "tests",
                    logger: logger
                )
            }
            let reporting = try connect("rootcauses_reporting", quoted)
            let rows = try reporting.query("SELECT count(*)::integer AS n FROM submissions" as PostgresQuery)
            #expect(try rows.first?.decode(column: "n", as: Int.self) == 0)
            #expect(throws: PostgresError.self) { try reporting.execute("DELETE FROM submissions") }
            reporting.close()
            let intakePassword = try String(contentsOfFile: secrets + "/rootcauses_intake.password", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let intake = try connect("rootcauses_intake", intakePassword)
            #expect(throws: PostgresError.self) { try intake.execute("DELETE FROM rollups") }
            intake.close()

            let again = try await runCLI(
                environment: ["ROOTCAUSES_REPORTING_DB_PASSWORD": quoted],
                ["provision", "--database-url", url, "--secrets-dir", secrets]
            )
            #expect(again.status == 0, "\(again.output)")
            #expect(!again.output.contains("generated"), "\(again.output)")
            let missing = try await runCLI(["provision", "--database-url", url])
            #expect(missing.status != 0)
            #expect(missing.output.contains("ROOTCAUSES_OWNER_DB_PASSWORD is not set"), "\(missing.output)")
            try await cluster.stop()
        }

        @Test func unreachableServiceSaysHowToStartIt() async throws {
            let unreachable = try await runCLI(["indicators", "--reporting", "127.0.0.1:1"])
            #expect(unreachable.status != 0)
            #expect(unreachable.output.contains("cannot reach reporting at 127.0.0.1:1: is the service running?"))
            #expect(unreachable.output.contains("rootcauses up"))
            #expect(unreachable.output.contains("reporting --listen 127.0.0.1:1"))
        }

        /// Bad arguments are refused before any connection: the address given is unreachable,
        /// so a message about reaching it would mean the CLI tried.
        @Test(arguments: [
            (["factsheet", "--date", "2023-13-01"], "--date 2023-13-01 is not a day"),
            (["factsheet", "--date", "2023-02-30"], "--date 2023-02-30 is not a day"),
            (["factsheet", "--date", "1899-12-31"], "with a year from 1900 to 9999"),
            (["factsheet", "--format", "docx"], "--format docx is not markdown, json, html or pdf"),
            (["demo", "--format", "pdf"], "--format pdf is not markdown, json or html"),
            (["totals", "--from", "FY20X3"], "--from FY20X3 is not a period"),
            (["totals", "--to", "2023Q5"], "--to 2023Q5 is not a period"),
            (["totals", "--from", "2024", "--to", "FY2023"], "--from 2024 starts after --to FY2023 ends"),
            (["totals", "--cell", "sex"], "--cell sex is not dimension=value"),
            (["totals", "--as-of", "yesterday"], "--as-of yesterday is not an RFC 3339 time"),
            (["factsheet", "--as-of", "2023-04-10"], "--as-of 2023-04-10 is not an RFC 3339 time"),
            (["factsheet", "--published-id", "x", "--date", "2023-02-06"], "a published fact sheet is fixed"),
            (["publish", "--id", "x", "--date", "2023-02-31"], "--date 2023-02-31 is not a day"),
            (
                ["totals", "--as-of", "2023-04-10T00:00:00Z", "--as-of-seq", "3"],
                "give --as-of or --as-of-seq, not both"
            ),
        ])
        func argumentsAreCheckedBeforeConnecting(arguments: [String], message: String) async throws {
            let result = try await runCLI(arguments + ["--reporting", "127.0.0.1:1"])
            #expect(result.status != 0)
            #expect(result.output.contains(message), "\(result.output)")
            #expect(!result.output.contains("cannot reach"))
        }

        @Test func submitReportsAnUnreadableFileBeforeConnecting() async throws {
            let missing = try await runCLI(["submit", "/tmp/rootcauses-no-such-file.ndjson", "--intake", "127.0.0.1:1"])
            #expect(missing.status != 0)
            #expect(missing.output.contains("cannot read /tmp/rootcauses-no-such-file.ndjson"), "\(missing.output)")
            #expect(!missing.output.contains("cannot reach"))

            let notObject = try scratchFile("cli-array.ndjson", lines: ["[1, 2]"])
            let refused = try await runCLI(["submit", notObject, "--intake", "127.0.0.1:1"])
            #expect(refused.status != 0)
            #expect(refused.output.contains("cli-array.ndjson:1: not a JSON object"), "\(refused.output)")
            #expect(!refused.output.contains("cannot reach"))
        }

        /// Another stack holds the port: `up` must say so at once, not report itself up.
        @Test func upFailsAtOnceNamingAPortThatIsTaken() async throws {
            try await withServiceStack { stack in
                let dataDirectory = "/tmp/rootcauses-tests-\(getpid())/up-taken"
                let started = ContinuousClock.now
                let result = try await runCLI([
                    "up", "--data-dir", dataDirectory, "--database-url", stack.databaseURL,
                    "--intake-port", String(stack.intakePort),
                    "--aggregation-port", String(try freeTCPPort()), "--reporting-port", String(try freeTCPPort()),
                ])
                #expect(result.status != 0)
                #expect(result.output.contains("port \(stack.intakePort) for intake is not free"), "\(result.output)")
                #expect(!result.output.contains("up: intake"))
                #expect(ContinuousClock.now - started < .seconds(10))
                try? FileManager.default.removeItem(atPath: dataDirectory)
            }
        }

        /// A service of `up` that dies takes `up` down with it, loudly, instead of leaving a
        /// stack that only looks up.
        @Test func upStopsWithAnErrorWhenOneOfItsServicesExits() async throws {
            let url = try await TestDatabase.create()
            let folder = "/tmp/rootcauses-tests-\(getpid())/up-exit"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let logPath = folder + "/up.out"
            let log = try FileDescriptor.open(
                FilePath(logPath),
                .writeOnly,
                options: [.create, .truncate],
                permissions: [.ownerReadWrite]
            )
            let reportingPort = try freeTCPPort()
            let readLog: @Sendable () -> String = { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
            let result = try await Subprocess.run(
                .path(FilePath(ServiceStack.defaultBinDirectory + "/rootcauses")),
                arguments: Arguments([
                    "up", "--data-dir", folder, "--database-url", url,
                    "--intake-port", String(try freeTCPPort()), "--aggregation-port", String(try freeTCPPort()),
                    "--reporting-port", String(reportingPort), "--json",
                ]),
                input: .none,
                output: .fileDescriptor(log, closeAfterSpawningProcess: true),
                error: .combinedWithOutput
            ) { execution in
                try await waitFor(seconds: 60) { readLog().contains("up: intake") }
                let reporting = try #require(
                    listeningProcess(port: reportingPort),
                    "no process listens on \(reportingPort)"
                )
                kill(reporting, SIGKILL)
                let reported: Void? = try? await waitFor(seconds: 30) { readLog().contains("reporting exited") }
                // Whatever happened, do not leave it running.
                if reported == nil { try? execution.send(signal: .interrupt) }
            }
            let output = readLog()
            #expect(result.terminationStatus == .exited(1), "\(output)")
            #expect(output.contains("reporting exited with status 137; stopping the rest"), "\(output)")
            // With --json, a line for scripts when it was up and one when it stopped.
            let events = output.split(separator: "\n").filter { $0.hasPrefix("{") }.compactMap {
                try? JSONParser.parse(String($0))
            }
            #expect(events.first?["event"] == "up")
            #expect(events.first?["reporting"] == .string("127.0.0.1:\(reportingPort)"))
            #expect(events.first?["admin_token_file"] == .string(folder + "/admin.token"))
            #expect(events.last?["event"] == "stopped")
            #expect(events.last?["failed"] == "reporting")
            #expect(events.last?["exit_status"] == 137)
            try? FileManager.default.removeItem(atPath: folder)
        }
    }
}

/// Polls `condition` every 50 ms; throws if it is still false after `seconds`.
func waitFor(seconds: Int, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(seconds))
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(seconds: seconds) }
        try await Task.sleep(for: .milliseconds(50))
    }
}

struct TimedOut: Error { let seconds: Int }

/// The process listening on loopback `port`, found through /proc.
func listeningProcess(port: Int) -> Int32? {
    let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    return pids.first { process($0, isListeningOn: port) == true }
}
