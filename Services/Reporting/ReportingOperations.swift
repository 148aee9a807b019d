import Foundation
import Logging
import RootcausesJSON
import RootcausesModel
import RootcausesPostgres
import RootcausesProtocol
import RootcausesService
import RootcausesStorage

/// Reporting's ops, each declared once in `registry`: `indicators`, `totals`, `factsheet`,
/// `history`, `explain`, and the publications: `publish`, `published` and `diff`.
/// Every read may first wait until a `min_seq` is aggregated, and every totals and fact sheet
/// answer is pinned to an `as_of_seq` that reproduces it.
public struct ReportingOperations: Sendable {
    let catalogue: Catalogue
    let template: FactSheetTemplate
    let queries: ReportingQueries
    let dhis2: DHIS2Mapping?
    /// Live totals: run it as a service beside the server.
    public let subscriptions: SubscriptionHub
    /// Hears every applied pass (migration 14): run it as a service beside the server.
    public let listener: NotificationListener
    /// Signalled at every applied pass: reads waiting for `min_seq` and the subscriptions wake.
    let applied: WakeSignal
    /// How long a wait for the watermark goes without looking: see ``init``.
    let watermarkPoll: @Sendable () -> Duration

    static let defaultTimeoutMilliseconds: Int64 = 5_000
    static let maximumTimeoutMilliseconds: Int64 = 60_000

    /// Reads go to `pool`; with `primary`, `pool` may be a hot standby: publications are
    /// written to `primary`, and reads as of a time wait for the standby to catch up with it.
    /// `dhis2` maps the catalogue to DHIS2 metadata for `totals` with `format: dhis2`.
    ///
    /// A read waiting for `min_seq`, and the subscriptions, look at the applied watermark at
    /// every pass `listener` hears, and after `watermarkPoll` (50 ms by default) without one.
    /// While the listener is not listening (starting, reconnecting, or the database is a
    /// standby), and when reads go to a standby (which replays a pass only after the primary
    /// notified it), they look every 5 ms.
    public init(
        catalogue: Catalogue,
        template: FactSheetTemplate,
        pool: PostgresPool,
        primary: PostgresPool? = nil,
        dhis2: DHIS2Mapping? = nil,
        watermarkPoll: Duration = .milliseconds(50),
        logger: Logger = Logger(label: "rootcauses.reporting")
    ) {
        self.catalogue = catalogue
        self.template = template
        self.dhis2 = dhis2
        let queries = ReportingQueries(pool: pool, primary: primary, catalogue: catalogue)
        self.queries = queries
        let applied = WakeSignal()
        self.applied = applied
        // On the primary: a standby cannot LISTEN.
        let listener = NotificationListener(
            conninfo: (primary ?? pool).conninfo,
            channel: Storage.appliedChannel,
            applicationName: "rootcauses-reporting-listener",
            logger: logger
        ) { applied.signal() }
        self.listener = listener
        let readsStandby = primary != nil
        self.watermarkPoll = { listener.isListening && !readsStandby ? watermarkPoll : .milliseconds(5) }
        self.subscriptions = SubscriptionHub(
            appliedSeq: { try await queries.appliedSeq() },
            applied: applied,
            pollInterval: self.watermarkPoll,
            logger: Self.subscriptionLogger
        )
        let operations = self
        subscriptions.attach { request, seq in try await operations.pinnedTotals(request, asOfSeq: seq) }
    }

    public var registry: OperationRegistry {
        OperationRegistry(
            service: "reporting",
            [
                Operation("indicators", IndicatorsRequest.self, access: .read, handler: indicators),
                Operation(
                    "totals",
                    access: .read,
                    decode: { [catalogue] in TotalsRequest.decode(from: $0, catalogue: catalogue) },
                    handler: totals
                ),
                Operation("factsheet", FactSheetRequest.self, access: .read, handler: factSheet),
                Operation("history", HistoryRequest.self, access: .read, handler: history),
                Operation("publish", PublishRequest.self, access: .admin, handler: publish),
                Operation("published", PublishedRequest.self, access: .read, handler: published),
                Operation("diff", DiffRequest.self, access: .read, handler: diff),
                Operation(
                    "explain",
                    access: .read,
                    decode: { [catalogue] in ExplainRequest.decode(from: $0, catalogue: catalogue) },
                    handler: explain
                ),
                Operation(
                    "subscribe",
                    access: .read,
                    decode: { [catalogue] in SubscribeRequest.decode(from: $0, catalogue: catalogue) },
                    handler: subscribe
                ),
                Operation("unsubscribe", UnsubscribeRequest.self, access: .read, handler: unsubscribe),
            ]
        )
    }

    // MARK: - Requests

    /// What every read takes: wait for `min_seq` (at most `timeout_ms`), or read as of a seq
    /// (`as_of_seq`) or of a time (`as_of`: what was known then, the newest seq numbered by then).
    struct ReadConsistency: Sendable {
        var minSeq: Int64?
        var timeoutMilliseconds: Int64
        var asOfSeq: Int64?
        var asOf: Timestamp?
        /// A watermark the caller has already read (a subscription's refresh): no need to ask.
        var knownApplied: Int64?

        init(from reader: FieldReader) {
            minSeq = reader.integer("min_seq", in: 0...Int64.max)
            timeoutMilliseconds =
                reader.integer("timeout_ms", in: 0...ReportingOperations.maximumTimeoutMilliseconds)
                ?? ReportingOperations.defaultTimeoutMilliseconds
            asOfSeq = reader.integer("as_of_seq", in: 0...Int64.max)
            asOf = reader.parsed(
                "as_of",
                expected: "an RFC 3339 time such as 2023-02-06T15:00:00Z or 2023-02-06T10:00:00-05:00",
                Timestamp.init(rfc3339:)
            )
            if asOf != nil, asOfSeq != nil {
                reader.report("as_of", code: "invalid", "give as_of or as_of_seq, not both")
            }
        }

