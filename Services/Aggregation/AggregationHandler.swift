import Foundation
import Logging
import RootcausesJSON
import RootcausesProtocol
import RootcausesService
import RootcausesStorage

/// Answers `status` and `nudge`.
struct AggregationHandler: RequestHandler {
    let serviceName = "aggregation"
    let operations = ["status", "nudge"]
    let applier: Applier
    let worker: AggregationWorker

    func handle(_ request: Request, logger: Logger) async throws(ProtocolError) -> [(String, JSON)] {
        switch request.op {
        case "nudge":
            if let seq = request.body["seq"], !seq.isNull, seq.int64Value == nil {
                throw ProtocolError(.invalidRequest, "'seq' must be an integer",
                    details: [["path": "seq", "code": "wrong_type", "message": "'seq' must be an integer"]])
            }
            worker.nudge()
            return []
        default:
            do {
                let progress = try await applier.progress()
                return [
                    ("instance", .string(applier.instance)),
                    ("applied_seq", .int(progress.applied)),
                    ("latest_seq", .int(progress.latest)),
                    ("backlog", .int(max(0, progress.latest - progress.applied))),
                    ("partitions", .int(Schema.aggregationPartitions)),
                    ("share", .array(worker.share.map { JSON.int($0) })),
                ]
            } catch {
                throw protocolError(for: error, logger: logger)
            }
        }
    }
}
