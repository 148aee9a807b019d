import Foundation
import RootcausesJSON
import RootcausesProtocol
import RootcausesTesting
import RootcausesTransport
import Testing

extension Integration {
    @Suite struct ProtocolTests {
        @Test func everyServiceAnswersHelloAndPing() async throws {
            try await withServiceStack { stack in
                let clients = [
                    (
                        "intake", try await stack.intakeClient(),
                        [
                            "hello", "ping", "auth", "health", "ready", "submit", "retract", "target", "deduplicate",
                            "keys_create",
                            "keys_list", "keys_revoke",
                        ]
                    ),
                    (
                        "aggregation", try await stack.aggregationClient(),
                        ["hello", "ping", "auth", "health", "ready", "status", "nudge"]
                    ),
                    (
                        "reporting", try await stack.reportingClient(),
                        [
                            "hello", "ping", "auth", "health", "ready", "indicators", "totals", "factsheet", "history",
                            "publish",
                            "published",
                            "diff", "explain", "subscribe", "unsubscribe",
                        ]
                    ),
                ]
                for (name, client, ops) in clients {
                    let hello = try await client.request(["op": "hello", "id": "h1", "protocol": 3])
                    #expect(hello["id"] == "h1")
                    #expect(hello["ok"] == true)
                    #expect(hello["service"] == .string(name))
                    #expect(hello["protocol"] == 3)
                    #expect(hello["auth"] == "token")
                    #expect(hello["version"]?.stringValue?.isEmpty == false)
                    #expect(hello["ops"] == .array(ops.map(JSON.string)))
                    let ping = try await client.request(["op": "ping", "id": 7])
                    #expect(ping.serialized == #"{"id":7,"ok":true,"pong":true}"#)
                    // Version 1 ended with 0.3.0, version 2 with 0.4.0 (docs/PROTOCOL.md §3); no
                    // future version is spoken yet.
                    for unsupported in [1, 2, 4] {
                        let other = try await client.request(["op": "hello", "id": 2, "protocol": .int(unsupported)])
                        #expect(other.errorCode == "unsupported_protocol")
                        #expect(other["error"]?["details"]?[0]?["supported"] == [3])
                    }
                    let mistyped = try await client.request(["op": "hello", "id": 3, "protocol": "1"])
                    #expect(mistyped.errorCode == "invalid_request")
                    await client.close()
                }
            }
        }

