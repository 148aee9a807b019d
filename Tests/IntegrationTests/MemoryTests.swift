import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    /// Memory a process holds for its clients is bounded for the whole process, not only per
    /// connection: many connections each holding most of a line once took intake from 70 MB to
    /// 728 MB, and it stayed at 551 MB after they closed.
    @Suite struct MemoryTests {
        /// The resident set of process `pid`, in bytes (VmRSS in /proc).
        static func residentBytes(of pid: Int32) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            else { throw ClientError("no VmRSS for process \(pid)") }
            return kilobytes * 1024
        }

        @Test func manyConnectionsHoldingUnfinishedLinesCannotTakeTheProcessMemory() async throws {
            // A 16 MiB budget: what 200 connections of almost 1 MiB each (200 MiB) must not pass.
            let environment = ["ROOTCAUSES_MAX_BUFFERED_BYTES": String(16 << 20)]
            try await withServiceStack(environment: environment) { stack in
                let intakePID = try #require(stack.intake?.pid)
                let before = try Self.residentBytes(of: intakePID)
                let chunk =
                    Array(#"{"op":"ping","pad":""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: (1 << 20) - 100)
                var clients: [(client: ProtocolClient, answer: ProtocolClient.PendingAnswers)] = []
                for index in 0..<200 {
                    let client = try await stack.intakeClient()
                    let answer = client.expectAnswers(1)
                    // A refused connection is closed by the server: the write may fail.
                    try? await client.write(raw: chunk)
                    clients.append((client, answer))
                    if index % 25 == 24 { try await Task.sleep(for: .milliseconds(100)) }
                }
                try await Task.sleep(for: .milliseconds(500))
                let peak = try Self.residentBytes(of: intakePID)
                // Every connection past the budget was told why and closed; the others finish
                // their line (not a valid request) and get an answer to it.
                var overloaded = 0
                for (client, answer) in clients {
                    try? await client.write(raw: Array("\n".utf8))
                    let line = try await answer.lines()[0]
                    if try JSONParser.parse(line)["error"]?["code"] == "overloaded" { overloaded += 1 }
                }
                #expect(overloaded >= 150, "only \(overloaded) of 200 connections were refused")
                let fresh = try await stack.intakeClient()
                #expect(try await fresh.request(["op": "ping"])["ok"] == true)
                await fresh.close()
                for (client, _) in clients { await client.close() }
                try await Task.sleep(for: .milliseconds(500))
                let after = try Self.residentBytes(of: intakePID)
                print(
                    "intake RSS: before \(before >> 20) MiB, with 200 greedy connections \(peak >> 20) MiB, after \(after >> 20) MiB"
                )
                #expect(peak - before < 80 << 20, "RSS grew from \(before >> 20) MiB to \(peak >> 20) MiB")
                #expect(
                    after - before < 40 << 20,
                    "RSS stayed at \(after >> 20) MiB after the connections closed (before: \(before >> 20) MiB)"
                )
            }
        }
    }
}
