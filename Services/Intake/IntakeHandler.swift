import Logging
import RootcausesJSON
import RootcausesModel
import RootcausesProtocol
import RootcausesService

/// Answers `submit`: validate, store in one transaction, acknowledge after commit, nudge.
struct IntakeHandler: RequestHandler {
    let serviceName = "intake"
    let operations = ["submit"]
    let validator: SubmissionValidator
    let store: SubmissionStore
    let nudger: AggregationNudger

    init(catalogue: Catalogue, store: SubmissionStore, nudger: AggregationNudger) {
        self.validator = SubmissionValidator(catalogue: catalogue)
        self.store = store
        self.nudger = nudger
    }

    func handle(_ request: Request, logger: Logger) async throws(ProtocolError) -> [(String, JSON)] {
        var dryRun = false
        var requestProblems: [Problem] = []
        if let field = request.body["dry_run"], !field.isNull {
            if let flag = field.boolValue { dryRun = flag } else {
                requestProblems.append(Problem(path: "dry_run", code: "wrong_type", message: "'dry_run' must be true or false"))
            }
        }
        let check = validator.check(request.body["submission"], today: Day.today())
        if case .malformed(let problems) = check { requestProblems += problems }
        if !requestProblems.isEmpty {
            throw ProtocolError(.invalidRequest, summary("the request is malformed", requestProblems), details: requestProblems.map(\.json))
        }
        let submission: ValidSubmission
        switch check {
        case .malformed:
            preconditionFailure("handled above")
        case .invalid(let problems):
            throw ProtocolError(.validationFailed, summary("the submission was rejected; nothing was stored", problems),
                details: problems.map(\.json))
        case .valid(let valid):
            submission = valid
        }
        let outcome: SubmissionStore.Outcome
        do {
            outcome = try await store.store(submission, dryRun: dryRun)
        } catch {
            throw protocolError(for: error, logger: logger)
        }
        let base: [(String, JSON)] = [("submission_id", .string(submission.submissionID))]
        switch outcome {
        case .accepted(let seq):
            logger.info("submission accepted", metadata: [
                "reporter": "\(submission.reporter)", "submission_id": "\(submission.submissionID)",
                "values": "\(submission.values.count)", "seq": "\(seq)",
            ])
            nudger.nudge(seq: seq)
            return [("status", "accepted")] + base + [("values", .int(submission.values.count)), ("seq", .int(seq))]
        case .duplicate(let seq, let values):
            return [("status", "duplicate")] + base + [("values", .int(values)), ("seq", .int(seq))]
        case .valid:
            return [("status", "valid")] + base + [("values", .int(submission.values.count))]
        case .conflict(let seq):
            throw ProtocolError(.conflict,
                "\(submission.reporter) already sent submission_id '\(submission.submissionID)' with different content (seq \(seq)); nothing was changed",
                details: [["submission_id": .string(submission.submissionID), "seq": .int(seq)]])
        }
    }

    private func summary(_ lead: String, _ problems: [Problem]) -> String {
        let count = problems.count
        return "\(lead): \(count) problem\(count == 1 ? "" : "s"), first: \(problems[0].path): \(problems[0].message)"
    }
}
