import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RootcausesJSON
import RootcausesProtocol
import RootcausesTransport
import ServiceLifecycle
import Testing

/// The server in process, with a tiny registry and no database: its limits, and that one
/// connection's failure never ends the server.
@Suite("ProtocolServer")
struct ProtocolServerTests {
    struct Echo: OperationInput {
        var text: String
        static func decode(from reader: FieldReader) -> Echo? {
            reader.string("text", required: true).map(Echo.init)
        }
    }

    struct Pause: OperationInput {
        var milliseconds: Int64
        static func decode(from reader: FieldReader) -> Pause? {
            reader.integer("ms", in: 0...10_000, required: true).map(Pause.init)
        }
    }

    static let responder = Responder(
        registry: OperationRegistry(
            service: "test",
            [
                Operation("echo", Echo.self, access: .open) { echo, _ in [("text", .string(echo.text))] },
                Operation("pause", Pause.self, access: .open) { pause, _ in
                    try await Task.sleep(for: .milliseconds(pause.milliseconds))
                    return [("paused", .int(pause.milliseconds))]
                },
            ]
        ),
        version: "test",
        authenticator: StaticAuthenticator([:])
    )

    static let logger = Logger(label: "rootcauses.tests.server") { _ in SwiftLogNoOpLogHandler() }

