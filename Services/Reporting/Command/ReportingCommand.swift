import ArgumentParser
import ReportingService
import RootcausesModel
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

    func run() async throws {
        let templatePath =
            template ?? ServiceOptions.environment["ROOTCAUSES_FACTSHEET_TEMPLATE"] ?? findShippedFile("factsheet.md")
        guard let templatePath else {
            throw ValidationError("no fact sheet template found: pass --template or set ROOTCAUSES_FACTSHEET_TEMPLATE")
        }
        try await runService(name: "reporting", defaultPort: 7403, options: options) { context in
            let factSheet = try FactSheetTemplate.load(path: templatePath, catalogue: context.catalogue)
            context.logger.info(
                "fact sheet template loaded",
                metadata: [
                    "path": "\(templatePath)", "highlights": "\(factSheet.highlights.count)",
                ]
            )
            let operations = ReportingOperations(catalogue: context.catalogue, template: factSheet, pool: context.pool)
            return (operations.registry, [])
        }
    }
}
