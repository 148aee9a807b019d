import Foundation
import RootcausesJSON
import RootcausesModel
import RootcausesProtocol

extension ReportingOperations {
    /// `{"op":"explain", …totals filters…, "group_by":[…], "row":{…}, "limit":100, "cursor":"…"}`:
    /// every stored value behind one totals row (or, with `date`, one fact sheet number).
    struct ExplainRequest: Sendable {
        static let defaultLimit = 100
        static let maximumLimit = 1_000

        var totals: TotalsRequest
        /// The row's key values, by group key; `nil` for a dimension the row has as `null`.
        var row: [ReportingQueries.GroupKey: String?]
        var rowPeriod: (start: Day, end: Day)?
        var rowUnit: String?
        /// A fact sheet's date: only periods started by then count.
        var date: Day?
        var limit: Int
        var cursor: (asOfSeq: Int64, after: ReportingQueries.ExplainCursor)?

        static func decode(from reader: FieldReader, catalogue: Catalogue) -> ExplainRequest? {
            let totals = TotalsRequest.decode(from: reader, catalogue: catalogue)
            let date = reader.parsed("date", expected: "a day written YYYY-MM-DD, from 1900 to 9999") { Day(iso: $0) }
            let limit = reader.integer("limit", in: 1...Int64(maximumLimit)).map(Int.init) ?? defaultLimit
            let cursor = reader.parsed("cursor", expected: "a cursor from an earlier explain answer", decodeCursor)
            if let cursor, let asOfSeq = totals?.read.asOfSeq, asOfSeq != cursor.asOfSeq {
                reader.report("as_of_seq", code: "invalid", "the cursor continues as of seq \(cursor.asOfSeq)")
            }
            if let cursor, totals?.read.asOf != nil {
                reader.report(
                    "as_of",
                    code: "invalid",
                    "the cursor continues as of seq \(cursor.asOfSeq): leave out 'as_of'"
                )
            }
            var row: [ReportingQueries.GroupKey: String?] = [:]
            var rowPeriod: (start: Day, end: Day)?
            let rowReader = reader.object("row", required: !(totals?.groupBy.isEmpty ?? true))
            for key in totals?.groupBy ?? [] {
                guard let rowReader else { break }
                switch key {
                case .period:
                    let start = rowReader.parsed("period_start", required: true, expected: "a day written YYYY-MM-DD") {
                        Day(iso: $0, years: 1...9999)
                    }
                    let end = rowReader.parsed("period_end", required: true, expected: "a day written YYYY-MM-DD") {
                        Day(iso: $0, years: 1...9999)
                    }
                    if let start, let end { rowPeriod = (start, end) }
                case .dimension(let index):
                    let name = catalogue.dimensions[index].name
                    // The row's value, or null: the values without this dimension.
                    if rowReader.object[name] == nil {
                        rowReader.report(name, code: "missing", "the row is grouped by \(name): give its value or null")
                    } else {
                        row[key] = .some(rowReader.string(name))
                    }
                case .indicator, .country, .reporter, .pillar:
                    if let value = rowReader.string(key.columns[0], required: true) { row[key] = value }
                }
            }
            let rowUnit = rowReader?.string("unit")
            guard let totals else { return nil }
            return ExplainRequest(
                totals: totals,
                row: row,
                rowPeriod: rowPeriod,
                rowUnit: rowUnit,
                date: date,
                limit: limit,
                cursor: cursor
            )
        }

        /// The values the row is made of: the filters narrowed by the row's keys.
        func selection(in catalogue: Catalogue) -> ReportingQueries.ExplainSelection {
            func narrowed(_ filter: [String]?, by key: ReportingQueries.GroupKey) -> [String]? {
                guard case .some(.some(let value)) = row[key] else { return filter }
                return (filter ?? [value]).filter { $0 == value }
            }
            let pillars = narrowed(totals.pillars, by: .pillar)
            let indicators = catalogue.indicators.filter { indicator in
                (totals.indicators?.contains(indicator.code) ?? true)
                    && (pillars?.contains(indicator.pillar) ?? true)
                    && (narrowed(nil, by: .indicator)?.contains(indicator.code) ?? true)
                    && (rowUnit.map { $0 == indicator.unit } ?? true)
            }
            var selection = ReportingQueries.ExplainSelection(
                indicators: indicators.map(\.code),
                countries: narrowed(totals.countries, by: .country),
                reporters: narrowed(totals.reporters, by: .reporter),
                from: totals.from?.start,
                to: totals.to?.end,
                startedBy: date,
                period: rowPeriod,
                dimensionValues: totals.dimensions,
                perPeriod: totals.groupBy.contains(.period)
            )
            for (key, value) in row {
                guard case .dimension(let index) = key else { continue }
                if let value {
                    selection.dimensionValues[index] = (totals.dimensions[index] ?? [value]).filter { $0 == value }
                } else {
                    selection.dimensionsAbsent.append(index)
                }
            }
            return selection
        }

