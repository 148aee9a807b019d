import NIOCore

/// What the line framing yields: a complete line, or the news that one was too long.
public enum InboundFrame: Sendable, Equatable {
    /// One line without its `\n` (and without a trailing `\r`).
    case line(ByteBuffer)
    /// A line exceeded the limit; its bytes were discarded up to and including the next `\n`.
    case lineTooLong(limit: Int)
}

/// Splits a byte stream into lines, with a length limit that does not kill the connection.
///
/// NIOExtras' `LineBasedFrameDecoder` has no limit, and a limit on `ByteToMessageHandler`
/// closes the connection. Here an over-long line produces one `.lineTooLong` frame, then
/// the decoder discards until the next newline and carries on with the following line.
/// A final line without a newline when the peer closes is dropped: it was never complete.
public struct LineFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = InboundFrame

    /// The most bytes a line may have, not counting its line ending.
    public let maximumLineLength: Int
    private var discarding = false
    /// How far the current buffer was already scanned for a newline (avoids rescanning).
    private var scanned = 0

    public init(maximumLineLength: Int) {
        precondition(maximumLineLength > 0)
        self.maximumLineLength = maximumLineLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        let searchStart = view.index(view.startIndex, offsetBy: scanned)
        if let newline = view[searchStart...].firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            scanned = 0
            if discarding {
                discarding = false
                buffer.moveReaderIndex(forwardBy: length + 1)
                return .continue
            }
            var line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            if line.readableBytes > 0, line.getInteger(at: line.writerIndex - 1, as: UInt8.self) == UInt8(ascii: "\r") {
                line.moveWriterIndex(to: line.writerIndex - 1)
            }
            if line.readableBytes > maximumLineLength {
                context.fireChannelRead(Self.wrapInboundOut(.lineTooLong(limit: maximumLineLength)))
            } else {
                context.fireChannelRead(Self.wrapInboundOut(.line(line)))
            }
            return .continue
        }
        // No newline yet. Allow one extra byte for a possible '\r' before the newline.
        if discarding {
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            scanned = 0
        } else if buffer.readableBytes > maximumLineLength + 1 {
            discarding = true
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            scanned = 0
            context.fireChannelRead(Self.wrapInboundOut(.lineTooLong(limit: maximumLineLength)))
        } else {
            scanned = buffer.readableBytes
        }
        return .needMoreData
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // Whatever is left is an incomplete line: drop it.
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return .needMoreData
    }
}
