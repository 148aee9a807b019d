import Foundation

#if FUZZ
/// libFuzzer's entry for programs that have their own `main` (SwiftPM gives every executable
/// one), in libclang_rt.fuzzer.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The target libFuzzer drives (one per process; a C callback cannot capture it).
nonisolated(unsafe) private var fuzzTarget: ((UnsafeRawBufferPointer) -> Void)?
#endif

/// A fuzz target's `main`: built with `-DFUZZ` (and `-sanitize=fuzzer`), libFuzzer drives
/// `target` with its command line; built plainly, `target` replays every file under the paths
/// given (folders are walked), which is how the committed corpus is checked.
public func fuzzMain(_ target: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
    #if FUZZ
    fuzzTarget = target
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(
        LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            fuzzTarget?(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }
    )
    #else
    do {
        try replayCorpus(CommandLine.arguments.dropFirst(), target)
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        exit(1)
    }
    #endif
}

/// Runs `body` on every file under `paths`.
func replayCorpus(_ paths: some Sequence<String>, _ body: (UnsafeRawBufferPointer) -> Void) throws {
    var count = 0
    for path in paths {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        let files =
            isFolder.boolValue
            ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 } : [path]
        for file in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            data.withUnsafeBytes { body($0) }
            count += 1
        }
    }
    print("replayed \(count) inputs")
}