        @Test func malformedLinesGetClearErrorsAndTheConnectionStaysUsable() async throws {
            try await withServiceStack { stack in
                let client = try await stack.intakeClient()
                let notJSON = try JSONParser.parse(try await client.send(line: "{not json"))
                #expect(notJSON.errorCode == "bad_json")
                #expect(notJSON["id"] == .null)
                #expect(notJSON["error"]?["details"] == .array([]))

                let array = try JSONParser.parse(try await client.send(line: "[1,2]"))
                #expect(array.errorCode == "bad_json")

                let duplicateKey = try JSONParser.parse(try await client.send(line: #"{"op":"ping","op":"ping"}"#))
                #expect(duplicateKey.errorCode == "bad_json")

                let unknown = try await client.request(["op": "launch", "id": "u"])
                #expect(unknown.errorCode == "unknown_op")
                #expect(unknown["id"] == "u")
                #expect(
                    unknown["error"]?["details"]?[0]?["supported"] == [
                        "hello", "ping", "auth", "health", "ready", "submit", "retract", "target", "deduplicate",
                        "keys_create",
                        "keys_list", "keys_revoke",
                    ]
                )

                let noOp = try await client.request(["id": 3])
                #expect(noOp.errorCode == "invalid_request")
                #expect(noOp["id"] == 3)
                #expect(noOp.detailPaths == ["op"])

                let badID = try JSONParser.parse(try await client.send(line: #"{"op":"ping","id":{"x":1}}"#))
                #expect(badID.errorCode == "invalid_request")
                #expect(badID["id"] == .null)

                let opNotString = try await client.request(["op": 5, "id": 4])
                #expect(opNotString.errorCode == "invalid_request")

                // Still the same connection, still working.
                let ping = try await client.request(["op": "ping", "id": "after"])
                #expect(ping["ok"] == true)
                #expect(ping["id"] == "after")
                await client.close()
            }
        }

        @Test func aLineTooLongIsAnsweredAndTheRestOfItDiscarded() async throws {
            try await withServiceStack { stack in
                let client = try await stack.intakeClient()
                // A request of 1 MiB + 100 bytes in several writes, then a ping on the same connection.
                let padding = String(repeating: "x", count: (1 << 20) + 100)
                let long = Array(#"{"op":"ping","id":"long","pad":""#.utf8) + Array(padding.utf8) + Array("\"}\n".utf8)
                let firstAnswer = client.expectAnswers(1)
                for chunk in stride(from: 0, to: long.count, by: 200_000) {
                    try await client.write(raw: Array(long[chunk..<min(chunk + 200_000, long.count)]))
                }
                let tooLong = try JSONParser.parse(try await firstAnswer.lines()[0])
                #expect(tooLong.errorCode == "line_too_long")
                #expect(tooLong["id"] == .null)
                #expect(tooLong["error"]?["details"]?[0]?["limit"] == .int(1 << 20))
                let ping = try await client.request(["op": "ping", "id": "next"])
                #expect(ping["ok"] == true)
                #expect(ping["id"] == "next")

                // Exactly at the limit is fine (an unknown field, so the request is 1 MiB long).
                let base = #"{"op":"ping","id":"edge","pad":""}"#
                let fits = String(repeating: "y", count: (1 << 20) - base.utf8.count)
                let atLimit = try await client.send(line: #"{"op":"ping","id":"edge","pad":""# + fits + #""}"#)
                #expect(try JSONParser.parse(atLimit)["ok"] == true)
                await client.close()
            }
        }

        @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
            try await withServiceStack { stack in
                let client = try await stack.intakeClient()
                // 200 requests of different kinds in one write; answers must come back in request order.
                var lines: [String] = []
                for i in 0..<200 {
                    switch i % 4 {
                    case 0: lines.append(JSON.object([("op", "ping"), ("id", .int(i))]).serialized)
                    case 1: lines.append(#"{"id":\#(i),"op":"nope"}"#)
                    case 2:
                        let s = submission("pipe-\(i)", values: [value("firms_supported", "HN", .int(i))])
                        lines.append(submitRequest(s, id: .int(i)).serialized)
                    default: lines.append(#"{"op":"hello","id":\#(i)}"#)
                    }
                }
                let pending = client.expectAnswers(200)
                try await client.write(raw: Array((lines.joined(separator: "\n") + "\n").utf8))
                let answers = try await pending.lines().map { try JSONParser.parse($0) }
                for (i, answer) in answers.enumerated() {
                    #expect(answer["id"] == .int(i))
                    switch i % 4 {
                    case 0: #expect(answer["pong"] == true)
                    case 1: #expect(answer.errorCode == "unknown_op")
                    case 2: #expect(answer["status"] == "accepted")
                    default: #expect(answer["service"] == "intake")
                    }
                }
                // Seqs of the accepted submissions increase in request order.
                let seqs = answers.enumerated().filter { $0.offset % 4 == 2 }.compactMap {
                    $0.element["seq"]?.int64Value
                }
                #expect(seqs == seqs.sorted())
                #expect(Set(seqs).count == 50)
                await client.close()
            }
        }

        @Test func crlfBlankLinesAndHalfClose() async throws {
            try await withServiceStack { stack in
                let client = try await stack.reportingClient()
                let pending = client.expectAnswers(2)
                try await client.write(
                    raw: Array(
                        "\r\n   \n{\"op\":\"ping\",\"id\":1}\r\n{\"op\":\"ping\",\"id\":2}\n{\"op\":\"ping\",\"id\":3}"
                            .utf8
                    )
                )
                // Half-close: the answers still come; the unterminated third request is dropped.
                try await client.shutdownOutput()
                let answers = try await pending.lines()
                let first = try JSONParser.parse(answers[0])
                let second = try JSONParser.parse(answers[1])
                #expect(first["id"] == 1)
                #expect(second["id"] == 2)
                await #expect(throws: (any Error).self) { _ = try await client.readLine() }
                await client.close()
                let other = try await stack.reportingClient()
                #expect(try await other.request(["op": "ping"])["ok"] == true)
                await other.close()
            }
        }
    }
}
