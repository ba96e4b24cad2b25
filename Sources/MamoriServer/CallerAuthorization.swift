import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore

/// Who the caller is to the policy, and what it may do: the audit entry of an act, the engine's
/// request for a user (from the subject cache), live sessions, and the checks every operation
/// makes before it acts.
extension MamoriService {

    /// The audit entry of an act of the caller's, at the request's time, under the policy it was judged by.
    func audit(
        _ context: RequestContext, event: AuditEvent, target: String, outcome: AuditOutcome,
        detail: [String: String] = [:]
    ) -> AuditEntry {
        AuditEntry(
            time: context.now, actorUID: Int(context.caller.uid), actor: context.caller.label, event: event,
            target: target,
            outcome: outcome, detail: detail, terminal: context.terminal, zone: context.zone,
            policyRevision: context.engine.revision
        )
    }

    /// The engine's request for `name` as subject: current roles, kind, organisation, and the
    /// factors of `sessionID` when it is that user's open session.
    func subject(
        _ name: String, action: String, resource: String, sessionID: String?, context: RequestContext
    ) async throws -> AuthorizationRequest {
        let snapshot = try await userSnapshot(name)
        var factors: Set<Factor> = []
        if let sessionID, let session = try await liveSession(sessionID, at: context.now), session.user == name,
            // On a hub, a session steps up only requests from the terminal it was opened on: an id
            // learnt on one terminal is worth nothing through another.
            context.caller.origin == nil || session.terminal == context.terminal
        {
            factors = session.factors
        }
        return authorizationRequest(
            name, snapshot, factors: factors, at: context.now, action: action, resource: resource, zone: context.zone
        )
    }

    /// What the engine decides on, for `name` as `snapshot` has them, in `zone` (this terminal's
    /// unless a member terminal forwarded the request) with `factors`: the one way both the
    /// in-memory `authorize` and every other decision build it.
    func authorizationRequest(
        _ name: String, _ snapshot: SubjectCache.Snapshot, factors: Set<Factor>, at now: Date, action: String,
        resource: String, zone: String? = nil
    ) -> AuthorizationRequest {
        AuthorizationRequest(
            user: name, roles: snapshot.currentRoles(at: now), kind: snapshot.user?.kind,
            organisation: snapshot.user?.organisation, zone: zone ?? configuration.zone, factors: factors, time: now,
            action: action, resource: resource
        )
    }

    /// The user as decisions see them, from the cache or, once, from the store.
    func userSnapshot(_ name: String) async throws -> SubjectCache.Snapshot {
        if let cached = cache.user(name) { return cached }
        let epoch = cache.epoch
        let user = try await store.user(named: name)
        let snapshot = SubjectCache.Snapshot(
            user: user, assignments: user == nil ? [] : try await store.assignments(of: name))
        cache.keep(snapshot, for: name, readAt: epoch)
        return snapshot
    }

    /// The session if it is open and was used within the policy's `session: idle-minutes`, now
    /// counted as used again; nil otherwise. A session found idle is closed, and the close is
    /// recorded, so that the lapse is in the trail and nothing revives it.
    func liveSession(_ id: String, at now: Date) async throws -> SessionRecord? {
        guard let session = try await session(id), session.isOpen(at: now) else { return nil }
        if let member {
            // A session from before the join was a local user's; one from before its user was
            // removed or replaced at the hub is not the present user's.
            if session.openedAt < member.joinedAt { return nil }
            if let retired = member.mirror.retired(session.user), session.openedAt < retired { return nil }
        }
        let idleMinutes = engine.policy.settings.sessionIdleMinutes
        guard cache.use(session, at: now, idle: TimeInterval(idleMinutes * 60)) else {
            cache.forgetSession(id)
            do {
                try await store.closeSession(
                    id, at: now,
                    audit: AuditEntry(
                        time: now, actorUID: nil, actor: "mamorid", event: .sessionClose, target: id, outcome: .success,
                        detail: ["user": session.user, "reason": "idle", "idle_minutes": "\(idleMinutes)"],
                        terminal: configuration.terminal, zone: configuration.zone, policyRevision: engine.revision
                    ))
            } catch let error as StoreError where error.code == .notFound {
                // Closed meanwhile by another request: nothing more to do.
            }
            return nil
        }
        return session
    }

    /// A session from the cache or, once, from the store.
    func session(_ id: String) async throws -> SessionRecord? {
        if let cached = cache.session(id) { return cached }
        let epoch = cache.epoch
        guard let stored = try await store.session(id) else { return nil }
        cache.keep(stored, readAt: epoch)
        return stored
    }

    /// Lets the request through if the policy permits the caller `action` on `resource` (an
    /// operator — root or the daemon's own user — always, and logged); otherwise records the denial and throws `denied` or `step_up_required`.
    func requirePermission(_ context: RequestContext, action: MamoriAction, resource: String) async throws {
        let action = action.rawValue
        if context.caller.isOperator {
            logger.notice(
                "operator acts",
                metadata: ["uid": "\(context.caller.uid)", "op": "\(context.request.op)", "resource": "\(resource)"])
            return
        }
        let request = try await subject(
            context.caller.label, action: action, resource: resource,
            sessionID: try context.request.optionalString(.session), context: context
        )
        let decision = context.engine.evaluate(request)
        if decision.isAllowed { return }
        try await recordDenial(
            audit(
                context, event: .decisionDeny, target: resource, outcome: .denied,
                detail: [
                    "action": action, "effect": decision.effect.rawValue,
                    "rules": decision.decidingRules.joined(separator: ","),
                ]
            ),
            context, action: action, resource: resource
        )
        let rules =
            decision.decidingRules.isEmpty
            ? "no rule permits it" : "rule \(decision.decidingRules.joined(separator: ", "))"
        if decision.effect == .stepUp {
            throw WireError(
                .stepUpRequired,
                "Step up: your user \(context.caller.label) may \(action) on \(resource) only in a session with "
                    + "\(decision.missingFactors.map(\.rawValue).joined(separator: " and ")) (\(rules)); pass your MAMORI_SESSION."
            )
        }
        if let origin = context.caller.origin, context.caller.uid == 0 {
            // Root on a member terminal: the rules that matched an unknown user say little.
            throw WireError(
                .denied,
                "Permission denied: root on terminal \(origin.terminal) administers nothing in the town; log in as a "
                    + "Mamori administrator and pass your MAMORI_SESSION, or act at the hub.")
        }
        throw WireError(
            .denied, "Permission denied: your user \(context.caller.label) may not \(action) on \(resource) (\(rules))."
        )
    }

    /// For operations about a user (authenticate, account, sessions): root, the user themself,
    /// or a caller the policy lets `mamori.authenticate` on that user.
    func requireSelfOrPermission(_ context: RequestContext, user: String) async throws {
        if context.caller.name == user && !context.caller.isOperator { return }
        if context.caller.actsForUsers && !context.caller.isOperator {
            // Root on a member terminal: its PAM module asking about a login there.
            return
        }
        try await requirePermission(context, action: .authenticate, resource: "mamori:users/\(user)")
    }

    static func userName(_ request: WireRequest) throws -> String {
        let name = try request.string(.user)
        // Unix login names: letters, digits, '.', '_', '-'; not starting with '-'.
        let valid =
            !name.isEmpty && !name.hasPrefix("-")
            && name.unicodeScalars.allSatisfy {
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0))
            }
        guard valid else {
            throw WireError(
                .badRequest,
                "A user name has only ASCII letters, digits, '.', '_' and '-', and does not start with '-'.")
        }
        return name
    }
}