        /// Whether a totals row is the one asked about.
        func matches(_ totalsRow: ReportingQueries.TotalRow) -> Bool {
            for key in totals.groupBy {
                switch key {
                case .period:
                    guard let rowPeriod,
                        totalsRow.keys["period_start"] == .some(rowPeriod.start.description),
                        totalsRow.keys["period_end"] == .some(rowPeriod.end.description)
                    else { return false }
                case .dimension(let index):
                    guard case .some(let value) = row[key], totalsRow.keys["dimension_\(index)"] == .some(value)
                    else { return false }
                case .indicator, .country, .reporter, .pillar:
                    guard case .some(let value) = row[key], totalsRow.keys[key.columns[0]] == .some(value)
                    else { return false }
                }
            }
            if let rowUnit, let unit = totalsRow.keys["unit"], unit != rowUnit { return false }
            return true
        }
    }

    func explain(_ request: ExplainRequest, context: RequestContext) async throws -> AnswerFields {
        var read = try await resolvingTime(request.totals.read)
        if let cursor = request.cursor { read.asOfSeq = cursor.asOfSeq }
        let applied = try await waitForApplied(read)
        let asOfSeq = read.asOfSeq ?? applied

        // The number itself, from the same totals a client read it from.
        var filters = request.totals.filters(in: catalogue)
        filters.startedBy = request.date
        filters.asOfSeq = asOfSeq
        // The number, its bounds and its page are independent reads pinned to the same seq: run
        // them at once, each on a connection of its own.
        let selection = request.selection(in: catalogue)
        // Only the row's own indicators, country and reporter are read: the other rows of the
        // totals would be summed only to be thrown away. Overlap points are per indicator and
        // country, so the row's bounds are the same either way.
        if request.row.keys.contains(where: { $0 == .indicator || $0 == .pillar }) || request.rowUnit != nil {
            // A row grouped by indicator is that indicator's, whatever unit the client says
            // (its number was always read so; only its entries are narrowed by the unit).
            if case .some(.some(let code)) = request.row[.indicator] {
                let asked = filters.indicators ?? [code]
                filters.indicators = asked.filter { $0 == code }
            } else {
                filters.indicators = selection.indicators
            }
        }
        if request.row[.country] != nil { filters.countries = selection.countries }
        if request.row[.reporter] != nil { filters.reporters = selection.reporters }
        // Deduplications in force behind the row: the counted values plus their amounts make the value.
        async let overlapBounds = OverlapBounds(
            request.totals,
            filters: filters,
            asOfSeq: asOfSeq,
            catalogue: catalogue,
            queries: queries
        )
        async let pageEntries = queries.explain(
            selection,
            asOfSeq: asOfSeq,
            after: request.cursor?.after,
            limit: request.limit + 1,
            catalogue: catalogue
        )
        let rows = try await queries.totals(filters: filters, groupBy: request.totals.groupBy, catalogue: catalogue)
            .rows.filter(request.matches)
        let entries = try await pageEntries
        guard rows.count <= 1 else {
            throw ProtocolError.invalidRequest([
                Problem(
                    path: "row.unit",
                    code: "missing",
                    message: "the row is one of several of different units: give its unit"
                )
            ])
        }

        let page = entries.prefix(request.limit)
        let next =
            entries.count > request.limit
            ? page.last.map { Self.encodeCursor(asOfSeq: asOfSeq, after: $0.cursor) } : nil
        var fields: AnswerFields = [("applied_seq", .int(applied)), ("as_of_seq", .int(asOfSeq))]
        let overlaps = try await overlapBounds
        var adjustments: [JSON] = []
        if let row = rows.first {
            let bounds = overlaps?.bounds(of: row)
            fields.append(("value", .number(bounds.map { "\($0.value)" } ?? canonicalNumber(row.value))))
            if let lower = bounds?.lower {
                fields.append(("lower", .number("\(lower)")))
                fields.append(("upper", .number("\(bounds?.value ?? 0)")))
            }
            fields.append(("submissions", .int(row.submissions)))
            adjustments = (overlaps?.adjustments(in: row) ?? []).compactMap(Self.adjustmentJSON)
        } else {
            fields.append(("value", .null))
        }
        fields.append(("adjustments", .array(adjustments)))
        fields.append(("entries", .array(page.map(entryJSON))))
        fields.append(("next_cursor", next.map(JSON.string) ?? .null))
        return fields
    }

