#if canImport(Glibc)
import Glibc
#endif

/// Long-lived children we signal and reap ourselves: the services, and the cluster watcher.
///
/// Programs that run to completion (initdb, pg_ctl, swift build) go through swift-subprocess.
/// It does not cover these two: `Subprocess.run` keeps the child for the duration of one async
/// call and its `Execution` must not escape that call, while a service must be polled for its
/// exit status from any task (`ManagedProcess.isRunning`), sent SIGTERM or SIGKILL much later
/// and reaped then, and the watcher must outlive us. A child gets only stdin, stdout and stderr
/// (`posix_spawn` with close-from 3) and we wait for that one pid with `waitpid`, which does not
/// disturb swift-subprocess's own per-child (pidfd) monitoring.
public enum ChildProcess {
    /// Starts `executable` with its standard output and error appended to `outputPath`.
    /// `environment` replaces the whole environment when given.
    public static func spawn(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        outputPath: String,
        truncate: Bool = true
    ) throws -> pid_t {
        // A log kept from an earlier run keeps its mode on open: make it private too (a regular
        // file only: never /dev/null, which every user needs).
        var existing = stat()
        if lstat(outputPath, &existing) == 0, existing.st_mode & S_IFMT == S_IFREG { chmod(outputPath, 0o600) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(
            &actions,
            1,
            outputPath,
            O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND),
            // Logs name peers and keys: their owner's only.
            0o600
        )
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        guard let closeFrom = closeFromAction else {
            throw LaunchError(
                "this C library lacks posix_spawn_file_actions_addclosefrom_np (glibc 2.34 or newer is needed)"
            )
        }
        _ = closeFrom(&actions, 3)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp: [UnsafeMutablePointer<CChar>?] = []
        if let environment {
            envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        }
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned =
            environment == nil
            ? posix_spawn(&pid, executable, &actions, nil, argv, environ)
            : posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw LaunchError("could not start \(executable): \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// The exit status of `pid` if it has exited (reaping it), `nil` while it runs.
    /// A death by signal N reads as 128 + N, as shells report it.
    public static func exitStatus(of pid: pid_t, wait: Bool) -> Int32? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, wait ? 0 : WNOHANG)
            if result == 0 { return nil }
            if result == -1 {
                if errno == EINTR { continue }
                return -1  // not our child, or already reaped
            }
            break
        }
        // WIFEXITED / WEXITSTATUS, spelled out (the C macros are not imported).
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }
}

private typealias CloseFromFunction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

/// glibc's `posix_spawn_file_actions_addclosefrom_np`, looked up at run time (Swift's Glibc module does not import it).
private let closeFromAction: CloseFromFunction? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
        return nil
    }
    return unsafeBitCast(symbol, to: CloseFromFunction.self)
}()
