import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesTesting
import RootcausesTransport
import Subprocess
import SystemPackage
import Testing

/// All integration tests run one at a time: each starts real processes and a database, and
/// the machine they run on may have two cores.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct Integration {}

/// The package's root folder (this file is Tests/IntegrationTests/Support.swift).
let packageRoot: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// The shipped sample submissions, one JSON object each.
func sampleSubmissions() throws -> [JSON] {
    let text = try String(contentsOfFile: packageRoot + "/Deploy/sample/submissions.ndjson", encoding: .utf8)
    return try text.split(separator: "\n").map { try JSONParser.parse(String($0)) }
}

/// The sample's history after its submissions: intake requests (corrections, a retraction,
/// targets, deduplications), in order.
func sampleHistory() throws -> [JSON] {
    let text = try String(contentsOfFile: packageRoot + "/Deploy/sample/history.ndjson", encoding: .utf8)
    return try text.split(separator: "\n").map { try JSONParser.parse(String($0)) }
}

/// A submission object.
func submission(
    _ id: String,
    reporter: String = "USAID",
    period: String = "FY2022Q1",
    activity: String? = nil,
    values: [JSON]
) -> JSON {
    var object: JSON = [
        "submission_id": .string(id), "reporter": .string(reporter), "period": .string(period),
        "values": .array(values),
    ]
    if let activity { object = object.setting("activity", to: .string(activity)) }
    return object
}

/// One value of a submission.
func value(
    _ indicator: String,
    _ country: String,
    _ amount: JSON,
    sex: String? = nil,
    age: String? = nil,
    estimate: Bool? = nil
) -> JSON {
    var object: JSON = ["indicator": .string(indicator), "country": .string(country), "value": amount]
    var cells: [(String, JSON)] = []
    if let sex { cells.append(("sex", .string(sex))) }
    if let age { cells.append(("age", .string(age))) }
    if !cells.isEmpty { object = object.setting("disaggregation", to: .object(cells)) }
    if let estimate { object = object.setting("estimate", to: .bool(estimate)) }
    return object
}

extension JSON {
    /// `error.code` of an answer.
    var errorCode: String? { self["error"]?["code"]?.stringValue }
    /// The `code`s of `error.details`.
    var detailCodes: [String] { (self["error"]?["details"]?.arrayValue ?? []).compactMap { $0["code"]?.stringValue } }
    /// The `path`s of `error.details`.
    var detailPaths: [String] { (self["error"]?["details"]?.arrayValue ?? []).compactMap { $0["path"]?.stringValue } }
}

/// The totals rows of a reporting answer, keyed by the joined group keys.
func rowsByKey(_ answer: JSON, keys: [String]) -> [String: String] {
    var result: [String: String] = [:]
    for row in answer["rows"]?.arrayValue ?? [] {
        let key = keys.map { row[$0]?.stringValue ?? "" }.joined(separator: "|")
        result[key] = row["value"]?.numberLiteral
    }
    return result
}

/// Parses RFC 4180 text into rows of fields (a test's independent reader of `format: csv`).
func parseCSV(_ text: String) -> [[String]] {
    var rows: [[String]] = []
    var row: [String] = []
    var field = ""
    var quoted = false
    var characters = Array(text)[...]
    while let character = characters.popFirst() {
        if quoted {
            if character == "\"" {
                if characters.first == "\"" {
                    field.append("\"")
                    characters.removeFirst()
                } else {
                    quoted = false
                }
            } else {
                field.append(character)
            }
            continue
        }
        switch character {
        case "\"": quoted = true
        case ",":
            row.append(field)
            field = ""
        // Swift reads CR LF as one character.
        case "\r\n", "\n":
            row.append(field)
            rows.append(row)
            row = []
            field = ""
        default: field.append(character)
        }
    }
    if !field.isEmpty || !row.isEmpty { rows.append(row + [field]) }
    return rows
}

/// Submits every sample submission through `intake`, requiring each to be stored; the newest seq.
func submitSample(through intake: ProtocolClient) async throws -> Int64 {
    var lastSeq: Int64 = 0
    for line in try sampleSubmissions() {
        let answer = try await intake.request(["op": "submit", "submission": line])
        try #require(answer["ok"] == true, "\(answer)")
        lastSeq = max(lastSeq, answer["seq"]?.int64Value ?? 0)
    }
    return lastSeq
}

/// Runs the `rootcauses` CLI to completion with `environment` added; its exit status and its
/// output (standard output and error together).
func runRootcauses(
    _ arguments: [String],
    environment: [String: String?] = [:]
) async throws -> (
    status: Int32, output: String
) {
    try await runProgram(ServiceStack.defaultBinDirectory + "/rootcauses", arguments, environment: environment)
}

/// Runs `executable` to completion with `environment` added; its exit status and its output
/// (standard output and error together).
func runProgram(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String?] = [:]
) async throws
    -> (status: Int32, output: String)
{
    let result = try await Subprocess.run(
        .path(FilePath(executable)),
        arguments: Arguments(arguments),
        environment: inheritedEnvironment(updating: environment),
        output: .string(limit: 1 << 22),
        error: .combinedWithOutput
    )
    let status: Int32 =
        switch result.terminationStatus {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    return (status, result.standardOutput)
}

/// This process's environment with `variables` set (a `nil` value removes the variable).
func inheritedEnvironment(updating variables: [String: String?]) -> Environment {
    var keyed: [Environment.Key: String?] = [:]
    for (name, value) in variables { keyed[Environment.Key(stringLiteral: name)] = value }
    return .inherit.updating(keyed)
}

/// A blocking TCP socket connected to `address` (IPv4), after `configure` set its options
/// (a receive buffer must be sized before connecting). For tests that need a plain socket.
func connectedSocket(_ address: String, configure: (Int32) -> Void = { _ in }) throws -> Int32 {
    guard let (host, port) = splitAddress(address) else { throw LaunchError("not an address: \(address)") }
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw LaunchError("socket: \(errno)") }
    configure(descriptor)
    var target = sockaddr_in()
    target.sin_family = sa_family_t(AF_INET)
    target.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &target.sin_addr)
    let connected = withUnsafePointer(to: &target) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        let reason = errno
        close(descriptor)
        throw LaunchError("cannot connect to \(address): errno \(reason)")
    }
    return descriptor
}