    /// Runs a server on a free loopback port for `body`, then shuts it down gracefully.
    func withServer(
        limits: ConnectionLimits = ConnectionLimits(),
        configureConnection: @escaping @Sendable (any Channel) throws -> Void = ProtocolServer.disableNagle,
        _ body: (ProtocolServer) async throws -> Void
    ) async throws {
        let server = ProtocolServer(
            host: "127.0.0.1",
            port: 0,
            limits: limits,
            responder: Self.responder,
            logger: Self.logger,
            configureConnection: configureConnection
        )
        let group = ServiceGroup(configuration: .init(services: [server], logger: Self.logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            while server.listeningPort == 0 { try await Task.sleep(for: .milliseconds(5)) }
            do {
                try await body(server)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    func connect(_ server: ProtocolServer) async throws -> ProtocolClient {
        try await ProtocolClient.connect(host: "127.0.0.1", port: server.listeningPort)
    }

    @Test func acceptedSocketsHaveNagleOffAtTheTCPLevel() async throws {
        let seen = NIOLockedValueBox<[Int32]>([])
        let readBack: @Sendable (any Channel) throws -> Void = { channel in
            try ProtocolServer.disableNagle(channel)
            // Read back from the socket itself (getsockopt at IPPROTO_TCP).
            let value = try channel.syncOptions!.getOption(.tcpOption(.tcp_nodelay))
            seen.withLockedValue { $0.append(Int32(value)) }
        }
        try await withServer(configureConnection: readBack) { server in
            let client = try await connect(server)
            #expect(try await client.request(["op": "ping"])["ok"] == true)
            await client.close()
        }
        #expect(seen.withLockedValue { $0 } == [1])
    }

    @Test func aConnectionWhoseSetUpFailsLeavesTheServerServingOthers() async throws {
        struct SetUpFailed: Error {}
        let attempts = NIOLockedValueBox(0)
        let failFirst: @Sendable (any Channel) throws -> Void = { channel in
            let attempt = attempts.withLockedValue { value -> Int in
                value += 1
                return value
            }
            if attempt == 1 { throw SetUpFailed() }
            try ProtocolServer.disableNagle(channel)
        }
        try await withServer(configureConnection: failFirst) { server in
            let doomed = try await connect(server)
            await #expect(throws: (any Error).self) { _ = try await doomed.request(["op": "ping"]) }
            await doomed.close()
            for _ in 0..<3 {
                let client = try await connect(server)
                #expect(try await client.request(["op": "echo", "text": "still here"])["text"] == "still here")
                await client.close()
            }
        }
        #expect(attempts.withLockedValue { $0 } == 4)
    }

    @Test func connectionsPastTheCapAreRefusedClearly() async throws {
        try await withServer(limits: ConnectionLimits(maximumConnections: 2)) { server in
            let first = try await connect(server)
            let second = try await connect(server)
            #expect(try await first.request(["op": "ping"])["ok"] == true)
            #expect(try await second.request(["op": "ping"])["ok"] == true)
            let third = try await connect(server)
            // The refusal comes before any request; the client hands it to the first one.
            try await Task.sleep(for: .milliseconds(100))
            let refusal = try await third.request(["op": "ping"])
            #expect(refusal["error"]?["code"] == "overloaded")
            #expect(refusal["error"]?["details"]?[0]?["limit"] == 2)
            // The connection is closed: every later request on it learns why.
            #expect(try await third.request(["op": "ping"])["error"]?["code"] == "overloaded")
            await third.close()
            await first.close()
            try await eventually { server.openConnections < 2 }
            let fourth = try await connect(server)
            #expect(try await fourth.request(["op": "ping"])["ok"] == true)
            await fourth.close()
            await second.close()
        }
    }

    @Test func idleConnectionsAreClosedButSlowRequestsAreNot() async throws {
        try await withServer(limits: ConnectionLimits(idleTimeout: .seconds(1))) { server in
            let idle = try await connect(server)
            let busy = try await connect(server)
            // A request that takes longer than the idle timeout is activity, not idleness.
            let answer = try await busy.request(["op": "pause", "ms": 1500])
            #expect(answer["paused"] == 1500)
            // Requests queued behind a slow one are not idleness either.
            let queued = try await busy.pipeline([["op": "pause", "ms": 1200], ["op": "echo", "text": "queued"]])
            #expect(queued[1]["text"] == "queued")
            // The idle one was closed meanwhile: the server answers nothing more on it.
            await #expect(throws: (any Error).self) { _ = try await idle.request(["op": "ping"]) }
            await idle.close()
            await busy.close()
        }
    }

    @Test func unfinishedLinesShareOneProcessWideBudget() async throws {
        let limits = ConnectionLimits(maximumLineBytes: 1024, maximumBufferedBytes: 4096)
        try await withServer(limits: limits) { server in
            var holders: [ProtocolClient] = []
            for _ in 0..<4 {
                let client = try await connect(server)
                #expect(try await client.request(["op": "ping"])["ok"] == true)
                // 1000 bytes of a line that never ends: each under the line limit.
                try await client.write(
                    raw: Array(#"{"op":"echo","text":""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 979)
                )
                holders.append(client)
            }
            try await Task.sleep(for: .milliseconds(200))
            let greedy = try await connect(server)
            let pending = greedy.expectAnswers(1)
            try await greedy.write(raw: Array(repeating: UInt8(ascii: " "), count: 1000))
            let refusal = try JSONParser.parse(try await pending.lines()[0])
            #expect(refusal["error"]?["code"] == "overloaded")
            await greedy.close()
            // The others were not harmed: they finish their lines and get answers.
            for client in holders {
                let finished = client.expectAnswers(1)
                try await client.write(raw: Array("\"}\n".utf8))
                let echo = try JSONParser.parse(try await finished.lines()[0])
                #expect(echo["text"]?.stringValue?.count == 979)
                await client.close()
            }
        }
    }

    @Test func helloListsTheRegistryAndUnknownOpsNameTheSupportedOnes() async throws {
        var session = Session()
        func respond(_ line: String) async -> JSON? {
            await Self.responder.respond(to: Array(line.utf8), session: &session, logger: Self.logger)
        }
        let hello = await respond(#"{"op":"hello","id":1}"#)
        #expect(hello?["ops"] == ["hello", "ping", "auth", "echo", "pause"])
        #expect(hello?["protocol"] == 3)
        #expect(hello?["auth"] == "token")
        let unknown = await respond(#"{"op":"nope","id":2}"#)
        #expect(unknown?["error"]?["code"] == "unknown_op")
        let invalid = await respond(#"{"op":"echo","text":7}"#)
        #expect(invalid?["error"]?["code"] == "invalid_request")
        #expect(invalid?["error"]?["details"]?[0]?["path"] == "text")
        let blank = await respond("  ")
        #expect(blank == nil)
    }

    /// The responder's rules for keys, with keys held in memory: what each scope may send, and a
    /// key that stops being valid refused on its connection's next request.
    @Test func opsNeedAKeyWithTheirScopeAndARevokedKeyIsRefusedAtOnce() async throws {
        let reader = Identity(keyID: "0000000000000001", reporter: nil, scopes: [.read])
        let submitter = Identity(keyID: "0000000000000002", reporter: "USAID", scopes: [.submit])
        let admin = Identity(keyID: "0000000000000003", reporter: nil, scopes: [.admin])
        let revocable = RevocableAuthenticator(["r": reader, "s": submitter, "a": admin])
        let responder = Responder(
            registry: OperationRegistry(
                service: "test",
                [
                    Operation("look", NoInput.self, access: .read) { _, _ in [("seen", true)] },
                    Operation("send", Echo.self, access: .submit) { echo, context in
                        try context.requireIdentity().requireActing(for: echo.text)
                        return [("sent", .string(echo.text))]
                    },
                    Operation("manage", NoInput.self, access: .admin) { _, _ in [("managed", true)] },
                ]
            ),
            version: "test",
            authenticator: revocable
        )
        func code(_ line: String, _ session: inout Session) async -> String? {
            let answer = await responder.respond(to: Array(line.utf8), session: &session, logger: Self.logger)
            return answer?["ok"] == true ? "ok" : answer?["error"]?["code"]?.stringValue
        }
        var anonymous = Session()
        #expect(await code(#"{"op":"look"}"#, &anonymous) == "unauthenticated")
        #expect(await code(#"{"op":"ping"}"#, &anonymous) == "ok")
        #expect(await code(#"{"op":"auth","token":"nope"}"#, &anonymous) == "unauthenticated")
        #expect(await code(#"{"op":"auth"}"#, &anonymous) == "invalid_request")

        var reading = Session()
        #expect(await code(#"{"op":"auth","token":"r"}"#, &reading) == "ok")
        #expect(await code(#"{"op":"look"}"#, &reading) == "ok")
        #expect(await code(#"{"op":"send","text":"USAID"}"#, &reading) == "forbidden")
        #expect(await code(#"{"op":"manage"}"#, &reading) == "forbidden")

        var submitting = Session()
        #expect(await code(#"{"op":"auth","token":"s"}"#, &submitting) == "ok")
        #expect(await code(#"{"op":"send","text":"USAID"}"#, &submitting) == "ok")
        #expect(await code(#"{"op":"send","text":"DOL"}"#, &submitting) == "forbidden")
        #expect(await code(#"{"op":"look"}"#, &submitting) == "forbidden")

        var managing = Session()
        #expect(await code(#"{"op":"auth","token":"a"}"#, &managing) == "ok")
        #expect(await code(#"{"op":"manage"}"#, &managing) == "ok")
        #expect(await code(#"{"op":"look"}"#, &managing) == "ok")
        #expect(await code(#"{"op":"send","text":"DOL"}"#, &managing) == "ok")

        // Revoked: the next request of each open connection is refused, reads and writes alike,
        // and the connection has no key any more.
        revocable.revoke(reader.keyID)
        revocable.revoke(submitter.keyID)
        #expect(await code(#"{"op":"look"}"#, &reading) == "unauthenticated")
        #expect(reading.identity == nil)
        #expect(await code(#"{"op":"send","text":"USAID"}"#, &submitting) == "unauthenticated")
        #expect(await code(#"{"op":"auth","token":"s"}"#, &submitting) == "unauthenticated")
        // A failed auth leaves no key behind, whatever the connection had.
        #expect(await code(#"{"op":"auth","token":"nope"}"#, &managing) == "unauthenticated")
        #expect(await code(#"{"op":"manage"}"#, &managing) == "unauthenticated")
    }
}

/// Keys in memory that can be revoked while connections hold them.
final class RevocableAuthenticator: Authenticator {
    private let identities: [String: Identity]
    private let revoked = NIOLockedValueBox<Set<String>>([])

    init(_ identities: [String: Identity]) { self.identities = identities }

    func revoke(_ keyID: String) { revoked.withLockedValue { _ = $0.insert(keyID) } }

    func authenticate(token: String, peer: String) async throws -> Identity {
        guard let identity = identities[token], try await isValid(identity) else {
            throw ProtocolError(.unauthenticated, "the token is not valid")
        }
        return identity
    }

    func isValid(_ identity: Identity) async throws -> Bool {
        !revoked.withLockedValue { $0.contains(identity.keyID) }
    }
}
