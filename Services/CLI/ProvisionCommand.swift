import ArgumentParser
import Foundation
import Logging
import RootcausesJSON
import RootcausesPostgres
import RootcausesStorage

/// `rootcauses provision`: least privilege in an operator's PostgreSQL (docs/SECURITY.md).
struct ProvisionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract:
            "Make the owner and the services' roles in a database, migrate it as the owner, grant each service its tables.",
        discussion: """
            Run it with a superuser's URL (once per deployment, and again after an upgrade: it is \
            idempotent). Each role's password comes from ROOTCAUSES_OWNER_DB_PASSWORD, \
            ROOTCAUSES_INTAKE_DB_PASSWORD, ROOTCAUSES_AGGREGATION_DB_PASSWORD or \
            ROOTCAUSES_REPORTING_DB_PASSWORD; one not given is generated and written to \
            --secrets-dir (mode 0600). The services then connect as rootcauses_intake, \
            rootcauses_aggregation and rootcauses_reporting.
            """
    )

    @Option(name: .customLong("database-url"), help: "A superuser's URL for the database. Env: DATABASE_URL.")
    var databaseURL: String?

    @Option(
        name: .customLong("secrets-dir"),
        help: "Where generated passwords are written, one file per role (mode 0600)."
    )
    var secretsDirectory: String?

    @Option(
        name: .customLong("wait-seconds"),
        help: "Wait this long for the database to accept connections (it may still be starting). Default: 60."
    )
    var waitSeconds: Int = 60

    @Flag(help: "Print the roles and generated password files as JSON.") var json = false

    func run() async throws {
        guard let url = databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty else {
            throw ValidationError("give --database-url (a superuser's URL) or set DATABASE_URL")
        }
        var passwords: [DatabaseRoles.Role: String] = [:]
        var generated: [String] = []
        for role in DatabaseRoles.Role.allCases {
            let variable = "ROOTCAUSES_\(role.rawValue.dropFirst("rootcauses_".count).uppercased())_DB_PASSWORD"
            if let given = ProcessInfo.processInfo.environment[variable], !given.isEmpty {
                passwords[role] = given
                continue
            }
            guard let secretsDirectory else {
                throw ValidationError("\(variable) is not set: set it, or give --secrets-dir to generate the password")
            }
            try FileManager.default.createDirectory(
                atPath: secretsDirectory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            let path = secretsDirectory + "/\(role.rawValue).password"
            if FileManager.default.fileExists(atPath: path) {
                // A kept password that cannot be used is an error, never a reason to reset the role.
                passwords[role] = try readToken(path)
            } else {
                let password = Secrets.randomHex()
                try Secrets.writePrivateFile(path, contents: password + "\n")
                passwords[role] = password
                generated.append(path)
            }
        }
        var logger = Logger(label: "rootcauses.provision") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        let connection = try await connectWhenReachable(url, logger: logger)
        defer { connection.close() }
        try DatabaseRoles.provision(on: connection, passwords: passwords, logger: logger)
        var roles: [(String, JSON)] = []
        for role in DatabaseRoles.Role.allCases {
            var components = URLComponents(string: url)
            components?.user = role.rawValue
            components?.password = nil
            roles.append((role.rawValue, .string(components?.string ?? role.rawValue)))
        }
        if json {
            let answer: JSON = [
                "roles": .object(roles), "generated_password_files": .array(generated.map(JSON.string)),
            ]
            return print(answer.prettyPrinted)
        }
        for path in generated { print("generated \(path)") }
        for (role, url) in roles { print("\(role): \(url.stringValue ?? role) (with its password)") }
    }

    /// A connection to `url`, retrying every second for `waitSeconds` while the server cannot be
    /// reached (a one-shot job started beside its database); other failures at once.
    private func connectWhenReachable(_ url: String, logger: Logger) async throws -> PostgresConnection {
        let deadline = ContinuousClock.now.advanced(by: .seconds(max(0, waitSeconds)))
        while true {
            let attempt: Result<PostgresConnection, any Error>
            do {
                attempt = .success(
                    try PostgresConnection(conninfo: url, applicationName: "rootcauses-provision", logger: logger)
                )
            } catch {
                attempt = .failure(error)
            }
            switch attempt {
            case .success(let connection):
                return connection
            case .failure(let error):
                // A server still starting refuses connections, or answers "the database system is starting up".
                guard let problem = error as? PostgresError, problem.isConnectionProblem, ContinuousClock.now < deadline
                else { throw error }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}