    /// An adjustment behind an explained number: `amount` is what it takes off the reporters' sum.
    private static func adjustmentJSON(_ point: OverlapBounds.Point) -> JSON? {
        guard let adjustment = point.adjustment else { return nil }
        var members: [(String, JSON)] = [
            ("adjustment_id", .string(adjustment.adjustmentID)), ("seq", .int(adjustment.seq)),
            ("indicator", .string(adjustment.indicator)), ("country", .string(adjustment.country)),
            ("period", .string(adjustment.period)), ("method", .string(adjustment.method)),
        ]
        if let value = adjustment.value { members.append(("custom_value", .number(canonicalNumber(value)))) }
        members += [
            ("reporters_sum", .number("\(point.sum)")), ("largest_reporter", .number("\(point.largest)")),
            ("amount", .number("\(point.resolved - point.sum)")),
        ]
        if let reason = adjustment.reason { members.append(("reason", .string(reason))) }
        if let key = adjustment.keyID { members.append(("key_id", .string(key))) }
        return .object(members)
    }

    private func entryJSON(_ entry: ReportingQueries.ExplainEntry) -> JSON {
        var members: [(String, JSON)] = [
            ("seq", .int(entry.seq)), ("reporter", .string(entry.reporter)),
            ("submission_id", .string(entry.submissionID)), ("period", .string(entry.period)),
            ("indicator", .string(entry.indicator)), ("country", .string(entry.country)),
        ]
        // The API key that sent it (absent for data sent before keys).
        if let key = entry.keyID { members.append(("key_id", .string(key))) }
        if let cell = Self.disaggregation(ofCell: entry.cell) { members.append(("disaggregation", cell)) }
        members.append(("value", .number(canonicalNumber(entry.value))))
        if entry.estimate { members.append(("estimate", true)) }
        var excluded: [(String, JSON)]?
        if let seq = entry.supersededSeq {
            if entry.supersededByRetraction == true {
                excluded = [("because", "retracted"), ("by_seq", .int(seq))]
                if let reason = entry.supersededReason { excluded?.append(("reason", .string(reason))) }
            } else {
                excluded = [
                    ("because", "replaced"), ("by_seq", .int(seq)),
                    ("by_submission_id", .string(entry.supersededBy ?? "")),
                ]
            }
        } else if entry.latest, let seq = entry.newerSeq {
            excluded = [
                ("because", "newer_in_period"), ("by_seq", .int(seq)),
                ("by_submission_id", .string(entry.newerSubmissionID ?? "")),
            ]
        } else if entry.latest, let start = entry.recentStart, let end = entry.recentEnd,
            start != entry.periodStart || end != entry.periodEnd
        {
            let label =
                Day(iso: start, years: 1...9999).flatMap { s in
                    Day(iso: end, years: 1...9999).map { Period(start: s, end: $0).label }
                } ?? "\(start)/\(end)"
            excluded = [("because", "earlier_period"), ("latest_period", .string(label))]
        }
        members.append(("counted", .bool(excluded == nil)))
        if let excluded { members.append(("excluded", .object(excluded))) }
        return .object(members)
    }

    /// A cursor is opaque to clients: the seq the pages are pinned to and the last value shown.
    static func encodeCursor(asOfSeq: Int64, after: ReportingQueries.ExplainCursor) -> String {
        let key: JSON = [
            .int(asOfSeq), .string(after.indicator), .string(after.country), .int(after.submission),
            .string(after.cell),
        ]
        return Data(key.serialized.utf8).base64EncodedString()
    }

    static func decodeCursor(_ text: String) -> (asOfSeq: Int64, after: ReportingQueries.ExplainCursor)? {
        guard let data = Data(base64Encoded: text), let key = try? JSONParser.parse(Array(data)),
            let parts = key.arrayValue, parts.count == 5,
            let asOfSeq = parts[0].int64Value, asOfSeq >= 0, let indicator = parts[1].stringValue,
            let country = parts[2].stringValue, let submission = parts[3].int64Value, let cell = parts[4].stringValue,
            ![indicator, country, cell].contains(where: { $0.unicodeScalars.contains("\u{0}") })
        else { return nil }
        return (
            asOfSeq,
            ReportingQueries.ExplainCursor(indicator: indicator, country: country, submission: submission, cell: cell)
        )
    }
}
