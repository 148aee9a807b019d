import RootcausesJSON
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol
import RootcausesStorage

/// The admin's key ops: `keys_create`, `keys_list`, `keys_revoke`. Each key change records the
/// key that made it (`created_by`, `revoked_by`).
extension IntakeOperations {
    /// `{"op":"keys_create","reporter":"USAID","scopes":["submit"],"label":"USAID's uploader"}`.
    struct CreateKeyRequest: Sendable {
        var reporter: String?
        var scopes: [Scope]
        var label: String

        static func decode(from reader: FieldReader, catalogue: Catalogue) -> CreateKeyRequest? {
            let reporter = reader.string("reporter")
            let label = reader.string("label") ?? ""
            let scopeValues = reader.array("scopes", required: true)
            var scopes: [Scope] = []
            for (index, value) in (scopeValues ?? []).enumerated() {
                guard let name = value.stringValue, let scope = Scope(rawValue: name) else {
                    reader.report(
                        Problem(
                            path: "scopes[\(index)]",
                            code: "unknown_scope",
                            message: "a scope is one of submit, read, admin, not \(value.serialized)"
                        )
                    )
                    continue
                }
                if !scopes.contains(scope) { scopes.append(scope) }
            }
            if scopeValues?.isEmpty == true {
                reader.report(Problem(path: "scopes", code: "invalid", message: "a key needs at least one scope"))
            }
            if let reporter, !catalogue.hasReporter(reporter) {
                reader.report(
                    Problem(
                        path: "reporter",
                        code: "unknown_reporter",
                        message: "'\(reporter)' is not a reporter of the catalogue"
                    )
                )
            }
            if scopes.contains(.submit), reporter == nil {
                reader.report(
                    Problem(path: "reporter", code: "missing", message: "a submit key acts for one reporter: name it")
                )
            }
            if label.unicodeScalars.count > 200 || label.unicodeScalars.contains("\u{0}") {
                reader.report(
                    Problem(path: "label", code: "invalid", message: "'label' is at most 200 characters, without NUL")
                )
            }
            return CreateKeyRequest(reporter: reporter, scopes: scopes.sorted(), label: label)
        }
    }

    /// `{"op":"keys_revoke","key_id":"…"}`.
    struct RevokeKeyRequest: OperationInput {
        var keyID: String

        static func decode(from reader: FieldReader) -> RevokeKeyRequest? {
            reader.string("key_id", required: true).map(RevokeKeyRequest.init)
        }
    }

    func createKey(_ request: CreateKeyRequest, context: RequestContext) async throws -> AnswerFields {
        let identity = try context.requireIdentity()
        let (key, token) = try await pool.withConnection { connection in
            try ApiKeys.create(
                on: connection,
                reporter: request.reporter,
                scopes: request.scopes.map(\.rawValue),
                label: request.label,
                createdBy: identity.keyID
            )
        }
        context.logger.notice(
            "key created",
            metadata: ["new_key": "\(key.id)", "scopes": "\(key.scopes.joined(separator: ","))"]
        )
        // The token is in this answer only: it is not stored and cannot be shown again.
        return Self.keyFields(key) + [("token", .string(token.description))]
    }

    func listKeys(_ request: NoInput, context: RequestContext) async throws -> AnswerFields {
        let keys = try await pool.withConnection(idempotent: true) { connection in try ApiKeys.list(on: connection) }
        return [("keys", .array(keys.map { .object(Self.keyFields($0)) }))]
    }

    func revokeKey(_ request: RevokeKeyRequest, context: RequestContext) async throws -> AnswerFields {
        let identity = try context.requireIdentity()
        let revoked = try await pool.withConnection { connection in
            try ApiKeys.revoke(id: request.keyID, by: identity.keyID, on: connection)
        }
        guard let (revoked, revokedNow) = revoked else {
            throw ProtocolError.validationFailed(
                [Problem(path: "key_id", code: "unknown_key", message: "there is no key '\(request.keyID)'")],
                lead: "nothing was changed"
            )
        }
        if revokedNow { context.logger.notice("key revoked", metadata: ["revoked_key": "\(revoked.id)"]) }
        return [("status", .string(revokedNow ? "revoked" : "duplicate"))] + Self.keyFields(revoked)
    }

    /// A key as the ops show it: never its secret or its hash.
    static func keyFields(_ key: ApiKeyRecord) -> AnswerFields {
        [
            ("key_id", .string(key.id)),
            ("reporter", key.reporter.map(JSON.string) ?? .null),
            ("scopes", .array(key.scopes.map(JSON.string))),
            ("label", .string(key.label)),
            ("created_at", .string(key.createdAt)),
            ("created_by", key.createdBy.map(JSON.string) ?? .null),
            ("revoked_at", key.revokedAt.map(JSON.string) ?? .null),
            ("revoked_by", key.revokedBy.map(JSON.string) ?? .null),
        ]
    }
}
