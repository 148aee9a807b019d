import ArgumentParser
import Foundation

@main
struct RootcausesCommand: AsyncParsableCommand {
    static func main() async {
        // Output piped into `head` must not kill us before we shut down what we started.
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "rootcauses",
        abstract: "Rootcauses: results tracking for the U.S. Root Causes Strategy in Central America.",
        discussion:
            "'demo' and 'up' run the whole stack locally (a private PostgreSQL unless DATABASE_URL is set). The other commands talk to running services over the line protocol.",
        subcommands: [
            DemoCommand.self, UpCommand.self, SubmitCommand.self, RetractCommand.self, TotalsCommand.self,
            FactSheetCommand.self, PublishCommand.self, PublishedCommand.self, DiffCommand.self, ExplainCommand.self,
            TargetCommand.self, DeduplicateCommand.self, KeysCommand.self, ProvisionCommand.self,
            HistoryCommand.self,
            IndicatorsCommand.self, StatusCommand.self, ProbeCommand.self, ImportCommand.self, BenchCommand.self,
        ]
    )
}