        /// Answering as of a seq needs everything up to it applied.
        var waitFor: Int64? {
            guard let asOfSeq else { return minSeq }
            return max(minSeq ?? 0, asOfSeq)
        }
    }

    /// `{"op":"indicators"}`.
    struct IndicatorsRequest: OperationInput {
        var read: ReadConsistency

        static func decode(from reader: FieldReader) -> IndicatorsRequest? {
            IndicatorsRequest(read: ReadConsistency(from: reader))
        }
    }

    /// How `totals` answers its rows.
    enum TotalsFormat: String, CaseIterable, Sendable {
        /// `rows`, JSON objects.
        case json
        /// `text`: RFC 4180.
        case csv
        /// `dataValueSet`: a DHIS2 `dataValueSets` document (grouped as DHIS2 keeps values).
        case dhis2
        /// `text`: one reporter's IATI 2.03 activity file (results by indicator and period).
        case iati
    }

    /// `{"op":"totals","indicator":…,"country":…,"reporter":…,"pillar":…,"period_from":…,"period_to":…,"group_by":[…]}`.
    struct TotalsRequest: Sendable {
        var read: ReadConsistency
        var indicators: [String]?
        var countries: [String]?
        var reporters: [String]?
        var pillars: [String]?
        var from: Period?
        var to: Period?
        /// Per dimension index, the values a cell must have.
        var dimensions: [Int: [String]]
        var groupBy: [ReportingQueries.GroupKey]
        /// Add each row's target and the share achieved, where the row has one.
        var targets = false
        /// How the rows are answered.
        var format = TotalsFormat.json

        /// The indicators asked for, narrowed to the pillars asked for; `nil` for all.
        func indicators(in catalogue: Catalogue) -> [String]? {
            guard let pillars else { return indicators }
            let inPillars = catalogue.indicators.filter { pillars.contains($0.pillar) }.map(\.code)
            return indicators.map { codes in codes.filter(inPillars.contains) } ?? inPillars
        }

        /// The query filters this request asks for (pillars as their indicators).
        func filters(in catalogue: Catalogue) -> ReportingQueries.Filters {
            ReportingQueries.Filters(
                indicators: indicators(in: catalogue),
                countries: countries,
                reporters: reporters,
                from: from?.start,
                to: to?.end,
                dimensions: dimensions
            )
        }

        /// Reads the request; names must exist in `catalogue` (a typo must not read as "no data").
        static func decode(from reader: FieldReader, catalogue: Catalogue) -> TotalsRequest? {
            let read = ReadConsistency(from: reader)
            func names(_ key: String, _ exists: (String) -> Bool, _ what: String) -> [String]? {
                let values = reader.stringList(key)
                for (i, value) in (values ?? []).enumerated() where !exists(value) {
                    reader.report(
                        Problem(
                            path: "\(key)[\(i)]",
                            code: "invalid",
                            message: "'\(value)' is not \(what) in the catalogue"
                        )
                    )
                }
                return values
            }
            let indicators = names("indicator", { catalogue.indicator($0) != nil }, "an indicator")
            let countries = names("country", catalogue.hasCountry, "a country")
            let reporters = names("reporter", catalogue.hasReporter, "a reporter")
            let pillars = names("pillar", catalogue.hasPillar, "a pillar")
            let periodForms = "a period: 2023, 2023Q1, 2023-01, FY2023 or FY2023Q1"
            let from = reader.parsed("period_from", expected: periodForms, Period.parse)
            let to = reader.parsed("period_to", expected: periodForms, Period.parse)
            var dimensions: [Int: [String]] = [:]
            for (index, dimension) in catalogue.dimensions.enumerated() {
                let allowed = Set(dimension.values)
                if let values = names(dimension.name, allowed.contains, "a value of \(dimension.name)") {
                    dimensions[index] = values
                }
            }
            var groupBy: [ReportingQueries.GroupKey] = []
            let keyNames = ReportingQueries.GroupKey.names(in: catalogue)
            if let list = reader.array("group_by") {
                for (i, element) in list.enumerated() {
                    if let name = element.stringValue,
                        let key = ReportingQueries.GroupKey.named(name, catalogue: catalogue)
                    {
                        if !groupBy.contains(key) { groupBy.append(key) }
                    } else {
                        reader.report(
                            Problem(
                                path: "group_by[\(i)]",
                                code: "invalid",
                                message:
                                    "group_by takes \(keyNames.dropLast().joined(separator: ", ")) or \(keyNames.last!)"
                            )
                        )
                    }
                }
            }
            let format = reader.object["format"]?.stringValue
            if format == TotalsFormat.iati.rawValue, reporters?.count != 1 {
                reader.report(
                    Problem(
                        path: "reporter",
                        code: "invalid",
                        message: "an IATI activity file is one reporter's: give exactly one reporter"
                    )
                )
            }
            if format == TotalsFormat.dhis2.rawValue || format == TotalsFormat.iati.rawValue,
                reader.object["targets"] == true
            {
                reader.report(
                    Problem(
                        path: "targets",
                        code: "invalid",
                        message: "targets are a sheet's column, not part of a \(format ?? "") export: leave targets out"
                    )
                )
            }
            if format == TotalsFormat.dhis2.rawValue || format == TotalsFormat.iati.rawValue,
                reader.object["group_by"] != nil
            {
                reader.report(
                    Problem(
                        path: "group_by",
                        code: "invalid",
                        message: format == TotalsFormat.iati.rawValue
                            ? "an IATI export is grouped as IATI results are (indicator, period, country and cell): leave group_by out"
                            : "a DHIS2 export is grouped as DHIS2 stores values (data element, period, org unit, category and attribute option combos): leave group_by out"
                    )
                )
            }
            return TotalsRequest(
                read: read,
                indicators: indicators,
                countries: countries,
                reporters: reporters,
                pillars: pillars,
                from: from,
                to: to,
                dimensions: dimensions,
                groupBy: groupBy,
                targets: reader.bool("targets") ?? false,
                format: TotalsFormat(rawValue: reader.oneOf("format", TotalsFormat.allCases.map(\.rawValue)) ?? "json")
                    ?? .json
            )
        }
    }

