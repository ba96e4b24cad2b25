import Foundation
import NIOConcurrencyHelpers
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore

/// `authenticate`, `account`, `session.open`, `session.close` and `authorize`.
extension MamoriService {
    /// Why an authentication failed: recorded in the audit trail, never put in the reply.
    private enum FailureReason: String {
        case unknownUser = "unknown-user", disabled, locked, noPassword = "no-password", password
        case noSecondFactor = "no-second-factor", code, replay
    }

    func authenticate(_ context: RequestContext) async throws -> [String: JSONValue] {
        let request = context.request
        let name = try Self.userName(request)
        try await requireSelfOrPermission(context, user: name)
        let password = Array(try request.string("password", maximumLength: PasswordHasher.maximumPasswordLength).utf8)
        let code = try request.optionalString("code", maximumLength: 64)
        let service = try request.optionalString("service", maximumLength: 64) ?? "unknown"
        let tty = try request.optionalString("tty", maximumLength: 64)
        let remoteHost = try request.optionalString("rhost", maximumLength: 256)
        let settings = context.engine.policy.settings
        let required = context.engine.policy.zones.first { $0.id == configuration.zone }?.loginFactors ?? [.password, .totp]

        let user = try await store.user(named: name)
        let failures = try await store.failures(of: name)
        let hasher = try PasswordHasher(parameters: settings.argon2)
        // Exactly one Argon2 run whatever happens, so timing tells nothing about the account.
        let storedHash = user?.passwordHash
        let passwordMatches = try await runArgon2 {
            if let storedHash { return (try? hasher.verify(password, against: storedHash)) ?? false }
            return try hasher.dummyVerify(password)
        }

        var reason: FailureReason?
        if user == nil { reason = .unknownUser } else if user?.disabled == true { reason = .disabled }
        else if failures?.isLocked(at: context.now) == true { reason = .locked }
        else if storedHash == nil { reason = .noPassword } else if !passwordMatches { reason = .password }

        var factors: Set<Factor> = [.password]
        var acceptedStep: UInt64?
        var recoveryCode: Int64?
        if reason == nil, required.contains(.totp) {
            let enrolment = try await store.totp(of: name)
            if let enrolment, enrolment.confirmed, let typed = code, !typed.isEmpty {
                let seed = try cipher.open(enrolment.sealedSeed, for: name)
                let totp = try TOTP(secret: seed, parameters: enrolment.parameters)
                switch totp.verify(typed, at: context.now, window: settings.totpWindow, lastAcceptedStep: enrolment.lastAcceptedStep) {
                case .accepted(let step):
                    acceptedStep = step
                    factors.insert(.totp)
                case .replayed: reason = .replay
                case .rejected, .malformed:
                    let stored = try await store.recoveryCodes(of: name)
                    if let match = RecoveryCodes.consume(typed, from: stored.map(\.code), at: context.now) {
                        recoveryCode = stored[match.index].id
                        factors.insert(.recoveryCode)
                    } else {
                        reason = .code
                    }
                }
            } else {
                reason = enrolment?.confirmed == true ? .code : .noSecondFactor
            }
        }

        if reason == nil, let user {
            var rehash: String?
            if let storedHash, (try? hasher.needsRehash(storedHash)) == true {
                rehash = try await runArgon2 { try hasher.hash(password) }
            }
            let recorded = try await store.recordLogin(
                name, at: context.now, acceptedStep: acceptedStep, consumedRecoveryCode: recoveryCode, rehash: rehash,
                audit: audit(
                    context, event: "auth.success", target: name, outcome: "success",
                    detail: ["factors": factors.map(\.rawValue).sorted().joined(separator: ","), "service": service,
                             "tty": tty ?? "", "rhost": remoteHost ?? "", "rehashed": rehash == nil ? "no" : "yes"]
                )
            )
            if recorded {
                // Authenticating again (a screen unlock) keeps the user's sessions from lapsing.
                cache.touch(user: name, at: context.now)
                let ticket = SystemRandomBytes().bytes(24).map { String(format: "%02x", $0) }.joined()
                tickets.withLockedValue { book in
                    book = book.filter { $0.value.expires > context.now }
                    book[ticket] = Ticket(user: name, factors: factors, expires: context.now.addingTimeInterval(Self.ticketLifetime))
                }
                return [
                    "user": .string(name), "factors": .array(factors.map(\.rawValue).sorted().map { .string($0) }),
                    "ticket": .string(ticket), "password_change_required": .bool(user.mustChangePassword),
                ]
            }
            reason = .replay
        }

        let why = reason ?? .password
        let entry = audit(
            context, event: "auth.failure", target: name, outcome: "failure",
            detail: ["reason": why.rawValue, "service": service, "tty": tty ?? "", "rhost": remoteHost ?? ""]
        )
        if user != nil, why != .locked, why != .disabled {
            let roles = try await store.assignments(of: name).filter { $0.isCurrent(at: context.now) }.map(\.role)
            let privileged = roles.contains { role in context.engine.policy.roles.contains { $0.id == role && $0.privileged } }
            let lockout = privileged ? settings.privilegedLockout : settings.lockout
            let record = try await store.recordFailure(
                name, at: context.now, threshold: lockout.failures, window: TimeInterval(lockout.windowMinutes * 60),
                lockFor: TimeInterval(lockout.lockMinutes * 60), audit: entry
            )
            if record.isLocked(at: context.now) && failures?.isLocked(at: context.now) != true {
                try await store.appendAudit(audit(
                    context, event: "auth.lockout", target: name, outcome: "failure",
                    detail: ["failures": "\(record.count)", "privileged": privileged ? "yes" : "no"]
                ))
            }
        } else {
            try await store.appendAudit(entry)
        }
        throw WireError(.authenticationFailed, "Authentication failed.")
    }

