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
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.5.0"),
    ],
    targets: [
        // libpq, the PostgreSQL C client, as a system library.
        .systemLibrary(
            name: "CLibPQ",
            path: "Shared/CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // A JSON value that keeps numbers exact and object keys in order.
        .target(name: "RootcausesJSON", path: "Shared/JSON"),
        // The domain: catalogue, periods, submissions and their validation, fact sheet phrasing.
        .target(
            name: "RootcausesModel",
            dependencies: ["RootcausesJSON"],
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
            ],
            path: "Shared/Postgres"
        ),
        // The database schema and its versioned migrations, shared by all services.
        .target(
            name: "RootcausesStorage",
            dependencies: [
                "RootcausesPostgres",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/Storage"
        ),
        // The line-delimited JSON wire protocol: framing, envelope, errors, server and client.
        .target(
            name: "RootcausesProtocol",
            dependencies: [
                "RootcausesJSON",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/Protocol"
        ),
        // What every service process shares: options, logging, lifecycle, catalogue loading.
        .target(
            name: "RootcausesService",
            dependencies: [
                "RootcausesModel", "RootcausesProtocol", "RootcausesPostgres", "RootcausesStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Shared/Service"
        ),
        .executableTarget(
            name: "intake",
            dependencies: ["RootcausesService"],
            path: "Services/Intake"
        ),
        .executableTarget(
            name: "aggregation",
            dependencies: ["RootcausesService"],
            path: "Services/Aggregation"
        ),
        .executableTarget(
            name: "reporting",
            dependencies: ["RootcausesService"],
            path: "Services/Reporting"
        ),
        // Running the stack on one machine: a private PostgreSQL cluster, the three services as
        // child processes, free ports. What `rootcauses demo`/`up`/`bench` run, and what tests run.
        .target(
            name: "RootcausesLocalStack",
            dependencies: [
                "RootcausesJSON", "RootcausesProtocol",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
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
                "RootcausesPostgres", "RootcausesJSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Services/CLI"
        ),
        // Ships with the product as a testing library: a throwaway database per test, the stack
        // around a test body, request helpers. Only tests depend on it.
        .target(
            name: "RootcausesTesting",
            dependencies: [
                "RootcausesLocalStack", "RootcausesProtocol", "RootcausesPostgres", "RootcausesJSON",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/Testing"
        ),
        .testTarget(
            name: "UnitTests",
            dependencies: ["RootcausesModel", "RootcausesJSON", "RootcausesProtocol", "RootcausesPostgres",
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio")],
            path: "Tests/UnitTests"
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "RootcausesTesting", "RootcausesLocalStack", "RootcausesJSON", "RootcausesModel",
                "RootcausesProtocol", "RootcausesPostgres",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                "intake", "aggregation", "reporting", "rootcauses",
            ],
            path: "Tests/IntegrationTests"
        ),
    ]
)
