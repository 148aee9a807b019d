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
    let result = try await Subprocess.run(
        .path(FilePath(browser)),
        arguments: Arguments(arguments),
        output: .discarded,
        error: .string(limit: 64 << 10)
    )
    guard result.terminationStatus.isSuccess, FileManager.default.fileExists(atPath: target) else {
        let detail = result.standardError.split(separator: "\n").suffix(3).joined(separator: "; ")
        throw CLIError(
            "\(browser) could not print the fact sheet to \(output) (\(result.terminationStatus)): \(detail)"
        )
    }
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
