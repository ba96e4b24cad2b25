import ArgumentParser
import Foundation
import Logging
import MamoriCore
import MamoriMember
import MamoriProtocol
import MamoriSQLite
import MamoriServer
import MamoriTown
import ServiceLifecycle
import UnixSignals

/// `mamorid`: the access-control and authentication daemon on a Unix socket. Serving is the
/// default subcommand, so `mamorid --config FILE` serves; `mamorid export-audit` reads a copy of
/// the database, the one thing that needs the store when no daemon runs.
@main
struct MamoriDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mamorid",
        abstract: "Mamori's daemon: answers authentication and authorization requests on a Unix socket.",
        version: MamoriVersion.current,
        subcommands: [Serve.self, ExportAudit.self],
        defaultSubcommand: Serve.self
    )
}

/// `mamorid export-audit`: a database copy's audit trail as an export (``AuditTrailExport``), for
/// `mamori audit verify --export` and contrib/mamori-audit-verify.py on an auditor's machine.
struct ExportAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-audit",
        abstract: "Write the audit trail of a database copy as a trail export (JSON lines) on standard output.",
        discussion: """
            For when mamorid does not run, or for a copy taken off the machine (sqlite3 .backup). The database \
            is opened read-only. The export carries no verifying key (the copy has none): verify it with the key \
            you hold.
              mamorid export-audit --database copy.sqlite > trail.jsonl
              mamori audit verify --export trail.jsonl --public-key audit.pub
            """
    )

    @Option(help: "The database file (a copy of the state folder's mamori.sqlite).")
    var database: String

    func run() async throws {
        guard FileManager.default.isReadableFile(atPath: database) else {
            FileHandle.standardError.write(Data("mamorid: There is no readable database at \(database).\n".utf8))
            throw ExitCode(2)
        }
        do {
            let store = try SQLiteStore(readOnlyPath: database)
            // Written in blocks: one write(2) per line would dominate a long trail's export.
            var buffer: [UInt8] = []
            func flush() {
                FileHandle.standardOutput.write(Data(buffer))
                buffer.removeAll(keepingCapacity: true)
            }
            do {
                try await AuditTrailExport.write(store, publicKey: nil, exported: Date()) { line in
                    buffer.append(contentsOf: line.utf8)
                    if buffer.count >= 1 << 16 { flush() }
                }
            } catch {
                try? await store.close()
                throw error
            }
            flush()
            try await store.close()
        } catch {
            FileHandle.standardError.write(
                Data("mamorid: The audit trail in \(database) cannot be read: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// Serving: the daemon until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the socket (the default).",
        discussion:
            "Without --config it serves development defaults: state in .mamori/, socket .mamori/mamori.sock, policies/."
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
        let link: HubLink?
        do {
            // A terminal that has joined a town (`mamori join`) is a member: its hub answers
            // logins and administration, and its users come from the hub (docs/town.md).
            link = try Self.hubLink(&settings, logger: logger)
            let member = try link.map { link in
                MemberRole(
                    hub: link, mirror: link.mirror, joinedAt: link.joinedAt,
                    offline: try HubLink.offlineCache(stateDirectory: settings.stateDirectory, logger: logger))
            }
            // The embedded store: one SQLite file in the state folder.
            let started = try await MamoriDaemon(configuration: settings, logger: logger, member: member) { needs in
                try SQLiteStore(
                    path: needs.databasePath, signer: needs.signer, checkpointInterval: needs.checkpointInterval,
                    onCheckpoint: needs.onCheckpoint
                )
            }
            daemon = started
            link?.adoptPolicies(
                with: HubLink.PolicyHandler(
                    adopt: { await started.adoptHubPolicy($0) }, current: { started.policyRevision }))
            link?.streamAudit(of: started.auditChain.trail, publicKey: started.auditChain.publicKey)
            link?.reportOfflineUses(
                with: HubLink.OfflineReporter(
                    pending: { started.pendingOfflineUses(limit: $0) },
                    acknowledge: { await started.acknowledgeOfflineUses($0, conflicts: $1) }))
        } catch {
            FileHandle.standardError.write(Data("mamorid: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: daemon)] + (link.map { [.init(service: $0)] } ?? []),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
            )
        )
        try await group.run()
    }

    /// The link to the hub when the state folder records a membership, nil otherwise. The zone
    /// the hub gave the terminal must be the configured one; the terminal's name in its entries
    /// becomes the one in the hub's register.
    static func hubLink(_ settings: inout DaemonConfiguration, logger: Logger) throws -> HubLink? {
        let membership: TerminalMembership?
        do {
            membership = try TerminalMembership.read(stateDirectory: settings.stateDirectory)
        } catch {
            throw ConfigurationError(
                "The membership in \(TerminalMembership.folder(in: settings.stateDirectory)) cannot be read: \(error)")
        }
        guard let membership else { return nil }
        guard membership.zone == settings.zone else {
            throw ConfigurationError(
                "This terminal joined its town in zone '\(membership.zone)', but is configured for '\(settings.zone)'; "
                    + "set `zone: \(membership.zone)` in the configuration.")
        }
        settings.terminal = membership.terminal
        // The policy is the hub's: a member reads its copy of what the hub last published, kept
        // in the state folder; before the first, a copy of the configured folder.
        let published = TerminalMembership.folder(in: settings.stateDirectory) + "/policy"
        if !FileManager.default.fileExists(atPath: published) {
            do {
                try FileManager.default.createDirectory(
                    atPath: published, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                for name in try FileManager.default.contentsOfDirectory(atPath: settings.policyDirectory)
                where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
                    try FileManager.default.copyItem(
                        atPath: settings.policyDirectory + "/" + name, toPath: published + "/" + name)
                }
            } catch {
                try? FileManager.default.removeItem(atPath: published)
                throw ConfigurationError(
                    "The policy in \(settings.policyDirectory) cannot be copied to \(published): \(error)")
            }
        }
        settings.policyDirectory = published
        logger.notice(
            "member terminal of a town", metadata: ["hub": "\(membership.hub)", "terminal": "\(membership.terminal)"])
        do {
            return try HubLink(
                membership: membership, stateDirectory: settings.stateDirectory, mirror: SubjectMirror(),
                logger: logger)
        } catch {
            throw ConfigurationError(
                "The terminal's certificate or key in \(TerminalMembership.folder(in: settings.stateDirectory)) "
                    + "cannot be used: \(error)")
        }
    }
}