    /// `{"op":"factsheet","date":"2023-02-06","format":"markdown"}` (or `json`, or `html`).
    struct FactSheetRequest: OperationInput {
        enum Format: String, CaseIterable {
            case markdown, json, html
        }

        var read: ReadConsistency
        var date: Day?
        var format: Format
        var json: Bool { format == .json }
        /// A published fact sheet to answer as it was published.
        var publishedID: String?

        static func decode(from reader: FieldReader) -> FactSheetRequest? {
            let read = ReadConsistency(from: reader)
            let format = reader.oneOf("format", Format.allCases.map(\.rawValue)).flatMap(Format.init) ?? .markdown
            let date = reader.parsed("date", expected: "a day written YYYY-MM-DD, from 1900 to 9999") { Day(iso: $0) }
            let publishedID = reader.string("published_id")
            ReportingOperations.checkIdentifier(publishedID, "published_id", in: reader)
            if publishedID != nil {
                // A published fact sheet is fixed: nothing may re-pin or re-date it.
                for key in ["date", "as_of_seq", "as_of"] where reader.value(key) != nil {
                    reader.report(key, code: "invalid", "a published fact sheet is fixed: leave out '\(key)'")
                }
            }
            return FactSheetRequest(read: read, date: date, format: format, publishedID: publishedID)
        }
    }

    /// `{"op":"publish","publication_id":"…","date":"2023-02-06"}`, pinned like every read.
    struct PublishRequest: OperationInput {
        static let maximumIDBytes = 200
        var read: ReadConsistency
        var publicationID: String
        var date: Day?

        static func decode(from reader: FieldReader) -> PublishRequest? {
            let read = ReadConsistency(from: reader)
            let id = reader.string("publication_id", required: true)
            ReportingOperations.checkIdentifier(id, "publication_id", in: reader)
            let date = reader.parsed("date", expected: "a day written YYYY-MM-DD, from 1900 to 9999") { Day(iso: $0) }
            guard let id else { return nil }
            return PublishRequest(read: read, publicationID: id, date: date)
        }
    }

    /// A publication id names one that may exist: 1 to 200 bytes of UTF-8 without control
    /// characters (a NUL could not even be sent to the database).
    static func checkIdentifier(_ id: String?, _ key: String, in reader: FieldReader) {
        guard let id else { return }
        if id.isEmpty || id.utf8.count > PublishRequest.maximumIDBytes
            || id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        {
            reader.report(
                key,
                code: "invalid",
                "'\(key)' must be 1 to \(PublishRequest.maximumIDBytes) bytes of UTF-8 without control characters"
            )
        }
    }

    /// `{"op":"published"}`: every publication.
    struct PublishedRequest: OperationInput {
        static func decode(from reader: FieldReader) -> PublishedRequest? { PublishedRequest() }
    }

    /// `{"op":"diff","from":"…","to":"…"}`: two publications, or one and now (`to` left out,
    /// pinned like every read).
    struct DiffRequest: OperationInput {
        static let maximumChanges = 100
        var read: ReadConsistency
        var from: String
        var to: String?

        static func decode(from reader: FieldReader) -> DiffRequest? {
            let read = ReadConsistency(from: reader)
            let from = reader.string("from", required: true)
            let to = reader.string("to")
            ReportingOperations.checkIdentifier(from, "from", in: reader)
            ReportingOperations.checkIdentifier(to, "to", in: reader)
            if to != nil {
                for key in ["as_of_seq", "as_of"] where reader.value(key) != nil {
                    reader.report(key, code: "invalid", "'\(key)' pins now; with 'to' both sides are published")
                }
            }
            guard let from else { return nil }
            return DiffRequest(read: read, from: from, to: to)
        }
    }

    /// `{"op":"history","reporter":"USAID","submission_id":"…"}`.
    struct HistoryRequest: OperationInput {
        var reporter: String
        var submissionID: String

        static func decode(from reader: FieldReader) -> HistoryRequest? {
            let reporter = reader.string("reporter", required: true)
            let submissionID = reader.string("submission_id", required: true)
            guard let reporter, let submissionID else { return nil }
            return HistoryRequest(reporter: reporter, submissionID: submissionID)
        }
    }

    // MARK: - Handlers

    func indicators(_ request: IndicatorsRequest, context: RequestContext) async throws -> AnswerFields {
        let applied = try await waitForApplied(request.read)
        return [("applied_seq", .int(applied))] + (catalogue.json.objectValue ?? [])
    }

