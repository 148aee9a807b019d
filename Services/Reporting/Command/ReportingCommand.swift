import ArgumentParser
import ReportingService
import RootcausesModel
import RootcausesPostgres
import RootcausesService

@main
struct ReportingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reporting",
        abstract: "Answers totals queries and renders fact sheets from the aggregates (default port 7403).",
        discussion:
            "Every read accepts min_seq and timeout_ms: it answers once every submission up to that seq is aggregated, so a client can read its own writes. See docs/PROTOCOL.md."
    )

    @OptionGroup var options: ServiceOptions

    @Option(
        name: .long,
        help: "Fact sheet template (Markdown). Env: ROOTCAUSES_FACTSHEET_TEMPLATE. Default: Deploy/config/factsheet.md."
    )
    var template: String?

    @Option(
        name: .customLong("primary-database-url"),
        help:
            "With --database-url naming a hot standby: the primary, where publish writes and which reads as of a time wait for. Env: ROOTCAUSES_PRIMARY_DATABASE_URL."
    )
    var primaryDatabaseURL: String?

    @Option(
        name: .customLong("dhis2-mapping"),
        help:
            "How the catalogue maps to DHIS2 metadata, for totals with format dhis2. Env: ROOTCAUSES_DHIS2_MAPPING. Default: Deploy/config/dhis2-mapping.json."
    )
    var dhis2Mapping: String?

    @Option(
        name: .customLong("watermark-poll-ms"),
        help:
            "How often a read waiting for min_seq, and the live subscriptions, look at the applied watermark when no notification of an applied pass came. Env: ROOTCAUSES_WATERMARK_POLL_MS. Default: 50. Every 5 ms instead while reporting is not listening for notifications, and with --primary-database-url (reads on a standby, which replays a pass after the primary notified it)."
    )
    var watermarkPollMilliseconds: Int?

    private func watermarkPoll() throws -> Duration {
        let milliseconds = try ServiceOptions.integer(
            watermarkPollMilliseconds,
            "ROOTCAUSES_WATERMARK_POLL_MS",
            default: 50,
            minimum: 1,
            name: "watermark-poll-ms"
        )
        guard milliseconds <= 3_600_000 else {
            throw ValidationError("--watermark-poll-ms takes 1 to 3600000 ms, not \(milliseconds)")
        }
        return .milliseconds(milliseconds)
    }

    func run() async throws {
        let watermarkPoll = try watermarkPoll()
        let templatePath =
            template ?? ServiceOptions.environment["ROOTCAUSES_FACTSHEET_TEMPLATE"] ?? findShippedFile("factsheet.md")
        guard let templatePath else {
            throw ValidationError("no fact sheet template found: pass --template or set ROOTCAUSES_FACTSHEET_TEMPLATE")
        }
        // Planning reporting's reads took longer than running them (at 10 M values, totals:
        // 1.3 ms of planning for 1.0 ms of execution; explain: 3 ms for 1 ms). Their SQL text
        // carries their shape, values alone are parameters, so one generic plan per statement
        // serves every read (docs/ROLLUPS.md, Costs).
        try await runService(
            name: "reporting",
            defaultPort: 7403,
            options: options,
            readsStandby: true,
            planCacheMode: .forceGeneric
        ) { context in
            let factSheet = try FactSheetTemplate.load(path: templatePath, catalogue: context.catalogue)
            context.logger.info(
                "fact sheet template loaded",
                metadata: [
                    "path": "\(templatePath)", "highlights": "\(factSheet.highlights.count)",
                ]
            )
            // A mapping asked for must load; the shipped one, found by default, only turns DHIS2
            // exports off when it does not cover the catalogue (a deployment with its own catalogue).
            let askedMapping = dhis2Mapping ?? ServiceOptions.environment["ROOTCAUSES_DHIS2_MAPPING"]
            var dhis2: DHIS2Mapping?
            if let askedMapping {
                dhis2 = try DHIS2Mapping.load(path: askedMapping, catalogue: context.catalogue)
            } else if let shipped = findShippedFile("dhis2-mapping.json") {
                do {
                    dhis2 = try DHIS2Mapping.load(path: shipped, catalogue: context.catalogue)
                } catch {
                    context.logger.warning(
                        "the shipped DHIS2 mapping does not fit the catalogue; DHIS2 exports are off",
                        metadata: ["error": "\(error)"]
                    )
                }
            }
            if dhis2 != nil { context.logger.info("DHIS2 mapping loaded") }
            let primaryURL = primaryDatabaseURL ?? ServiceOptions.environment["ROOTCAUSES_PRIMARY_DATABASE_URL"]
            // Few connections: only publications and the wait of reads as of a time use it.
            let primary = primaryURL.flatMap { $0.isEmpty ? nil : $0 }.map { url in
                PostgresPool(
                    conninfo: url,
                    maximumConnections: 2,
                    applicationName: "rootcauses-reporting-primary",
                    logger: context.logger,
                    metricsName: "primary"
                )
            }
            if primary != nil { context.logger.info("writes go to the primary; reads to --database-url") }
            let operations = ReportingOperations(
                catalogue: context.catalogue,
                template: factSheet,
                pool: context.pool,
                primary: primary,
                dhis2: dhis2,
                watermarkPoll: watermarkPoll,
                logger: context.logger
            )
            return (
                operations.registry,
                (primary.map { [$0] } ?? []) + [operations.subscriptions, operations.listener]
            )
        }
    }
}
