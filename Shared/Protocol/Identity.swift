/// What a key may do. A key holds one or more scopes.
public enum Scope: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Submit, replace and retract as the key's own reporter.
    case submit
    /// Every read of reporting.
    case read
    /// Deduplications, targets, publications, keys, aggregation's `status` and `nudge`; reads;
    /// and writes on behalf of any reporter (the secretariat's data entry), each recorded as the
    /// admin key's.
    case admin

    public static func < (lhs: Scope, rhs: Scope) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Who sends a connection's requests once it has authenticated: a key and what it may do.
public struct Identity: Sendable, Hashable {
    /// The key's public id (the part of the token before the secret); recorded with every write.
    public var keyID: String
    /// The reporter a `submit` key acts for; `nil` for keys of no reporter.
    public var reporter: String?
    public var scopes: Set<Scope>

    public init(keyID: String, reporter: String?, scopes: Set<Scope>) {
        self.keyID = keyID
        self.reporter = reporter
        self.scopes = scopes
    }

    /// Whether the key may send an op that needs `access`.
    public func allows(_ access: Access) -> Bool {
        switch access {
        case .open: true
        case .read: scopes.contains(.read) || scopes.contains(.admin)
        case .submit: scopes.contains(.submit) || scopes.contains(.admin)
        case .admin: scopes.contains(.admin)
        }
    }

    /// Whether the key may write as `reporter`: its own, or any with `admin`.
    public func mayActFor(reporter: String) -> Bool {
        scopes.contains(.admin) || (scopes.contains(.submit) && self.reporter == reporter)
    }

    /// `forbidden` unless the key may write as `reporter`; `path` names the field in the answer.
    public func requireActing(for reporter: String, path: String = "reporter") throws {
        guard mayActFor(reporter: reporter) else {
            throw ProtocolError(
                .forbidden,
                self.reporter.map { "this key submits for \($0) only, not for \(reporter)" }
                    ?? "this key may not submit for \(reporter)",
                details: [
                    [
                        "path": .string(path), "code": "not_this_keys_reporter",
                        "message": .string("the key's reporter is \(self.reporter ?? "none")"),
                    ]
                ]
            )
        }
    }
}

/// What an op needs of the connection's key, declared with the op.
public enum Access: String, Sendable {
    /// Anyone, before authenticating (`hello`, `ping`, `auth`).
    case open
    /// A key with `read` (or `admin`).
    case read
    /// A key with `submit` (or `admin`); the handler checks the reporter.
    case submit
    /// A key with `admin`.
    case admin
}

/// Checks tokens for a service. The service's implementation reads its keys from the database.
public protocol Authenticator: Sendable {
    /// The identity of a valid, unrevoked token; throws `ProtocolError` `unauthenticated` (or
    /// `throttled` for a peer that failed too often) otherwise.
    func authenticate(token: String, peer: String) async throws -> Identity
    /// Whether the key is still valid now (not revoked since it authenticated): asked before
    /// every request, so that revocation takes effect on an open connection's next request.
    func isValid(_ identity: Identity) async throws -> Bool
}

/// A connection's state between requests: who it has authenticated as, if anyone.
public struct Session: Sendable {
    public var identity: Identity?
    /// The peer's address, for logs and for throttling failed attempts.
    public var peer: String
    /// Where the connection's pushed lines go; `nil` in process.
    public var events: (any EventSink)?
    /// Waits until every request the connection started so far is answered (see
    /// `Operation.overlapping`); in process, where requests are answered one by one, at once.
    public var earlierRequestsAnswered: @Sendable () async -> Void

    public init(
        identity: Identity? = nil,
        peer: String = "in-process",
        events: (any EventSink)? = nil,
        earlierRequestsAnswered: @escaping @Sendable () async -> Void = {}
    ) {
        self.identity = identity
        self.peer = peer
        self.events = events
        self.earlierRequestsAnswered = earlierRequestsAnswered
    }
}

/// Tokens fixed in memory: for driving a responder in process (tests), never for a service.
public struct StaticAuthenticator: Authenticator {
    private let identities: [String: Identity]

    public init(_ identities: [String: Identity]) { self.identities = identities }

    public func authenticate(token: String, peer: String) async throws -> Identity {
        guard let identity = identities[token] else { throw ProtocolError(.unauthenticated, "the token is not valid") }
        return identity
    }

    public func isValid(_ identity: Identity) async throws -> Bool { identities.values.contains(identity) }
}
