import Foundation
import RootcausesLocalStack
import RootcausesTesting
import Testing

#if canImport(Glibc)
import Glibc
import RootcausesTransport
#endif

extension Integration {
    /// How the stack deals with ports someone else holds.
    @Suite struct ServiceStackTests {
        /// Takes loopback `port` the way another program would (bound, no SO_REUSEADDR), so a
        /// service cannot bind it; returns the descriptor to close.
        func occupy(_ port: Int) throws -> Int32 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            try #require(fd >= 0 && bound == 0, "could not occupy port \(port)")
            return fd
        }

        @Test func aGivenPortThatIsTakenFailsBeforeAnythingStarts() async throws {
            let port = try freeTCPPort()
            let fd = try occupy(port)
            defer { close(fd) }
            #expect(whyPortIsUnavailable(port) != nil)
            let stack = try ServiceStack(
                databaseURL: "postgresql://nobody@127.0.0.1:1/none",
                logDirectory: "/tmp/rootcauses-tests-\(getpid())/logs/taken",
                reportingPort: port
            )
            do {
                try await stack.start()
                Issue.record("start succeeded although port \(port) is taken")
            } catch {
                #expect("\(error)".contains("reporting cannot listen on 127.0.0.1:\(port)"), "\(error)")
            }
            #expect(stack.processes.isEmpty)
            await stack.stop()
        }

        @Test func aPickedPortTakenBeforeTheServiceBindsIsReplaced() async throws {
            let url = try await TestDatabase.create()
            let logs = "/tmp/rootcauses-tests-\(getpid())/logs/repick"
            let stack = try ServiceStack(databaseURL: url, logDirectory: logs)
            let picked = stack.intakePort
            let fd = try occupy(picked)
            defer { close(fd) }
            do {
                try await stack.start()
                #expect(stack.intakePort != picked)
                let intake = try await stack.intakeClient()
                #expect(try await intake.expectOK(["op": "ping"])["ok"] == true)
                await intake.close()
                #expect(await stack.stop().values.allSatisfy { $0 == 0 })
            } catch {
                await stack.stop()
                throw error
            }
            try? FileManager.default.removeItem(atPath: logs)
        }
    }
}
