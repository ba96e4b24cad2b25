import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore
import NIOConcurrencyHelpers

/// `authenticate`, `account`, `session.open` and `session.close`: the login phases PAM asks for.
extension MamoriService {
    /// The lockout that applies to a holder of `assignments`: the stricter one while they hold a
    /// privileged role.
    func lockout(for assignments: [AssignmentRecord], _ context: RequestContext) -> (LockoutSettings, privileged: Bool)
    {
        let settings = context.engine.policy.settings
        let roles = assignments.filter { $0.isCurrent(at: context.now) }.map(\.role)
        let privileged = roles.contains { role in
            context.engine.policy.roles.contains { $0.id == role && $0.privileged }
        }
        return (privileged ? settings.privilegedLockout : settings.lockout, privileged)
    }

    /// The result of checking a password the way every operation that takes one must.
    struct PasswordCheck {
        /// The account as read before the check (one read: see ``MamoriStore/LoginState``).
        let state: LoginState
        var user: UserRecord? { state.user }
        /// Set when the password matched a usable account and its attempt is reserved.
        let matched: Bool
        /// The failure, when the password did not let the caller in.
        let reason: LoginFailure?
        /// The reserved attempt, to settle with a success or a failure.
        let attempt: PasswordAttempt?
        let lockout: LockoutSettings
        let privileged: Bool
        let wasLocked: Bool
    }

    /// Checks a password for `name` with one Argon2 run, whatever the account's state, so that an
    /// empty, over-long, wrong, unknown, disabled or locked attempt costs the same and looks the
    /// same from outside. The attempt is reserved in the store before Argon2 runs, so parallel
    /// guesses cannot pass the lockout; a locked or disabled account is never evaluated.
    ///
    /// The work is a verification against the stored hash when there is one (its own parameters:
    /// an account with an older hash costs what it would cost when not locked), else a dummy at
    /// the policy's parameters.
    func checkPassword(_ name: String, _ password: [UInt8], _ context: RequestContext) async throws -> PasswordCheck {
        let hasher = try PasswordHasher(parameters: context.engine.policy.settings.argon2, random: random)
        let state = try await store.loginState(of: name)
        let user = state.user
        let (lockout, privileged) = self.lockout(for: state.assignments, context)
        var reservation = AttemptReservation.refused(locked: false)
        var wasLocked = false
        if let user, !user.disabled, user.passwordHash != nil {
            reservation = try await store.reserveAttempt(
                name, at: context.now, threshold: lockout.failures, window: TimeInterval(lockout.windowMinutes * 60)
            )
            if case .refused(locked: true) = reservation { wasLocked = true }
        }
        let attempt: PasswordAttempt?
        if case .reserved(let reserved) = reservation { attempt = reserved } else { attempt = nil }
        let usable = !password.isEmpty && password.count <= PasswordHasher.maximumPasswordLength
        // A stand-in of ordinary length for an empty or over-long password: the same work, never a match.
        let input = usable ? password : Self.standInPassword
        let storedHash = user?.passwordHash
        let verified: Bool
        do {
            verified = try await runArgon2(context) {
                if let storedHash { return (try? hasher.verify(input, against: storedHash)) ?? false }
                return (try? hasher.dummyVerify(input)) ?? false
            }
        } catch {
            if let attempt { try? await store.release(attempt) }
            throw error
        }
        let reason = PasswordFacts(
            userExists: user != nil, disabled: user?.disabled == true, locked: wasLocked,
            hasPassword: storedHash != nil,
            attemptReserved: attempt != nil, usable: usable, verified: verified
        ).failure
        return PasswordCheck(
            state: state, matched: reason == nil, reason: reason, attempt: attempt, lockout: lockout,
            privileged: privileged,
            wasLocked: wasLocked
        )
    }

    static let standInPassword = Array("mamori-stand-in-password".utf8)

    /// Records a failed password operation: counts it against the lockout when its attempt was
    /// reserved (and records the lock it causes), otherwise records it alone.
    func recordFailure(_ check: PasswordCheck, reason: LoginFailure, entry: AuditEntry, _ context: RequestContext)
        async throws
    {
        guard let attempt = check.attempt, let user = check.user else {
            try await store.appendAudit(entry)
            return
        }
        let record = try await store.recordFailure(
            user.name, attempt: attempt, at: context.now, threshold: check.lockout.failures,
            window: TimeInterval(check.lockout.windowMinutes * 60),
            lockFor: TimeInterval(check.lockout.lockMinutes * 60),
            audit: entry
        )
        if record.isLocked(at: context.now) && record.count == check.lockout.failures {
            try await store.appendAudit(
                audit(
                    context, event: .authLockout, target: user.name, outcome: .failure,
                    detail: ["failures": "\(record.count)", "privileged": check.privileged ? "yes" : "no"]
                ))
        }
    }

