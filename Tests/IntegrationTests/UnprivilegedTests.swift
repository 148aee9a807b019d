import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesTesting
import Testing

#if canImport(Glibc)
import Glibc
import RootcausesTransport
#endif

/// Containers run the services as a user without privileges; here everything runs as root,
/// which hides permission bugs (a socket option only root may set, a file only root may read).
/// So this suite runs the real executables as `nobody`.
extension Integration {
    @Suite struct UnprivilegedTests {
        static let user = "nobody"

        /// Why the services cannot run as `nobody` on this machine, or nil when they can.
        static let skipReason: String? = {
            guard geteuid() == 0 else {
                return "needs root to start the services as '\(user)' (running as uid \(geteuid()))"
            }
            guard getpwnam(user) != nil else { return "there is no user '\(user)' on this machine" }
            if let problem = Result(catching: { try UnprivilegedUser.setprivPath() }).failureDescription {
                return problem
            }
            let binDirectory = ServiceStack.defaultBinDirectory
            if let folder = firstFolderOthersCannotEnter(above: binDirectory, including: true) {
                return
                    "'\(user)' cannot reach the executables in \(binDirectory): \(folder) is not world-executable (o+x)"
            }
            for service in ["intake", "aggregation", "reporting"]
            where !othersMay(S_IXOTH, binDirectory + "/" + service) {
                return "'\(user)' may not execute \(binDirectory)/\(service)"
            }
            // The services find their data files from the working folder or by walking up from the executable.
            for file in ["catalogue.json", "factsheet.md"] {
                let path = packageRoot + "/Deploy/config/" + file
                if let folder = firstFolderOthersCannotEnter(above: path) {
                    return "'\(user)' cannot reach \(path): \(folder) is not world-executable (o+x)"
                }
                if !othersMay(S_IROTH, path) { return "'\(user)' may not read \(path)" }
            }
            if let runtime = swiftRuntimeFolder(),
                let folder = firstFolderOthersCannotEnter(above: runtime, including: true)
            {
                return "'\(user)' cannot load the Swift runtime in \(runtime): \(folder) is not world-executable (o+x)"
            }
            return nil
        }()

        @Test(.enabled(if: skipReason == nil, Comment(rawValue: skipReason ?? "")))
        func servicesRunningAsNobodyAnswerPingHelloSubmitAndTotals() async throws {
            try await withServiceStack(runAs: Self.user) { stack in
                for process in stack.processes {
                    #expect(
                        try processOwner(process.pid) == getpwnam(Self.user)?.pointee.pw_uid,
                        "\(process.name) runs as \(Self.user)"
                    )
                }
                let intake = try await stack.intakeClient()
                let reporting = try await stack.reportingClient()

                #expect(try await intake.expectOK(["op": "ping", "id": 1])["id"] == 1)
                let hello = try await reporting.expectOK(["op": "hello", "id": 2, "protocol": 3])
                #expect(hello["protocol"] == 3)

                let submitted = try await intake.expectOK(
                    submitRequest(submission("nobody-1", values: [value("firms_supported", "GT", 12)]), id: 3)
                )
                #expect(submitted["status"] == "accepted")
                let seq = try #require(submitted["seq"]?.int64Value)

                let totals = try await reporting.expectOK([
                    "op": "totals", "id": 4, "indicator": ["firms_supported"], "min_seq": .int(seq),
                    "timeout_ms": 20_000,
                ])
                #expect(totals["rows"]?[0]?["value"] == 12)
                await intake.close()
                await reporting.close()
            }
        }
    }
}

/// True when users other than the owner have `permission` (S_IROTH, S_IXOTH) on `path`.
private func othersMay(_ permission: mode_t, _ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && info.st_mode & permission != 0
}

/// The uid a process runs as (the owner of /proc/PID).
private func processOwner(_ pid: Int32) throws -> uid_t {
    var info = stat()
    guard stat("/proc/\(pid)", &info) == 0 else { throw POSIXError(.ESRCH) }
    return info.st_uid
}

/// The folder of the Swift runtime this process loaded (debug builds link it dynamically).
private func swiftRuntimeFolder() -> String? {
    guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return nil }
    for line in maps.split(separator: "\n") where line.hasSuffix("/libswiftCore.so") {
        guard let path = line.split(separator: " ", omittingEmptySubsequences: true).last else { continue }
        return URL(fileURLWithPath: String(path)).deletingLastPathComponent().path
    }
    return nil
}

extension Result {
    /// The error's description when this is a failure.
    fileprivate var failureDescription: String? {
        if case .failure(let error) = self { return "\(error)" }
        return nil
    }
}
