import Foundation
import Logging
import NIOConcurrencyHelpers
import RootcausesJSON

/// How a service writes its log lines.
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's `StreamLogHandler`: for people reading a terminal.
    case text
    /// One JSON object per line: for log collectors.
    case json
}

/// A swift-log handler writing one JSON object per line to standard error: `time` (RFC 3339,
/// UTC, milliseconds), `level`, `logger` (the label), `message`, then the metadata as fields
/// (`op`, `request_id`, `peer`, `key`, …), the handler's first, then the event's.
///
/// Written here because swift-log ships only a text handler; the lines are built with the
/// product's own JSON writer, so every string is escaped the same way as on the protocol.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: JSONLogOutput

    /// A handler for `label` writing to standard error.
    public init(label: String) {
        self.init(label: label, output: .standardError)
    }

    /// A handler for `label` writing to `output` (tests read what it wrote).
    public init(label: String, output: JSONLogOutput) {
        self.label = label
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, JSON)] = [
            ("time", .string(Self.timestampNow())),
            ("level", .string(event.level.rawValue)),
            ("logger", .string(label)),
            ("message", .string(event.message.description)),
        ]
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        let reserved: Set = ["time", "level", "logger", "message"]
        for key in merged.keys.sorted() {
            guard let value = merged[key] else { continue }
            // A metadata key never hides one of the line's own fields.
            fields.append((reserved.contains(key) ? "metadata_" + key : key, Self.json(value)))
        }
        if let error = event.error { fields.append(("error_value", .string("\(error)"))) }
        var line: [UInt8] = []
        line.reserveCapacity(256)
        JSON.object(fields).write(into: &line)
        line.append(UInt8(ascii: "\n"))
        output.write(line)
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSON {
        switch value {
        case .string(let text): .string(text)
        case .stringConvertible(let convertible): .string(convertible.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let values): .object(values.keys.sorted().map { ($0, json(values[$0]!)) })
        }
    }

    /// Now, as `2026-11-29T21:53:22.123Z` (a formatter is not safe to share between threads;
    /// `gmtime_r` is, and costs less).
    static func timestampNow() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return
            "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}

/// Where JSON log lines go: each line in one `write`, under a lock, so lines from concurrent
/// tasks never interleave.
public final class JSONLogOutput: Sendable {
    private let sink: NIOLockedValueBox<@Sendable ([UInt8]) -> Void>

    public init(_ sink: @escaping @Sendable ([UInt8]) -> Void) {
        self.sink = NIOLockedValueBox(sink)
    }

    public static let standardError = JSONLogOutput { line in
        line.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    func write(_ line: [UInt8]) {
        sink.withLockedValue { $0(line) }
    }
}