    /// What an `authenticate` request carries, read once for the hub's check and the terminal's
    /// offline one alike.
    struct LoginFields {
        let name: String
        /// Any length the line allows: an over-long password is a wrong one, answered alike.
        let password: [UInt8]
        let code: String?
        let service: String
        let tty: String?
        let remoteHost: String?

        init(_ request: WireRequest) throws {
            name = try MamoriService.userName(request)
            password = Array(try request.string(.password).utf8)
            code = try request.optionalString(.code)
            service = try request.optionalString(.service) ?? "unknown"
            tty = try request.optionalString(.tty)
            remoteHost = try request.optionalString(.remoteHost)
        }
    }

    func authenticate(_ context: RequestContext) async throws -> AuthenticateReply {
        let fields = try LoginFields(context.request)
        let (name, password, code) = (fields.name, fields.password, fields.code)
        let (service, tty, remoteHost) = (fields.service, fields.tty, fields.remoteHost)
        try await requireSelfOrPermission(context, user: name)
        let settings = context.engine.policy.settings
        let required =
            context.engine.policy.zones.first { $0.id == context.zone }?.loginFactors ?? [.password, .totp]

        let check = try await checkPassword(name, password, context)
        var reason = check.reason
        do {
            var factors: Set<Factor> = [.password]
            var acceptedStep: UInt64?
            var recoveryCode: Int64?
            if reason == nil, required.contains(.totp) {
                let typed = code ?? ""
                let enrolment = check.state.totp
                let confirmed = enrolment?.confirmed == true
                // The seed is opened only when there is a code to check against it.
                var device: TOTP?
                if let enrolment, confirmed, !typed.isEmpty {
                    device = try TOTP(
                        secret: try cipher.open(enrolment.sealedSeed, for: name), parameters: enrolment.parameters)
                }
                let stored = check.state.recoveryCodes
                switch SecondFactor.evaluate(
                    typed, device: device, deviceConfirmed: confirmed, lastAcceptedStep: enrolment?.lastAcceptedStep,
                    window: settings.totpWindow, recoveryCodes: stored.map(\.code), at: context.now
                ) {
                case .totp(let step):
                    acceptedStep = step
                    factors.insert(.totp)
                case .recoveryCode(let index):
                    recoveryCode = stored[index].id
                    factors.insert(.recoveryCode)
                case .failed(let failure):
                    reason = failure
                }
            }

            if reason == nil, let user = check.user, let attempt = check.attempt {
                let hasher = try PasswordHasher(parameters: settings.argon2, random: random)
                var rehash: PasswordRehash?
                if let storedHash = user.passwordHash, (try? hasher.needsRehash(storedHash)) == true {
                    rehash = PasswordRehash(
                        verified: storedHash, upgraded: try await runArgon2(context) { try hasher.hash(password) })
                }
                let recorded = try await store.recordLogin(
                    name, at: context.now, attempt: attempt, acceptedStep: acceptedStep,
                    consumedRecoveryCode: recoveryCode,
                    rehash: rehash,
                    audit: audit(
                        context, event: .authSuccess, target: name, outcome: .success,
                        detail: [
                            "factors": factors.map(\.rawValue).sorted().joined(separator: ","), "service": service,
                            "tty": tty ?? "", "rhost": remoteHost ?? "", "rehashed": rehash == nil ? "no" : "yes",
                        ]
                    )
                )
                if recorded {
                    // Authenticating again (a screen unlock) keeps the user's sessions from lapsing.
                    cache.touch(user: name, at: context.now)
                    let ticket = newTicket()
                    keepTicket(ticket, user: name, factors: factors, at: context.now)
                    return AuthenticateReply(
                        user: name, factors: factors.map(\.rawValue).sorted(), ticket: ticket,
                        passwordChangeRequired: user.mustChangePassword,
                        offline: await offlineGrant(
                            check.state, acceptedStep: acceptedStep, consumed: recoveryCode, factors: factors,
                            context))
                }
                // The step or the recovery code was taken meanwhile, or the account was locked meanwhile.
                reason = .replay
            }
        } catch {
            if let attempt = check.attempt { try? await store.release(attempt) }
            throw error
        }

        let why = reason ?? .password
        let entry = audit(
            context, event: .authFailure, target: name, outcome: .failure,
            detail: ["reason": why.rawValue, "service": service, "tty": tty ?? "", "rhost": remoteHost ?? ""]
        )
        try await recordFailure(check, reason: why, entry: entry, context)
        throw WireError(.authenticationFailed, "Authentication failed.")
    }

