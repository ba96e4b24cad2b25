public import Foundation
internal import Crypto

/// One entry of the audit trail. Nothing secret belongs in any field.
public struct AuditEntry: Sendable, Hashable {
    /// When it happened.
    public var time: Date
    /// The caller's Unix uid, when the act came over the socket.
    public var actorUID: Int?
    /// Who acted: the caller's login name, or the daemon itself.
    public var actor: String
    /// What happened, as a dotted name: `auth.success`, `auth.failure`, `role.grant`, `decision.deny`.
    public var event: String
    /// What it happened to: a user, role, session or resource.
    public var target: String
    /// `success`, `failure` or `denied`.
    public var outcome: String
    /// Details as text pairs, e.g. which factor failed. Never a secret.
    public var detail: [String: String]
    public var terminal: String
    public var zone: String
    public var policyRevision: String

    public init(
        time: Date, actorUID: Int?, actor: String, event: String, target: String, outcome: String,
        detail: [String: String] = [:], terminal: String, zone: String, policyRevision: String
    ) {
        self.time = time
        self.actorUID = actorUID
        self.actor = actor
        self.event = event
        self.target = target
        self.outcome = outcome
        self.detail = detail
        self.terminal = terminal
        self.zone = zone
        self.policyRevision = policyRevision
    }

    /// The canonical bytes the chain hashes: every field, in a fixed order, as sorted-key JSON.
    public var canonicalJSON: String {
        let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded())
        let object: [String: Any] = [
            "time": milliseconds, "actor_uid": actorUID.map { $0 as Any } ?? NSNull(), "actor": actor,
            "event": event, "target": target, "outcome": outcome, "detail": detail, "terminal": terminal,
            "zone": zone, "policy_revision": policyRevision,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// The chain link: SHA-256 of the previous entry's hash followed by this entry's canonical JSON.
    public static func chainHash(previous: [UInt8], canonicalJSON: String) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: previous)
        hash.update(data: Array(canonicalJSON.utf8))
        return Array(hash.finalize())
    }

    /// The hash the first entry links to: 32 zero bytes.
    public static let genesis = [UInt8](repeating: 0, count: 32)
}
