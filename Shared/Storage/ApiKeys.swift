import Crypto
import Foundation
import RootcausesPostgres

/// An API key's token: `rck_<key id>_<secret>`. The key id (16 hex digits) is public: it names
/// the key in logs, lists and the audit trail. The secret (32 random bytes, base64url) is shown
/// once, when the key is made; only its SHA-256 is stored. A fast hash is enough for a secret
/// of 256 random bits: there is nothing to guess that a slow hash would protect.
public struct ApiToken: Sendable, Hashable, CustomStringConvertible {
    public let keyID: String
    public let secret: String

    static let prefix = "rck_"

    /// A new key id and secret from the system's cryptographic random source.
    public static func generate() -> ApiToken {
        let id = Secrets.randomHex(bytes: 8)
        var generator = SystemRandomNumberGenerator()
        let secretBytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let secret = Data(secretBytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return ApiToken(keyID: id, secret: secret)
    }

    /// Reads a token; `nil` when it does not have the shape of one.
    public init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix(Self.prefix) else { return nil }
        let rest = trimmed.dropFirst(Self.prefix.count)
        guard let separator = rest.firstIndex(of: "_") else { return nil }
        let id = String(rest[..<separator])
        let secret = String(rest[rest.index(after: separator)...])
        guard id.utf8.count == 16, id.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
            (20...200).contains(secret.utf8.count)
        else { return nil }
        self.init(keyID: id, secret: secret)
    }

    init(keyID: String, secret: String) {
        self.keyID = keyID
        self.secret = secret
    }

    /// What a client sends in `auth`.
    public var description: String { Self.prefix + keyID + "_" + secret }

    /// The secret's SHA-256, lower-case hex: what the database keeps.
    public var secretDigest: String { Secrets.hex(SHA256.hash(data: Array(secret.utf8))) }

    /// Whether `digest` (hex, from the database) is this token's, compared in constant time:
    /// every byte is looked at whatever the first difference, so timing tells nothing of it.
    public func matches(digest: String) -> Bool {
        let expected = Array(secretDigest.utf8)
        let stored = Array(digest.utf8)
        guard expected.count == stored.count else { return false }
        var difference: UInt8 = 0
        for index in expected.indices { difference |= expected[index] ^ stored[index] }
        return difference == 0
    }
}

/// One API key as stored, without its secret.
public struct ApiKeyRecord: Sendable, PostgresRowDecodable {
    public var id: String
    public var reporter: String?
    public var scopes: [String]
    public var label: String
    public var createdAt: String
    public var createdBy: String?
    public var revokedAt: String?
    public var revokedBy: String?
    /// The SHA-256 of the secret, hex.
    var secretDigest: String

    public init(postgresRow row: PostgresRow) throws {
        id = try row.decode(column: "id")
        reporter = try row.decode(column: "reporter")
        scopes = try row.decode(column: "scopes")
        label = try row.decode(column: "label")
        createdAt = try row.decode(column: "created_at")
        createdBy = try row.decode(column: "created_by")
        revokedAt = try row.decode(column: "revoked_at")
        revokedBy = try row.decode(column: "revoked_by")
        secretDigest = try row.decode(column: "secret_sha256")
    }

    /// Whether `token` is this key's and the key is not revoked.
    public func accepts(_ token: ApiToken) -> Bool {
        revokedAt == nil && token.keyID == id && token.matches(digest: secretDigest)
    }
}

/// The SQL of API keys, for every service (they check tokens) and the tools that make keys.
public enum ApiKeys {
    private static let columns = """
        id, reporter, scopes, label,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at, created_by,
        to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS revoked_at, revoked_by,
        encode(secret_sha256, 'hex') AS secret_sha256
        """

    /// Makes a key and returns it with its token, which is never stored and cannot be shown again.
    public static func create(
        on connection: PostgresConnection,
        reporter: String?,
        scopes: [String],
        label: String,
        createdBy: String?
    ) throws -> (key: ApiKeyRecord, token: ApiToken) {
        let token = ApiToken.generate()
        let query: PostgresQuery = """
            INSERT INTO \(Storage.Table.apiKeys) (id, reporter, scopes, label, secret_sha256, created_by)
            VALUES (\(token.keyID), \(reporter), \(scopes)::text[], \(label), decode(\(token.secretDigest), 'hex'), \(createdBy))
            RETURNING \(unescaped: columns)
            """
        guard let key = try connection.query(query).decode(ApiKeyRecord.self).first else {
            throw PostgresError(code: .unexpectedResult, message: "making a key returned no row")
        }
        return (key, token)
    }

    /// Every key, newest first.
    public static func list(on connection: PostgresConnection) throws -> [ApiKeyRecord] {
        let query: PostgresQuery =
            "SELECT \(unescaped: columns) FROM \(Storage.Table.apiKeys) ORDER BY created_at DESC, id"
        return try connection.query(query).decode(ApiKeyRecord.self)
    }

    /// The key `id`, revoked or not; `nil` when there is none.
    public static func find(id: String, on connection: PostgresConnection) throws -> ApiKeyRecord? {
        let query: PostgresQuery = "SELECT \(unescaped: columns) FROM \(Storage.Table.apiKeys) WHERE id = \(id)"
        return try connection.query(query).decode(ApiKeyRecord.self).first
    }

    /// Which of the keys `ids` exist and are not revoked.
    public static func activeIDs(among ids: [String], on connection: PostgresConnection) throws -> Set<String> {
        let query: PostgresQuery = """
            SELECT id FROM \(Storage.Table.apiKeys) WHERE id = ANY(\(ids)::text[]) AND revoked_at IS NULL
            """
        return Set(try connection.query(query).map { try $0.decode(column: "id", as: String.self) })
    }

    /// Revokes the key `id`; `revokedNow` is false when it was revoked before (then nothing
    /// changes). `nil` when there is no such key.
    public static func revoke(
        id: String,
        by revoker: String?,
        on connection: PostgresConnection
    ) throws -> (key: ApiKeyRecord, revokedNow: Bool)? {
        let query: PostgresQuery = """
            UPDATE \(Storage.Table.apiKeys) SET revoked_at = coalesce(revoked_at, now()),
                   revoked_by = CASE WHEN revoked_at IS NULL THEN \(revoker) ELSE revoked_by END
            WHERE id = \(id)
            RETURNING \(unescaped: columns), revoked_at = now() AS revoked_now
            """
        guard let row = try connection.query(query).first else { return nil }
        return (try ApiKeyRecord(postgresRow: row), try row.decode(column: "revoked_now", as: Bool.self))
    }
}
