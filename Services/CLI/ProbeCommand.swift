import ArgumentParser
import Foundation
import RootcausesJSON
import RootcausesTransport

/// `rootcauses probe`: asks a service whether it is live (or ready), for container health
/// checks and scripts. Exits 0 when it is, 1 when it is not or does not answer.
struct ProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Ask a service whether it is live (health) or ready (database reachable, schema current).",
        discussion: """
            With no --address, probes the service of this container: the address in ROOTCAUSES_LISTEN \
            (0.0.0.0 becomes 127.0.0.1). Needs no key. Exit status 0: live (or ready); 1: not, or no answer.
            """
    )

    @Option(help: "The service's address, host:port. Default: ROOTCAUSES_LISTEN, else 127.0.0.1:7401.")
    var address: String?

    @Flag(help: "Ask `ready` (the database answers and the schema is current) rather than `health`.")
    var ready = false

    @Flag(help: "Accepted for uniformity: the answer is always printed as JSON.") var json = false

    @Option(name: .customLong("timeout-ms"), help: "Give up after this long. Default: 5000.")
    var timeoutMilliseconds: Int = 5_000

    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp("Connect with TLS, trusting this CA (PEM). Env: ROOTCAUSES_TLS_CA.", valueName: "path")
    )
    var tlsCA: String?

    func run() async throws {
        let target = try resolvedAddress()
        let tls = try (tlsCA ?? ProcessInfo.processInfo.environment["ROOTCAUSES_TLS_CA"]).flatMap { ca in
            ca.isEmpty ? nil : try TLSClientSettings(caPath: ca, certificatePath: nil, keyPath: nil).makeContext()
        }
        let op = ready ? "ready" : "health"
        // A server that accepts and never answers must not hang a health check: past the
        // timeout the process ends, whatever the connection is doing.
        let milliseconds = timeoutMilliseconds
        Task.detached {
            try await Task.sleep(for: .milliseconds(milliseconds))
            print("\(op): \(target) did not answer within \(milliseconds) ms")
            Foundation.exit(1)
        }
        let answer: JSON
        do {
            let client = try await ProtocolClient.connect(address: target, tls: tls)
            defer { Task { await client.close() } }
            answer = try await client.request(["op": .string(op), "id": "probe"])
        } catch {
            print("\(op): \(target) did not answer: \(error)")
            throw ExitCode(1)
        }
        print(answer.serialized)
        let healthy = ready ? answer["ready"] == true : answer["status"] == "live"
        if !healthy { throw ExitCode(1) }
    }

    private func resolvedAddress() throws -> String {
        let text = address ?? ProcessInfo.processInfo.environment["ROOTCAUSES_LISTEN"] ?? "127.0.0.1:7401"
        guard let (host, port) = splitAddress(text) else { throw ValidationError("'\(text)' is not host:port") }
        // A service listening on every interface is reached on loopback.
        let reachable = host.isEmpty || host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host
        return reachable.contains(":") ? "[\(reachable)]:\(port)" : "\(reachable):\(port)"
    }
}
