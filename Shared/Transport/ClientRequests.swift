import NIOSSL
import RootcausesJSON

/// A `submit` request for a submission object, as intake takes it.
public func submitRequest(_ submission: JSON, id: JSON = .null, dryRun: Bool = false) -> JSON {
    var request: JSON = ["op": "submit", "id": id, "submission": submission]
    if dryRun { request = request.setting("dry_run", to: true) }
    return request
}

extension ProtocolClient {
    /// Sends `request` and returns the answer, failing unless it is `ok: true`.
    public func expectOK(_ request: JSON) async throws -> JSON {
        let answer = try await self.request(request)
        guard answer["ok"] == .bool(true) else {
            throw ClientError("expected ok for \(request.serialized.prefix(200)), got \(answer.serialized)")
        }
        return answer
    }
}

extension ProtocolClient {
    /// Authenticates the connection with an API key's token (`auth`); throws the server's
    /// refusal, without the token, when it is not accepted.
    @discardableResult
    public func authenticate(token: String) async throws -> JSON {
        let answer = try await request(["op": "auth", "token": .string(token)])
        guard answer["ok"] == .bool(true) else {
            let code = answer["error"]?["code"]?.stringValue ?? "error"
            let message = answer["error"]?["message"]?.stringValue ?? answer.serialized
            // A TLS port answers plain text with tls_required before it looks at any key.
            if code == "tls_required" { throw ClientError("\(code): \(message)") }
            throw ClientError("the key was refused: \(code): \(message)")
        }
        return answer
    }

    /// Connects to `address` (over TLS with `tls`) and authenticates with `token` when one is given.
    public static func connect(
        address: String,
        token: String?,
        tls: NIOSSLContext? = nil
    ) async throws -> ProtocolClient {
        let client = try await connect(address: address, tls: tls)
        guard let token else { return client }
        do {
            try await client.authenticate(token: token)
        } catch {
            await client.close()
            throw error
        }
        return client
    }
}
