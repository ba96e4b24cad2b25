import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore

/// `authorize`: the policy engine's decision for a session or a user, on the full path (with
/// audit writes and store reads) or, for an open session whose user is cached, at once on the
/// event loop.
extension MamoriService {
    /// Decides for a session (or, for callers the policy allows, a user) whether it may do an
    /// action on a resource; the decision, with its reasons, is the reply.
    func authorize(_ context: RequestContext) async throws -> [String: JSONValue] {
        let request = context.request
        let action = try request.string(.action)
        let resource = try request.string(.resource)
        let subject: AuthorizationRequest
        if let sessionID = try request.optionalString(.session) {
            guard let session = try await liveSession(sessionID, at: context.now) else {
                throw WireError(
                    .notFound,
                    "There is no open session '\(sessionID)': it was closed, ran past its maximum length, or lapsed after "
                        + "\(context.engine.policy.settings.sessionIdleMinutes) idle minutes. Log in (or unlock the screen) again."
                )
            }
            if context.caller.name != session.user || context.caller.isOperator {
                try await requirePermission(
                    context, action: .sessionQuery, resource: "mamori:sessions/\(sessionID)")
            }
            subject = try await self.subject(
                session.user, action: action, resource: resource, sessionID: sessionID, context: context)
        } else {
            let name = try Self.userName(request)
            try await requirePermission(context, action: .sessionQuery, resource: "mamori:users/\(name)")
            var hypothetical = try await self.subject(
                name, action: action, resource: resource, sessionID: nil, context: context)
            // Asking by user may describe a session that does not exist: "what if she logged in
            // at a terminal of this zone with these factors?"
            if let zone = try request.optionalString(.zone) { hypothetical.zone = zone }
            if let names = try request.optionalStrings(.factors) {
                // The declaration lists the core's factors (a test keeps the two equal).
                hypothetical.factors = Set(names.compactMap(Factor.init(rawValue:)))
            }
            subject = hypothetical
        }
        let decision = context.engine.evaluate(subject)
        if !decision.isAllowed {
            try await recordDenial(
                audit(
                    context, event: .decisionDeny, target: resource, outcome: .denied,
                    detail: [
                        "user": subject.user, "action": action, "effect": decision.effect.rawValue,
                        "rules": decision.decidingRules.joined(separator: ","),
                    ]
                ),
                context, action: action, resource: resource
            )
        } else if context.engine.policy.settings.auditAllowedDecisions {
            try await store.appendAudit(
                audit(
                    context, event: .decisionAllow, target: resource, outcome: .success,
                    detail: [
                        "user": subject.user, "action": action, "effect": decision.effect.rawValue,
                        "rules": decision.decidingRules.joined(separator: ","),
                    ]
                ))
        }
        return decisionFields(decision)
    }

    /// The decision in the protocol's one shape (``DecisionReply``), with the generation it was made at.
    func decisionFields(_ decision: Decision) -> [String: JSONValue] {
        DecisionReply(
            effect: decision.effect.rawValue, rules: decision.decidingRules, reasons: decision.reasons,
            missingFactors: decision.missingFactors.map(\.rawValue), policyRevision: decision.policyRevision,
            assignmentGeneration: cache.generation
        ).fields
    }

    /// Answers `authorize` for an open session on the calling thread (the event loop) when all it
    /// needs is in memory and the answer needs no audit write: the hot path, with no task, no
    /// thread hop and no database read. Returns nil whenever the full path is needed.
    func answerQuickly(_ request: WireRequest, caller: Caller) -> [UInt8]? {
        guard request.op == WireOperation.authorize.rawValue,
            case .string(let sessionID)? = request.fields[WireField.session.name],
            case .string(let action)? = request.fields[WireField.action.name], WireField.action.fits(action),
            case .string(let resource)? = request.fields[WireField.resource.name], WireField.resource.fits(resource),
            let session = cache.session(sessionID)
        else { return nil }
        let now = clock.now()
        let engine = self.engine
        // An idle session goes the full path, which closes and records it.
        guard session.isOpen(at: now), caller.isOperator || caller.name == session.user,
            let snapshot = cache.user(session.user),
            cache.use(session, at: now, idle: TimeInterval(engine.policy.settings.sessionIdleMinutes * 60))
        else { return nil }
        if caller.isOperator {
            logger.notice(
                "operator acts",
                metadata: ["uid": "\(caller.uid)", "op": "authorize", "resource": "mamori:sessions/\(sessionID)"])
        }
        let decision = engine.evaluate(
            authorizationRequest(
                session.user, snapshot, factors: session.factors, at: now, action: action, resource: resource
            ))
        guard decision.isAllowed, !engine.policy.settings.auditAllowedDecisions else { return nil }
        return WireReply.success(decisionFields(decision), id: request.id)
    }
}
