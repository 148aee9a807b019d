import Logging
import NIOConcurrencyHelpers
import RootcausesJSON
import RootcausesProtocol
import ServiceLifecycle

/// Tells aggregation instances that new submissions are committed.
///
/// A nudge is only a hint (aggregation also catches up on a timer), so it never delays or fails
/// an acknowledgement: nudges are coalesced into the newest seq and sent in the background.
final class AggregationNudger: Service, Sendable {
    private let addresses: [String]
    private let logger: Logger
    private let stream: AsyncStream<Int64>
    private let continuation: AsyncStream<Int64>.Continuation

    init(addresses: [String], logger: Logger) {
        self.addresses = addresses
        self.logger = logger
        (stream, continuation) = AsyncStream.makeStream(of: Int64.self, bufferingPolicy: .bufferingNewest(1))
    }

    func nudge(seq: Int64) {
        continuation.yield(seq)
    }

    func run() async throws {
        var clients: [String: ProtocolClient] = [:]
        await withGracefulShutdownHandler {
            for await seq in stream {
                for address in addresses {
                    do {
                        let client: ProtocolClient
                        if let open = clients[address] {
                            client = open
                        } else {
                            client = try await ProtocolClient.connect(address: address)
                            clients[address] = client
                        }
                        _ = try await client.request(["op": "nudge", "seq": .int(seq)])
                    } catch {
                        // Aggregation may be down or restarting; it will catch up by itself.
                        logger.debug("nudge not delivered", metadata: ["address": "\(address)", "error": "\(error)"])
                        await clients.removeValue(forKey: address)?.close()
                    }
                }
            }
        } onGracefulShutdown: { [continuation] in
            continuation.finish()
        }
        for client in clients.values { await client.close() }
    }
}
