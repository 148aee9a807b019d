import ArgumentParser
import Foundation
import RootcausesJSON
import RootcausesProtocol
import RootcausesTransport

/// Where the services are, with environment fallbacks.
struct ServiceAddresses: ParsableArguments {
    @Option(help: "Intake address. Env: ROOTCAUSES_INTAKE. Default: 127.0.0.1:7401.")
    var intake: String?

    @Option(help: "Reporting address. Env: ROOTCAUSES_REPORTING. Default: 127.0.0.1:7403.")
    var reporting: String?

    @Option(help: "Aggregation address. Env: ROOTCAUSES_AGGREGATION. Default: 127.0.0.1:7402.")
    var aggregation: String?

    private var environment: [String: String] { ProcessInfo.processInfo.environment }
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

/// Connects to `service` at `address`; when nothing answers, says how to start it.
func connect(to service: String, at address: String) async throws -> ProtocolClient {
    do {
        return try await ProtocolClient.connect(address: address)
    } catch {
        throw CLIError(
            """
            cannot reach \(service) at \(address): is the service running? (\(error))
            Start the whole stack with `rootcauses up`, or \(service) alone with `\(service) --listen \(address) --database-url URL`.
            """
        )
    }
}

/// Sends one request to `service` and returns a successful answer, or throws the server's
/// error as a readable message.
func call(_ service: String, at address: String, _ request: JSON) async throws -> JSON {
    let client = try await connect(to: service, at: address)
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
