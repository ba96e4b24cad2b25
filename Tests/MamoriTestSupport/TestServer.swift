import Foundation
public import Logging
public import PostgresNIO

/// The private servers `make test` runs (scripts/with-postgres), and a fresh database on one for
/// each test.
public enum TestServer {
    /// The shared server's Unix socket, from `MAMORI_TEST_POSTGRES` (it listens on nothing else).
    public static let address: String? = socket("MAMORI_TEST_POSTGRES")

    /// A second server, `MAMORI_TEST_POSTGRES_SPARE`, that one suite may crash and restart without
    /// disturbing the suites that share the first.
    public static let spare: String? = socket("MAMORI_TEST_POSTGRES_SPARE")

    /// The shell command that crashes the spare server and starts it again.
    public static let spareRestart: String? = ProcessInfo.processInfo.environment["MAMORI_TEST_POSTGRES_SPARE_RESTART"]

    /// The shell command that crashes the spare server, leaving it down.
    public static let spareStop: String? = ProcessInfo.processInfo.environment["MAMORI_TEST_POSTGRES_SPARE_STOP"]
    /// The shell command that starts the spare server again after ``spareStop``.
    public static let spareStart: String? = ProcessInfo.processInfo.environment["MAMORI_TEST_POSTGRES_SPARE_START"]

    private static func socket(_ variable: String) -> String? {
        ProcessInfo.processInfo.environment[variable].flatMap { $0.hasPrefix("/") ? $0 : nil }
    }

    /// The role scripts/with-postgres makes (trusted, on a socket no other account can reach).
    public static let role = "mamori"

    /// The server's variable is not set: run through make test.
    public struct NoServer: Error {}

    /// Runs `body` with a running client of `database` on the server at `socket`.
    @discardableResult
    public static func withClient<T: Sendable>(
        database: String, on socket: String? = address, logger: Logger, _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        guard let socket else { throw NoServer() }
        let client = PostgresClient(
            configuration: .init(unixSocketPath: socket, username: role, password: nil, database: database),
            backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// Runs `body` with a client of a new, empty database (and its name) on the server at
    /// `socket`, which is dropped afterwards.
    public static func withDatabase(
        on socket: String? = address, _ body: (PostgresClient, String, Logger) async throws -> Void
    ) async throws {
        var logger = Logger(label: "test.postgres")
        // Warnings include "run() hasn't been called yet", which a lease at start waits out.
        logger.logLevel = .error
        let name = "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await withClient(database: "postgres", on: socket, logger: logger) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        do {
            try await withClient(database: name, on: socket, logger: logger) { try await body($0, name, logger) }
        } catch {
            try? await dropDatabase(name, on: socket, logger: logger)
            throw error
        }
        try await dropDatabase(name, on: socket, logger: logger)
    }

    private static func dropDatabase(_ name: String, on socket: String?, logger: Logger) async throws {
        try await withClient(database: "postgres", on: socket, logger: logger) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"), logger: logger)
        }
    }
}