    func totals(_ asked: TotalsRequest, context: RequestContext) async throws -> AnswerFields {
        var grouped = asked
        if grouped.format == .dhis2 {
            guard dhis2 != nil else {
                throw ProtocolError(
                    .unavailable,
                    "this reporting instance has no DHIS2 mapping (--dhis2-mapping or ROOTCAUSES_DHIS2_MAPPING)"
                )
            }
            // As DHIS2 keeps values: one per data element, period, org unit, cell and reporter.
            grouped.groupBy =
                [.indicator, .country, .period, .reporter] + catalogue.dimensions.indices.map { .dimension($0) }
        }
        if grouped.format == .iati {
            // As IATI results are: per indicator and period, one actual per country and cell.
            grouped.groupBy = [.indicator, .country, .period] + catalogue.dimensions.indices.map { .dimension($0) }
        }
        let request = grouped
        let filters = request.filters(in: catalogue)
        let (applied, pinned, totals, overlaps) = try await pinnedReadWithBounds(
            request.read,
            totals: { asOfSeq in
                var pinned = filters
                pinned.asOfSeq = asOfSeq
                return try await queries.totals(filters: pinned, groupBy: request.groupBy, catalogue: catalogue)
            },
            bounds: { [catalogue, queries] asOfSeq in
                try await OverlapBounds(
                    request,
                    filters: filters,
                    asOfSeq: asOfSeq,
                    catalogue: catalogue,
                    queries: queries
                )
            }
        )
        let targets = try await request.targets ? TargetScope(request, catalogue: catalogue, queries: queries) : nil
        // The JSON rows, for the formats made of them (DHIS2 and IATI read the totals directly).
        func jsonRows() -> [JSON] {
            totals.rows.map { row in
                var json = totalsRow(row, groupBy: request.groupBy)
                if let bounds = overlaps?.bounds(of: row) {
                    json = json.setting("value", to: .number("\(bounds.value)"))
                    if let lower = bounds.lower {
                        json = json.setting("lower", to: .number("\(lower)"))
                        json = json.setting("upper", to: .number("\(bounds.value)"))
                    }
                }
                if let target = targets?.target(of: row) {
                    json = json.setting("target", to: .number("\(target.target)"))
                    json = json.setting("achieved", to: target.achieved.map { .number("\($0)") } ?? .null)
                }
                return json
            }
        }
        switch request.format {
        case .json:
            return [("applied_seq", .int(applied)), ("as_of_seq", .int(pinned)), ("rows", .array(jsonRows()))]
        case .dhis2:
            return [
                ("applied_seq", .int(applied)),
                ("as_of_seq", .int(pinned)),
                ("format", "dhis2"),
                ("dataValueSet", ["dataValues": .array(try totals.rows.map(dhis2DataValue))]),
            ]
        case .iati:
            let code = request.reporters?.first ?? ""
            let name = catalogue.reporters.first { $0.code == code }?.name ?? code
            var file = IATIActivityFile(reporter: (code, name), catalogue: catalogue)
            for row in totals.rows {
                func key(_ name: String) -> String { (row.keys[name] ?? nil) ?? "" }
                guard let start = Day(iso: key("period_start"), years: 1...9999),
                    let end = Day(iso: key("period_end"), years: 1...9999)
                else { continue }
                var cell: [(String, String)] = []
                for (index, dimension) in catalogue.dimensions.enumerated() {
                    if let value = row.keys["dimension_\(index)"] ?? nil { cell.append((dimension.name, value)) }
                }
                file.add(
                    indicator: key("indicator"),
                    period: Period(start: start, end: end),
                    actual: .init(
                        country: key("country"),
                        cell: cell,
                        value: canonicalNumber(row.value),
                        estimate: row.estimate
                    )
                )
            }
            return [
                ("applied_seq", .int(applied)),
                ("as_of_seq", .int(pinned)),
                ("format", "iati"),
                ("text", .string(file.xml(generatedAt: IATIActivityFile.now()))),
            ]
        case .csv:
            break
        }
        let rows = jsonRows()
        // The same rows as a sheet: one column per member a JSON row can have (bounds only when
        // some total is unresolved, targets only when asked), empty where a row has none.
        var columns = totalsColumns(groupBy: request.groupBy)
        if rows.contains(where: { $0["lower"] != nil }) { columns += ["lower", "upper"] }
        if request.targets { columns += ["target", "achieved"] }
        return [
            ("applied_seq", .int(applied)),
            ("as_of_seq", .int(pinned)),
            ("format", "csv"),
            ("text", .string(CSV.table(columns: columns, rows: rows))),
        ]
    }

    /// A totals row grouped as DHIS2 keeps values, as a DHIS2 data value (values are strings in
    /// DHIS2's JSON; an estimate is marked by its comment).
    private func dhis2DataValue(_ row: ReportingQueries.TotalRow) throws -> JSON {
        guard let mapping = dhis2 else { throw PostgresError(code: .unexpectedResult, message: "no DHIS2 mapping") }
        func key(_ name: String) -> String { (row.keys[name] ?? nil) ?? "" }
        var cell: [(String, String)] = []
        for (index, dimension) in catalogue.dimensions.enumerated() {
            if let value = row.keys["dimension_\(index)"] ?? nil { cell.append((dimension.name, value)) }
        }
        let period = Day(iso: key("period_start"), years: 1...9999).flatMap { start in
            Day(iso: key("period_end"), years: 1...9999).map { Period(start: start, end: $0) }
        }
        guard let dataElement = mapping.dataElements[key("indicator")], let orgUnit = mapping.orgUnits[key("country")],
            let attributeOptionCombo = mapping.attributeOptionCombos[key("reporter")],
            let categoryOptionCombo = mapping.categoryOptionCombos[DHIS2Mapping.cellKey(cell)],
            let periodID = period.flatMap(DHIS2Mapping.periodID)
        else {
            throw ProtocolError(
                .validationFailed,
                "a total cannot be written for DHIS2: \(key("indicator")) \(key("country")) \(key("reporter")) \(period?.label ?? "?") has no DHIS2 mapping or period type"
            )
        }
        var value: [(String, JSON)] = [
            ("dataElement", .string(dataElement)), ("period", .string(periodID)), ("orgUnit", .string(orgUnit)),
            ("categoryOptionCombo", .string(categoryOptionCombo)),
            ("attributeOptionCombo", .string(attributeOptionCombo)), ("value", .string(canonicalNumber(row.value))),
        ]
        if row.estimate { value.append(("comment", "estimate")) }
        return .object(value)
    }

