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
///
/// `ready` is open to anyone, so it must cost little and say nothing of the insides: one
/// database check serves every caller for a second (concurrent callers share the check in
/// flight), and a failure's detail goes to the log, never into the answer.
public struct HealthChecks: Sendable {
    public let service: String
    private let pool: PostgresPool
    private let started: ContinuousClock.Instant
    private let acceptsStandby: Bool
    private let logger: Logger
    private let cache = NIOLockedValueBox<ReadinessCache>(ReadinessCache())
    /// How long a readiness check may take before it answers not ready.
    public let timeout: Duration
    /// How long one check's answer is given again.
    public static let freshness = Duration.seconds(1)

    private struct ReadinessCache {
        var checkedAt: ContinuousClock.Instant?
        var answer: Readiness?
        var inFlight: Task<Readiness, Never>?
    }

    /// `acceptsStandby`: a hot standby is a database this service can work with (reporting
    /// only; intake and aggregation write).
    public init(
        service: String,
        pool: PostgresPool,
        acceptsStandby: Bool = false,
        logger: Logger,
        timeout: Duration = .seconds(2)
    ) {
        self.service = service
        self.pool = pool
        self.acceptsStandby = acceptsStandby
        self.logger = logger
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

    /// Whether the service can work: the last check if it is under a second old, else a new one.
    public func readiness() async -> Readiness {
        let task = cache.withLockedValue { cache -> Task<Readiness, Never> in
            if let answer = cache.answer, let checkedAt = cache.checkedAt,
                ContinuousClock.now - checkedAt < Self.freshness
            {
                return Task { answer }
            }
            if let inFlight = cache.inFlight { return inFlight }
            let check = Task { await self.check() }
            cache.inFlight = check
            return check
        }
        let answer = await task.value
        cache.withLockedValue { cache in
            if cache.inFlight == task {
                cache.inFlight = nil
                cache.answer = answer
                cache.checkedAt = .now
            }
        }
        return answer
    }

    /// Asks the database for its schema version and whether it is a standby, within `timeout`.
    private func check() async -> Readiness {
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
            logger.warning("readiness check: the database did not answer in time")
            return Readiness(
                ready: false,
                reason: "the database did not answer within \(timeout.components.seconds) s"
            )
        case .failure(let error)?:
            // The detail (host, role, pg_hba wording) is for the operator's log only.
            logger.warning("readiness check: the database cannot be reached", metadata: ["error": "\(error)"])
            return Readiness(ready: false, reason: "the database cannot be reached; see the service's log")
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
            if standby && !acceptsStandby {
                return Readiness(
                    ready: false,
                    schemaVersion: version,
                    standby: standby,
                    reason: "the database is a hot standby, which takes no writes; \(service) needs the primary"
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
        let timer = NIOLockedValueBox<Task<Void, Never>?>(nil)
        let resume: @Sendable (T?) -> Void = { value in
            pending.withLockedValue { waiting in
                waiting?.resume(returning: value)
                waiting = nil
            }
        }
        let worker = Task {
            resume(await work())
            // Done first: the timer has nothing left to do.
            timer.withLockedValue { $0?.cancel() }
        }
        let timeoutTask = Task {
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            resume(nil)
            worker.cancel()
        }
        timer.withLockedValue { $0 = timeoutTask }
        // The work may have finished before the timer was stored.
        if pending.withLockedValue({ $0 == nil }) { timeoutTask.cancel() }
    }
}