    /// On a hub, for a login a member terminal forwarded: what that terminal needs to let the user
    /// log in through a network cut, when the policy lets the user do so in the terminal's zone
    /// (docs/town.md). With `tags`, and only after a login that checked a code: the codes of the
    /// policy's window of steps from the first not yet used (and not past the TOTP window), and
    /// the unused recovery codes' digests. What is granted is recorded first: a terminal's report
    /// of a use outside it is refused. `deny` when the policy does not let the user log in offline
    /// there (the terminal drops its credential). Nil anywhere else, and when nothing new is
    /// granted (a login that checked no code, or a failure here: the login stands, and the
    /// terminal keeps its older credential).
    func offlineGrant(
        _ state: LoginState, acceptedStep: UInt64?, consumed: Int64?, factors: Set<Factor>, _ context: RequestContext
    ) async -> OfflineGrant? {
        guard let origin = context.caller.origin, let name = state.user?.name, let archive = hub?.offlineUses else {
            return nil
        }
        let current = state.assignments.filter { $0.isCurrent(at: context.now) }.map(\.role)
        let mode = context.engine.offlineLogin(roles: current, zone: context.zone)
        do {
            switch mode {
            case .deny:
                // Said, so that the terminal drops what it keeps for the user.
                return OfflineGrant(
                    mode: mode.rawValue, firstStep: 0, period: 0, digits: 0, codes: "", lastUsedStep: nil,
                    recovery: [])
            case .passwordOnly:
                try await archive.recordOfflineGrant(
                    terminal: origin.terminal, user: name,
                    grant: OfflineGrantRecord(steps: nil, period: 0, recovery: []), at: context.now)
                return OfflineGrant(
                    mode: mode.rawValue, firstStep: 0, period: 0, digits: 0, codes: "", lastUsedStep: nil,
                    recovery: [])
            case .tags:
                // A login that checked no code (a zone asking for the password alone) does not
                // earn the codes of the coming steps.
                guard factors.contains(.totp) || factors.contains(.recoveryCode), let enrolment = state.totp,
                    enrolment.confirmed
                else { return nil }
                let device = try TOTP(
                    secret: try cipher.open(enrolment.sealedSeed, for: name), parameters: enrolment.parameters)
                let lastUsed = [acceptedStep, enrolment.lastAcceptedStep].compactMap { $0 }.max()
                guard let now = device.step(at: context.now) else { return nil }
                let window = UInt64(context.engine.policy.settings.totpWindow)
                let first = max(lastUsed.map { $0 + 1 } ?? 0, now >= window ? now - window : 0)
                let count = context.engine.policy.settings.offline.windowHours * 3600 / enrolment.parameters.period
                guard count > 0 else { return nil }
                let recovery = state.recoveryCodes.filter { $0.code.usedAt == nil && $0.id != consumed }
                try await archive.recordOfflineGrant(
                    terminal: origin.terminal, user: name,
                    grant: OfflineGrantRecord(
                        steps: first...(first + UInt64(count) - 1), period: enrolment.parameters.period,
                        recovery: recovery.map(\.id)), at: context.now)
                return OfflineGrant(
                    mode: mode.rawValue, firstStep: first, period: enrolment.parameters.period,
                    digits: enrolment.parameters.digits,
                    codes: String(decoding: device.codes(from: first, count: count), as: UTF8.self),
                    lastUsedStep: lastUsed,
                    recovery: recovery.map {
                        OfflineRecoveryDigest(
                            id: $0.id, digest: AuditWitness.hex($0.code.digest))
                    })
            }
        } catch {
            logger.warning(
                "no offline grant was made for a login; the terminal keeps what it had",
                metadata: ["user": "\(name)", "terminal": "\(origin.terminal)", "error": "\(error)"])
            return nil
        }
    }

    /// A new ticket: 24 random bytes, hex. A secret, never logged.
    func newTicket() -> String { AuditWitness.hex(random.bytes(24)) }

    /// Keeps `ticket` for `session.open` for ``ticketLifetime``, and drops the expired ones.
    func keepTicket(_ ticket: String, user: String, factors: Set<Factor>, at now: Date, offline: Bool = false) {
        tickets.withLockedValue { book in
            book = book.filter { $0.value.expires > now }
            book[ticket] = Ticket(
                user: user, factors: factors, expires: now.addingTimeInterval(Self.ticketLifetime), offline: offline)
        }
    }