    /// The members of a totals row for these group keys, in `totalsRow`'s order.
    private func totalsColumns(groupBy: [ReportingQueries.GroupKey]) -> [String] {
        var columns: [String] = []
        for key in groupBy {
            switch key {
            case .period: columns += ["period", "period_start", "period_end"]
            case .dimension(let index): columns.append(catalogue.dimensions[index].name)
            case .indicator: columns += ["indicator", "unit"]
            case .country, .reporter, .pillar: columns.append(key.columns[0])
            }
        }
        if !columns.contains("unit") { columns.append("unit") }
        return columns + ["value", "submissions", "estimate"]
    }

    func factSheet(_ request: FactSheetRequest, context: RequestContext) async throws -> AnswerFields {
        if request.format == .html { return try await htmlFactSheet(request) }
        if let id = request.publishedID { return try await publishedFactSheet(id: id, json: request.json) }
        let (applied, pinned, sheet) = try await renderFactSheet(date: request.date ?? Day.today(), read: request.read)
        var fields: AnswerFields = [("applied_seq", .int(applied)), ("as_of_seq", .int(pinned))]
        if request.json {
            fields.append(("format", "json"))
            fields += sheet.json.objectValue ?? []
        } else {
            fields += [("format", "markdown"), ("text", .string(sheet.markdown))]
        }
        return fields
    }

    /// Fills the template for `date` from totals pinned like every read. Asking again with the
    /// same date and the answer's as_of_seq gives the same fact sheet, whatever arrived since.
    func renderFactSheet(
        date: Day,
        read: ReadConsistency
    ) async throws -> (applied: Int64, asOfSeq: Int64, sheet: FactSheet) {
        let (applied, inputs) = try await factSheetInputs(date: date, read: read)
        return (applied, inputs.asOfSeq, template.render(date: date, catalogue: catalogue, total: inputs.total(of:)))
    }

    /// Everything the fact sheet's numbers for `date` are made of, pinned like every read.
    /// `sharesAchieved: false` leaves out the share-of-target numbers' reads (a chart's earlier
    /// quarters draw totals only).
    func factSheetInputs(
        date: Day,
        read: ReadConsistency,
        sharesAchieved withShares: Bool = true
    ) async throws -> (applied: Int64, inputs: FactSheetInputs) {
        // Figures of all reporters that may overlap: deduplicated where resolved, bounded where not.
        let (applied, pinned, totals, overlaps) = try await pinnedReadWithBounds(
            read,
            totals: { asOfSeq in
                try await queries.totals(
                    filters: ReportingQueries.Filters(startedBy: date, asOfSeq: asOfSeq),
                    groupBy: [.indicator, .country, .reporter],
                    catalogue: catalogue
                )
            },
            bounds: { [catalogue, queries] asOfSeq in
                try await OverlapBounds(
                    groupBy: [.indicator, .country],
                    filters: ReportingQueries.Filters(startedBy: date, asOfSeq: asOfSeq),
                    asOfSeq: asOfSeq,
                    catalogue: catalogue,
                    queries: queries
                )
            }
        )
        // Exact numbers for the sums; a value PostgreSQL spelled in a way Decimal cannot read is an error.
        let series = try totals.rows.map { row in
            FactSheetInputs.Series(row: row, exact: try Decimal.decode(postgresText: row.value))
        }
        let inputs = FactSheetInputs(
            date: date,
            asOfSeq: pinned,
            // Each placeholder names one indicator: look at its rows only.
            byIndicator: Dictionary(grouping: series) { ($0.row.keys["indicator"] ?? nil) ?? "" },
            overlaps: overlaps,
            shares: withShares ? try await sharesAchieved(date: date, asOfSeq: pinned) : [:]
        )
        return (applied, inputs)
    }

    /// For each share-achieved placeholder: the reporter's result in the fiscal year (periods
    /// within it, started by the date, as of the pinned seq) and its target, the sum over the
    /// placeholder's countries when it set one for each.
    private func sharesAchieved(date: Day, asOfSeq: Int64) async throws -> [String: NumberTotal] {
        var shares: [String: NumberTotal] = [:]
        var targetsByYear: [Int: [(reporter: String, indicator: String, country: String, value: String)]] = [:]
        for placeholder in template.placeholders {
            guard let year = placeholder.achievedFiscalYear, let indicator = catalogue.indicator(placeholder.indicator),
                let reporter = placeholder.reporters?.first
            else { continue }
            let countries = placeholder.countries ?? indicator.countries
            let result = try await queries.totals(
                filters: ReportingQueries.Filters(
                    indicators: [indicator.code],
                    countries: countries,
                    reporters: [reporter],
                    from: Day(year: year - 1, month: 10, day: 1),
                    to: Day(year: year, month: 9, day: 30),
                    startedBy: date,
                    asOfSeq: asOfSeq
                ),
                groupBy: [],
                catalogue: catalogue
            )
            let row = result.rows.first
            if targetsByYear[year] == nil { targetsByYear[year] = try await queries.targets(fiscalYear: year) }
            var target: Decimal? = 0
            for country in countries {
                let set = targetsByYear[year]?.first {
                    $0.reporter == reporter && $0.indicator == indicator.code && $0.country == country
                }
                guard let set, let value = try? Decimal.decode(postgresText: set.value) else {
                    target = nil
                    break
                }
                target? += value
            }
            shares[placeholder.source] = NumberTotal(
                exact: try row.map { try Decimal.decode(postgresText: $0.value) } ?? 0,
                estimate: row?.estimate ?? false,
                submissionCount: row?.submissions ?? 0,
                target: target
            )
        }
        return shares
    }

