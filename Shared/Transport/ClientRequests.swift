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