    /// Runs Argon2 on the bounded pool, in the caller's share of it.
    func runArgon2<T: Sendable>(_ context: RequestContext, _ body: @escaping @Sendable () throws -> T) async throws -> T
    {
        // A check that waited in the queue past the client's deadline is not started: no one
        // would read its answer, and it could spend a code or count a failure the client never sees.
        let clock = self.clock
        let deadline = context.deadline
        return try await argonPool.run(for: context.caller) {
            if let deadline, clock.now() > deadline { throw MamoriService.pastDeadline }
            return try body()
        }
    }

    func account(_ context: RequestContext) async throws -> AccountReply {
        let name = try Self.userName(context.request)
        try await requireSelfOrPermission(context, user: name)
        guard let user = try await store.user(named: name) else {
            return AccountReply(result: AccountResult.unknownUser.rawValue)
        }
        let assignments = try await store.assignments(of: name)
        let current = assignments.filter { $0.isCurrent(at: context.now) }
        let facts = AccountFacts(
            disabled: user.disabled, locked: try await store.failures(of: name)?.isLocked(at: context.now) == true,
            hasAssignments: !assignments.isEmpty, hasCurrentAssignments: !current.isEmpty,
            rolesInZone: context.engine.roles(current.map(\.role), takingEffectIn: context.zone),
            mustChangePassword: user.mustChangePassword, zone: context.zone)
        let (result, reasons) = facts.verdict { roles in
            context.engine.evaluate(
                AuthorizationRequest(
                    user: name, roles: roles, kind: user.kind, organisation: user.organisation,
                    zone: context.zone, factors: [], time: context.now, action: MamoriAction.login.rawValue,
                    resource: "mamori:terminals/\(context.terminal)"
                ))
        }
        if result != .allowed {
            try await recordDenial(
                audit(
                    context, event: .accountRefused, target: name, outcome: .denied,
                    detail: ["result": result.rawValue]),
                context, action: MamoriAction.login.rawValue, resource: name
            )
        }
        return AccountReply(result: result.rawValue, reasons: reasons)
    }

    func openSession(_ context: RequestContext) async throws -> SessionOpenReply {
        let request = context.request
        let ticketText = try request.string(.ticket)
        let ticket = tickets.withLockedValue { book -> Ticket? in
            defer { book[ticketText] = nil }
            return book[ticketText]
        }
        guard let ticket, ticket.expires > context.now else {
            throw WireError(.notFound, "The ticket is unknown, used or expired; authenticate again.")
        }
        try await requireSelfOrPermission(context, user: ticket.user)
        let settings = context.engine.policy.settings
        let session = try await recordSession(
            id: random.bytes(16).map { String(format: "%02x", $0) }.joined(), user: ticket.user,
            factors: ticket.factors,
            expiresAt: context.now.addingTimeInterval(TimeInterval(settings.sessionMaximumHours * 3600)), context,
            extra: ticket.offline ? ["offline": "yes"] : [:])
        return SessionOpenReply(
            session: session.id, user: session.user,
            expiresAt: ISO8601DateFormatter().string(from: session.expiresAt))
    }

    /// Records a session opened now in `context`'s terminal and zone, with the request's service,
    /// tty and remote host, and keeps it in the cache. `extra` goes into the audit entry's detail.
    func recordSession(
        id: String, user: String, factors: Set<Factor>, expiresAt: Date, _ context: RequestContext,
        extra: [String: String] = [:]
    ) async throws -> SessionRecord {
        let request = context.request
        let session = SessionRecord(
            id: id, user: user, zone: context.zone, terminal: context.terminal, factors: factors,
            service: try request.optionalString(.service) ?? "unknown",
            tty: try request.optionalString(.tty), remoteHost: try request.optionalString(.remoteHost),
            openedAt: context.now, expiresAt: expiresAt)
        let epoch = cache.epoch
        try await store.openSession(
            session,
            audit: audit(
                context, event: .sessionOpen, target: session.id, outcome: .success,
                detail: [
                    "user": session.user, "factors": session.factors.map(\.rawValue).sorted().joined(separator: ","),
                    "service": session.service,
                ].merging(extra) { $1 }))
        cache.keep(session, readAt: epoch)
        return session
    }

    func closeSession(_ context: RequestContext) async throws -> SessionCloseReply {
        let id = try context.request.string(.session)
        guard let session = try await store.session(id) else {
            throw WireError(.notFound, "There is no session '\(id)'.")
        }
        try await requireSelfOrPermission(context, user: session.user)
        cache.forgetSession(id)
        try await store.closeSession(
            id, at: context.now, audit: audit(context, event: .sessionClose, target: id, outcome: .success))
        if let member { await closeSessionAtHub(context.request, caller: context.caller, member: member) }
        return SessionCloseReply(session: id)
    }
}
