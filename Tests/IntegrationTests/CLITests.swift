import Foundation
import RootcausesLocalStack
import RootcausesPostgres
import RootcausesTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    @Suite struct CLITests {
        /// Runs the rootcauses CLI; returns its exit status and output.
        func runCLI(_ arguments: [String]) async throws -> (status: Int32, output: String) {
            let output = "/tmp/rootcauses-tests-\(getpid())/cli-\(UUID().uuidString.prefix(8)).out"
            let pid = try ChildProcess.spawn(ServiceStack.defaultBinDirectory + "/rootcauses", arguments, outputPath: output)
            var status: Int32?
            while status == nil {
                status = ChildProcess.exitStatus(of: pid, wait: false)
                if status == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            return (status!, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
        }

        @Test func submitReportsEachSubmissionAndFailsOnAnyRejection() async throws {
            try await withServiceStack { stack in
                let file = "/tmp/rootcauses-tests-\(getpid())/cli-input.ndjson"
                let lines = [
                    submission("cli-1", values: [value("firms_supported", "GT", 10)]).serialized,
                    "{broken",
                    submission("cli-2", values: [value("firms_supported", "GT", -1)]).serialized,
                    "",
                    submission("cli-3", values: [value("firms_supported", "SV", 5)]).serialized,
                ]
                try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
                let first = try await runCLI(["submit", file, "--intake", stack.intakeAddress])
                #expect(first.status == 1)
                #expect(first.output.contains("line 1 cli-1: accepted seq 1"))
                #expect(first.output.contains("line 2: not JSON"))
                #expect(first.output.contains("line 3 cli-2: validation_failed"))
                #expect(first.output.contains("values[0].value: values cannot be negative"))
                #expect(first.output.contains("line 5 cli-3: accepted seq 2"))
                #expect(first.output.contains("submissions: 2 accepted, 0 duplicate, 2 failed"))

                let good = "/tmp/rootcauses-tests-\(getpid())/cli-good.ndjson"
                try [lines[0], lines[4]].joined(separator: "\n").write(toFile: good, atomically: true, encoding: .utf8)
                let again = try await runCLI(["submit", good, "--intake", stack.intakeAddress])
                #expect(again.status == 0)
                #expect(again.output.contains("submissions: 0 accepted, 2 duplicate, 0 failed"))

                let totals = try await runCLI(["totals", "--group-by", "country", "--min-seq", "2", "--reporting", stack.reportingAddress])
                #expect(totals.status == 0)
                #expect(totals.output.contains("GT"))
                #expect(totals.output.split(separator: "\n").contains { $0.hasPrefix("GT") && $0.contains("10") })

                let unreachable = try await runCLI(["indicators", "--reporting", "127.0.0.1:1"])
                #expect(unreachable.status != 0)
                #expect(unreachable.output.contains("cannot reach 127.0.0.1:1"))
            }
        }
    }
}
