import NIOCore
import Synchronization

/// What the line framing yields: a complete line, or news that one could not be kept.
public enum InboundFrame: Sendable, Equatable {
    /// One line without its `\n` (and without a trailing `\r`).
    case line(ByteBuffer)
    /// A line exceeded the limit; its bytes were discarded up to and including the next `\n`.
    case lineTooLong(limit: Int)
    /// Holding this connection's incomplete line would take the process over the bytes all
    /// connections together may buffer; the bytes were discarded.
    case overBudget(limit: Int)
}

/// The bytes all connections of a process hold in incomplete lines, against one limit, so that
/// many slow clients cannot take the process's memory even though each stays under the line limit.
public final class BufferBudget: Sendable {
    /// The most bytes all connections together may hold in incomplete lines.
    public let limit: Int
    private let held = Atomic<Int>(0)
    private let releasedSinceTrim = Atomic<Int>(0)

    public init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    /// Bytes held right now.
    public var heldBytes: Int { held.load(ordering: .relaxed) }

    /// Charges `bytes` more; false (and nothing charged) when that would pass the limit.
    func charge(_ bytes: Int) -> Bool {
        let (exchanged, _) = held.compareExchangeLoop { current in
            current + bytes <= limit ? current + bytes : nil
        }
        return exchanged
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        held.subtract(bytes, ordering: .relaxed)
        releasedSinceTrim.add(bytes, ordering: .relaxed)
    }

    /// True, and the count reset, when at least `threshold` bytes were released since the last
    /// time it said so: the server then hands memory back to the system after a burst.
    func takeReleasedBytes(atLeast threshold: Int) -> Bool {
        releasedSinceTrim.compareExchangeLoop { $0 >= threshold ? 0 : nil }.exchanged
    }
}

extension Atomic where Value == Int {
    /// Replaces the value with `update(current)` unless it returns `nil`; says whether it did.
    fileprivate func compareExchangeLoop(_ update: (Int) -> Int?) -> (exchanged: Bool, value: Int) {
        var current = load(ordering: .relaxed)
        while let next = update(current) {
            let (exchanged, original) = compareExchange(
                expected: current,
                desired: next,
                successOrdering: .relaxed,
                failureOrdering: .relaxed
            )
            if exchanged { return (true, next) }
            current = original
        }
        return (false, current)
    }
}

/// The lines of one connection that were read but not answered yet. Their bytes stay charged
/// to the process's budget until the server has answered them (a queued line holds its memory
/// as surely as an unfinished one), and while there are any the connection is not idle.
public final class PendingLines: Sendable {
    /// The budget the lines are charged to.
    public let budget: BufferBudget
    private let bytes = Atomic<Int>(0)
    private let lines = Atomic<Int>(0)

    public init(budget: BufferBudget) { self.budget = budget }

    /// What a line costs while pending: its bytes and its newline.
    public static func cost(of line: ByteBuffer) -> Int { line.readableBytes + 1 }

    /// True while a line of this connection waits for, or is getting, its answer.
    public var isEmpty: Bool { lines.load(ordering: .relaxed) == 0 }

    /// Charges a line that was read; false (nothing charged) when the budget cannot take it.
    func add(_ line: ByteBuffer) -> Bool {
        let cost = Self.cost(of: line)
        guard budget.charge(cost) else { return false }
        bytes.add(cost, ordering: .relaxed)
        lines.add(1, ordering: .relaxed)
        return true
    }

    /// The server answered `line` (or ignored it, if blank): its bytes are free.
    public func answered(_ line: ByteBuffer) {
        let cost = Self.cost(of: line)
        bytes.subtract(cost, ordering: .relaxed)
        lines.subtract(1, ordering: .relaxed)
        budget.release(cost)
    }

    /// The connection ended: lines still queued will never be answered.
    public func releaseAll() {
        budget.release(bytes.exchange(0, ordering: .relaxed))
        lines.store(0, ordering: .relaxed)
    }
}

