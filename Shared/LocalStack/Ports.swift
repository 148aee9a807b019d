import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A free TCP port on loopback, as the kernel hands them out.
public func freeTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw LaunchError("socket() failed: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard bindLoopback(fd, port: 0) == 0 else { throw LaunchError("could not find a free port") }
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Nil when `port` on 127.0.0.1 can be listened on; otherwise why not (`errno`'s text).
///
/// Binds with SO_REUSEADDR, as the services do, so only a socket that is listening counts as
/// taken, not the TIME_WAIT leftovers of a stack that just stopped.
public func whyPortIsUnavailable(_ port: Int) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return "socket() failed: \(String(cString: strerror(errno)))" }
    defer { close(fd) }
    var one: Int32 = 1
    _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    guard bindLoopback(fd, port: port) == 0 else { return String(cString: strerror(errno)) }
    return nil
}

private func bindLoopback(_ fd: Int32, port: Int) -> Int32 {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// True when process `pid` holds the socket listening on `port` (Linux: /proc/net/tcp gives
/// the listening socket's inode, /proc/PID/fd the process's sockets). Nil when /proc cannot
/// tell (another OS, or no permission to look).
///
/// Lets a readiness check tell our own service answering from another process that already
/// had the port.
public func process(_ pid: Int32, isListeningOn port: Int) -> Bool? {
    guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return nil }
    let portHex = String(format: "%04X", port)
    var inodes: Set<String> = []
    for line in table.split(separator: "\n").dropFirst() {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count > 9, fields[3] == "0A", fields[1].hasSuffix(":" + portHex) else { continue }
        inodes.insert(String(fields[9]))
    }
    guard let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return nil }
    for descriptor in descriptors {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(descriptor)"),
            target.hasPrefix("socket:[")
        else { continue }
        if inodes.contains(String(target.dropFirst("socket:[".count).dropLast())) { return true }
    }
    return false
}

/// The first folder above `path` (or `path` itself, when `including` it) that users other than
/// its owner may not enter (no `o+x`), or nil when others can reach it.
public func firstFolderOthersCannotEnter(above path: String, including: Bool = false) -> String? {
    var current = URL(fileURLWithPath: path).standardizedFileURL
    var folders: [String] = including ? [current.path] : []
    while current.path != "/" {
        current.deleteLastPathComponent()
        folders.append(current.path)
    }
    for folder in folders {
        var info = stat()
        if stat(folder, &info) != 0 { continue }
        if info.st_mode & S_IXOTH == 0 { return folder }
    }
    return nil
}
