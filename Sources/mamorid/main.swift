import ArgumentParser
import Foundation
import Logging
import MamoriServer
import MamoriSQLite
import ServiceLifecycle
import UnixSignals

/// `mamorid`: the access-control and authentication daemon on a Unix socket.
@main
struct MamoriDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mamorid",
        abstract: "Mamori's daemon: answers authentication and authorization requests on a Unix socket.",
        discussion: "Without --config it serves development defaults: state in .mamori/, socket .mamori/mamori.sock, policies/.",
        version: MamoriVersion.current
    )

    @Option(help: "A YAML configuration file (see docs/operations.md).")
    var config: String?

    @Option(help: "Override the socket path.")
    var socket: String?

    @Option(help: "Override the state folder.")
    var stateDirectory: String?

    @Option(help: "Override the policy folder.")
    var policies: String?

    func run() async throws {
        // Everything the daemon creates (database, key file, WAL files) is for its own user only.
        umask(0o077)
        var settings = DaemonConfiguration()
        do {
            if let config { settings = try DaemonConfiguration(file: config) }
        } catch {
            FileHandle.standardError.write(Data("mamorid: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if let socket { settings.socketPath = socket }
        if let stateDirectory { settings.stateDirectory = stateDirectory }
        if let policies { settings.policyDirectory = policies }
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "mamorid")
        let daemon: MamoriDaemon
        do {
            // The embedded store: one SQLite file in the state folder.
            daemon = try await MamoriDaemon(configuration: settings, logger: logger) { needs in
                try SQLiteStore(
                    path: needs.databasePath, signer: needs.signer, checkpointInterval: needs.checkpointInterval,
                    onCheckpoint: needs.onCheckpoint
                )
            }
        } catch {
            FileHandle.standardError.write(Data("mamorid: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: daemon)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
            )
        )
        try await group.run()
    }
}
