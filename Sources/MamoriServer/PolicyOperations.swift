import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore
import NIOConcurrencyHelpers

/// `status`, `policy.status` and `policy.reload` (also SIGHUP): what the daemon runs on, and
/// swapping the policy whole or not at all.
extension MamoriService {

    func status(_ context: RequestContext) async throws -> [String: JSONValue] {
        try await requirePermission(context, action: "mamori.status", resource: "mamori:status")
        let counts = try await store.counts(at: context.now)
        let durability = try await store.durability()
        let factors = context.engine.policy.zones.first { $0.id == configuration.zone }?.loginFactors ?? []
        return [
            "login_factors": .array(factors.sorted().map { .string($0.rawValue) }),
            "version": .string(MamoriVersion.current), "protocol": .number(Double(WireLimits.protocolVersion)),
            "zone": .string(configuration.zone), "terminal": .string(configuration.terminal),
            "policy_revision": .string(context.engine.revision),
            "uptime_seconds": .number(context.now.timeIntervalSince(startedAt).rounded(.down)),
            "counts": .object(counts.mapValues { .number(Double($0)) }),
            "storage": .object(durability.mapValues { .string($0) }),
            "audit_chain": lastChainCheck.withLockedValue { check in
                guard let check else { return .object(["checked": .bool(false)]) }
                return .object([
                    "checked": .bool(true), "holds": .bool(check.holds), "entries": .number(Double(check.entries)),
                    "problems": .number(Double(check.problems)), "verified_at": .string(check.time.formatted(.iso8601)),
                ])
            },
        ]
    }

    func policyStatus(_ context: RequestContext) async throws -> [String: JSONValue] {
        try await requirePermission(context, action: "mamori.status", resource: "mamori:status")
        let policy = context.engine.policy
        return [
            "revision": .string(policy.revision), "directory": .string(configuration.policyDirectory),
            "files": .array(policy.files.map { .string($0) }),
            "counts": .object([
                "zones": .number(Double(policy.zones.count)), "assets": .number(Double(policy.assets.count)),
                "roles": .number(Double(policy.roles.count)), "rules": .number(Double(policy.rules.count)),
            ]),
            "warnings": .array(policy.warnings.map { .string($0.description) }),
        ]
    }

    func reloadPolicy(_ context: RequestContext) async throws -> [String: JSONValue] {
        try await requirePermission(context, action: "mamori.policy.reload", resource: "mamori:policy")
        let (old, new) = try await reload(actor: context)
        return ["previous_revision": .string(old), "revision": .string(new)]
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
        engineBox.withLockedValue { $0 = PolicyEngine(policy: policy) }
        for observer in policyObservers.withLockedValue({ $0 }) { observer(policy) }
        logger.notice("policy reloaded", metadata: ["old": "\(old)", "new": "\(policy.revision)"])
        return (old, policy.revision)
    }
}
