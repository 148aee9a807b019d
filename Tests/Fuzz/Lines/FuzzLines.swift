import FuzzSupport
import NIOCore
import NIOEmbedded
import RootcausesTransport

/// Fuzzing target for the line decoder: the input's first byte picks a line limit and how the
/// rest is cut into reads, as a network would. Whatever the cut, the frames must be the same as
/// for the input in one read, no line may pass the limit, and nothing may crash.
///
/// Built with libFuzzer by `Tests/Fuzz/run`; built plainly, it replays the committed corpus.
func fuzzLines(_ bytes: UnsafeRawBufferPointer) {
    guard let control = bytes.first else { return }
    let input = Array(bytes.dropFirst())
    let limit = 1 + Int(control & 0x1F)
    let chunk = 1 + Int(control >> 5)
    let whole = frames(of: [input[...]], limit: limit)
    var pieces: [ArraySlice<UInt8>] = []
    var start = 0
    while start < input.count {
        pieces.append(input[start..<min(start + chunk, input.count)])
        start += chunk
    }
    let cut = frames(of: pieces, limit: limit)
    guard whole == cut else { fatalError("cutting the input into reads of \(chunk) changed the frames") }
    for frame in whole {
        if case .line(let line) = frame, line.readableBytes > limit {
            fatalError("a line of \(line.readableBytes) bytes passed the limit of \(limit)")
        }
    }
}

/// The frames the decoder makes of `reads`, then end of input.
func frames(of reads: [ArraySlice<UInt8>], limit: Int) -> [InboundFrame] {
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineFrameDecoder(maximumLineLength: limit)))
    var frames: [InboundFrame] = []
    do {
        for read in reads {
            try channel.writeInbound(channel.allocator.buffer(bytes: read))
            while let frame = try channel.readInbound(as: InboundFrame.self) { frames.append(frame) }
        }
        _ = try channel.finish()
        while let frame = try channel.readInbound(as: InboundFrame.self) { frames.append(frame) }
    } catch {
        fatalError("the decoder threw: \(error)")
    }
    return frames
}

@main
struct FuzzTarget {
    static func main() { fuzzMain(fuzzLines) }
}
