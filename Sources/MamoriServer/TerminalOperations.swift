import Foundation
public import MamoriCore
import MamoriProtocol
public import MamoriStore

/// What makes a daemon a hub (docs/town.md): the register of the town's terminals, in its store,
/// the pin of the CA that signs their certificates, which every join token carries, and how the
/// register keeps a token (a keyed digest).
public struct HubRole: Sendable {
    /// The store's register of terminals.
    public let registry: any TerminalRegistry
    /// SHA-256 of the hub CA's SubjectPublicKeyInfo (``JoinToken/caPin``).
    public let caPin: [UInt8]
    /// The digest the register keeps of a token (``JoinToken/secretDigest(key:)`` under the hub's key).
    public let tokenDigest: @Sendable (JoinToken) -> [UInt8]
    /// The member terminals' audit chains, which `audit.verify` and `inspect` cover at a hub.
    public let audits: (any TownAuditArchive)?
    /// What the member terminals reported of their logins through network cuts, which `inspect` covers.
    public let offlineUses: (any OfflineUseArchive)?

    /// A hub's role from its parts.
    public init(
        registry: any TerminalRegistry, caPin: [UInt8], tokenDigest: @escaping @Sendable (JoinToken) -> [UInt8],
        audits: (any TownAuditArchive)? = nil, offlineUses: (any OfflineUseArchive)? = nil
    ) {
        self.audits = audits
        self.offlineUses = offlineUses
        self.registry = registry
        self.caPin = caPin
        self.tokenDigest = tokenDigest
    }
}

/// A hub's terminals: `terminal.add`, `terminal.list`, `terminal.remove`, each authorised as
/// `mamori.terminal.manage` on `mamori:terminals/NAME` and recorded in the hub's chain. A daemon
/// that is not a hub refuses them (`invalid`).
extension MamoriService {
    private func terminalResource(_ name: String) -> String { "mamori:terminals/\(name)" }

    private func hubRole() throws -> HubRole {
        guard let hub else {
            throw WireError(.invalid, "This daemon is not a hub: it keeps no terminals. Ask the town's mamori-hub.")
        }
        return hub
    }

    /// Adds a terminal awaiting its join and answers its one-time token. The hub keeps only the
    /// token's digest; the token itself is in this reply alone.
    func addTerminal(_ context: RequestContext) async throws -> TerminalAddReply {
        let hub = try hubRole()
        let name = try context.request.string(.terminal)
        let zone = try context.request.string(.terminalZone)
        try await requirePermission(context, action: .terminalManage, resource: terminalResource(name))
        guard context.engine.policy.zones.contains(where: { $0.id == zone }) else {
            throw WireError(
                .invalid,
                "The zone '\(zone)' is not in the policy (zones: \(context.engine.policy.zones.map(\.id).joined(separator: ", ")))."
            )
        }
        let hours = try context.request.optionalInteger(.expiresHours) ?? 24
        let expires = context.now.addingTimeInterval(TimeInterval(hours) * 3600)
        let token = JoinToken(caPin: hub.caPin, random: random)
        try await hub.registry.addTerminal(
            TerminalRecord(
                name: name, zone: zone, addedAt: context.now, addedBy: context.caller.label, tokenExpiresAt: expires),
            tokenDigest: hub.tokenDigest(token),
            audit: audit(
                context, event: .terminalAdd, target: name, outcome: .success,
                detail: ["zone": zone, "token_expires": ISO8601DateFormatter().string(from: expires)]))
        return TerminalAddReply(
            terminal: name, zone: zone, token: token.text,
            expiresAt: ISO8601DateFormatter().string(from: expires))
    }

    func listTerminals(_ context: RequestContext) async throws -> TerminalListReply {
        let hub = try hubRole()
        try await requirePermission(context, action: .terminalManage, resource: "mamori:terminals/*")
        let formatter = ISO8601DateFormatter()
        let terminals = try await hub.registry.terminals().map { terminal in
            TerminalDescription(
                terminal: terminal.name, zone: terminal.zone, state: terminal.state(at: context.now).rawValue,
                addedAt: formatter.string(from: terminal.addedAt), addedBy: terminal.addedBy,
                tokenExpiresAt: terminal.tokenExpiresAt.map(formatter.string(from:)),
                joinedAt: terminal.joinedAt.map(formatter.string(from:)),
                certificateSerial: terminal.certificateSerial,
                certificateExpiresAt: terminal.certificateExpiresAt.map(formatter.string(from:)),
                removedAt: terminal.removedAt.map(formatter.string(from:)))
        }
        return TerminalListReply(terminals: terminals)
    }

    /// Removes a terminal: its token and certificate are refused from the commit on, and every hub
    /// closes its connections when the change reaches it.
    func removeTerminal(_ context: RequestContext) async throws -> TerminalRemovedReply {
        let hub = try hubRole()
        let name = try context.request.string(.terminal)
        try await requirePermission(context, action: .terminalManage, resource: terminalResource(name))
        try await hub.registry.removeTerminal(
            named: name, at: context.now,
            audit: audit(context, event: .terminalRemove, target: name, outcome: .success))
        return TerminalRemovedReply(terminal: name)
    }
}
