// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "rootcauses",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "intake", targets: ["intake"]),
        .executable(name: "aggregation", targets: ["aggregation"]),
        .executable(name: "reporting", targets: ["reporting"]),
        .executable(name: "rootcauses", targets: ["rootcauses"]),
        .library(name: "RootcausesTesting", targets: ["RootcausesTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.5.0"),
        // SHA-256 of API key secrets.
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // TLS on every port.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // Metrics: the API in every module, Prometheus text on the metrics port.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // The HTML fact sheet: elements built as values, text escaped by the builder.
        .package(url: "https://github.com/JohnSundell/Plot.git", from: "0.14.0"),
    ],
    targets: [
        // libpq, the PostgreSQL C client, as a system library.
        .systemLibrary(
            name: "CLibPQ",
            path: "Shared/CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // glibc's malloc_trim, for handing memory back after a burst.
        .target(name: "CMalloc", path: "Shared/CMalloc"),
        // A JSON value that keeps numbers exact and object keys in order.
        .target(name: "RootcausesJSON", path: "Shared/JSON"),
        // The domain: catalogue, periods, submissions and their validation, fact sheet phrasing.
        .target(
            name: "RootcausesModel",
            dependencies: ["RootcausesJSON", "RootcausesProtocol"],
            path: "Shared/Model"
        ),
        // A small, safe Swift layer over libpq: the PostgreSQL client, nothing else.
        .target(
            name: "RootcausesPostgres",
            dependencies: [
                "CLibPQ",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                // The pool's waiters.
                .product(name: "DequeModule", package: "swift-collections"),
                // The pool runs as a Service in the processes' ServiceGroup.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Shared/Postgres"
        ),
        // The database schema and its versioned migrations, shared by all services.
        .target(
            name: "RootcausesStorage",
            dependencies: [
                "RootcausesPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Shared/Storage"
        ),
        // The wire protocol's codec, with no I/O: envelope, error codes, problems, the field
        // reader, the op registry and the responder that turns request lines into answers.
        .target(
            name: "RootcausesProtocol",
            dependencies: [
                "RootcausesJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Shared/Protocol"
        ),
        // The protocol over TCP (SwiftNIO): line framing, the server with its limits, the client.
        .target(
            name: "RootcausesTransport",
            dependencies: [
                "RootcausesJSON", "RootcausesProtocol", "CMalloc",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Shared/Transport"
        ),
        // What every service process shares: options, logging, lifecycle, catalogue loading.
        .target(
            name: "RootcausesService",
            dependencies: [
                "RootcausesModel", "RootcausesProtocol", "RootcausesTransport", "RootcausesPostgres",
                "RootcausesStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                // The small HTTP port for /metrics, /healthz and /readyz.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Shared/Service"
        ),
        // Each service: its logic in a library (ops, handlers, SQL), testable in process, and
        // a small executable that parses options and runs it.
        .target(
            name: "IntakeService",
            dependencies: [
                "RootcausesService", "RootcausesModel", "RootcausesProtocol", "RootcausesTransport",
                "RootcausesPostgres", "RootcausesStorage",
                "RootcausesJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Services/Intake",
            exclude: ["Command"]
        ),
        .executableTarget(
            name: "intake",
            dependencies: [
                "IntakeService", "RootcausesService", "RootcausesTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/Intake/Command"
        ),
        .target(
            name: "AggregationService",
            dependencies: [
                "RootcausesService", "RootcausesModel", "RootcausesProtocol", "RootcausesPostgres", "RootcausesStorage",
                "RootcausesJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Services/Aggregation",
            exclude: ["Command"]
        ),
        .executableTarget(
            name: "aggregation",
            dependencies: [
                "AggregationService", "RootcausesService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/Aggregation/Command"
        ),
        .target(
            name: "ReportingService",
            dependencies: [
                "RootcausesService", "RootcausesModel", "RootcausesProtocol", "RootcausesPostgres", "RootcausesStorage",
                "RootcausesJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Plot", package: "Plot"),
                // Subscriptions run as a service beside the server, and count themselves.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Services/Reporting",
            exclude: ["Command"]
        ),
        .executableTarget(
            name: "reporting",
            dependencies: [
                "ReportingService", "RootcausesService", "RootcausesModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/Reporting/Command"
        ),
        // Running the stack on one machine: a private PostgreSQL cluster, the three services as
        // child processes, free ports. What `rootcauses demo`/`up`/`bench` run, and what tests run.
        .target(
            name: "RootcausesLocalStack",
            dependencies: [
                "RootcausesJSON", "RootcausesProtocol", "RootcausesTransport", "RootcausesPostgres",
                "RootcausesStorage",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Shared/LocalStack"
        ),
        // The client CLI: demo, up, submit, totals, factsheet, indicators, status, bench.
        .executableTarget(
            name: "rootcauses",
            dependencies: [
                "RootcausesLocalStack", "RootcausesService", "RootcausesModel", "RootcausesProtocol",
                "RootcausesTransport", "RootcausesPostgres", "RootcausesJSON", "RootcausesStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Services/CLI"
        ),
        // Fuzzing targets (libFuzzer, built by Tests/Fuzz/run); built plainly, each replays its
        // committed corpus.
        .target(name: "FuzzSupport", path: "Tests/Fuzz/Support"),
        .executableTarget(
            name: "fuzz-json",
            dependencies: ["FuzzSupport", "RootcausesJSON"],
            path: "Tests/Fuzz/JSON"
        ),
        .executableTarget(
            name: "fuzz-lines",
            dependencies: [
                "FuzzSupport", "RootcausesTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Tests/Fuzz/Lines"
        ),
        // Ships with the product as a testing library: a throwaway database per test, the stack
        // around a test body, request helpers. Only tests depend on it.
        .target(
            name: "RootcausesTesting",
            dependencies: [
                "RootcausesLocalStack", "RootcausesProtocol", "RootcausesTransport", "RootcausesPostgres",
                "RootcausesJSON",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/Testing"
        ),
        .testTarget(
            name: "UnitTests",
            dependencies: [
                "RootcausesModel", "RootcausesJSON", "RootcausesProtocol", "RootcausesTransport", "RootcausesPostgres",
                "RootcausesService", "RootcausesStorage", "IntakeService",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/UnitTests"
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "RootcausesTesting", "RootcausesLocalStack", "RootcausesJSON", "RootcausesModel",
                "RootcausesProtocol", "RootcausesTransport", "RootcausesPostgres", "RootcausesService",
                "IntakeService", "ReportingService", "AggregationService", "RootcausesStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                "intake", "aggregation", "reporting", "rootcauses",
            ],
            path: "Tests/IntegrationTests",
            // Read by path from the source tree (the seed, compared word for word), not bundled.
            exclude: ["Fixtures"]
        ),
    ]
)

// Every target: `any` spelled out for existentials, as the anchors do.
for target in package.targets where target.type != .system && target.name != "CMalloc" {
    target.swiftSettings = (target.swiftSettings ?? []) + [.enableUpcomingFeature("ExistentialAny")]
}