    /// A published fact sheet exactly as it was published.
    private func publishedFactSheet(id: String, json: Bool) async throws -> AnswerFields {
        guard let stored = try await queries.publishedDocument(id: id) else {
            throw unknownPublication(id, path: "published_id")
        }
        let applied = try await queries.appliedSeq()
        var fields: AnswerFields = [("applied_seq", .int(applied))] + publicationFields(stored.publication)
        if json {
            // The document has its own date.
            fields.removeAll { $0.0 == "date" }
            guard let document = try? JSONParser.parse(stored.json), let members = document.objectValue else {
                throw PostgresError(
                    code: .unexpectedResult,
                    message: "publication \(id) holds JSON that does not parse"
                )
            }
            fields.append(("format", "json"))
            fields += members
        } else {
            fields += [("format", "markdown"), ("text", .string(stored.markdown))]
        }
        return fields
    }

    func publish(_ request: PublishRequest, context: RequestContext) async throws -> AnswerFields {
        let date = request.date ?? Day.today()
        let (applied, pinned, sheet) = try await renderFactSheet(date: date, read: request.read)
        let outcome: ReportingQueries.PublishOutcome
        do {
            outcome = try await queries.publish(
                id: request.publicationID,
                date: date,
                asOfSeq: pinned,
                templateSource: template.source,
                markdown: sheet.markdown,
                json: sheet.json.serialized,
                keyID: context.identity?.keyID
            )
        } catch let error as PostgresError where error.sqlState == "25006" {
            // read_only_sql_transaction: this instance reads a standby and was given no primary.
            throw ProtocolError(
                .unavailable,
                "this reporting instance reads a hot standby, which takes no writes; publish through an instance given the primary (--primary-database-url or ROOTCAUSES_PRIMARY_DATABASE_URL)",
                details: [["code": "read_only_database"]]
            )
        }
        let stored = outcome.publication
        if !outcome.inserted {
            // A retry is the same request again: what it left open (the date, the seq) may differ.
            let pinnedAgain = request.read.asOfSeq == nil && request.read.asOf == nil
            let same =
                outcome.sameTemplate && (request.date == nil || stored.date == date.description)
                && (pinnedAgain || stored.asOfSeq == pinned)
            guard same else {
                throw ProtocolError(
                    .conflict,
                    "publication_id '\(stored.id)' is taken by the fact sheet of \(stored.date) as of seq \(stored.asOfSeq)"
                        + (outcome.sameTemplate ? "" : " from another template")
                        + "; publish under a new id; nothing was changed",
                    details: [
                        .object([("publication_id", .string(stored.id))] + Array(publicationFields(stored).dropFirst()))
                    ]
                )
            }
        }
        return [("status", outcome.inserted ? "published" : "duplicate"), ("applied_seq", .int(applied))]
            + publicationFields(stored)
    }

    func published(_ request: PublishedRequest, context: RequestContext) async throws -> AnswerFields {
        let publications = try await queries.publications()
        return [("publications", .array(publications.map { .object(publicationFields($0)) }))]
    }

    func diff(_ request: DiffRequest, context: RequestContext) async throws -> AnswerFields {
        guard let old = try await queries.publishedDocument(id: request.from) else {
            throw unknownPublication(request.from, path: "from")
        }
        guard let date = Day(iso: old.publication.date, years: 1...9999) else {
            throw PostgresError(code: .unexpectedResult, message: "publication \(request.from) has no valid date")
        }
        let oldNumbers = try Self.numbers(inStored: old.json, id: request.from)
        let newNumbers: [(key: String, number: JSON)]
        let newSeq: Int64
        let toFields: AnswerFields
        // Changes count up to the later date of the two: a number can move because more periods started.
        var changesDate = date
        if let to = request.to {
            guard let new = try await queries.publishedDocument(id: to) else {
                throw unknownPublication(to, path: "to")
            }
            newNumbers = try Self.numbers(inStored: new.json, id: to)
            newSeq = new.publication.asOfSeq
            toFields = publicationFields(new.publication)
            if let newDate = Day(iso: new.publication.date, years: 1...9999), newDate > date { changesDate = newDate }
        } else {
            // Now: the same date filled from the data as it is, pinned like every read.
            let (applied, pinned, sheet) = try await renderFactSheet(date: date, read: request.read)
            newNumbers = Self.numbers(in: sheet.json)
            newSeq = pinned
            toFields = [("as_of_seq", .int(pinned)), ("applied_seq", .int(applied))]
        }
        let newByKey = Dictionary(newNumbers.map { ($0.key, $0.number) }) { first, _ in first }
        let oldKeys = Set(oldNumbers.map(\.key))
        // The older document's numbers in its order, then those only the newer one has.
        let entries =
            oldNumbers.map { (key: $0.key, before: Optional($0.number), after: newByKey[$0.key]) }
            + newNumbers.filter { !oldKeys.contains($0.key) }.map {
                (key: $0.key, before: nil, after: Optional($0.number))
            }
        var moved: [JSON] = []
        var unchanged = 0
        for entry in entries {
            if let before = entry.before, let after = entry.after, Self.phrase(before) == Self.phrase(after) {
                unchanged += 1
                continue
            }
            guard let sample = entry.after ?? entry.before, let indicator = sample["indicator"]?.stringValue else {
                continue
            }
            let countries = sample["countries"]?.arrayValue?.compactMap(\.stringValue)
            let reporters = sample["reporters"]?.arrayValue?.compactMap(\.stringValue)
            let (count, first) = try await queries.changes(
                after: min(old.publication.asOfSeq, newSeq),
                through: max(old.publication.asOfSeq, newSeq),
                indicator: indicator,
                countries: countries,
                reporters: reporters,
                date: changesDate,
                limit: DiffRequest.maximumChanges
            )
            var fields: [(String, JSON)] = [("indicator", .string(indicator))]
            if let countries { fields.append(("countries", .array(countries.map(JSON.string)))) }
            if let reporters { fields.append(("reporters", .array(reporters.map(JSON.string)))) }
            fields += [
                ("from", entry.before.map(Self.phrase) ?? .null),
                ("to", entry.after.map(Self.phrase) ?? .null),
                ("change_count", .int(count)),
                ("changes", .array(first.map(Self.changeJSON))),
            ]
            moved.append(.object(fields))
        }
        return [
            ("from", .object(publicationFields(old.publication))),
            ("to", .object(toFields)),
            ("numbers", .array(moved)),
            ("unchanged", .int(unchanged)),
        ]
    }

