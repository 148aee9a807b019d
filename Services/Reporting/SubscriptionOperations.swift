import Foundation
import Logging
import RootcausesJSON
import RootcausesModel
import RootcausesProtocol

extension ReportingOperations {
    /// `{"op":"subscribe","id":"jobs", …totals filters and group_by…}`: answers like `totals`,
    /// then pushes `{"id":"jobs","event":"totals",…}` each time the answer changes.
    struct SubscribeRequest: Sendable {
        var totals: TotalsRequest
        /// The request's id: every event of the subscription carries it.
        var id: JSON
        /// The query without what does not change its answer: subscriptions to the same query
        /// are read once per change.
        var queryKey: String

        static func decode(from reader: FieldReader, catalogue: Catalogue) -> SubscribeRequest? {
            let totals = TotalsRequest.decode(from: reader, catalogue: catalogue)
            let id = reader.object["id"] ?? .null
            if id == .null {
                reader.report("id", code: "missing", "a subscription's events carry its id: give the request an id")
            }
            for key in ["as_of_seq", "as_of"] where reader.value(key) != nil {
                reader.report(key, code: "invalid", "a subscription follows the data as it changes: leave out '\(key)'")
            }
            if let format = reader.object["format"]?.stringValue, format != "json" {
                reader.report("format", code: "invalid", "a subscription's events are JSON: leave out 'format'")
            }
            guard let totals, id != .null else { return nil }
            let ignored: Set<String> = ["id", "op", "min_seq", "timeout_ms"]
            let members = (reader.object.objectValue ?? []).filter { !ignored.contains($0.0) }.sorted { $0.0 < $1.0 }
            return SubscribeRequest(totals: totals, id: id, queryKey: JSON.object(members).serialized)
        }
    }

    /// `{"op":"unsubscribe","subscription":"jobs"}`: no event of it follows the answer.
    struct UnsubscribeRequest: OperationInput {
        var subscription: JSON

        static func decode(from reader: FieldReader) -> UnsubscribeRequest? {
            let subscription = reader.object["subscription"]
            switch subscription {
            case .string, .number: return UnsubscribeRequest(subscription: subscription!)
            case nil, .null:
                reader.report("subscription", code: "missing", "give the id of the subscription to end")
            default:
                reader.report("subscription", code: "wrong_type", "'subscription' is the subscribe request's id")
            }
            return nil
        }
    }

    func subscribe(_ request: SubscribeRequest, context: RequestContext) async throws -> AnswerFields {
        guard let sink = context.events else {
            throw ProtocolError(.invalidRequest, "subscribe needs a connection to push events on")
        }
        let answer = try await totals(request.totals, context: context)
        let rows = answer.first { $0.0 == "rows" }?.1 ?? .null
        let seq = answer.first { $0.0 == "as_of_seq" }?.1.int64Value ?? 0
        let subscriber = SubscriptionHub.Subscriber(
            id: request.id,
            sink: sink,
            keyID: context.identity?.keyID,
            keyStillValid: context.keyStillValid
        )
        try subscriptions.add(
            request: request.totals,
            queryKey: request.queryKey,
            subscriber: subscriber,
            rows: rows,
            seq: seq
        )
        let hub = subscriptions
        if hub.watchConnection(sink) { sink.onClose { hub.removeAll(of: sink) } }
        // Events follow the acknowledgement, never precede it; an error answer (the key was
        // found revoked beside the read) leaves no subscription behind.
        sink.afterAnswer { [id = request.id] succeeded in
            if succeeded {
                hub.activate(id: id, sink: sink)
            } else {
                hub.discard(id: id, sink: sink)
            }
        }
        return [("subscription", request.id)] + answer
    }

    func unsubscribe(_ request: UnsubscribeRequest, context: RequestContext) async throws -> AnswerFields {
        guard let sink = context.events, await subscriptions.remove(id: request.subscription, sink: sink) else {
            throw ProtocolError.validationFailed(
                [
                    Problem(
                        path: "subscription",
                        code: "unknown_subscription",
                        message: "this connection has no subscription \(request.subscription.serialized)"
                    )
                ],
                lead: "no such subscription"
            )
        }
        return [("subscription", request.subscription), ("status", "unsubscribed")]
    }

    /// A subscription's query read as of `seq` (already applied: no wait).
    func pinnedTotals(_ request: TotalsRequest, asOfSeq seq: Int64) async throws -> AnswerFields {
        var pinned = request
        pinned.read.minSeq = nil
        pinned.read.asOf = nil
        pinned.read.asOfSeq = seq
        pinned.read.knownApplied = seq
        return try await totals(pinned, context: RequestContext(logger: Self.subscriptionLogger))
    }

    static let subscriptionLogger = Logger(label: "rootcauses.reporting.subscriptions")
}
