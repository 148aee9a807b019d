import NIOCore
import RootcausesJSON
import RootcausesProtocol
import RootcausesTransport
import Testing

@Suite("Request.parse")
struct EnvelopeTests {
    func parse(_ text: String) -> Result<Request, RequestRejection> {
        Request.parse(line: Array(text.utf8))
    }

    func rejection(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> RequestRejection? {
        switch parse(text) {
        case .failure(let rejection): return rejection
        case .success(let request):
            Issue.record("accepted \(text): op \(request.op)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test func validRequest() throws {
        let request = try parse(#"{"id":"r1","op":"submit","submission":{"a":1}}"#).get()
        #expect(request.id == .string("r1"))
        #expect(request.op == "submit")
        #expect(request.body["submission"]?["a"] == .number("1"))
        #expect(try parse(#"{"id":7,"op":"hello"}"#).get().id == .number("7"))
        #expect(try parse(#"{"op":"hello"}"#).get().id == .null)
        #expect(try parse(#"{"id":null,"op":"hello"}"#).get().id == .null)
    }

    @Test func badJSON() throws {
        for text in [#"{"id":1,"op":"hello""#, "not json", "", #"{"id":1,"id":2,"op":"x"}"#] {
            let r = try #require(rejection(text))
            #expect(r.error.code == .badJSON, "\(text)")
            #expect(r.error.code.rawValue == "bad_json")
            #expect(r.id == .null, "\(text)")
        }
    }

    @Test func notAnObjectIsBadJSON() throws {
        for text in [#"[{"id":1,"op":"hello"}]"#, "42", #""op""#, "null"] {
            let r = try #require(rejection(text))
            #expect(r.error.code == .badJSON, "\(text)")
            #expect(r.id == .null)
        }
    }

    @Test func idOfTheWrongTypeIsInvalidRequestWithNullID() throws {
        for text in [#"{"id":{"x":1},"op":"hello"}"#, #"{"id":[1],"op":"hello"}"#, #"{"id":true,"op":"hello"}"#] {
            let r = try #require(rejection(text))
            #expect(r.error.code == .invalidRequest, "\(text)")
            #expect(r.error.code.rawValue == "invalid_request")
            #expect(r.id == .null, "\(text)")
            #expect(r.error.details.first?["path"] == .string("id"))
            #expect(r.error.details.first?["code"] == .string("wrong_type"))
        }
    }

    @Test func missingOpEchoesTheID() throws {
        let r = try #require(rejection(#"{"id":"abc"}"#))
        #expect(r.error.code == .invalidRequest)
        #expect(r.id == .string("abc"))
        #expect(r.error.details.first?["path"] == .string("op"))
        #expect(r.error.details.first?["code"] == .string("missing"))
        let numeric = try #require(rejection(#"{"id":12.50,"x":1}"#))
        #expect(numeric.id == .number("12.50"))
    }

    @Test func opNotAStringIsInvalidRequest() throws {
        for text in [#"{"id":3,"op":5}"#, #"{"id":3,"op":null}"#, #"{"id":3,"op":["submit"]}"#] {
            let r = try #require(rejection(text))
            #expect(r.error.code == .invalidRequest, "\(text)")
            #expect(r.id == .number("3"), "\(text)")
            #expect(r.error.details.first?["path"] == .string("op"))
            #expect(r.error.details.first?["code"] == .string("wrong_type"))
        }
    }

    @Test func responsesAreOneLine() {
        let ok = Response.success(id: .string("r1"), [("seq", .number("5"))])
        #expect(ok.serialized == #"{"id":"r1","ok":true,"seq":5}"#)
        let failure = Response.failure(id: .null, ProtocolError(.badJSON, "bad\nline"))
        #expect(
            failure.serialized
                == #"{"id":null,"ok":false,"error":{"code":"bad_json","message":"bad\nline","details":[]}}"#
        )
        let buffer = Response.encode(failure, allocator: ByteBufferAllocator())
        #expect(String(buffer: buffer) == failure.serialized + "\n")
        #expect(String(buffer: buffer).filter { $0 == "\n" }.count == 1)
    }
}

@Suite("Responder.requestID")
struct RequestIDTests {
    @Test func stringsAndNumbersAsWrittenNothingForNull() {
        #expect(Responder.requestID("upload-17") == "upload-17")
        #expect(Responder.requestID(.number("1e3")) == "1e3")
        #expect(Responder.requestID(.null) == nil)
    }

    @Test func controlCharactersCannotForgeLogLinesAndLongIdsAreCut() {
        #expect(Responder.requestID("a\nb\r\u{1B}[31mc") == "a?b??[31mc")
        let long = String(repeating: "x", count: 10_000)
        let cut = Responder.requestID(.string(long))
        #expect(cut == String(repeating: "x", count: 128) + "…")
    }
}
