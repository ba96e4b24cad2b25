import Crypto
public import Foundation
public import Logging
public import MamoriCore
public import MamoriPostgres
public import MamoriProtocol
public import MamoriServer
public import MamoriStore
public import MamoriTown
import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
import NIOSSL
import NIOTLS
import SwiftASN1
import X509

/// The hub's terminal port: TLS 1.3 with the hub's CA (docs/town.md).
///
/// - A connection that presents a certificate must present one the CA signed (the handshake fails
///   otherwise), and one the register holds for a terminal in service; a removed terminal's, or
///   one a later join replaced, is answered `denied` and closed.
/// - A connection without a certificate may make one request, `terminal.join`, and must have its
///   answer within ``Limits/joinSeconds`` of connecting; then it is closed.
/// - Connections not yet known to be a terminal's are limited in number, in all and per address,
///   and so are joins in progress: a flood from the network costs the hub a bounded amount.
/// - A terminal's connections are closed as soon as the hub learns of its removal
///   (``TerminalConnections/close(terminal:)``).
public final class TerminalListener: Sendable {
    /// What the hub's own audit entries name: its terminal name, zone and policy revision.
    public struct AuditContext: Sendable {
        /// The hub's terminal name, as mamorid's `terminal` setting.
        public let terminal: String
        /// The hub's zone.
        public let zone: String
        /// The policy revision in force when an entry is written.
        public let policyRevision: @Sendable () -> String
        /// The policy's TOTP window (steps either side), by which reported offline steps are judged.
        public let totpWindow: @Sendable () -> Int

        /// A context from its parts.
        public init(
            terminal: String, zone: String, policyRevision: @escaping @Sendable () -> String,
            totpWindow: @escaping @Sendable () -> Int = { 1 }
        ) {
            self.terminal = terminal
            self.zone = zone
            self.policyRevision = policyRevision
            self.totpWindow = totpWindow
        }
    }

    /// What a connection not yet known to be a terminal's may cost the hub.
    public struct Limits: Sendable {
        /// Seconds from connecting to the end of a join (or of the handshake, for a terminal).
        public var joinSeconds: Int64 = 30
        /// Connections not yet known to be a terminal's, in all.
        public var anonymousConnections = 256
        /// Connections not yet known to be a terminal's, from one address.
        public var anonymousPerAddress = 16
        /// Joins being worked on at once; more are answered `busy`.
        public var concurrentJoins = 4
        /// Connections one joined terminal may hold at once (a member holds 12 at most:
        /// 8 for forwarded requests, 2 for its mirror, its watch and its audit stream); more are answered `busy`.
        public var connectionsPerTerminal = 16

        /// The defaults.
        public init() {}
    }

    /// Answers what a member terminal forwards for its caller (the hub's daemon, on its store).
    public typealias Forward = @Sendable (WireRequest, ForwardedCaller, CallerOrigin) async -> [UInt8]

    /// The hub's policy in force, file by file; throws `WireError` when it cannot be given.
    public typealias PolicySource = @Sendable () throws -> TerminalPolicyReply

    let authority: HubAuthority
    let registry: any TerminalRegistry
    let forward: Forward?
    let policy: PolicySource?
    /// The change feed terminals poll (`terminal.changes`) and watch (`terminal.watch`).
    let feed: PostgresStore?
    let broadcast: ChangeBroadcast?
    let limits: Limits
    let anonymous: AnonymousAdmission
    let joins: NIOLockedValueBox<Int> = NIOLockedValueBox(0)
    let tokenKey: SymmetricKey
    let sslContext: NIOSSLContext
    let connections: TerminalConnections
    let auditContext: AuditContext
    /// How long a terminal certificate the hub issues is valid (``HubAuthority/terminalValidity``).
    let certificateValidity: TimeInterval
    let clock: any WallClock
    let logger: Logger
    let group: any EventLoopGroup

