import NIOCore
import NIOEmbedded
import RootcausesProtocol
import RootcausesTransport
import Testing

@Suite("LineFrameDecoder")
struct LineFrameDecoderTests {
    enum Frame: Equatable, CustomStringConvertible {
        case line(String)
        case tooLong(Int)
        case overBudget(Int)
        var description: String {
            switch self {
            case .line(let s): return "line(\(s.debugDescription))"
            case .tooLong(let n): return "tooLong(\(n))"
            case .overBudget(let n): return "overBudget(\(n))"
            }
        }
    }

    func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLineLength: 16)))
        return channel
    }

    func write(_ channel: EmbeddedChannel, _ text: String) throws {
        try write(channel, Array(text.utf8))
    }

    func write(_ channel: EmbeddedChannel, _ bytes: [UInt8]) throws {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try channel.writeInbound(buffer)
    }

    func frames(_ channel: EmbeddedChannel) throws -> [Frame] {
        var out: [Frame] = []
        while let frame = try channel.readInbound(as: InboundFrame.self) {
            switch frame {
            case .line(let buffer): out.append(.line(String(buffer: buffer)))
            case .lineTooLong(let limit): out.append(.tooLong(limit))
            case .overBudget(let limit): out.append(.overBudget(limit))
            }
        }
        return out
    }

    /// Writes each chunk, then returns every frame decoded, and checks the channel finishes clean.
    func decode(_ chunks: [String]) throws -> [Frame] {
        let channel = try makeChannel()
        var out: [Frame] = []
        for chunk in chunks {
            try write(channel, chunk)
            out += try frames(channel)
        }
        let left = try channel.finish()
        #expect(left.isClean, "left over after EOF: \(left)")
        return out
    }

    let long20 = String(repeating: "x", count: 20)

    @Test func lineSplitAcrossWrites() throws {
        #expect(try decode(["he", "llo wo", "rld\n"]) == [.line("hello world")])
        #expect(try decode(["abc", "\n", "def\n"]) == [.line("abc"), .line("def")])
    }

    @Test func framesArriveAsSoonAsTheirNewlineDoes() throws {
        let channel = try makeChannel()
        try write(channel, "one\ntw")
        #expect(try frames(channel) == [.line("one")])
        try write(channel, "o")
        #expect(try frames(channel) == [])
        try write(channel, "\n")
        #expect(try frames(channel) == [.line("two")])
        #expect(try channel.finish().isClean)
    }

    @Test func severalLinesInOneWrite() throws {
        #expect(try decode(["a\nbb\nccc\n"]) == [.line("a"), .line("bb"), .line("ccc")])
    }

    @Test func carriageReturnIsStripped() throws {
        #expect(try decode(["a\r\nb\r\n"]) == [.line("a"), .line("b")])
        #expect(try decode(["a\r", "\nb\n"]) == [.line("a"), .line("b")])
        // Only one trailing \r is removed; an inner \r stays.
        #expect(try decode(["a\rb\r\n"]) == [.line("a\rb")])
        #expect(try decode(["\r\n"]) == [.line("")])
    }

    @Test func emptyLine() throws {
        let channel = try makeChannel()
        try write(channel, "\n")
        let frame = try #require(try channel.readInbound(as: InboundFrame.self))
        guard case .line(let buffer) = frame else {
            Issue.record("expected a line, got \(frame)")
            return
        }
        #expect(buffer.readableBytes == 0)
        #expect(try channel.finish().isClean)
        #expect(try decode(["\n\n", "\n"]) == [.line(""), .line(""), .line("")])
    }

    @Test func lineAtTheLimitIsKept() throws {
        let sixteen = String(repeating: "y", count: 16)
        #expect(try decode([sixteen + "\n"]) == [.line(sixteen)])
        #expect(try decode([sixteen + "\r\n"]) == [.line(sixteen)])
        #expect(try decode([sixteen, "\r", "\n"]) == [.line(sixteen)])
        #expect(try decode([sixteen + "\r", "\n"]) == [.line(sixteen)])
    }

    @Test func lineOneOverTheLimit() throws {
        let seventeen = String(repeating: "z", count: 17)
        #expect(try decode([seventeen + "\nok\n"]) == [.tooLong(16), .line("ok")])
        #expect(try decode([seventeen, "\nok\n"]) == [.tooLong(16), .line("ok")])
        #expect(try decode([seventeen + "\r\nok\n"]) == [.tooLong(16), .line("ok")])
    }

    @Test func overLongLineWithItsNewlineInTheSameChunk() throws {
        #expect(try decode([long20 + "\nnext\n"]) == [.tooLong(16), .line("next")])
        #expect(try decode(["first\n" + long20 + "\nnext\n"]) == [.line("first"), .tooLong(16), .line("next")])
    }

    @Test func overLongLineInSeveralChunks() throws {
        #expect(try decode([long20, long20, long20, "\nnext\n"]) == [.tooLong(16), .line("next")])
        #expect(try decode(["0123456789", "0123456789", "01\n", "next\n"]) == [.tooLong(16), .line("next")])
        #expect(try decode(["0123456789", "0123456789\nnext\n"]) == [.tooLong(16), .line("next")])
        #expect(try decode(["0123456789", "012345", "6", "7", "\n", "after\n"]) == [.tooLong(16), .line("after")])
        #expect(try decode([long20, "tail\nnext\n"]) == [.tooLong(16), .line("next")])
    }

    @Test func tooLongIsReportedAssoonAsTheLimitIsPassed() throws {
        let channel = try makeChannel()
        try write(channel, long20)
        #expect(try frames(channel) == [.tooLong(16)])
        try write(channel, long20)
        #expect(try frames(channel) == [])
        try write(channel, "\nok\n")
        #expect(try frames(channel) == [.line("ok")])
        #expect(try channel.finish().isClean)
    }

    @Test func twoOverLongLinesGiveTwoFrames() throws {
        #expect(try decode([long20 + "\n" + long20 + "\nok\n"]) == [.tooLong(16), .tooLong(16), .line("ok")])
        #expect(try decode([long20, "\n", long20, "\n", "ok\n"]) == [.tooLong(16), .tooLong(16), .line("ok")])
    }

    @Test func finalUnterminatedLineIsDropped() throws {
        #expect(try decode(["done\npartial"]) == [.line("done")])
        #expect(try decode(["partial"]) == [])
        #expect(try decode(["a\n", "b\r"]) == [.line("a")])
        #expect(try decode([long20]) == [.tooLong(16)])
    }

    @Test func bytesAreNotInterpreted() throws {
        let channel = try makeChannel()
        try write(channel, [0x00, 0xFF, 0x0A])
        let frame = try #require(try channel.readInbound(as: InboundFrame.self))
        guard case .line(let buffer) = frame else {
            Issue.record("expected a line, got \(frame)")
            return
        }
        #expect(Array(buffer.readableBytesView) == [0x00, 0xFF])
        #expect(try channel.finish().isClean)
    }

    @Test func connectionsShareOneBudgetForIncompleteLines() throws {
        let budget = BufferBudget(limit: 40)
        func channel() throws -> EmbeddedChannel {
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(LineFrameDecoder(maximumLineLength: 32, budget: budget))
            )
            return channel
        }
        let first = try channel()
        let second = try channel()
        try write(first, String(repeating: "a", count: 30))
        #expect(budget.heldBytes == 30)
        #expect(try frames(first) == [])
        // Each line is under the line limit, but together they pass the process's budget.
        try write(second, String(repeating: "b", count: 20))
        #expect(try frames(second) == [.overBudget(40)])
        #expect(budget.heldBytes == 30)
        // The refused line is discarded to its end; the next line is read normally.
        try write(second, "bb\nok\n")
        #expect(try frames(second) == [.line("ok")])
        // A completed line frees its share.
        try write(first, "\n")
        #expect(try frames(first) == [.line(String(repeating: "a", count: 30))])
        #expect(budget.heldBytes == 0)
        // A connection that closes with an incomplete line gives its share back.
        try write(second, String(repeating: "c", count: 25))
        #expect(budget.heldBytes == 25)
        _ = try second.finish()
        #expect(budget.heldBytes == 0)
        _ = try first.finish()
    }

    @Test func completeLinesStayChargedUntilAnswered() throws {
        let pending = PendingLines(budget: BufferBudget(limit: 40))
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(LineFrameDecoder(maximumLineLength: 32, pending: pending))
        )
        try write(channel, "0123456789\nabcdefghij\n")
        var lines: [ByteBuffer] = []
        while let frame = try channel.readInbound(as: InboundFrame.self) {
            guard case .line(let line) = frame else {
                Issue.record("unexpected \(frame)")
                continue
            }
            lines.append(line)
        }
        #expect(lines.count == 2)
        // Two lines of 10 bytes (and their newlines) wait for answers: they hold 22 bytes.
        #expect(pending.budget.heldBytes == 22)
        #expect(!pending.isEmpty)
        // A third line that would pass the budget is refused, complete or not.
        try write(channel, String(repeating: "z", count: 25) + "\n")
        #expect(try frames(channel) == [.overBudget(40)])
        pending.answered(lines[0])
        #expect(pending.budget.heldBytes == 11)
        // Lines never answered (the connection ended) are given back all at once.
        pending.releaseAll()
        #expect(pending.budget.heldBytes == 0)
        #expect(pending.isEmpty)
        _ = try channel.finish()
    }
}
