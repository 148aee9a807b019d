import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesProtocol
import RootcausesTransport

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` against a fresh database and the three services started as processes, then
/// stops them with SIGTERM and checks that each exited cleanly (status 0).
///
/// With `runAs`, the services run as that user (the test process must be root), the way a
/// container runs them: see `UnprivilegedTests` for checking that this is possible first.
///
/// ```swift
/// try await withServiceStack { stack in
///     let intake = try await stack.intakeClient()
///     let answer = try await intake.request(["op": "ping"])
/// }
/// ```
public func withServiceStack<T>(
    databaseURL: String? = nil,
    environment: [String: String] = [:],
    runAs: String? = nil,
    tls: ServiceStack.TLS? = nil,
    metrics: Bool = false,
    _ body: (ServiceStack) async throws -> T
) async throws -> T {
    let url: String
    if let databaseURL { url = databaseURL } else { url = try await TestDatabase.create() }
    let logs = "/tmp/rootcauses-tests-\(getpid())/logs/\(UUID().uuidString.prefix(8))"
    let stack = try ServiceStack(
        databaseURL: url,
        logDirectory: logs,
        environment: environment,
        runAs: runAs,
        tls: tls,
        metrics: metrics
    )
    do {
        try await stack.start()
        let result = try await body(stack)
        let statuses = await stack.stop()
        let unclean = statuses.filter { $0.value != 0 }
        if !unclean.isEmpty {
            throw LaunchError(
                "services did not exit cleanly on SIGTERM: \(unclean.sorted { $0.key < $1.key }); logs in \(logs)"
            )
        }
        // Logs of a clean run are not needed (with DATABASE_URL no throwaway folder removes them).
        try? FileManager.default.removeItem(atPath: logs)
        return result
    } catch {
        await stack.stop()
        // The logs go with the throwaway folder: keep what explains the failure.
        var tails = ""
        for process in stack.processes {
            tails += "\n--- \(process.name) ---\n" + process.logTail(lines: 15)
        }
        throw LaunchError("\(error)\nservice logs:\(tails)")
    }
}