    /// A stored cell (`age=15-19;sex=female`) as the `disaggregation` object a client sent, or
    /// `nil` for the whole.
    static func disaggregation(ofCell cell: String) -> JSON? {
        guard !cell.isEmpty else { return nil }
        return .object(
            cell.split(separator: ";").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), .string(parts.count > 1 ? String(parts[1]) : ""))
            }
        )
    }

    // MARK: - Publications

    func unknownPublication(_ id: String, path: String) -> ProtocolError {
        ProtocolError.validationFailed(
            [Problem(path: path, code: "unknown_publication", message: "there is no publication '\(id)'")],
            lead: "no such publication"
        )
    }

    func publicationFields(_ publication: ReportingQueries.Publication) -> AnswerFields {
        [
            ("publication_id", .string(publication.id)),
            ("date", .string(publication.date)),
            ("as_of_seq", .int(publication.asOfSeq)),
            ("template_digest", .string(publication.templateDigest)),
            ("published_at", .string(publication.publishedAt)),
        ] + (publication.keyID.map { [("key_id", .string($0))] } ?? [])
    }

    /// The numbers of a fact sheet's JSON in order, each once, by what decides its total: the
    /// indicator and the countries and reporters it is limited to (phrasing aside).
    static func numbers(in sheet: JSON) -> [(key: String, number: JSON)] {
        var seen = Set<String>()
        var result: [(key: String, number: JSON)] = []
        for highlight in sheet["highlights"]?.arrayValue ?? [] {
            for number in highlight["numbers"]?.arrayValue ?? [] {
                let key = [number["indicator"], number["countries"], number["reporters"]]
                    .map { $0?.serialized ?? "" }.joined(separator: " ")
                if seen.insert(key).inserted { result.append((key, number)) }
            }
        }
        return result
    }

    private static func numbers(inStored text: String, id: String) throws -> [(key: String, number: JSON)] {
        guard let sheet = try? JSONParser.parse(text) else {
            throw PostgresError(code: .unexpectedResult, message: "publication \(id) holds JSON that does not parse")
        }
        return numbers(in: sheet)
    }

    /// How a number read: its exact total, its words, and whether it is an estimate.
    private static func phrase(_ number: JSON) -> JSON {
        .object([
            ("exact", number["exact"] ?? .null), ("text", number["text"] ?? .null),
            ("estimate", number["estimate"] ?? .null),
        ])
    }

    private static func changeJSON(_ change: ReportingQueries.Change) -> JSON {
        var members: [(String, JSON)] = [("seq", .int(change.seq))]
        if let reporter = change.reporter { members.append(("reporter", .string(reporter))) }
        if let id = change.submissionID { members.append(("submission_id", .string(id))) }
        if let id = change.adjustmentID { members.append(("adjustment_id", .string(id))) }
        members.append(("kind", .string(change.kind)))
        if let method = change.method { members.append(("method", .string(method))) }
        if let target = change.targetSeq {
            members.append((change.kind == "retraction" ? "retracted_seq" : "replaced_seq", .int(target)))
        }
        if let reason = change.reason { members.append(("reason", .string(reason))) }
        return .object(members)
    }

    func history(_ request: HistoryRequest, context: RequestContext) async throws -> AnswerFields {
        let versions = try await queries.history(reporter: request.reporter, submissionID: request.submissionID)
        guard !versions.isEmpty else {
            throw ProtocolError.validationFailed(
                [
                    Problem(
                        path: "submission_id",
                        code: "unknown_submission",
                        message: "\(request.reporter) has no submission '\(request.submissionID)'"
                    )
                ],
                lead: "no history"
            )
        }
        return [
            ("reporter", .string(request.reporter)),
            ("submission_id", .string(request.submissionID)),
            ("versions", .array(versions.map(versionJSON))),
        ]
    }

    // MARK: - Answers

    private func versionJSON(_ version: ReportingQueries.Version) -> JSON {
        let status =
            version.supersededBySeq == nil
            ? "current" : version.supersededByRetraction == true ? "retracted" : "replaced"
        var members: [(String, JSON)] = [
            ("seq", .int(version.seq)),
            ("submission_id", .string(version.submissionID)),
            ("status", .string(status)),
            ("received_at", .string(version.receivedAt)),
            ("period", .string(version.period)),
        ]
        if let activity = version.activity { members.append(("activity", .string(activity))) }
        if let seq = version.supersededBySeq {
            members.append((status == "retracted" ? "retracted_seq" : "replaced_by_seq", .int(seq)))
            if let at = version.supersededAt {
                members.append((status == "retracted" ? "retracted_at" : "replaced_at", .string(at)))
            }
        }
        if let reason = version.reason { members.append(("reason", .string(reason))) }
        // Who sent it, and who superseded it: the API keys (absent for data sent before keys).
        if let key = version.keyID { members.append(("key_id", .string(key))) }
        if let key = version.supersededByKeyID {
            members.append((status == "retracted" ? "retracted_by_key_id" : "replaced_by_key_id", .string(key)))
        }
        members.append(
            (
                "values",
                .array(
                    version.values.map { value in
                        var entry: [(String, JSON)] = [
                            ("indicator", .string(value.indicator)), ("country", .string(value.country)),
                        ]
                        if let cell = Self.disaggregation(ofCell: value.cell) { entry.append(("disaggregation", cell)) }
                        entry.append(("value", .number(canonicalNumber(value.value))))
                        if value.estimate { entry.append(("estimate", true)) }
                        return .object(entry)
                    }
                )
            )
        )
        return .object(members)
    }

    /// Runs `read` pinned to a seq: the read's `as_of_seq`, or the applied watermark when it
    /// starts. A read that waits for nothing takes the watermark in the same statement (one
    /// round trip); if that answer is empty it does not say which seq it was, so the read runs
    /// again pinned to a watermark read first. Returns the applied watermark and the answer.
    private func pinnedRead(
        _ request: ReadConsistency,
        _ read: (Int64?) async throws -> ReportingQueries.Totals
    ) async throws -> (applied: Int64, totals: ReportingQueries.Totals) {
        let consistency = try await resolvingTime(request)
        if consistency.waitFor == nil {
            let totals = try await read(nil)
            if let pinned = totals.asOfSeq { return (pinned, totals) }
        }
        let applied = try await waitForApplied(consistency)
        let asOfSeq = consistency.asOfSeq ?? applied
        var totals = try await read(asOfSeq)
        totals.asOfSeq = asOfSeq
        return (applied, totals)
    }

    /// A pinned read of totals with their overlap bounds read beside them, on a connection of
    /// their own and pinned the same way; read again at the totals' seq in the rare case
    /// aggregation moved between the two pins. Returns the seq both are as of.
    private func pinnedReadWithBounds(
        _ request: ReadConsistency,
        totals: (Int64?) async throws -> ReportingQueries.Totals,
        bounds: @escaping @Sendable (Int64?) async throws -> OverlapBounds?
    ) async throws -> (applied: Int64, asOfSeq: Int64, totals: ReportingQueries.Totals, overlaps: OverlapBounds?) {
        var overlaps: OverlapBounds?
        let (applied, read) = try await pinnedRead(request) { asOfSeq in
            async let beside = bounds(asOfSeq)
            let read = try await totals(asOfSeq)
            overlaps = try await beside
            return read
        }
        let pinned = read.asOfSeq ?? applied
        if let found = overlaps, found.asOfSeq != pinned { overlaps = try await bounds(pinned) }
        return (applied, pinned, read, overlaps)
    }

    /// The read with its `as_of` time turned into the `as_of_seq` it stands for: the newest seq
    /// numbered at or before it. A time still to come is refused: its answer could yet change.
    func resolvingTime(_ read: ReadConsistency) async throws -> ReadConsistency {
        guard let asOf = read.asOf else { return read }
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(read.timeoutMilliseconds))
        let known = try await queries.newestSeq(numberedBy: asOf, deadline: deadline)
        guard !known.isFuture else {
            throw ProtocolError.validationFailed(
                [
                    Problem(
                        path: "as_of",
                        code: "future",
                        message: "as_of \(asOf) is later than the server's clock; what is known then is not known yet"
                    )
                ],
                lead: "as_of is in the future"
            )
        }
        var resolved = read
        resolved.asOf = nil
        resolved.asOfSeq = known.seq
        return resolved
    }

    /// Waits until every submission up to the read's seq is aggregated: it looks at the
    /// watermark again at every applied pass, or after ``watermarkPoll`` without one.
    func waitForApplied(_ request: ReadConsistency) async throws -> Int64 {
        let read = try await resolvingTime(request)
        if let known = read.knownApplied, known >= read.waitFor ?? 0 { return known }
        // Taken before each look: a pass applied during the look still wakes the wait after it.
        var seen = self.applied.generation
        var applied = try await queries.appliedSeq()
        guard let minSeq = read.waitFor, applied < minSeq else { return applied }
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(read.timeoutMilliseconds))
        while applied < minSeq {
            let now = ContinuousClock.now
            guard now < deadline else {
                throw ProtocolError(
                    .notReady,
                    "submissions up to seq \(minSeq) are not all aggregated yet (applied through \(applied)); retry later",
                    details: [["min_seq": .int(minSeq), "applied_seq": .int(applied)]]
                )
            }
            await self.applied.wait(after: seen, upTo: min(watermarkPoll(), now.duration(to: deadline)))
            try Task.checkCancellation()
            seen = self.applied.generation
            applied = try await queries.appliedSeq()
        }
        return applied
    }

    private func totalsRow(_ row: ReportingQueries.TotalRow, groupBy: [ReportingQueries.GroupKey]) -> JSON {
        var members: [(String, JSON)] = []
        for key in groupBy {
            switch key {
            case .period:
                // Stored dates, not a request's: any year PostgreSQL gave back is fine.
                let startText = (row.keys["period_start"] ?? nil) ?? ""
                let endText = (row.keys["period_end"] ?? nil) ?? ""
                let start = Day(iso: startText, years: 1...9999)
                let end = Day(iso: endText, years: 1...9999)
                if let start, let end { members.append(("period", .string(Period(start: start, end: end).label))) }
                members.append(("period_start", .string(startText)))
                members.append(("period_end", .string(endText)))
            case .dimension(let index):
                // A value not broken down by this dimension (the whole, or other dimensions): null.
                let value = (row.keys["dimension_\(index)"] ?? nil).map(JSON.string) ?? .null
                members.append((catalogue.dimensions[index].name, value))
            case .indicator:
                let code = (row.keys["indicator"] ?? nil) ?? ""
                members.append(("indicator", .string(code)))
                if let unit = catalogue.indicator(code)?.unit { members.append(("unit", .string(unit))) }
            case .country, .reporter, .pillar:
                let column = key.columns[0]
                members.append((column, .string((row.keys[column] ?? nil) ?? "")))
            }
        }
        if let unit = row.keys["unit"] { members.append(("unit", .string(unit ?? ""))) }
        members.append(("value", .number(canonicalNumber(row.value))))
        members.append(("submissions", .int(row.submissions)))
        members.append(("estimate", .bool(row.estimate)))
        return .object(members)
    }
}
