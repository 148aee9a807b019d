import Dispatch
import Foundation
import Subprocess
import SystemPackage

/// Writes `text` to `path` whole or not at all: a half-written fact sheet is worse than none.
func writeOutput(_ text: String, to path: String) throws {
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw CLIError("cannot write \(path): \(error.localizedDescription)")
    }
}

/// The fact sheet's HTML printed to PDF by headless Chromium (Debian's `chromium` package, or
/// the browser `ROOTCAUSES_CHROMIUM` names). The page is read from a private temporary folder,
/// which also holds the browser's profile, and removed after.
func printToPDF(html: String, output: String) async throws {
    guard let browser = findChromium() else {
        throw CLIError(
            "--format pdf needs headless Chromium: install Debian's chromium package, or name the browser in ROOTCAUSES_CHROMIUM"
        )
    }
    // Checked before anything is touched: a bad setting must not cost the user their old PDF.
    let timeout = try pdfTimeoutSeconds()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rootcauses-pdf-\(UUID().uuidString)")
    try FileManager.default.createDirectory(
        at: folder,
        withIntermediateDirectories: false,
        attributes: [
            .posixPermissions: 0o700
        ]
    )
    defer { try? FileManager.default.removeItem(at: folder) }
    let page = folder.appendingPathComponent("factsheet.html")
    try writeOutput(html, to: page.path)
    let target = URL(fileURLWithPath: output).standardizedFileURL.path
    // Chromium may exit 0 without printing: only a file it made now counts.
    if FileManager.default.fileExists(atPath: target) {
        do { try FileManager.default.removeItem(atPath: target) } catch {
            throw CLIError("cannot replace \(output): \(error.localizedDescription)")
        }
    }
    var arguments = [
        "--headless", "--disable-gpu", "--no-first-run", "--no-pdf-header-footer",
        "--user-data-dir=\(folder.appendingPathComponent("profile").path)",
        "--print-to-pdf=\(target)", page.absoluteString,
    ]
    // Chromium will not run as root with its sandbox (containers, CI).
    if geteuid() == 0 { arguments.insert("--no-sandbox", at: 0) }
    // A browser that hangs (a page that never settles, a profile lock) must not hang the CLI,
    // nor outlive it. It runs in a process group of its own, and past the deadline, or when the
    // CLI is interrupted (SIGINT, SIGTERM), the run is cancelled and the whole group is killed at
    // once: what it was printing is thrown away anyway, and with a SIGTERM first, swift-subprocess
    // ends the teardown as soon as the browser alone has exited, leaving its children running.
    var options = PlatformOptions()
    options.processGroupID = 0
    options.teardownSequence = [.send(signal: .kill, toProcessGroup: true, allowedDurationToNextStep: .seconds(1))]
    // Constants, so the child tasks capture nothing the caller could still change.
    let (launchArguments, launchOptions) = (arguments, options)
    let printing = Task {
        try await withThrowingTaskGroup(of: ExecutionResult<Void, DiscardedOutput, StringOutput<UTF8>>?.self) {
            group in
            group.addTask {
                try await Subprocess.run(
                    .path(FilePath(browser)),
                    arguments: Arguments(launchArguments),
                    platformOptions: launchOptions,
                    output: .discarded,
                    error: .string(limit: 64 << 10)
                )
            }
            group.addTask {
                try await Task.sleep(for: .seconds(timeout))
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
    let printed: ExecutionResult<Void, DiscardedOutput, StringOutput<UTF8>>?
    do {
        printed = try await awaitCancellingOnSignals(printing)
    } catch is CancellationError {
        try? FileManager.default.removeItem(atPath: target)
        throw CLIError("interrupted: the browser printing the fact sheet to \(output) was stopped")
    }
    guard let result = printed else {
        // Whatever the killed browser left there is a half-written PDF, worse than none.
        try? FileManager.default.removeItem(atPath: target)
        throw CLIError(
            "\(browser) did not print the fact sheet to \(output) within \(timeout) seconds (ROOTCAUSES_PDF_TIMEOUT_SECONDS); it was stopped"
        )
    }
    guard result.terminationStatus.isSuccess, FileManager.default.fileExists(atPath: target) else {
        let detail = result.standardError.split(separator: "\n").suffix(3).joined(separator: "; ")
        throw CLIError(
            "\(browser) could not print the fact sheet to \(output) (\(result.terminationStatus)): \(detail)"
        )
    }
}

/// Awaits `task`, cancelling it on SIGINT or SIGTERM: the signals are ignored meanwhile, so the
/// CLI lives to stop what the task started, and get their default handling back after.
private func awaitCancellingOnSignals<T: Sendable>(_ task: Task<T, any Error>) async throws -> T {
    let numbers = [SIGINT, SIGTERM]
    let sources = numbers.map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { task.cancel() }
        source.resume()
        return source
    }
    defer {
        for source in sources { source.cancel() }
        for number in numbers { signal(number, SIG_DFL) }
    }
    return try await task.value
}

/// How many seconds the browser may take to print: `ROOTCAUSES_PDF_TIMEOUT_SECONDS`, 120 unless
/// set (a fact sheet prints in a few seconds).
private func pdfTimeoutSeconds() throws -> Int {
    guard let text = ProcessInfo.processInfo.environment["ROOTCAUSES_PDF_TIMEOUT_SECONDS"] else { return 120 }
    guard let seconds = Int(text), (1...3600).contains(seconds) else {
        throw CLIError("ROOTCAUSES_PDF_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 3600, not '\(text)'")
    }
    return seconds
}

private func findChromium() -> String? {
    let environment = ProcessInfo.processInfo.environment
    if let named = environment["ROOTCAUSES_CHROMIUM"], !named.isEmpty { return named }
    let folders = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for folder in folders where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
            return "\(folder)/\(name)"
        }
    }
    return nil
}
