import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore
import NIOConcurrencyHelpers

/// `status`, `policy.status` and `policy.reload` (also SIGHUP): what the daemon runs on, and
/// swapping the policy whole or not at all.
extension MamoriService {

    func status(_ context: RequestContext) async throws -> StatusReply {
        try await requirePermission(context, action: .status, resource: "mamori:status")
        let counts = try await store.counts(at: context.now)
        let durability = try await store.durability()
        let factors = context.engine.policy.zones.first { $0.id == configuration.zone }?.loginFactors ?? []
        let chain = lastChainCheck.withLockedValue { check in
            guard let check else { return StatusReply.ChainCheck(checked: false) }
            return StatusReply.ChainCheck(
                checked: true, holds: check.holds, entries: check.entries, problems: check.problems,
                verifiedAt: check.time.formatted(.iso8601))
        }
        return StatusReply(
            version: MamoriVersion.current, protocolVersion: WireLimits.protocolVersion, zone: configuration.zone,
            terminal: configuration.terminal, loginFactors: factors.sorted().map(\.rawValue),
            policyRevision: context.engine.revision,
            uptimeSeconds: Int(context.now.timeIntervalSince(startedAt).rounded(.down)), counts: counts,
            storage: durability, auditChain: chain, hub: member?.hub.state)
    }

    func policyStatus(_ context: RequestContext) async throws -> PolicyStatusReply {
        try await requirePermission(context, action: .status, resource: "mamori:status")
        let policy = context.engine.policy
        return PolicyStatusReply(
            revision: policy.revision, directory: configuration.policyDirectory, files: policy.files,
            counts: [
                "zones": policy.zones.count, "assets": policy.assets.count, "roles": policy.roles.count,
                "rules": policy.rules.count,
            ],
            warnings: policy.warnings.map(\.description))
    }

    func reloadPolicy(_ context: RequestContext) async throws -> PolicyReloadReply {
        try await requirePermission(context, action: .policyReload, resource: "mamori:policy")
        let (old, new) = try await reload(actor: context)
        return PolicyReloadReply(previousRevision: old, revision: new)
    }

    /// Swaps `policy` in whole, and tells the observers (the daemon republishes its login factors).
    func putInForce(_ policy: Policy) {
        engineBox.withLockedValue { $0 = PolicyEngine(policy: policy) }
        for observer in policyObservers.withLockedValue({ $0 }) { observer(policy) }
    }

    /// Loads the policy folder again and swaps it in whole, or keeps the old one on any error.
    /// Used by `policy.reload` and SIGHUP (`context` nil: the daemon itself).
    func reload(actor context: RequestContext?) async throws -> (String, String) {
        let old = engine.revision
        let now = clock.now()
        func entry(_ outcome: AuditOutcome, _ detail: [String: String]) -> AuditEntry {
            AuditEntry(
                time: now, actorUID: context.map { Int($0.caller.uid) }, actor: context?.caller.label ?? "mamorid",
                event: .policyReload, target: "mamori:policy", outcome: outcome, detail: detail,
                terminal: configuration.terminal, zone: configuration.zone, policyRevision: old
            )
        }
        let policy: Policy
        do {
            policy = try PolicyLoader.load(
                directory: URL(fileURLWithPath: configuration.policyDirectory, isDirectory: true))
            guard policy.zones.contains(where: { $0.id == configuration.zone }) else {
                throw WireError(.invalid, "The new policy has no zone '\(configuration.zone)'; the old policy stays.")
            }
        } catch let error as PolicyLoadError {
            try await store.appendAudit(entry(.failure, ["errors": "\(error.errors.count)"]))
            logger.error("policy reload failed; keeping the old policy", metadata: ["revision": "\(old)"])
            let first = error.errors.first.map { ": \($0)" } ?? ""
            throw WireError(.invalid, "The policy has \(error.errors.count) error(s); the old policy stays\(first)")
        }
        try await store.appendAudit(entry(.success, ["new_revision": policy.revision]))
        putInForce(policy)
        logger.notice("policy reloaded", metadata: ["old": "\(old)", "new": "\(policy.revision)"])
        return (old, policy.revision)
    }
}
