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
        .library(name: "MamoriCore", targets: ["MamoriCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // libargon2 from Debian's libargon2-dev: the reference implementation, not a re-write.
        .systemLibrary(
            name: "CArgon2",
            pkgConfig: "libargon2",
            providers: [.apt(["libargon2-dev"])]
        ),
        .target(
            name: "MamoriCore",
            dependencies: [
                "CArgon2",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "mamori",
            dependencies: [
                "MamoriCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "mamori-bench",
            dependencies: ["MamoriCore"],
            path: "Benchmarks/MamoriBench",
            exclude: ["cedar_bench.py"]
        ),
        .target(
            name: "MamoriTestSupport",
            path: "Tests/MamoriTestSupport"
        ),
        .testTarget(
            name: "MamoriCoreTests",
            dependencies: ["MamoriCore", "MamoriTestSupport"]
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
