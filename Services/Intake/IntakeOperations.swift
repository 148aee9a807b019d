import Logging
import RootcausesJSON
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol

/// Intake's ops, each declared once in `registry`: `submit` validates a submission, stores it
/// in one transaction, acknowledges it after the commit and nudges aggregation; `retract`
/// withdraws one the same way; `target` sets an agency's annual target; `deduplicate` resolves
/// reporters' overlapping figures.
public struct IntakeOperations: Sendable {
    let validator: SubmissionValidator
    let store: SubmissionStore
    let targets: TargetStore
    let deduplications: DeduplicationStore
    let nudge: @Sendable (Int64) -> Void
    let pool: PostgresPool
    let catalogue: Catalogue

    /// `nudge` is told the seq of each accepted submission (after its commit).
    public init(catalogue: Catalogue, pool: PostgresPool, nudge: @escaping @Sendable (Int64) -> Void) {
        self.validator = SubmissionValidator(catalogue: catalogue)
        self.pool = pool
        self.catalogue = catalogue
        self.store = SubmissionStore(pool: pool)
        self.targets = TargetStore(pool: pool)
        self.deduplications = DeduplicationStore(pool: pool)
        self.nudge = nudge
    }

    public var registry: OperationRegistry {
        OperationRegistry(
            service: "intake",
            [
                // A connection's next request may start once a write is queued (in order).
                Operation("submit", SubmitRequest.self, access: .submit, overlapping: true, handler: submit),
                Operation("retract", RetractRequest.self, access: .submit, overlapping: true, handler: retract),
                Operation("target", TargetRequest.self, access: .admin, handler: target),
                Operation("deduplicate", DeduplicateRequest.self, access: .admin, handler: deduplicate),
                Operation(
                    "keys_create",
                    access: .admin,
                    decode: { [catalogue] in CreateKeyRequest.decode(from: $0, catalogue: catalogue) },
                    handler: createKey
                ),
                Operation("keys_list", NoInput.self, access: .admin, handler: listKeys),
                Operation("keys_revoke", RevokeKeyRequest.self, access: .admin, handler: revokeKey),
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

    /// `{"op":"retract","reporter":"USAID","submission_id":"…","reason":"…"}`.
    struct RetractRequest: OperationInput {
        var retraction: SubmissionStore.Retraction

        static func decode(from reader: FieldReader) -> RetractRequest? {
            let reporter = reader.string("reporter", required: true)
            let submissionID = reader.string("submission_id", required: true)
            let reason = reader.string("reason", required: true)
            if let reason, reason.allSatisfy(\.isWhitespace) {
                reader.report(Problem(path: "reason", code: "invalid", message: "'reason' must say why, not be empty"))
            }
            if let reason, reason.unicodeScalars.contains("\u{0}") || reason.unicodeScalars.count > 2000 {
                reader.report(
                    Problem(
                        path: "reason",
                        code: "invalid",
                        message:
                            "'reason' must be at most 2000 Unicode characters (code points), without NUL characters"
                    )
                )
            }
            guard let reporter, let submissionID, let reason else { return nil }
            return RetractRequest(
                retraction: SubmissionStore.Retraction(reporter: reporter, submissionID: submissionID, reason: reason)
            )
        }
    }

    /// `{"op":"target","reporter":"USAID","indicator":"jobs_created","country":"HN","fiscal_year":"FY2023","value":25000}`.
    struct TargetRequest: OperationInput {
        var draft: Target.Draft

        static func decode(from reader: FieldReader) -> TargetRequest? {
            Target.Draft.decode(from: reader).map(TargetRequest.init)
        }
    }

    func target(_ request: TargetRequest, context: RequestContext) async throws -> AnswerFields {
        let identity = try context.requireIdentity()
        let target: Target
        switch validator.validate(request.draft) {
        case .success(let valid): target = valid
        case .failure(let rejection):
            throw ProtocolError.validationFailed(
                rejection.problems,
                lead: "the target was rejected; nothing was stored"
            )
        }
        let key: AnswerFields = [
            ("reporter", .string(target.reporter)), ("indicator", .string(target.indicator)),
            ("country", .string(target.country)), ("fiscal_year", .string("FY\(target.fiscalYear)")),
            ("value", .number(target.value)),
        ]
        switch try await targets.store(target, keyID: identity.keyID) {
        case .accepted(let id, let replacedValue):
            context.logger.info(
                "target set",
                metadata: [
                    "reporter": "\(target.reporter)", "indicator": "\(target.indicator)",
                    "country": "\(target.country)",
                    "fiscal_year": "\(target.fiscalYear)", "target_id": "\(id)",
                ]
            )
            return [("status", "accepted"), ("target_id", .int(id))] + key
                + (replacedValue.map { [("replaced_value", .number(canonicalNumber($0)))] } ?? [])
        case .duplicate(let id):
            return [("status", "duplicate"), ("target_id", .int(id))] + key
        }
    }

    /// `{"op":"deduplicate","adjustment_id":"…","indicator":…,"country":…,"period":…,"method":"max"}`.
    struct DeduplicateRequest: OperationInput {
        var draft: Deduplication.Draft

        static func decode(from reader: FieldReader) -> DeduplicateRequest? {
            Deduplication.Draft.decode(from: reader).map(DeduplicateRequest.init)
        }
    }

    func deduplicate(_ request: DeduplicateRequest, context: RequestContext) async throws -> AnswerFields {
        let identity = try context.requireIdentity()
        let adjustment: Deduplication
        switch validator.validate(request.draft) {
        case .success(let valid): adjustment = valid
        case .failure(let rejection):
            throw ProtocolError.validationFailed(
                rejection.problems,
                lead: "the adjustment was rejected; nothing was stored"
            )
        }
        let base: AnswerFields = [("adjustment_id", .string(adjustment.adjustmentID))]
        switch try await deduplications.store(adjustment, keyID: identity.keyID) {
        case .accepted(let seq, let resolved, let lower, let upper, let replacedSeq):
            context.logger.info(
                "deduplication stored",
                metadata: [
                    "adjustment_id": "\(adjustment.adjustmentID)", "indicator": "\(adjustment.indicator)",
                    "country": "\(adjustment.country)", "period": "\(adjustment.periodText)", "seq": "\(seq)",
                ]
            )
            // The seq has no submission behind it: aggregation moves its watermarks past it.
            nudge(seq)
            return [("status", "accepted")] + base + [
                ("seq", .int(seq)), ("value", .number(canonicalNumber(resolved))),
                ("lower", .number(canonicalNumber(lower))), ("upper", .number(canonicalNumber(upper))),
            ] + (replacedSeq.map { [("replaced_seq", .int($0))] } ?? [])
        case .duplicate(let seq):
            return [("status", "duplicate")] + base + [("seq", .int(seq))]
        case .conflict(let seq):
            throw ProtocolError(
                .conflict,
                "adjustment_id '\(adjustment.adjustmentID)' was used for another adjustment (seq \(seq)); nothing was changed",
                details: [["adjustment_id": .string(adjustment.adjustmentID), "seq": .int(seq)]]
            )
        case .pointResolved(let current, let seq):
            throw ProtocolError(
                .conflict,
                "\(adjustment.indicator) in \(adjustment.country) for \(adjustment.periodText) is resolved by '\(current)' (seq \(seq)); send a correction with replaces '\(current)'; nothing was changed",
                details: [["head_adjustment_id": .string(current), "head_seq": .int(seq)]]
            )
        case .unknownReplaces:
            throw ProtocolError.validationFailed(
                [
                    Problem(
                        path: "replaces",
                        code: "unknown_adjustment",
                        message:
                            "no adjustment '\(adjustment.replaces ?? "")' resolves this indicator, country and period"
                    )
                ],
                lead: "nothing was changed"
            )
        case .nothingToDeduplicate(let reporters):
            throw ProtocolError.validationFailed(
                [
                    Problem(
                        path: "period",
                        code: "no_overlap",
                        message:
                            "\(reporters) reporter\(reporters == 1 ? "" : "s") gave figures for \(adjustment.indicator) in \(adjustment.country) for \(adjustment.periodText): nothing overlaps"
                    )
                ],
                lead: "the adjustment was rejected; nothing was stored"
            )
        case .outsideBounds(let lower, let upper):
            throw ProtocolError.validationFailed(
                [
                    Problem(
                        path: "value",
                        code: "outside_bounds",
                        message:
                            "a deduplicated figure lies between the largest reporter's (\(canonicalNumber(lower))) and the sum (\(canonicalNumber(upper)))"
                    )
                ],
                lead: "the adjustment was rejected; nothing was stored"
            )
        }
    }

    func submit(_ request: SubmitRequest, context: RequestContext) async throws -> AnswerFields {
        // Whose data this is comes first: a stranger learns nothing of another reporter's
        // submissions, not even whether the request is valid.
        let identity = try context.requireIdentity()
        try identity.requireActing(for: request.submission.reporter, path: "submission.reporter")
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
        // A dry run looks at what is stored, so at what the connection sent before it too.
        if request.dryRun { await context.earlierRequestsAnswered() }
        let outcome = try await store.store(
            submission,
            keyID: identity.keyID,
            dryRun: request.dryRun,
            queued: context.admitNext
        )
        let base: AnswerFields = [("submission_id", .string(submission.submissionID))]
        switch outcome {
        case .accepted(let seq, let replacedSeq):
            context.logger.info(
                "submission accepted",
                metadata: [
                    "reporter": "\(submission.reporter)", "submission_id": "\(submission.submissionID)",
                    "values": "\(submission.values.count)", "seq": "\(seq)",
                ]
            )
            nudge(seq)
            return [("status", "accepted")] + base + [("values", .int(submission.values.count)), ("seq", .int(seq))]
                + Self.replaced(replacedSeq)
        case .duplicate(let seq, let values, let replacedSeq):
            return [("status", "duplicate")] + base + [("values", .int(values)), ("seq", .int(seq))]
                + Self.replaced(replacedSeq)
        case .valid:
            return [("status", "valid")] + base + [("values", .int(submission.values.count))]
        case .conflict(let seq):
            throw ProtocolError(
                .conflict,
                "\(submission.reporter) already sent submission_id '\(submission.submissionID)' with different content (seq \(seq)); nothing was changed",
                details: [["submission_id": .string(submission.submissionID), "seq": .int(seq)]]
            )
        case .superseded(let target, let head):
            throw Self.supersededError(target: target, head: head, reporter: submission.reporter)
        case .unknownTarget(let submissionID):
            throw Self.unknownTargetError(submissionID, reporter: submission.reporter, path: "submission.replaces")
        case .retracted, .alreadyRetracted:
            throw ProtocolError(.internal, "storing a submission answered as a retraction")
        }
    }

    func retract(_ request: RetractRequest, context: RequestContext) async throws -> AnswerFields {
        let identity = try context.requireIdentity()
        try identity.requireActing(for: request.retraction.reporter)
        var retraction = request.retraction
        retraction.keyID = identity.keyID
        let base: AnswerFields = [("submission_id", .string(retraction.submissionID))]
        switch try await store.retract(retraction, queued: context.admitNext) {
        case .retracted(let seq, let retractedSeq):
            context.logger.info(
                "submission retracted",
                metadata: [
                    "reporter": "\(retraction.reporter)", "submission_id": "\(retraction.submissionID)",
                    "seq": "\(seq)", "retracted_seq": "\(retractedSeq)",
                ]
            )
            nudge(seq)
            return [("status", "retracted")] + base + [("seq", .int(seq)), ("retracted_seq", .int(retractedSeq))]
        case .alreadyRetracted(let seq, let retractedSeq):
            return [("status", "duplicate")] + base + [("seq", .int(seq)), ("retracted_seq", .int(retractedSeq))]
        case .superseded(let target, let head):
            throw Self.supersededError(target: target, head: head, reporter: retraction.reporter)
        case .unknownTarget(let submissionID):
            throw Self.unknownTargetError(submissionID, reporter: retraction.reporter, path: "submission_id")
        case .accepted, .duplicate, .conflict, .valid:
            throw ProtocolError(.internal, "a retraction answered as a submission")
        }
    }

    private static func replaced(_ seq: Int64?) -> AnswerFields {
        seq.map { [("replaced_seq", .int($0))] } ?? []
    }

    /// A correction of a version that is no longer the chain's head: `conflict`, naming the head.
    private static func supersededError(
        target: SubmissionStore.ChainVersion,
        head: SubmissionStore.ChainVersion,
        reporter: String
    ) -> ProtocolError {
        let headText =
            head.retraction
            ? "was retracted (seq \(head.seq))" : "the current version is '\(head.submissionID)' (seq \(head.seq))"
        return ProtocolError(
            .conflict,
            "\(reporter)'s submission '\(target.submissionID)' (seq \(target.seq)) is already corrected: \(headText); correct the head of the chain instead; nothing was changed",
            details: [
                [
                    "submission_id": .string(target.submissionID), "seq": .int(target.seq),
                    "head_submission_id": .string(head.submissionID), "head_seq": .int(head.seq),
                    "head_status": .string(head.retraction ? "retracted" : "current"),
                ]
            ]
        )
    }

    private static func unknownTargetError(_ submissionID: String, reporter: String, path: String) -> ProtocolError {
        ProtocolError.validationFailed(
            [
                Problem(
                    path: path,
                    code: "unknown_submission",
                    message: "\(reporter) has no submission '\(submissionID)'"
                )
            ],
            lead: "nothing was changed"
        )
    }
}