/// Splits a byte stream into lines, with a length limit that does not kill the connection.
///
/// NIOExtras' `LineBasedFrameDecoder` has no limit, and a limit on `ByteToMessageHandler`
/// closes the connection. Here an over-long line produces one `.lineTooLong` frame, then
/// the decoder discards until the next newline and carries on with the following line.
/// A final line without a newline when the peer closes is dropped: it was never complete.
/// With a `BufferBudget`, the bytes of the incomplete line are charged to it while held; with
/// `PendingLines` as well, each complete line stays charged until the server answers it.
public struct LineFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = InboundFrame

    /// The most bytes a line may have, not counting its line ending.
    public let maximumLineLength: Int
    private let budget: BufferBudget?
    private let pending: PendingLines?
    private var discarding = false
    /// How far the current buffer was already scanned for a newline (avoids rescanning).
    private var scanned = 0
    /// Bytes of an incomplete line charged to the budget.
    private var charged = 0

    public init(maximumLineLength: Int, budget: BufferBudget? = nil) {
        precondition(maximumLineLength > 0)
        self.maximumLineLength = maximumLineLength
        self.budget = budget
        self.pending = nil
    }

    /// A decoder whose unfinished and unanswered lines are all charged to `pending`'s budget.
    public init(maximumLineLength: Int, pending: PendingLines) {
        precondition(maximumLineLength > 0)
        self.maximumLineLength = maximumLineLength
        self.budget = pending.budget
        self.pending = pending
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
                recharge(buffer.readableBytes)
                return .continue
            }
            var line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            if line.readableBytes > 0, line.getInteger(at: line.writerIndex - 1, as: UInt8.self) == UInt8(ascii: "\r") {
                line.moveWriterIndex(to: line.writerIndex - 1)
            }
            // What was charged as unfinished is now this line (kept by `pending` until it is
            // answered) and the rest of the buffer (the next line, charged on its own).
            recharge(0)
            if line.readableBytes > maximumLineLength {
                context.fireChannelRead(Self.wrapInboundOut(.lineTooLong(limit: maximumLineLength)))
            } else if let pending, !pending.add(line) {
                context.fireChannelRead(Self.wrapInboundOut(.overBudget(limit: pending.budget.limit)))
            } else {
                context.fireChannelRead(Self.wrapInboundOut(.line(line)))
            }
            // If the budget cannot take the rest now, the next call finds out and says so.
            recharge(buffer.readableBytes)
            return .continue
        }
        // No newline yet. Allow one extra byte for a possible '\r' before the newline.
        if discarding {
            discardAll(&buffer)
        } else if buffer.readableBytes > maximumLineLength + 1 {
            discarding = true
            discardAll(&buffer)
            context.fireChannelRead(Self.wrapInboundOut(.lineTooLong(limit: maximumLineLength)))
        } else if !recharge(buffer.readableBytes) {
            discarding = true
            discardAll(&buffer)
            context.fireChannelRead(Self.wrapInboundOut(.overBudget(limit: budget?.limit ?? 0)))
        } else {
            scanned = buffer.readableBytes
        }
        return .needMoreData
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // Whatever is left is an incomplete line: drop it.
        discardAll(&buffer)
        return .needMoreData
    }

    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        recharge(0)
    }

    private mutating func discardAll(_ buffer: inout ByteBuffer) {
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        scanned = 0
        recharge(0)
    }

    /// Charges the budget for `bytes` held instead of what was charged before; false when the
    /// budget cannot take the increase (the old charge then stays).
    @discardableResult
    private mutating func recharge(_ bytes: Int) -> Bool {
        guard let budget, bytes != charged else { return true }
        if bytes < charged {
            budget.release(charged - bytes)
        } else if !budget.charge(bytes - charged) {
            return false
        }
        charged = bytes
        return true
    }
}
