import ArgumentParser
import IntakeService
import RootcausesService
import RootcausesTransport

@main
struct IntakeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "intake",
        abstract: "Accepts result submissions over the Rootcauses line protocol (default port 7401).",
        discussion:
            "Validates each submission against the catalogue, stores it and its values in one transaction, answers with its sequence number only after the commit, then nudges aggregation. See docs/PROTOCOL.md."
    )

    @OptionGroup var options: ServiceOptions

    @Option(
        name: .long,
        help:
            "Aggregation instances to nudge after each commit, host:port, comma-separated. Env: ROOTCAUSES_AGGREGATION. Default: 127.0.0.1:7402."
    )
    var aggregation: String?

    @Option(
        name: .customLong("aggregation-token-file"),
        help:
            "File holding the API key (admin scope) intake nudges aggregation with. Env: ROOTCAUSES_AGGREGATION_TOKEN_FILE, or the token itself in ROOTCAUSES_AGGREGATION_TOKEN. Without one, aggregation learns of new submissions from PostgreSQL (it listens) and its poll."
    )
    var aggregationTokenFile: String?

    func run() async throws {
        let addresses = (aggregation ?? ServiceOptions.environment["ROOTCAUSES_AGGREGATION"] ?? "127.0.0.1:7402")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let token = try ServiceOptions.secret(
            file: aggregationTokenFile,
            fileVariable: "ROOTCAUSES_AGGREGATION_TOKEN_FILE",
            valueVariable: "ROOTCAUSES_AGGREGATION_TOKEN"
        )
        // Aggregation's ports speak TLS when a CA for them is given; intake's own certificate,
        // if any, identifies it to instances that require client certificates.
        let serving = try options.resolvedTLS()
        let aggregationTLS = try ServiceOptions.environment["ROOTCAUSES_AGGREGATION_TLS_CA"].map { ca in
            try TLSClientSettings(caPath: ca, certificatePath: serving?.certificatePath, keyPath: serving?.keyPath)
                .makeContext()
        }
        // Intake's statements are planned for longer than some of them run (the key check:
        // 0.12 ms of planning for 0.02 ms of work), and their plans do not depend on the
        // tables' sizes (look-ups by unique keys, inserts): PostgreSQL may keep generic plans.
        try await runService(name: "intake", defaultPort: 7401, options: options, planCacheMode: .automatic) {
            context in
            let nudger = AggregationNudger(
                addresses: addresses,
                token: token,
                tls: aggregationTLS,
                logger: context.logger
            )
            let operations = IntakeOperations(catalogue: context.catalogue, pool: context.pool, nudge: nudger.nudge)
            return (operations.registry, [nudger])
        }
    }
}