    /// A listener that serves with a server certificate issued now for `serverNames`.
    public init(
        authority: HubAuthority, registry: any TerminalRegistry, serverNames: [String],
        connections: TerminalConnections,
        auditContext: AuditContext, forward: Forward? = nil, policy: PolicySource? = nil, feed: PostgresStore? = nil,
        broadcast: ChangeBroadcast? = nil, limits: Limits = Limits(),
        certificateValidity: TimeInterval = HubAuthority.terminalValidity, clock: any WallClock = SystemClock(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) throws {
        self.authority = authority
        self.registry = registry
        self.limits = limits
        self.forward = forward
        self.policy = policy
        self.feed = feed
        self.broadcast = broadcast
        anonymous = AnonymousAdmission(total: limits.anonymousConnections, perAddress: limits.anonymousPerAddress)
        tokenKey = authority.tokenKey
        self.connections = connections
        self.auditContext = auditContext
        self.certificateValidity = certificateValidity
        self.clock = clock
        self.group = group
        self.logger = logger
        let server = try authority.issueServerCertificate(names: serverNames, now: clock.now())
        let authorityCertificate = try NIOSSLCertificate(bytes: HubAuthority.der(authority.certificate), format: .der)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: [
                .certificate(try NIOSSLCertificate(bytes: HubAuthority.der(server.certificate), format: .der)),
                .certificate(authorityCertificate),
            ],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(server.key.pemRepresentation.utf8), format: .pem))
        )
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates([authorityCertificate])
        // A certificate is optional (a joining terminal has none yet); one presented must verify.
        tls.certificateVerification = .optionalVerification
        sslContext = try NIOSSLContext(configuration: tls)
    }

    /// Binds `host:port` and serves until the returned channel is closed.
    public func bind(host: String, port: Int) async throws -> any Channel {
        let listener = self
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let address = channel.remoteAddress?.ipAddress ?? "-"
                guard listener.anonymous.enter(address, channel: channel) else {
                    // Past the limit: closed before any TLS work is spent on it.
                    return channel.close()
                }
                // Given back at close, or earlier when it becomes a terminal's (whichever first).
                channel.closeFuture.whenComplete { _ in listener.anonymous.leave(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOSSLServerHandler(context: listener.sslContext),
                        TerminalGate(listener: listener, address: address),
                    ])
                }
            }
            .bind(host: host, port: port).get()
    }

    /// The audit entry of a join.
    func joinEntry(_ terminal: TerminalRecord, serial: String, peer: String) -> AuditEntry {
        AuditEntry(
            time: clock.now(), actorUID: nil, actor: "terminal:\(terminal.name)", event: .terminalJoin,
            target: terminal.name, outcome: .success, detail: ["serial": serial, "zone": terminal.zone, "peer": peer],
            terminal: auditContext.terminal, zone: auditContext.zone, policyRevision: auditContext.policyRevision())
    }
}

/// The terminals connected to this hub, by name, so that a removal closes their connections.
public final class TerminalConnections: Sendable {
    private struct State {
        var open: [String: [ObjectIdentifier: any Channel]] = [:]
        /// How many removals this hub has acted on: a connection whose register lookup began before
        /// one of them is not admitted, since the removal may have been of its terminal.
        var removals = 0
    }

    private let state = NIOLockedValueBox(State())

    /// No connections yet.
    public init() {}

    /// The count of removals so far, to pass back to ``add(_:terminal:ifNoRemovalSince:)``.
    var removals: Int { state.withLockedValue { $0.removals } }

    /// What ``add(_:terminal:ifNoRemovalSince:limit:)`` did.
    enum Admission {
        case added
        /// A removal was acted on meanwhile, which may have been of this terminal's.
        case removedMeanwhile
        /// The terminal holds its limit of connections already.
        case tooMany
    }

    /// Adds a connection of `terminal` unless a removal was acted on since `removals` (read before
    /// its register lookup) or the terminal holds `limit` connections; the caller refuses the
    /// connection then.
    func add(_ channel: any Channel, terminal: String, ifNoRemovalSince removals: Int, limit: Int) -> Admission {
        let admission = state.withLockedValue { state -> Admission in
            guard state.removals == removals else { return .removedMeanwhile }
            guard state.open[terminal, default: [:]].count < limit else { return .tooMany }
            state.open[terminal, default: [:]][ObjectIdentifier(channel)] = channel
            return .added
        }
        if admission == .added {
            channel.closeFuture.whenComplete { [state] _ in
                state.withLockedValue { $0.open[terminal]?[ObjectIdentifier(channel)] = nil }
            }
        }
        return admission
    }

    /// Closes every connection of `terminal`; returns how many there were.
    @discardableResult
    public func close(terminal: String) -> Int {
        let channels = state.withLockedValue { state in
            state.removals += 1
            return state.open.removeValue(forKey: terminal) ?? [:]
        }
        for channel in channels.values { channel.close(promise: nil) }
        return channels.count
    }

    /// How many connections `terminal` has open.
    public func count(terminal: String) -> Int { state.withLockedValue { $0.open[terminal]?.count ?? 0 } }
}

/// Counts connections not yet known to be a terminal's, in all and per address. Each is kept by
/// its channel, so that giving it back twice (at close, and on becoming a terminal's) counts once.
final class AnonymousAdmission: Sendable {
    private let total: Int
    private let perAddress: Int
    private let counts = NIOLockedValueBox<(open: [ObjectIdentifier: String], by: [String: Int])>(([:], [:]))

    init(total: Int, perAddress: Int) {
        self.total = total
        self.perAddress = perAddress
    }

    /// Counts `channel` from `address`; false, counting nothing, past either limit.
    func enter(_ address: String, channel: any Channel) -> Bool {
        counts.withLockedValue { counts in
            guard counts.open.count < total, counts.by[address, default: 0] < perAddress else { return false }
            counts.open[ObjectIdentifier(channel)] = address
            counts.by[address, default: 0] += 1
            return true
        }
    }

    /// Stops counting `channel`; nothing when it is not counted.
    func leave(_ channel: any Channel) {
        counts.withLockedValue { counts in
            guard let address = counts.open.removeValue(forKey: ObjectIdentifier(channel)) else { return }
            let left = counts.by[address, default: 1] - 1
            counts.by[address] = left > 0 ? left : nil
        }
    }
}
