import ArgumentParser
import Foundation
import Logging
import MamoriCore
import MamoriHub
import MamoriPostgres
import MamoriProtocol
import MamoriServer
import MamoriStore
import MamoriTown
import PostgresNIO
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `mamori-hub serve`: the hub until SIGTERM or SIGINT.
///
/// - Its Unix socket is mamorid's on PostgreSQL: the `mamori` command administers the town
///   through it (`mamori --socket …`), and it adds the `terminal.*` operations.
/// - Its terminal port is TLS 1.3 with the hub's CA (``TerminalListener``).
/// - It watches the change feed, and closes a removed terminal's connections when the removal
///   commits, whichever hub removed it.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the hub: its Unix socket for administrators, and the TLS port for terminals.",
        discussion: """
            The state folder holds the hub's keys: the TOTP seed key, the audit key and the CA (hub-ca.key, \
            hub-ca.pem), made on first start. Every hub of one town must have the same keys: copy the folder \
            to a second hub before its first start.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: "A YAML configuration file, as mamorid's (state-directory, socket, policies, zone, terminal, …).")
    var config: String?

    @Option(help: "Override the socket path.")
    var socketPath: String?

    @Option(help: "Override the state folder.")
    var stateDirectory: String?

    @Option(help: "Override the policy folder.")
    var policies: String?

    @Option(help: "Where terminals connect: HOST:PORT.")
    var listen = "0.0.0.0:\(HubAddress.defaultPort)"

    @Option(
        name: .customLong("server-name"),
        help:
            "A name or address terminals use for this hub; repeat for several (default: the host's name, localhost, 127.0.0.1, ::1)."
    )
    var serverNames: [String] = []

    @Option(help: "Seconds a connection without a terminal certificate has to complete its join (1 to 300).")
    var joinSeconds: Int64 = 30

    @Option(
        help: """
            Days the change feed keeps a change (1 to 3650); older ones are deleted every hour, and a \
            terminal that missed them reads every user anew.
            """)
    var changesKeptDays = 30

    @Option(
        help: """
            Days a terminal certificate the hub issues is valid (2 to 3650); a member renews its own \
            when 30 days or fewer are left, at its start and every 12 hours.
            """)
    var certificateDays = 365

    func validate() throws {
        guard (1...300).contains(joinSeconds) else { throw ValidationError("--join-seconds must be from 1 to 300.") }
        guard (2...3650).contains(certificateDays) else {
            throw ValidationError("--certificate-days must be from 2 to 3650.")
        }
        guard (1...3650).contains(changesKeptDays) else {
            throw ValidationError("--changes-kept-days must be from 1 to 3650.")
        }
    }

    func run() async throws {
        umask(0o077)
        var settings = DaemonConfiguration()
        do {
            if let config { settings = try DaemonConfiguration(file: config) }
        } catch {
            fail("\(error)", status: 2)
        }
        if let socketPath { settings.socketPath = socketPath }
        if let stateDirectory { settings.stateDirectory = stateDirectory }
        if let policies { settings.policyDirectory = policies }
        guard let address = HubAddress(listen) else { fail("--listen must be HOST:PORT.", status: 64) }
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = label == "mamori-hub.postgres" ? max(level, .warning) : level
            return handler
        }
        let logger = Logger(label: "mamori-hub")
        let client = database.client(logger: Logger(label: "mamori-hub.postgres"))
        let names = serverNames.isEmpty ? defaultNames(listening: address.host) : serverNames
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await client.run() }
            defer { tasks.cancelAll() }
            let hub = try await start(
                client: client, settings: settings, names: names, address: address, logger: logger)
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: hub.daemon), .init(service: hub.terminals)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    private func start(
        client: PostgresClient, settings: DaemonConfiguration, names: [String], address: HubAddress, logger: Logger
    ) async throws -> (daemon: MamoriDaemon, terminals: HubTerminalService) {
        do {
            try await withDeadline(seconds: database.wait) {
                _ = try await PostgresSchema.migrate(client, logger: logger)
            }
        } catch let error as SchemaError {
            fail("\(error)", status: 2)
        } catch {
            fail("the database could not be reached or migrated within \(database.wait) s.", status: 3)
        }
        // The CA lives beside the keys the daemon makes: the folder must exist first.
        try? FileManager.default.createDirectory(
            atPath: settings.stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let authority: HubAuthority
        do {
            authority = try HubAuthority.open(stateDirectory: settings.stateDirectory)
        } catch {
            fail("\(error)", status: 2)
        }
        let daemon: MamoriDaemon
        let opened = Mutex<PostgresStore?>(nil)
        do {
            daemon = try await MamoriDaemon(
                configuration: settings, logger: logger,
                openHub: { store in
                    guard let registry = store as? any TerminalRegistry else {
                        throw HubAuthorityError.notARegistry
                    }
                    let key = authority.tokenKey
                    return HubRole(
                        registry: registry, caPin: authority.pin, tokenDigest: { $0.secretDigest(key: key) },
                        audits: store as? any TownAuditArchive, offlineUses: store as? any OfflineUseArchive)
                },
                openStore: { needs in
                    let store = PostgresStore(
                        client: client, signer: needs.signer, checkpointInterval: needs.checkpointInterval,
                        onCheckpoint: needs.onCheckpoint, logger: logger)
                    opened.withLock { $0 = store }
                    return store
                })
        } catch {
            fail("\(error)", status: 2)
        }
        // The daemon's own store, with its signer and witness: a join's entry may be the one a
        // checkpoint is due at.
        guard let store = opened.withLock({ $0 }) else { fail("the store was not opened.", status: 2) }
        let connections = TerminalConnections()
        let broadcast = ChangeBroadcast()
        var limits = TerminalListener.Limits()
        limits.joinSeconds = joinSeconds
        let listener = try TerminalListener(
            authority: authority, registry: store, serverNames: names, connections: connections,
            auditContext: .init(
                terminal: settings.terminal, zone: settings.zone, policyRevision: { daemon.policyRevision },
                totpWindow: { daemon.totpWindow }),
            forward: { request, caller, origin in
                await daemon.answerForwarded(
                    request, uid: caller.uid, pid: caller.pid, name: caller.name, origin: origin)
            },
            policy: { [folder = settings.policyDirectory] in
                try Self.policyInForce(folder: folder, revision: daemon.policyRevision)
            },
            feed: store, broadcast: broadcast, limits: limits,
            certificateValidity: TimeInterval(certificateDays) * 86_400, logger: logger)
        let terminals = HubTerminalService(
            listener: listener, store: store, connections: connections, broadcast: broadcast, address: address,
            changeRetention: .seconds(changesKeptDays * 86_400), logger: logger)
        return (daemon, terminals)
    }

    /// The policy folder's files, when they are the policy in force: a folder edited since the
    /// last reload is not published until it is reloaded (and so validated) here.
    static func policyInForce(folder: String, revision: String) throws -> TerminalPolicyReply {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        } catch {
            throw WireError(.internal, "The hub's policy folder cannot be read now.")
        }
        var files: [PolicyFileText] = []
        for name in names {
            guard let text = try? String(contentsOfFile: folder + "/" + name, encoding: .utf8) else {
                throw WireError(.internal, "The hub's policy folder cannot be read now.")
            }
            files.append(PolicyFileText(name: name, text: text))
        }
        let read = try? PolicyLoader.load(files: files.map { ($0.name, $0.text) })
        guard read?.revision == revision else {
            throw WireError(
                .busy, "The hub's policy folder was changed since its last reload; the hub publishes it once reloaded.")
        }
        return TerminalPolicyReply(revision: revision, files: files)
    }

    private func defaultNames(listening host: String) -> [String] {
        var names = [ProcessInfo.processInfo.hostName, "localhost", "127.0.0.1", "::1"]
        if host != "0.0.0.0" && host != "::" && !names.contains(host) { names.append(host) }
        return names
    }

    private func withDeadline(seconds: Int, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { race in
            race.addTask { try await body() }
            race.addTask {
                try await Task.sleep(for: .seconds(seconds))
                throw DatabaseOptions.Unreachable()
            }
            defer { race.cancelAll() }
            try await race.next()
        }
    }

    private func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data("mamori-hub: \(message)\n".utf8))
        Foundation.exit(status)
    }
}

extension HubAuthorityError {
    static var notARegistry: HubAuthorityError { HubAuthorityError("The hub's store keeps no terminals.") }
}