    func runArgon2<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await argonPool.run(body)
    }

    func account(_ context: RequestContext) async throws -> [String: JSONValue] {
        let name = try Self.userName(context.request)
        try await requireSelfOrPermission(context, user: name)
        guard let user = try await store.user(named: name) else {
            return ["result": .string("unknown_user")]
        }
        let assignments = try await store.assignments(of: name)
        let current = assignments.filter { $0.isCurrent(at: context.now) }
        let usable = context.engine.roles(current.map(\.role), takingEffectIn: configuration.zone)
        var result = "allowed"
        var reasons: [String] = []
        if user.disabled {
            result = "denied"
            reasons.append("The account is disabled.")
        } else if try await store.failures(of: name)?.isLocked(at: context.now) == true {
            result = "denied"
            reasons.append("The account is locked after failed logins.")
        } else if current.isEmpty && !assignments.isEmpty {
            result = "expired"
            reasons.append("Every role assignment of this user has expired.")
        } else if usable.isEmpty {
            result = "denied"
            reasons.append("The user holds no role that takes effect in the \(configuration.zone) zone.")
        } else {
            let decision = context.engine.evaluate(AuthorizationRequest(
                user: name, roles: usable, kind: user.kind, organisation: user.organisation,
                zone: configuration.zone, factors: [], time: context.now, action: "login",
                resource: "mamori:terminals/\(configuration.terminal)"
            ))
            // Factors are checked by authenticate; here only whether a login may happen at all.
            if decision.effect == .deny {
                result = "denied"
                reasons += decision.reasons
            } else if user.mustChangePassword {
                result = "password_change_required"
            }
        }
        if result != "allowed" {
            try await store.appendAudit(audit(context, event: "account.refused", target: name, outcome: "denied", detail: ["result": result]))
        }
        return ["result": .string(result), "reasons": .array(reasons.map { .string($0) })]
    }

    func openSession(_ context: RequestContext) async throws -> [String: JSONValue] {
        let request = context.request
        let ticketText = try request.string("ticket", maximumLength: 128)
        let ticket = tickets.withLockedValue { book -> Ticket? in
            defer { book[ticketText] = nil }
            return book[ticketText]
        }
        guard let ticket, ticket.expires > context.now else {
            throw WireError(.notFound, "The ticket is unknown, used or expired; authenticate again.")
        }
        try await requireSelfOrPermission(context, user: ticket.user)
        let settings = context.engine.policy.settings
        let session = SessionRecord(
            id: SystemRandomBytes().bytes(16).map { String(format: "%02x", $0) }.joined(), user: ticket.user,
            zone: configuration.zone, terminal: configuration.terminal, factors: ticket.factors,
            service: try request.optionalString("service", maximumLength: 64) ?? "unknown",
            tty: try request.optionalString("tty", maximumLength: 64), remoteHost: try request.optionalString("rhost", maximumLength: 256),
            openedAt: context.now, expiresAt: context.now.addingTimeInterval(TimeInterval(settings.sessionMaximumHours * 3600))
        )
        try await store.openSession(session, audit: audit(
            context, event: "session.open", target: session.id, outcome: "success",
            detail: ["user": session.user, "factors": session.factors.map(\.rawValue).sorted().joined(separator: ","),
                     "service": session.service]
        ))
        cache.keep(session)
        return [
            "session": .string(session.id), "user": .string(session.user),
            "expires_at": .string(ISO8601DateFormatter().string(from: session.expiresAt)),
        ]
    }

    func closeSession(_ context: RequestContext) async throws -> [String: JSONValue] {
        let id = try context.request.string("session", maximumLength: 128)
        guard let session = try await store.session(id) else { throw WireError(.notFound, "There is no session '\(id)'.") }
        try await requireSelfOrPermission(context, user: session.user)
        cache.forgetSession(id)
        try await store.closeSession(id, at: context.now, audit: audit(context, event: "session.close", target: id, outcome: "success"))
        return ["session": .string(id)]
    }

    /// Decides for a session (or, for callers the policy allows, a user) whether it may do an
    /// action on a resource; the decision, with its reasons, is the reply.
    func authorize(_ context: RequestContext) async throws -> [String: JSONValue] {
        let request = context.request
        let action = try request.string("action", maximumLength: 128)
        let resource = try request.string("resource", maximumLength: 512)
        let subject: AuthorizationRequest
        if let sessionID = try request.optionalString("session", maximumLength: 128) {
            guard let session = try await liveSession(sessionID, at: context.now) else {
                throw WireError(
                    .notFound,
                    "There is no open session '\(sessionID)': it was closed, ran past its maximum length, or lapsed after "
                        + "\(context.engine.policy.settings.sessionIdleMinutes) idle minutes. Log in (or unlock the screen) again."
                )
            }
            if context.caller.name != session.user || context.caller.isOperator {
                try await requirePermission(context, action: "mamori.session.query", resource: "mamori:sessions/\(sessionID)")
            }
            subject = try await self.subject(session.user, action: action, resource: resource, sessionID: sessionID, context: context)
        } else {
            let name = try Self.userName(request)
            try await requirePermission(context, action: "mamori.session.query", resource: "mamori:users/\(name)")
            var hypothetical = try await self.subject(name, action: action, resource: resource, sessionID: nil, context: context)
            // Asking by user may describe a session that does not exist: "what if she logged in
            // at a terminal of this zone with these factors?"
            if let zone = try request.optionalString("zone", maximumLength: 64) { hypothetical.zone = zone }
            if let names = try request.optionalStrings("factors", maximumCount: 8) {
                var factors: Set<Factor> = []
                for name in names {
                    guard let factor = Factor(rawValue: name) else {
                        throw WireError(.badRequest, "Factors are password, totp and recovery-code, not '\(name.prefix(32))'.")
                    }
                    factors.insert(factor)
                }
                hypothetical.factors = factors
            }
            subject = hypothetical
        }
        let decision = context.engine.evaluate(subject)
        if !decision.isAllowed || context.engine.policy.settings.auditAllowedDecisions {
            try await store.appendAudit(audit(
                context, event: decision.isAllowed ? "decision.allow" : "decision.deny", target: resource,
                outcome: decision.isAllowed ? "success" : "denied",
                detail: ["user": subject.user, "action": action, "effect": decision.effect.rawValue,
                         "rules": decision.decidingRules.joined(separator: ",")]
            ))
        }
        return decisionFields(decision)
    }

    func decisionFields(_ decision: Decision) -> [String: JSONValue] {
        [
            "effect": .string(decision.effect.rawValue), "allowed": .bool(decision.isAllowed),
            "rules": .array(decision.decidingRules.map { .string($0) }),
            "reasons": .array(decision.reasons.map { .string($0) }),
            "missing_factors": .array(decision.missingFactors.map { .string($0.rawValue) }),
            "policy_revision": .string(decision.policyRevision),
            "assignment_generation": .number(Double(cache.generation)),
        ]
    }

    /// Answers `authorize` for an open session on the calling thread (the event loop) when all it
    /// needs is in memory and the answer needs no audit write: the hot path, with no task, no
    /// thread hop and no database read. Returns nil whenever the full path is needed.
    func answerQuickly(_ request: WireRequest, caller: Caller) -> [UInt8]? {
        guard request.op == "authorize",
            case .string(let sessionID)? = request.fields["session"],
            case .string(let action)? = request.fields["action"], action.utf8.count <= 128,
            case .string(let resource)? = request.fields["resource"], resource.utf8.count <= 512,
            let session = cache.session(sessionID)
        else { return nil }
        let now = Date()
        let engine = self.engine
        // An idle session goes the full path, which closes and records it.
        guard session.isOpen(at: now), caller.isOperator || caller.name == session.user,
            let snapshot = cache.user(session.user),
            cache.use(session, at: now, idle: TimeInterval(engine.policy.settings.sessionIdleMinutes * 60))
        else { return nil }
        if caller.isOperator {
            logger.notice("operator acts", metadata: ["uid": "\(caller.uid)", "op": "authorize", "resource": "mamori:sessions/\(sessionID)"])
        }
        let decision = engine.evaluate(AuthorizationRequest(
            user: session.user, roles: snapshot.currentRoles(at: now), kind: snapshot.user?.kind,
            organisation: snapshot.user?.organisation, zone: configuration.zone, factors: session.factors, time: now,
            action: action, resource: resource
        ))
        guard decision.isAllowed, !engine.policy.settings.auditAllowedDecisions else { return nil }
        return WireReply.success(decisionFields(decision), id: request.id)
    }
}
