import Foundation
public import Logging
public import PostgresNIO

/// The private server `make test` runs, and a fresh database on it for each test.
public enum TestServer {
    /// The server's Unix socket, from `MAMORI_TEST_POSTGRES` (scripts/with-postgres listens on
    /// nothing else).
    public static let address: String? = ProcessInfo.processInfo.environment["MAMORI_TEST_POSTGRES"].flatMap {
        $0.hasPrefix("/") ? $0 : nil
    }

    /// The role scripts/with-postgres makes (trust authentication on loopback only).
    public static let role = "mamori"

    /// MAMORI_TEST_POSTGRES is not set: run through make test.
    public struct NoServer: Error {}

    /// Runs `body` with a running client of `database` on the test server.
    @discardableResult
    public static func withClient<T: Sendable>(
        database: String, logger: Logger, _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        guard let address else { throw NoServer() }
        let client = PostgresClient(
            configuration: .init(unixSocketPath: address, username: role, password: nil, database: database),
            backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// Runs `body` with a client of a new, empty database (and its name), which is dropped afterwards.
    public static func withDatabase(_ body: (PostgresClient, String, Logger) async throws -> Void) async throws {
        var logger = Logger(label: "test.postgres")
        // Warnings include "run() hasn't been called yet", which a lease at start waits out.
        logger.logLevel = .error
        let name = "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await withClient(database: "postgres", logger: logger) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        do {
            try await withClient(database: name, logger: logger) { try await body($0, name, logger) }
        } catch {
            try? await dropDatabase(name, logger: logger)
            throw error
        }
        try await dropDatabase(name, logger: logger)
    }

    private static func dropDatabase(_ name: String, logger: Logger) async throws {
        try await withClient(database: "postgres", logger: logger) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"), logger: logger)
        }
    }
}
