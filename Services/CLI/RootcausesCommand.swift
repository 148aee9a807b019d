import ArgumentParser

@main
struct RootcausesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rootcauses",
        abstract: "Rootcauses: results tracking for the U.S. Root Causes Strategy in Central America.",
        discussion: "'demo' and 'up' run the whole stack locally (a private PostgreSQL unless DATABASE_URL is set). The other commands talk to running services over the line protocol.",
        subcommands: [
            DemoCommand.self, UpCommand.self, SubmitCommand.self, TotalsCommand.self,
            FactSheetCommand.self, IndicatorsCommand.self, StatusCommand.self, BenchCommand.self,
        ])
}
