import ArgumentParser
import Foundation
import Logging
import RootcausesStorage
import RootcausesTransport

/// The version every service reports in `hello`.
public let rootcausesVersion = "0.7.0"

/// Options every service takes. Each has an environment fallback, so containers are
/// configured with variables and people with flags.
public struct ServiceOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: "Address to listen on, host:port. Env: ROOTCAUSES_LISTEN.")
    public var listen: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL or libpq conninfo. Env: DATABASE_URL.")
    public var databaseURL: String?

    @Option(
        name: .long,
        help: "Indicator catalogue file. Env: ROOTCAUSES_CATALOGUE. Default: Deploy/config/catalogue.json."
    )
    public var catalogue: String?

    @Option(
        name: .customLong("max-line-bytes"),
        help: "Longest request line accepted, in bytes. Env: ROOTCAUSES_MAX_LINE_BYTES. Default: 1048576."
    )
    public var maxLineBytes: Int?

    @Option(
        name: .customLong("max-connections"),
        help:
            "Most client connections served at once; one more is answered 'overloaded'. Env: ROOTCAUSES_MAX_CONNECTIONS. Default: 1024."
    )
    public var maxConnections: Int?

    @Option(
        name: .customLong("max-buffered-bytes"),
        help:
            "Most bytes all connections together may hold in unfinished lines. Env: ROOTCAUSES_MAX_BUFFERED_BYTES. Default: 67108864 (64 MiB)."
    )
    public var maxBufferedBytes: Int?

    @Option(
        name: .customLong("idle-timeout-seconds"),
        help:
            "Close a connection that sends nothing for this long with no request in progress. Env: ROOTCAUSES_IDLE_TIMEOUT_SECONDS. Default: 600."
    )
    public var idleTimeoutSeconds: Int?

    @Option(
        name: .customLong("db-connections"),
        help: "Most database connections this process opens. Env: ROOTCAUSES_DB_CONNECTIONS. Default: 8."
    )
    public var dbConnections: Int?

    @Option(
        name: .customLong("log-level"),
        help: "trace, debug, info, notice, warning, error or critical. Env: LOG_LEVEL. Default: info."
    )
    public var logLevel: String?

    @Option(
        name: .customLong("log-format"),
        help:
            "text (for people) or json (one object per line, for collectors). Env: ROOTCAUSES_LOG_FORMAT. Default: text."
    )
    public var logFormat: String?

    @Option(
        name: .customLong("metrics-listen"),
        help:
            "Serve HTTP on host:port: /metrics (Prometheus), /healthz, /readyz. Env: ROOTCAUSES_METRICS_LISTEN. Default: none."
    )
    public var metricsListen: String?

    @Option(
        name: .customLong("tls-cert"),
        help: "Serve TLS with this certificate chain (PEM). Env: ROOTCAUSES_TLS_CERT. Needs --tls-key."
    )
    public var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: "The certificate's private key (PEM). Env: ROOTCAUSES_TLS_KEY.")
    public var tlsKey: String?

    @Option(
        name: .customLong("tls-client-ca"),
        help: "Require client certificates signed by this CA (PEM). Env: ROOTCAUSES_TLS_CLIENT_CA."
    )
    public var tlsClientCA: String?

    public init() {}

    /// The TLS the service serves, from flags then the environment; `nil`: plain TCP.
    public func resolvedTLS() throws -> TLSServerSettings? {
        let certificate = tlsCertificate ?? Self.environment["ROOTCAUSES_TLS_CERT"]
        let key = tlsKey ?? Self.environment["ROOTCAUSES_TLS_KEY"]
        let clientCA = tlsClientCA ?? Self.environment["ROOTCAUSES_TLS_CLIENT_CA"]
        switch (certificate, key) {
        case (nil, nil):
            if clientCA != nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
            return nil
        case (let certificate?, let key?):
            return TLSServerSettings(certificatePath: certificate, keyPath: key, clientCAPath: clientCA)
        default:
            throw ValidationError("--tls-cert and --tls-key go together")
        }
    }

    public static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// A secret (a token, a password) from a file named by the flag or by `fileVariable`, else
    /// from `valueVariable` itself; `nil` when none is given. A file's surrounding whitespace is
    /// dropped; a file that cannot be read, or is empty, is an error that names it.
    public static func secret(file: String?, fileVariable: String, valueVariable: String) throws -> String? {
        if let path = file ?? environment[fileVariable], !path.isEmpty {
            do { return try Secrets.read(path) } catch { throw ValidationError("\(error)") }
        }
        if let value = environment[valueVariable], !value.isEmpty { return value }
        return nil
    }

    /// Where to listen, from the flag, then the environment, then the service's default port.
    public func listenAddress(defaultPort: Int) throws -> (host: String, port: Int) {
        let text = listen ?? Self.environment["ROOTCAUSES_LISTEN"] ?? "127.0.0.1:\(defaultPort)"
        guard let (host, port) = splitAddress(text), port > 0 else {
            throw ValidationError("--listen '\(text)' is not host:port")
        }
        // No host: every interface.
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    public func resolvedDatabaseURL() throws -> String {
        guard let url = databaseURL ?? Self.environment["DATABASE_URL"], !url.isEmpty else {
            throw ValidationError(
                "no database: pass --database-url or set DATABASE_URL (postgresql://user@host:port/db)"
            )
        }
        return url
    }

    public func resolvedMaxLineBytes() throws -> Int {
        let value = maxLineBytes ?? Self.environment["ROOTCAUSES_MAX_LINE_BYTES"].flatMap { Int($0) } ?? 1 << 20
        guard value >= 1024 else { throw ValidationError("--max-line-bytes must be at least 1024") }
        return value
    }

    /// A whole-number option: the flag, else the environment variable `variable` (which must be
    /// a whole number), else `fallback`; at least `minimum` (`name` is the flag's, for errors).
    public static func integer(
        _ flag: Int?,
        _ variable: String,
        default fallback: Int,
        minimum: Int,
        name: String
    ) throws -> Int {
        let resolved =
            try flag ?? environment[variable].map { text in
                guard let number = Int(text) else {
                    throw ValidationError("\(variable)='\(text)' is not a whole number")
                }
                return number
            } ?? fallback
        guard resolved >= minimum else { throw ValidationError("--\(name) must be at least \(minimum)") }
        return resolved
    }

    /// The limits on what clients may hold, from flags, then the environment, then defaults.
    public func resolvedLimits() throws -> ConnectionLimits {
        let lineBytes = try resolvedMaxLineBytes()
        return ConnectionLimits(
            maximumLineBytes: lineBytes,
            maximumConnections: try Self.integer(
                maxConnections,
                "ROOTCAUSES_MAX_CONNECTIONS",
                default: 1024,
                minimum: 1,
                name: "max-connections"
            ),
            maximumBufferedBytes: try Self.integer(
                maxBufferedBytes,
                "ROOTCAUSES_MAX_BUFFERED_BYTES",
                default: 64 << 20,
                minimum: lineBytes + 2,
                name: "max-buffered-bytes"
            ),
            idleTimeout: .seconds(
                try Self.integer(
                    idleTimeoutSeconds,
                    "ROOTCAUSES_IDLE_TIMEOUT_SECONDS",
                    default: 600,
                    minimum: 1,
                    name: "idle-timeout-seconds"
                )
            )
        )
    }

    public func resolvedConnections() -> Int {
        max(1, dbConnections ?? Self.environment["ROOTCAUSES_DB_CONNECTIONS"].flatMap { Int($0) } ?? 8)
    }

    public func resolvedLogLevel() throws -> Logger.Level {
        let text = logLevel ?? Self.environment["LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ValidationError("unknown log level '\(text)'")
        }
        return level
    }

    public func resolvedLogFormat() throws -> LogFormat {
        let text = logFormat ?? Self.environment["ROOTCAUSES_LOG_FORMAT"] ?? "text"
        guard let format = LogFormat(rawValue: text.lowercased()) else {
            throw ValidationError("unknown log format '\(text)': use text or json")
        }
        return format
    }

    /// Where to serve metrics and probes over HTTP; `nil`: nowhere.
    public func metricsAddress() throws -> (host: String, port: Int)? {
        guard let text = metricsListen ?? Self.environment["ROOTCAUSES_METRICS_LISTEN"], !text.isEmpty else {
            return nil
        }
        guard let (host, port) = splitAddress(text), port >= 0 else {
            throw ValidationError("--metrics-listen '\(text)' is not host:port")
        }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    public func resolvedCataloguePath() throws -> String {
        if let path = catalogue ?? Self.environment["ROOTCAUSES_CATALOGUE"] { return path }
        if let found = findShippedFile("catalogue.json") { return found }
        throw ValidationError("no catalogue found: pass --catalogue or set ROOTCAUSES_CATALOGUE")
    }
}

/// Finds a file shipped in `Deploy/config/`: under the working directory, above the
/// executable (for `swift run` and tests), or in `/etc/rootcauses` (containers).
public func findShippedFile(_ name: String) -> String? {
    let fileManager = FileManager.default
    var candidates = [fileManager.currentDirectoryPath + "/Deploy/config/" + name]
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
    }
    while directory.path != "/" {
        candidates.append(directory.path + "/Deploy/config/" + name)
        directory.deleteLastPathComponent()
    }
    candidates.append("/etc/rootcauses/" + name)
    return candidates.first { fileManager.fileExists(atPath: $0) }
}

/// A logger writing to standard error with the given level, as text or JSON lines.
public func makeLogger(label: String, level: Logger.Level, format: LogFormat = .text) -> Logger {
    var logger = Logger(label: label) { label in
        switch format {
        case .text: StreamLogHandler.standardError(label: label)
        case .json: JSONLogHandler(label: label)
        }
    }
    logger.logLevel = level
    return logger
}
