import ArgumentParser
import Foundation
import Logging
import RootcausesJSON
import RootcausesPostgres
import RootcausesStorage

/// `rootcauses keys create|list|revoke`: the admin's API keys.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make, list and revoke API keys (needs an admin key, or the database for the first one).",
        subcommands: [CreateKeyCommand.self, ListKeysCommand.self, RevokeKeyCommand.self]
    )
}

struct CreateKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Make an API key and show its token once.",
        discussion: """
            Scopes: submit (as --reporter only, including replacements and retractions), read \
            (reporting), admin (deduplications, targets, publications, keys, aggregation's status \
            and nudge, and writes on behalf of any reporter). Only a hash of the secret is stored: \
            keep the token, it cannot be shown again. With --database-url the key is made straight \
            in the database (the first admin key of a deployment); otherwise through intake, with \
            your admin key.
            """
    )

    @OptionGroup var addresses: ServiceAddresses
    @Option(help: "The reporter a submit key acts for (a reporter code of the catalogue).") var reporter: String?
    @Option(help: "A scope: submit, read or admin. Repeat for several.") var scope: [String] = []
    @Option(help: "What the key is for, shown in lists and logs.") var label: String = ""
    @Option(
        name: .customLong("out"),
        help: "Write the token to this new file (mode 0600) instead of printing it."
    )
    var outputFile: String?
    @Option(
        name: .customLong("database-url"),
        help:
            "Make the key straight in this database, without a running intake (bootstrap). Its password shows in the process list: prefer --in-database with DATABASE_URL."
    )
    var databaseURL: String?
    @Flag(
        name: .customLong("in-database"),
        help: "Make the key straight in the database of DATABASE_URL, without a running intake (bootstrap)."
    )
    var inDatabase = false
    @Flag(help: "Print the key as JSON (key_id, scopes, reporter, and token unless --out).") var json = false

    func validate() throws {
        guard !scope.isEmpty else { throw ValidationError("give at least one --scope (submit, read or admin)") }
        for name in scope where !["submit", "read", "admin"].contains(name) {
            throw ValidationError("--scope \(name) is not submit, read or admin")
        }
        if scope.contains("submit"), reporter == nil {
            throw ValidationError("a submit key acts for one reporter: give --reporter")
        }
    }

    func run() async throws {
        let key: JSON
        let token: String
        let directURL =
            databaseURL
            ?? (inDatabase
                ? ProcessInfo.processInfo.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } : nil)
        if inDatabase, directURL == nil { throw ValidationError("--in-database needs DATABASE_URL") }
        if let databaseURL = directURL {
            var logger = Logger(label: "rootcauses.keys") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .warning
            let connection = try PostgresConnection(
                conninfo: databaseURL,
                applicationName: "rootcauses-keys",
                logger: logger
            )
            defer { connection.close() }
            try Schema.migrate(connection, logger: logger)
            let made = try ApiKeys.create(
                on: connection,
                reporter: reporter,
                scopes: Array(Set(scope)).sorted(),
                label: label,
                createdBy: nil
            )
            key = ["key_id": .string(made.key.id), "scopes": .array(made.key.scopes.map(JSON.string))]
            token = made.token.description
        } else {
            var request: JSON = [
                "op": "keys_create", "scopes": .array(scope.map(JSON.string)), "label": .string(label),
            ]
            if let reporter { request = request.setting("reporter", to: .string(reporter)) }
            key = try await addresses.send(.intake, request)
            token = key["token"]?.stringValue ?? ""
        }
        let id = key["key_id"]?.stringValue ?? "?"
        let scopes = key["scopes"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ",") ?? "?"
        if let outputFile { try Secrets.writePrivateFile(outputFile, contents: token + "\n") }
        if json {
            var made: JSON = [
                "key_id": .string(id), "scopes": key["scopes"] ?? [], "reporter": reporter.map(JSON.string) ?? .null,
            ]
            made = made.setting(outputFile == nil ? "token" : "token_file", to: .string(outputFile ?? token))
            return print(made.prettyPrinted)
        }
        if let outputFile {
            print("key \(id) (\(scopes)\(reporter.map { ", for \($0)" } ?? "")): token written to \(outputFile)")
        } else {
            print("key \(id) (\(scopes)\(reporter.map { ", for \($0)" } ?? "")); its token, shown this once:")
            print(token)
        }
    }
}

struct ListKeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List every key, newest first.")

    @OptionGroup var addresses: ServiceAddresses
    @Flag(help: "Print the raw JSON answer.") var json = false

    func run() async throws {
        let answer = try await addresses.send(.intake, ["op": "keys_list"])
        if json {
            print(answer.withoutEnvelope.prettyPrinted)
            return
        }
        print(
            "key_id            scopes          reporter  created                      revoked                      label"
        )
        for key in answer["keys"]?.arrayValue ?? [] {
            func text(_ name: String) -> String { key[name]?.stringValue ?? "-" }
            let scopes = key["scopes"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ",") ?? "?"
            print(
                [
                    text("key_id").padding(toLength: 18, withPad: " ", startingAt: 0),
                    scopes.padding(toLength: 16, withPad: " ", startingAt: 0),
                    text("reporter").padding(toLength: 10, withPad: " ", startingAt: 0),
                    text("created_at").padding(toLength: 29, withPad: " ", startingAt: 0),
                    text("revoked_at").padding(toLength: 29, withPad: " ", startingAt: 0),
                    text("label"),
                ].joined()
            )
        }
    }
}

struct RevokeKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a key: its open connections are refused from their next request."
    )

    @OptionGroup var addresses: ServiceAddresses
    @Argument(help: "The key's id (the 16 hex digits after rck_).") var keyID: String
    @Flag(help: "Print the raw JSON answer.") var json = false

    func run() async throws {
        let answer = try await addresses.send(.intake, ["op": "keys_revoke", "key_id": .string(keyID)])
        if json { return print(answer.prettyPrinted) }
        let status = answer["status"]?.stringValue ?? "?"
        print("\(status): key \(keyID) revoked at \(answer["revoked_at"]?.stringValue ?? "?")")
    }
}
