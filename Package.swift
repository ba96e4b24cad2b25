// swift-tools-version:6.2
import PackageDescription

/// Settings every Mamori target shares: Swift 6 language mode is the package default; these make
/// imports explicit, existentials visible, and warnings fatal, so that all modules read alike.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "Mamori",
    products: [
        .executable(name: "mamori", targets: ["mamori"]),
        .executable(name: "mamorid", targets: ["mamorid"]),
        .executable(name: "mamori-hub", targets: ["mamori-hub"]),
        .library(name: "MamoriCore", targets: ["MamoriCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        // libargon2 from Debian's libargon2-dev: the reference implementation, not a re-write.
        .systemLibrary(
            name: "CArgon2",
            pkgConfig: "libargon2",
            providers: [.apt(["libargon2-dev"])]
        ),
        // libqrencode from Debian's libqrencode-dev: TOTP keys shown as QR codes at enrolment.
        .systemLibrary(
            name: "CQRencode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        .target(
            name: "MamoriCore",
            dependencies: [
                "CArgon2",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(name: "MamoriProtocol"),
        // The store's interfaces and records: no database in it.
        .target(name: "MamoriStore", dependencies: ["MamoriCore"]),
        // The embedded store: SQLite through GRDB.
        .target(
            name: "MamoriSQLite",
            dependencies: ["MamoriCore", "MamoriStore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The town's store, for mamori-hub: PostgreSQL through postgres-nio (docs/town.md).
        .target(
            name: "MamoriPostgres",
            dependencies: [
                "MamoriCore", "MamoriStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What a hub and its terminals share (docs/town.md): TLS with the hub's CA, the terminal's
        // key and certificate, the join. The `mamori` command links it for `mamori join`.
        .target(
            name: "MamoriTown",
            dependencies: [
                "MamoriCore", "MamoriProtocol", "MamoriStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The hub's side (docs/town.md): its CA, the terminals' TLS listener, the change watch.
        .target(
            name: "MamoriHub",
            dependencies: [
                "MamoriCore", "MamoriProtocol", "MamoriStore", "MamoriServer", "MamoriPostgres", "MamoriTown",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The town's hub (docs/town.md): its database's tools, and serving.
        .executableTarget(
            name: "mamori-hub",
            dependencies: [
                "MamoriCore", "MamoriPostgres", "MamoriProtocol", "MamoriServer", "MamoriHub", "MamoriTown",
                "MamoriStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "MamoriServer",
            dependencies: [
                "MamoriCore", "MamoriStore", "MamoriProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // A member terminal's side (docs/town.md): its link to the hub, which forwards and mirrors.
        .target(
            name: "MamoriMember",
            dependencies: [
                "MamoriCore", "MamoriProtocol", "MamoriStore", "MamoriServer", "MamoriTown",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "mamorid",
            dependencies: [
                "MamoriServer", "MamoriSQLite", "MamoriCore", "MamoriProtocol", "MamoriMember", "MamoriTown",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "mamori",
            dependencies: [
                // No store: offline verification reads an export (mamorid export-audit writes one
                // from a database copy), so the command links neither GRDB nor SQLite. MamoriTown
                // (TLS) is for `mamori join`.
                "MamoriCore", "MamoriProtocol", "CQRencode", "MamoriTown",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "mamori-bench",
            // MamoriTestSupport: the network namespace the offline figures cut.
            dependencies: ["MamoriCore", "MamoriProtocol", "MamoriSQLite", "MamoriTown", "MamoriTestSupport"],
            path: "Benchmarks/MamoriBench",
            exclude: ["cedar_bench.py"]
        ),
        // Fuzz targets (`make fuzz` builds them with -sanitize=fuzzer and -D MAMORI_FUZZ); the
        // ordinary build replays their kept inputs (Fuzz/corpus), which `make test` runs.
        // libFuzzer's driver, declared for the fuzz targets (its runtime comes with -sanitize=fuzzer).
        .systemLibrary(name: "CFuzzer", path: "Fuzz/CFuzzer"),
        .target(name: "MamoriFuzzSupport", dependencies: ["CFuzzer"], path: "Fuzz/Support"),
        .executableTarget(
            name: "mamori-fuzz-line",
            dependencies: [
                "MamoriServer", "MamoriProtocol", "MamoriFuzzSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Fuzz/Line"
        ),
        .executableTarget(
            name: "mamori-fuzz-policy",
            dependencies: ["MamoriCore", "MamoriFuzzSupport"],
            path: "Fuzz/Policy"
        ),
        .target(
            name: "MamoriTestSupport",
            dependencies: [
                "MamoriProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/MamoriTestSupport"
        ),
        .testTarget(
            name: "MamoriCoreTests",
            dependencies: ["MamoriCore", "MamoriTestSupport"]
        ),
        .testTarget(
            name: "MamoriServerTests",
            dependencies: ["mamorid", "MamoriCore", "MamoriTestSupport"]
        ),
        // The service in-process on a real SQLite file with a moved clock, and the server's pure
        // parts (the line decoder, the reply order) without a socket.
        .testTarget(
            name: "MamoriServiceTests",
            dependencies: [
                "MamoriServer", "MamoriSQLite", "MamoriPostgres", "MamoriStore", "MamoriCore", "MamoriProtocol",
                "MamoriTestSupport", .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Against a real PostgreSQL server: the private one `make test` starts (scripts/with-postgres),
        // and the conformance every store passes, run on both stores.
        .testTarget(
            name: "MamoriPostgresTests",
            dependencies: [
                "mamori-hub", "mamori", "MamoriPostgres", "MamoriSQLite", "MamoriCore", "MamoriStore",
                "MamoriTestSupport",
                "MamoriHub", "MamoriTown", "MamoriProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "MamoriCLITests",
            dependencies: ["mamori", "MamoriCore", "MamoriTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + strictSettings
}
