import NIOCore
import Testing

@testable import RootcausesTransport

@Suite("Finding pushed events among answers")
struct PushedEventSplitterTests {
    let marker = Array(#""event":"#.utf8)

    func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func findsTheMarkerAnywhereInTheLine() {
        #expect(PushedEventSplitter.contains(marker, in: buffer(#"{"event":"totals","rows":[]}"#)))
        #expect(PushedEventSplitter.contains(marker, in: buffer(#"{"id":1,"x":"a","event":"#)))
        #expect(PushedEventSplitter.contains(marker, in: buffer(#""event":"#)))
    }

    @Test func aLineWithoutItOrShorterThanItIsNoEvent() {
        #expect(!PushedEventSplitter.contains(marker, in: buffer(#"{"id":1,"ok":true,"events":3}"#)))
        #expect(!PushedEventSplitter.contains(marker, in: buffer(#""event""#)))
        #expect(!PushedEventSplitter.contains(marker, in: buffer("")))
        // Almost the marker, then the marker: the search goes on after a partial match.
        #expect(PushedEventSplitter.contains(marker, in: buffer(#""even""event":"#)))
    }

    @Test func onlyTheReadableBytesAreSearched() {
        var read = buffer(#""event":{"id":1}"#)
        read.moveReaderIndex(forwardBy: 3)
        #expect(!PushedEventSplitter.contains(marker, in: read))
    }
}
