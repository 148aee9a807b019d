import ArgumentParser
import Foundation
import NIOSSL
import RootcausesJSON
import RootcausesProtocol
import RootcausesStorage
import RootcausesTransport

/// Where the services are, with environment fallbacks.
struct ServiceAddresses: ParsableArguments {
    @Option(help: "Intake address. Env: ROOTCAUSES_INTAKE. Default: 127.0.0.1:7401.")
    var intake: String?

    @Option(help: "Reporting address. Env: ROOTCAUSES_REPORTING. Default: 127.0.0.1:7403.")
    var reporting: String?

    @Option(help: "Aggregation address. Env: ROOTCAUSES_AGGREGATION. Default: 127.0.0.1:7402.")
    var aggregation: String?

    @Option(
        name: .customLong("token-file"),
        help: ArgumentHelp(
            "File holding your API key's token. Env: ROOTCAUSES_TOKEN_FILE, or the token itself in ROOTCAUSES_TOKEN. Default: \(ServiceAddresses.localAdminTokenFile) when it exists (written by `rootcauses up`/`demo`).",
            valueName: "path"
        )
    )
    var tokenFile: String?

    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp("Connect with TLS, trusting this CA (PEM). Env: ROOTCAUSES_TLS_CA.", valueName: "path")
    )
    var tlsCA: String?

    @Option(
        name: .customLong("tls-cert"),
        help: ArgumentHelp(
            "Present this client certificate (PEM) to services that require one. Env: ROOTCAUSES_CLIENT_TLS_CERT.",
            valueName: "path"
        )
    )
    var tlsCertificate: String?

    @Option(
        name: .customLong("tls-key"),
        help: ArgumentHelp("The client certificate's key (PEM). Env: ROOTCAUSES_CLIENT_TLS_KEY.", valueName: "path")
    )
    var tlsKey: String?

    private var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// Where `up` and `demo` keep the admin token of their local stack (default data folder).
    static let localAdminTokenFile = ".rootcauses/admin.token"

    /// A service the CLI talks to.
    enum Service: String {
        case intake, aggregation, reporting
    }

    /// Sends one request to `service` at its address, with the token and TLS resolved here, and
    /// returns a successful answer (or throws the server's error as a readable message).
    func send(_ service: Service, _ request: JSON) async throws -> JSON {
        let address =
            switch service {
            case .intake: intakeAddress
            case .aggregation: aggregationAddress
            case .reporting: reportingAddress
            }
        return try await call(service.rawValue, at: address, token: try token(for: address), tls: try tls(), request)
    }

    /// The TLS to connect with; `nil` (plain TCP) unless a CA is given.
    func tls() throws -> NIOSSLContext? {
        guard let ca = tlsCA ?? environment["ROOTCAUSES_TLS_CA"], !ca.isEmpty else { return nil }
        do {
            return try TLSClientSettings(
                caPath: ca,
                certificatePath: tlsCertificate ?? environment["ROOTCAUSES_CLIENT_TLS_CERT"],
                keyPath: tlsKey ?? environment["ROOTCAUSES_CLIENT_TLS_KEY"]
            ).makeContext()
        } catch {
            throw CLIError("cannot set up TLS with \(ca): \(error)")
        }
    }

    /// The token to authenticate with at `address`: the flag's file, then the environment, then
    /// the local stack's admin token (for a service on this machine only); `nil` when there is
    /// none (the services then answer `unauthenticated`).
    func token(for address: String? = nil) throws -> String? {
        if let path = tokenFile ?? environment["ROOTCAUSES_TOKEN_FILE"], !path.isEmpty {
            return try readToken(path)
        }
        if let token = environment["ROOTCAUSES_TOKEN"], !token.isEmpty { return token }
        // The local stack's key never leaves the machine: not sent to another host by default.
        let host = address.flatMap(splitAddress)?.host ?? "127.0.0.1"
        let isLocal = ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host)
        if isLocal, FileManager.default.fileExists(atPath: Self.localAdminTokenFile) {
            return try readToken(Self.localAdminTokenFile)
        }
        return nil
    }
    var intakeAddress: String { intake ?? environment["ROOTCAUSES_INTAKE"] ?? "127.0.0.1:7401" }
    var reportingAddress: String { reporting ?? environment["ROOTCAUSES_REPORTING"] ?? "127.0.0.1:7403" }
    var aggregationAddress: String {
        aggregation ?? environment["ROOTCAUSES_AGGREGATION"]?.split(separator: ",").first.map(String.init)
            ?? "127.0.0.1:7402"
    }
}

/// A failure to report to the person at the terminal, without a stack of internals.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Reads a token file, refusing one that others may read: a token is a password.
func readToken(_ path: String) throws -> String {
    var status = stat()
    guard stat(path, &status) == 0, let token = try? Secrets.read(path) else {
        throw CLIError("cannot read a token from \(path)")
    }
    if status.st_mode & 0o077 != 0 {
        throw CLIError("\(path) may be read by other users: make it private (chmod 600 \(path)) or make a new key")
    }
    return token
}

/// Connects to `service` at `address` and authenticates with `token`; when nothing answers,
/// says how to start it.
func connect(
    to service: String,
    at address: String,
    token: String?,
    tls: NIOSSLContext? = nil
) async throws
    -> ProtocolClient
{
    let client: ProtocolClient
    do {
        client = try await ProtocolClient.connect(address: address, tls: tls)
    } catch {
        throw CLIError(
            """
            cannot reach \(service) at \(address): is the service running? (\(error))
            Start the whole stack with `rootcauses up`, or \(service) alone with `\(service) --listen \(address) --database-url URL`.
            """
        )
    }
    guard let token else { return client }
    do {
        try await client.authenticate(token: token)
    } catch {
        await client.close()
        throw CLIError("\(service) at \(address) refused the connection: \(error)")
    }
    return client
}

/// Sends one request to `service` and returns a successful answer, or throws the server's
/// error as a readable message.
func call(
    _ service: String,
    at address: String,
    token: String?,
    tls: NIOSSLContext? = nil,
    _ request: JSON
) async throws -> JSON {
    let client = try await connect(to: service, at: address, token: token, tls: tls)
    do {
        let answer = try await client.request(request)
        await client.close()
        try checkAnswer(answer)
        return answer
    } catch {
        await client.close()
        throw error
    }
}

/// Throws a readable error for an `ok: false` answer.
func checkAnswer(_ answer: JSON) throws {
    guard answer["ok"] == .bool(true) else {
        throw CLIError(describeError(answer))
    }
}

/// "validation_failed: message" plus one line per detail.
func describeError(_ answer: JSON) -> String {
    let code = answer["error"]?["code"]?.stringValue ?? "error"
    let message = answer["error"]?["message"]?.stringValue ?? answer.serialized
    var text = "\(code): \(message)"
    for detail in answer["error"]?["details"]?.arrayValue ?? [] {
        if let path = detail["path"]?.stringValue, let detailMessage = detail["message"]?.stringValue {
            text += "\n  - \(path): \(detailMessage)"
        }
    }
    return text
}

extension JSON {
    /// An answer without its envelope (`id`, `ok`), for printing.
    var withoutEnvelope: JSON {
        guard case .object(let members) = self else { return self }
        return .object(members.filter { $0.0 != "id" && $0.0 != "ok" })
    }
}
