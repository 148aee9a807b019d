import Foundation
import RootcausesModel
import RootcausesPostgres
import RootcausesStorage

/// Intake's SQL for deduplication adjustments. Each is written under the seq counter's row lock
/// and takes the next seq, so adjustments and submissions are one ordered history: a read as of
/// a seq applies exactly the adjustments made by then. The lock also orders adjustments of one
/// point: of two sent at once, the second sees the first.
struct DeduplicationStore: Sendable {
    let pool: PostgresPool

    enum Outcome: Sendable, Equatable {
        /// Stored as `seq`: `resolved` is the point's figure now, between `lower` and `upper`.
        case accepted(seq: Int64, resolved: String, lower: String, upper: String, replacedSeq: Int64?)
        /// Sent before with the same content.
        case duplicate(seq: Int64)
        /// The id was used before for another adjustment.
        case conflict(seq: Int64)
        /// The point has a current adjustment this one does not replace: correct that one.
        case pointResolved(adjustmentID: String, seq: Int64)
        /// `replaces` names no adjustment, or one of another point.
        case unknownReplaces
        /// Fewer than two reporters gave figures for the point: nothing overlaps.
        case nothingToDeduplicate(reporters: Int)
        /// A custom figure below the largest reporter's or above their sum.
        case outsideBounds(lower: String, upper: String)
    }

    /// Stores `adjustment`, made with the key `keyID`.
    func store(_ adjustment: Deduplication, keyID: String?) async throws -> Outcome {
        try await pool.withConnection(idempotent: false) { connection in
            try connection.transaction { connection -> Outcome in
                let counter = try connection.query(
                    "SELECT last_seq FROM \(Storage.Table.seqCounter) FOR UPDATE" as PostgresQuery
                )
                guard let lastSeq = try counter.first?.decode(column: "last_seq", as: Int64.self) else {
                    throw PostgresError(code: .unexpectedResult, message: "no seq counter")
                }
                let period = (adjustment.period.start.description, adjustment.period.end.description)
                // The same id again: the same adjustment (a retry), or a conflict.
                let earlier = try connection.query(
                    """
                    SELECT d.seq, d.indicator = \(adjustment.indicator) AND d.country = \(adjustment.country)
                           AND d.period_start = \(period.0)::date AND d.period_end = \(period.1)::date
                           AND d.method = \(adjustment.method.rawValue)
                           AND d.value IS NOT DISTINCT FROM \(adjustment.value)::numeric
                           AND d.reason IS NOT DISTINCT FROM \(adjustment.reason)::text
                           AND r.adjustment_id IS NOT DISTINCT FROM \(adjustment.replaces)::text AS same
                    FROM \(Storage.Table.deduplications) d
                    LEFT JOIN \(Storage.Table.deduplications) r ON r.id = d.replaces
                    WHERE d.adjustment_id = \(adjustment.adjustmentID)
                    """ as PostgresQuery
                ).first
                if let earlier {
                    let seq = try earlier.decode(column: "seq", as: Int64.self)
                    return try earlier.decode(column: "same", as: Bool.self)
                        ? .duplicate(seq: seq) : .conflict(seq: seq)
                }
                let current = try connection.query(
                    """
                    SELECT id, adjustment_id, seq FROM \(Storage.Table.deduplications)
                    WHERE current AND indicator = \(adjustment.indicator) AND country = \(adjustment.country)
                      AND period_start = \(period.0)::date AND period_end = \(period.1)::date
                    """ as PostgresQuery
                ).first
                let currentID = try current?.decode(column: "id", as: Int64.self)
                if let replaces = adjustment.replaces {
                    guard let current, try current.decode(column: "adjustment_id", as: String.self) == replaces else {
                        // Named but not the point's current one: an unknown id, or the head is elsewhere.
                        if let current {
                            return .pointResolved(
                                adjustmentID: try current.decode(column: "adjustment_id", as: String.self),
                                seq: try current.decode(column: "seq", as: Int64.self)
                            )
                        }
                        return .unknownReplaces
                    }
                } else if let current {
                    return .pointResolved(
                        adjustmentID: try current.decode(column: "adjustment_id", as: String.self),
                        seq: try current.decode(column: "seq", as: Int64.self)
                    )
                }
                // Each reporter's figure for the point as aggregated (its rollup row of all cells):
                // an index probe, so the counter stays locked only briefly.
                let figures = try connection.query(
                    """
                    SELECT value::text AS figure FROM \(Storage.Table.rollups)
                    WHERE indicator = \(adjustment.indicator) AND country = \(adjustment.country)
                      AND period_start = \(period.0)::date AND period_end = \(period.1)::date
                      AND cell = \(Storage.allCells) AND submissions > 0
                    """ as PostgresQuery
                ).map { try Decimal.decode(postgresText: try $0.decode(column: "figure", as: String.self)) }
                // A correction may still be made where fewer reporters remain (reads hold it to the bounds).
                guard figures.count >= 2 || (adjustment.replaces != nil && !figures.isEmpty) else {
                    return .nothingToDeduplicate(reporters: figures.count)
                }
                let lower = figures.max() ?? 0
                let upper = figures.reduce(0, +)
                let resolved: Decimal
                switch adjustment.method {
                case .sum: resolved = upper
                case .max: resolved = lower
                case .custom:
                    let custom = try Decimal.decode(postgresText: adjustment.value ?? "")
                    guard custom >= lower, custom <= upper else {
                        return .outsideBounds(lower: "\(lower)", upper: "\(upper)")
                    }
                    resolved = custom
                }
                var replacedSeq: Int64?
                if let currentID {
                    replacedSeq = try current?.decode(column: "seq", as: Int64.self)
                    try connection.query(
                        "UPDATE \(Storage.Table.deduplications) SET current = false WHERE id = \(currentID)::bigint"
                            as PostgresQuery
                    )
                }
                let seq = lastSeq + 1
                try connection.query(
                    """
                    WITH next AS (
                        UPDATE \(Storage.Table.seqCounter)
                        SET last_seq = \(seq)::bigint, last_sequenced_at = greatest(clock_timestamp(), last_sequenced_at)
                        RETURNING last_sequenced_at
                    )
                    INSERT INTO \(Storage.Table.deduplications)
                        (adjustment_id, indicator, country, period, period_start, period_end, method, value, reason,
                         replaces, seq, made_at, current, api_key_id)
                    SELECT \(adjustment.adjustmentID), \(adjustment.indicator), \(adjustment.country), \(adjustment.periodText),
                           \(period.0)::date, \(period.1)::date, \(adjustment.method.rawValue), \(adjustment.value)::numeric,
                           \(adjustment.reason), \(currentID)::bigint, \(seq)::bigint, next.last_sequenced_at, true, \(keyID)
                    FROM next
                    """ as PostgresQuery
                )
                return .accepted(
                    seq: seq,
                    resolved: "\(resolved)",
                    lower: "\(lower)",
                    upper: "\(upper)",
                    replacedSeq: replacedSeq
                )
            }
        }
    }
}
