import Logging
import NIOConcurrencyHelpers
import RootcausesJSON
import RootcausesPostgres
import RootcausesProtocol
import RootcausesStorage

/// Whether a service can do its work: its database answers and its schema is the one this
/// build knows. What `ready` answers on the protocol and `/readyz` on the metrics port.
public struct Readiness: Sendable, Equatable {
    /// Ready to serve.
    public var ready: Bool
    /// The database's schema version, when it could be read.
    public var schemaVersion: Int?
    /// The database is a hot standby (reads only), when it could be asked.
    public var standby: Bool?
    /// Why the service is not ready; `nil` when it is.
    public var reason: String?

    public init(ready: Bool, schemaVersion: Int? = nil, standby: Bool? = nil, reason: String? = nil) {
        self.ready = ready
        self.schemaVersion = schemaVersion
        self.standby = standby
        self.reason = reason
    }

    /// The fields of the answer, in order, after `id` and `ok`.
    var fields: AnswerFields {
        var fields: AnswerFields = [
            ("ready", .bool(ready)),
            ("schema_version", schemaVersion.map { .int($0) } ?? .null),
            ("expected_schema_version", .int(Schema.currentVersion)),
            ("standby", standby.map(JSON.bool) ?? .null),
        ]
        if let reason { fields.append(("reason", .string(reason))) }
        return fields
    }

    /// The answer as a JSON object (the body of `/readyz`).
    public var json: JSON { .object(fields) }
}

/// Liveness and readiness of one service process, for the protocol (`health`, `ready`) and
/// the metrics port (`/healthz`, `/readyz`).
public struct HealthChecks: Sendable {
    public let service: String
    private let pool: PostgresPool
    private let started: ContinuousClock.Instant
    /// How long a readiness check may take before it answers not ready.
    public let timeout: Duration

    public init(service: String, pool: PostgresPool, timeout: Duration = .seconds(2)) {
        self.service = service
        self.pool = pool
        self.started = .now
        self.timeout = timeout
    }

    /// The process is up and serving: nothing to check but that it answers.
    public var liveness: AnswerFields {
        let uptime = ContinuousClock.now - started
        return [
            ("status", "live"),
            ("service", .string(service)),
            ("version", .string(rootcausesVersion)),
            ("uptime_seconds", .int(uptime.components.seconds)),
        ]
    }

    /// Asks the database for its schema version and whether it is a standby, within `timeout`.
    public func readiness() async -> Readiness {
        let pool = self.pool
        let outcome: Result<(Int?, Bool), any Error>? = await firstOf(
            timeout: timeout,
            { () async -> Result<(Int?, Bool), any Error> in
                do {
                    return .success(
                        try await pool.withConnection(idempotent: true) { connection in
                            let version = try Schema.appliedVersion(connection)
                            let standby =
                                try connection.query("SELECT pg_is_in_recovery() AS standby" as PostgresQuery).first?
                                .decode(column: "standby", as: Bool.self) ?? false
                            return (version, standby)
                        }
                    )
                } catch {
                    return .failure(error)
                }
            }
        )
        switch outcome {
        case nil:
            return Readiness(
                ready: false,
                reason: "the database did not answer within \(timeout.components.seconds) s"
            )
        case .failure(let error)?:
            let message = (error as? PostgresError)?.message ?? "\(error)"
            return Readiness(ready: false, reason: "the database cannot be reached: \(message)")
        case .success(let (version, standby))?:
            guard let version, version == Schema.currentVersion else {
                return Readiness(
                    ready: false,
                    schemaVersion: version,
                    standby: standby,
                    reason: version.map {
                        "the schema is at version \($0), this build needs \(Schema.currentVersion)"
                    } ?? "the database is not migrated (no schema_migrations table); run rootcauses provision"
                )
            }
            return Readiness(ready: true, schemaVersion: version, standby: standby)
        }
    }

    /// `health` and `ready`, open to every connection (probes have no key).
    public var operations: [Operation] {
        [
            Operation("health", NoInput.self, access: .open) { _, _ in liveness },
            Operation("ready", NoInput.self, access: .open) { _, _ in await readiness().fields },
        ]
    }
}

/// The value of `work`, or `nil` when `timeout` passes first. The work is not waited for
/// after the timeout (a libpq call cannot be interrupted); it finishes on its own.
private func firstOf<T: Sendable>(
    timeout: Duration,
    _ work: @escaping @Sendable () async -> T
) async -> T? {
    await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        let pending = NIOLockedValueBox<CheckedContinuation<T?, Never>?>(continuation)
        let resume: @Sendable (T?) -> Void = { value in
            pending.withLockedValue { waiting in
                waiting?.resume(returning: value)
                waiting = nil
            }
        }
        let worker = Task { resume(await work()) }
        Task {
            try? await Task.sleep(for: timeout)
            resume(nil)
            worker.cancel()
        }
    }
}
