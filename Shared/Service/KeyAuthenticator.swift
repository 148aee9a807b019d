import Foundation
import Logging
import NIOConcurrencyHelpers
import RootcausesPostgres
import RootcausesProtocol
import RootcausesStorage

/// Checks tokens against the keys in the database, for every service.
///
/// A failed attempt is logged with its peer (never the token) and counted per peer host: after
/// `freeFailures` failures in a row, the peer must wait before its next attempt, twice as long
/// after each further failure, up to `longestWait`; a success clears its count.
///
/// Every request's key is checked in the database, but requests arriving together share a
/// look-up (see `isValid`).
public struct KeyAuthenticator: Authenticator {
    private let pool: PostgresPool
    private let logger: Logger
    private let failures: NIOLockedValueBox<[String: Failures]>
    private let activeKeys: SharedLookUp<String>
    private let freeFailures: Int
    private let longestWait: Duration

    private struct Failures {
        var count: Int
        var last: ContinuousClock.Instant
    }

    public init(pool: PostgresPool, logger: Logger, freeFailures: Int = 5, longestWait: Duration = .seconds(60)) {
        self.pool = pool
        self.logger = logger
        self.failures = NIOLockedValueBox([:])
        self.activeKeys = SharedLookUp { ids in
            try await pool.withConnection(idempotent: true) { connection in
                try ApiKeys.activeIDs(among: ids, on: connection)
            }
        }
        self.freeFailures = freeFailures
        self.longestWait = longestWait
    }

    public func authenticate(token text: String, peer: String) async throws -> Identity {
        try checkThrottle(peer: peer)
        guard let token = ApiToken(parsing: text) else {
            throw failed(peer: peer, keyID: nil, reason: "malformed", "the token is not a Rootcauses API token (rck_…)")
        }
        let key = try await pool.withConnection(idempotent: true) { connection in
            try ApiKeys.find(id: token.keyID, on: connection)
        }
        guard let key, key.accepts(token) else {
            // The same answer for an unknown key, a wrong secret and a revoked key: the answer
            // tells a guesser nothing about which key ids exist.
            throw failed(
                peer: peer,
                keyID: token.keyID,
                reason: key == nil ? "unknown key" : key?.revokedAt != nil ? "revoked" : "wrong secret",
                "the token is not valid (unknown, revoked or mistyped)"
            )
        }
        failures.withLockedValue { _ = $0.removeValue(forKey: peer) }
        return Identity(
            keyID: key.id,
            reporter: key.reporter,
            scopes: Set(key.scopes.compactMap(Scope.init(rawValue:)))
        )
    }

    /// Whether the key is still valid, read from the database after this call began: checks
    /// arriving while a look-up runs share the next one. Under load that is one query per
    /// round trip instead of one per request (a seventh of the database's work for intake's
    /// writes in `rootcauses bench`), and a key revoked before the request came is always seen.
    public func isValid(_ identity: Identity) async throws -> Bool {
        try await activeKeys.contains(identity.keyID)
    }

    /// `throttled` while the peer must still wait after its last failure.
    private func checkThrottle(peer: String) throws {
        let now = ContinuousClock.now
        let wait: Duration? = failures.withLockedValue { all in
            guard let record = all[peer], record.count >= freeFailures else { return nil }
            let doublings = min(record.count - freeFailures, 16)
            let delay = min(Duration.seconds(1) * (1 << doublings), longestWait)
            let until = record.last.advanced(by: delay)
            return until > now ? now.duration(to: until) : nil
        }
        if let wait {
            let milliseconds = wait.wholeMilliseconds
            throw ProtocolError(
                .throttled,
                "too many failed auth attempts from this address; retry in \(milliseconds) ms",
                details: [["retry_after_ms": .int(milliseconds)]]
            )
        }
    }

    private func failed(peer: String, keyID: String?, reason: String, _ message: String) -> ProtocolError {
        let count = failures.withLockedValue { all -> Int in
            // Forget old peers rather than grow without bound under a spray of addresses.
            if all.count > 10_000 { all.removeAll() }
            var record = all[peer] ?? Failures(count: 0, last: .now)
            record.count += 1
            record.last = .now
            all[peer] = record
            return record.count
        }
        logger.warning(
            "authentication failed",
            metadata: ["peer": "\(peer)", "key": "\(keyID ?? "-")", "reason": "\(reason)", "failures": "\(count)"]
        )
        return ProtocolError(.unauthenticated, message)
    }
}
