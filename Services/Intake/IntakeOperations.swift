import Logging
import RootcausesJSON
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol

/// Intake's ops, each declared once in `registry`: `submit` validates a submission, stores it
/// in one transaction, acknowledges it after the commit and nudges aggregation.
public struct IntakeOperations: Sendable {
    let validator: SubmissionValidator
    let store: SubmissionStore
    let nudge: @Sendable (Int64) -> Void

    /// `nudge` is told the seq of each accepted submission (after its commit).
    public init(catalogue: Catalogue, pool: PostgresPool, nudge: @escaping @Sendable (Int64) -> Void) {
        self.validator = SubmissionValidator(catalogue: catalogue)
        self.store = SubmissionStore(pool: pool)
        self.nudge = nudge
    }

    public var registry: OperationRegistry {
        OperationRegistry(
            service: "intake",
            [
                Operation("submit", SubmitRequest.self, handler: submit)
            ]
        )
    }

    /// `{"op":"submit","submission":{…},"dry_run":false}`.
    struct SubmitRequest: OperationInput {
        var dryRun: Bool
        var submission: SubmissionDraft

        static func decode(from reader: FieldReader) -> SubmitRequest? {
            let dryRun = reader.bool("dry_run") ?? false
            guard let submission = reader.object("submission", required: true).flatMap(SubmissionDraft.decode) else {
                return nil
            }
            return SubmitRequest(dryRun: dryRun, submission: submission)
        }
    }

    func submit(_ request: SubmitRequest, context: RequestContext) async throws -> AnswerFields {
        let submission: ValidSubmission
        switch validator.validate(request.submission, today: Day.today()) {
        case .success(let valid):
            submission = valid
        case .failure(let rejection):
            throw ProtocolError.validationFailed(
                rejection.problems,
                lead: "the submission was rejected; nothing was stored"
            )
        }
        let outcome = try await store.store(submission, dryRun: request.dryRun)
        let base: AnswerFields = [("submission_id", .string(submission.submissionID))]
        switch outcome {
        case .accepted(let seq):
            context.logger.info(
                "submission accepted",
                metadata: [
                    "reporter": "\(submission.reporter)", "submission_id": "\(submission.submissionID)",
                    "values": "\(submission.values.count)", "seq": "\(seq)",
                ]
            )
            nudge(seq)
            return [("status", "accepted")] + base + [("values", .int(submission.values.count)), ("seq", .int(seq))]
        case .duplicate(let seq, let values):
            return [("status", "duplicate")] + base + [("values", .int(values)), ("seq", .int(seq))]
        case .valid:
            return [("status", "valid")] + base + [("values", .int(submission.values.count))]
        case .conflict(let seq):
            throw ProtocolError(
                .conflict,
                "\(submission.reporter) already sent submission_id '\(submission.submissionID)' with different content (seq \(seq)); nothing was changed",
                details: [["submission_id": .string(submission.submissionID), "seq": .int(seq)]]
            )
        }
    }
}
