import Foundation
import NIOConcurrencyHelpers
import NIOSSL
import RootcausesJSON
import RootcausesTransport

#if canImport(Glibc)
import Glibc
#endif

/// A child process of ours: one of the service executables, with its output in a log file.
///
/// Children get `ROOTCAUSES_PARENT_PID`, so they exit on their own if we die without
/// stopping them: nothing is left behind.
public final class ManagedProcess: Sendable {
    /// The name used in messages and for the log file (`aggregation-0`).
    public let name: String
    /// The service executable (also when it is started through `setpriv`).
    public let executable: String
    /// The service's own arguments.
    public let arguments: [String]
    /// Where its standard output and error go (opened by us, so it need not be writable by `runAs`).
    public let logPath: String
    /// The user it runs as, when not ours.
    public let runAs: String?
    /// The process id: the service itself, also when it runs as another user.
    public let pid: Int32
    private let status = NIOLockedValueBox<Int32?>(nil)

    /// Starts `executable`. With `runAs`, it runs as that user (we must be root): `setpriv`
    /// changes user and group and then execs the service in place, so `pid` is the service and
    /// SIGTERM reaches it directly. (`runuser` would stay in between as a parent, kill the
    /// service on SIGTERM and report 143, hiding whether the service shut down cleanly.)
    public init(
        name: String,
        executable: String,
        arguments: [String],
        environment: [String: String] = [:],
        logPath: String,
        runAs: String? = nil
    ) throws {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.logPath = logPath
        self.runAs = runAs
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw LaunchError("\(name): no executable at \(executable); build the package first (swift build)")
        }
        var env = ProcessInfo.processInfo.environment
        env["ROOTCAUSES_PARENT_PID"] = String(getpid())
        for (key, value) in environment { env[key] = value }
        var command = executable
        var commandArguments = arguments
        if let runAs {
            let user = try UnprivilegedUser.lookUp(runAs)
            command = try UnprivilegedUser.setprivPath()
            commandArguments =
                [
                    "--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "--", executable,
                ] + arguments
            env["HOME"] = user.home
            env["USER"] = runAs
            env["LOGNAME"] = runAs
        }
        self.pid = try ChildProcess.spawn(
            command,
            commandArguments,
            environment: env,
            outputPath: logPath,
            truncate: false
        )
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

    /// Waits until this process answers `ping` on `port`, and makes sure it is this process
    /// answering: a service that failed to bind exits, and whoever holds the port must not
    /// pass for it.
    public func waitUntilServing(port: Int, tls: NIOSSLContext? = nil, timeout: Duration = .seconds(60)) async throws {
        let process = self
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw LaunchError(
                    "\(process.name) exited with status \(process.exitStatus ?? -1) during start:\n\(process.logTail())"
                )
            }
            if let client = try? await ProtocolClient.connect(host: "127.0.0.1", port: port, tls: tls) {
                let answer = try? await client.request(["op": "ping"])
                await client.close()
                if answer?["ok"] == .bool(true) {
                    switch RootcausesLocalStack.process(process.pid, isListeningOn: port) {
                    case true?: return
                    case false?: break  // someone else answered; ours has not bound (yet), or failed to
                    case nil:
                        // /proc cannot tell: a service that failed to bind exits at once, so
                        // being alive a moment after the answer is good enough.
                        try await Task.sleep(for: .milliseconds(200))
                        if process.isRunning { return }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LaunchError("\(process.name) did not answer on port \(port) within \(timeout):\n\(process.logTail())")
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

/// A user to run services as, for tests that must see what an unprivileged process sees.
public struct UnprivilegedUser: Sendable {
    public let name: String
    public let uid: UInt32
    public let gid: UInt32
    public let home: String

    /// The user named `name`; throws unless we are root (only root can become someone else)
    /// and the user exists.
    public static func lookUp(_ name: String) throws -> UnprivilegedUser {
        guard geteuid() == 0 else {
            throw LaunchError("running services as '\(name)' needs root (we are uid \(geteuid()))")
        }
        guard let entry = getpwnam(name) else { throw LaunchError("there is no user '\(name)' to run services as") }
        return UnprivilegedUser(
            name: name,
            uid: entry.pointee.pw_uid,
            gid: entry.pointee.pw_gid,
            home: String(cString: entry.pointee.pw_dir)
        )
    }

    /// util-linux's `setpriv`, which changes user and execs (no process left in between).
    public static func setprivPath() throws -> String {
        for candidate in ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw LaunchError("setpriv (util-linux) is not installed: it is needed to run services as another user")
    }
}

/// A service or cluster could not be started.
public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
