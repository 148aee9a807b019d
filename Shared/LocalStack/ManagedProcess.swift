import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A child process of ours: one of the service executables, with its output in a log file.
///
/// Children get `ROOTCAUSES_PARENT_PID`, so they exit on their own if we die without
/// stopping them: nothing is left behind.
public final class ManagedProcess: Sendable {
    public let name: String
    public let executable: String
    public let arguments: [String]
    public let logPath: String
    public let pid: Int32
    private let status = NIOLockedValueBox<Int32?>(nil)

    public init(name: String, executable: String, arguments: [String], environment: [String: String] = [:], logPath: String) throws {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.logPath = logPath
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw LaunchError("\(name): no executable at \(executable); build the package first (swift build)")
        }
        var env = ProcessInfo.processInfo.environment
        env["ROOTCAUSES_PARENT_PID"] = String(getpid())
        for (key, value) in environment { env[key] = value }
        self.pid = try ChildProcess.spawn(executable, arguments, environment: env, outputPath: logPath, truncate: false)
    }

    /// The exit status once the process has exited; `nil` while it runs.
    public var exitStatus: Int32? {
        status.withLockedValue { known in
            if known == nil { known = ChildProcess.exitStatus(of: pid, wait: false) }
            return known
        }
    }

    public var isRunning: Bool { exitStatus == nil }

    /// The last lines of the process's log, for error messages.
    public func logTail(lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Sends SIGTERM and waits for a graceful exit; SIGKILL after `timeout`. Returns the exit status.
    @discardableResult
    public func stop(timeout: Duration = .seconds(25)) async -> Int32 {
        if isRunning { kill(pid, SIGTERM) }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if isRunning { kill(pid, SIGKILL) }
        return await waitForExit()
    }

    /// Kills the process at once with SIGKILL, the way a crash would, and waits for it.
    public func killNow() async {
        if isRunning { kill(pid, SIGKILL) }
        _ = await waitForExit()
    }

    /// Waits until the process exits; returns its status.
    @discardableResult
    public func waitForExit() async -> Int32 {
        while true {
            if let status = exitStatus { return status }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// A service or cluster could not be started.
public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
