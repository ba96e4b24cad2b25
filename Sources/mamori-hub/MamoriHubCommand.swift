import ArgumentParser
import Foundation
import Logging
import MamoriCore
import MamoriHub
import MamoriPostgres
import MamoriProtocol
import MamoriServer
import PostgresNIO
import ServiceLifecycle
import UnixSignals

/// `mamori-hub`: the town's hub over PostgreSQL (docs/town.md). `serve` runs it: the hub's own
/// Unix socket (the `mamori` command's, on PostgreSQL) and the terminals' TLS port. `terminal`
/// adds, lists and removes terminals through that socket; `migrate` and `changes` are the
/// database's tools.
@main
struct MamoriHubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mamori-hub",
        abstract: "The town's hub over PostgreSQL: serves the town's terminals, and keeps their register.",
        version: MamoriVersion.current,
        subcommands: [Serve.self, TerminalCommand.self, Migrate.self, Changes.self]
    )
}

/// Where the hub's database is. The password never goes on the command line (every account can
/// read a process's arguments): it comes from `MAMORI_HUB_DB_PASSWORD`, when the server asks.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "The server's Unix socket (e.g. /var/run/postgresql/.s.PGSQL.5432).")
    var socket: String?

    @Option(
        help:
            "The server's host, when not on a Unix socket (then the connection is not encrypted: keep it on a network of its own)."
    )
    var host: String?

    @Option(help: "The server's port, with --host.")
    var port = 5432

    @Option(help: "The database role.")
    var user = "mamori"

    @Option(help: "The database.")
    var database = "mamori"

    @Option(help: "Seconds to wait for the database before giving up.")
    var wait = 30

    func validate() throws {
        guard (socket == nil) != (host == nil) else {
            throw ValidationError("Give the database's --socket or its --host, one of the two.")
        }
        guard (1...3600).contains(wait) else { throw ValidationError("--wait must be from 1 to 3600 seconds.") }
    }

    var configuration: PostgresClient.Configuration {
        let password = ProcessInfo.processInfo.environment["MAMORI_HUB_DB_PASSWORD"]
        if let socket {
            return .init(unixSocketPath: socket, username: user, password: password, database: database)
        }
        return .init(
            host: host ?? "localhost", port: port, username: user, password: password, database: database,
            tls: .disable)
    }

    /// The database did not answer within `--wait` seconds.
    struct Unreachable: Error {}

    /// A client on the database, not yet running.
    func client(logger: Logger) -> PostgresClient {
        PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    /// Runs `body` with a running client, for at most `--wait` seconds: the client keeps retrying
    /// a server that does not answer, and an operator's command must end.
    func withClient<T: Sendable>(_ body: @escaping @Sendable (PostgresClient, Logger) async throws -> T)
        async throws -> T
    {
        var logger = Logger(label: "mamori-hub")
        logger.logLevel = .error
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let wait = self.wait
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await withThrowingTaskGroup(of: T.self) { race in
                race.addTask { [logger] in try await body(client, logger) }
                race.addTask {
                    try await Task.sleep(for: .seconds(wait))
                    throw Unreachable()
                }
                defer { race.cancelAll() }
                guard let first = try await race.next() else { throw Unreachable() }
                return first
            }
        }
    }
}

/// `mamori-hub migrate`: applies the migrations this build knows and the database lacks.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Bring the database's schema up to this build's (safe to run on every start, and from two hubs at once)."
    )

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        do {
            let applied = try await database.withClient { client, logger in
                try await PostgresSchema.migrate(client, logger: logger)
            }
            print(
                applied.isEmpty
                    ? "The schema is up to date (version \(PostgresSchema.latestVersion))."
                    : "Applied migrations \(applied.map(String.init).joined(separator: ", ")); "
                        + "the schema is at version \(PostgresSchema.latestVersion).")
        } catch let error as SchemaError {
            FileHandle.standardError.write(Data("mamori-hub: \(error)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("mamori-hub: the database could not be reached or migrated.\n".utf8))
            throw ExitCode(3)
        }
    }
}

/// `mamori-hub changes`: the change feed after a number, one line each.
struct Changes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the change feed after a number: what terminals learn of (users, assignments, locks, policy)."
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Print the changes after this number.")
    var since: Int64 = 0

    @Option(help: "At most this many.")
    var limit = 100

    func run() async throws {
        do {
            let changes = try await database.withClient { client, logger in
                try await PostgresStore(client: client, logger: logger).changes(after: since, limit: limit)
            }
            for change in changes {
                print("\(change.number)  \(change.time.formatted(.iso8601))  \(change.kind)  \(change.subject)")
            }
        } catch {
            FileHandle.standardError.write(Data("mamori-hub: the change feed could not be read.\n".utf8))
            throw ExitCode(3)
        }
    }
}
