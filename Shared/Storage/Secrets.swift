import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Secrets on disk and from the random source, for every place that makes or keeps one: key
/// tokens, role and cluster passwords, token files.
public enum Secrets {
    /// `count` random bytes from the system's cryptographic source, as lower-case hex (safe in
    /// URLs and SQL literals).
    public static func randomHex(bytes count: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        return hex((0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// Bytes as lower-case hex.
    public static func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        // By hand rather than `String(format:)` per byte: intake hashes every submission, and
        // formatting byte by byte was 6 % of its time.
        func digit(_ nibble: UInt8) -> UInt8 {
            nibble < 10 ? nibble + UInt8(ascii: "0") : nibble - 10 + UInt8(ascii: "a")
        }
        var text: [UInt8] = []
        text.reserveCapacity(max(bytes.underestimatedCount, 32) * 2)
        for byte in bytes {
            text.append(digit(byte >> 4))
            text.append(digit(byte & 0x0f))
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Writes `contents` to a new file only its owner may read or write (0600), replacing any
    /// file there (created exclusively, so it is never readable by others, not even for a moment).
    public static func writePrivateFile(_ path: String, contents: String) throws {
        unlink(path)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SecretFileError(path: path, reason: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        let bytes = Array(contents.utf8)
        guard write(descriptor, bytes, bytes.count) == bytes.count else {
            throw SecretFileError(path: path, reason: String(cString: strerror(errno)))
        }
    }

    /// A secret file's contents without surrounding whitespace; an error when it cannot be read
    /// or is empty.
    public static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path),
            let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !text.isEmpty
        else { throw SecretFileError(path: path, reason: "missing, unreadable or empty") }
        return text
    }
}

/// A secret file that could not be written or read.
public struct SecretFileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var description: String { "cannot use the secret file \(path): \(reason)" }
}
