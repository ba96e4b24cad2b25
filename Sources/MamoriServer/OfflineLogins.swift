import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore
import NIOConcurrencyHelpers

/// Logins through a network cut on a member terminal (docs/town.md, "Logins through a network
/// cut"): the credential made at each online login, the login decided here while the hub cannot
/// be reached, and what is reported to the hub when it can be again.
extension MamoriService {
    /// Failure reasons only a login through a cut has, for the record (the reply is the same
    /// `authentication_failed` as any other failure).
    enum OfflineRefusal: String {
        /// The policy does not let this user log in offline in this zone.
        case denied = "offline-denied"
        /// The user never logged in online on this terminal (or the credential was dropped).
        case noCredential = "no-offline-credential"
        /// The last online login here is older than `maximum-age-days`.
        case tooOld = "offline-too-old"
        /// The offline failures reached the policy's limit: locked here until the hub is back.
        case locked = "offline-locked"
    }

    /// Whether anyone may log in on this terminal through a network cut: its zone's
    /// `offline-login` is not `deny` and the policy names roles for it. When nobody may, a login
    /// while the hub cannot be reached is answered `busy`, as any other forwarded request.
    var allowsOfflineLogins: Bool {
        let policy = engine.policy
        return !policy.settings.offline.roles.isEmpty
            && (policy.zones.first { $0.id == configuration.zone }?.offlineLogin ?? .deny) != .deny
    }

    /// Whether `request` (a `session.open`) carries a ticket this terminal issued offline: that
    /// session opens here, since the hub knows nothing of it.
    func holdsOfflineTicket(_ request: WireRequest) -> Bool {
        guard case .string(let ticket)? = request.fields["ticket"] else { return false }
        return tickets.withLockedValue { $0[ticket]?.offline == true }
    }

    /// After the hub accepted a login: the user's offline credential made anew from the password
    /// typed and the hub's grant, or dropped when the grant is `deny` (the policy no longer lets
    /// the user log in offline here); a login without a grant changes nothing and calls nothing.
    /// Runs after the reply has gone, on the Argon2 pool in the caller's share; the codes are
    /// tagged and dropped within it. What was not reported to the hub yet is carried over.
    func keepOfflineCredential(
        _ grant: OfflineGrant, user: String, password: String, caller: Caller, store: any OfflineCredentialStore
    ) async {
        let now = clock.now()
        guard let mode = OfflineLogin(rawValue: grant.mode), mode != .deny else {
            do {
                try store.update(user) { credential in
                    // Kept while it holds what the hub has not heard of; no login uses it.
                    if credential?.pending.isEmpty == false {
                        credential?.mode = OfflineLogin.deny.rawValue
                    } else {
                        credential = nil
                    }
                }
            } catch {
                logger.warning("an offline credential could not be dropped", metadata: ["user": "\(user)"])
            }
            return
        }
        let argon2 = engine.policy.settings.argon2
        let salt = random.bytes(16)
        let terminalKey = store.terminalKey
        let digests = grant.recovery.compactMap { code -> (id: Int64, digest: [UInt8])? in
            guard let bytes = AuditWitness.unhex(code.digest), bytes.count == 32 else { return nil }
            return (code.id, bytes)
        }
        do {
            let credential = try await argonPool.run(for: caller) {
                let stretched = try OfflineKeys.stretch(
                    Array(password.utf8), salt: salt, memoryKiB: argon2.memoryKiB, iterations: argon2.iterations,
                    parallelism: argon2.parallelism)
                return OfflineKeys.credential(
                    user: user, mode: mode, stretched: stretched, salt: salt, argon2: argon2,
                    terminalKey: terminalKey, firstStep: grant.firstStep, period: grant.period, digits: grant.digits,
                    codes: Array(grant.codes.utf8), recoveryDigests: digests, lastUsedStep: grant.lastUsedStep,
                    onlineAt: now)
            }
            try store.update(user) { kept in
                // A credential made from a later login meanwhile stays.
                if let kept, kept.onlineAt > now { return }
                var fresh = credential
                fresh.pending = kept?.pending ?? []
                fresh.lastUsedStep = [kept?.lastUsedStep, credential.lastUsedStep].compactMap { $0 }.max()
                // A recovery code used here and not yet reported is still unused at the hub.
                let used = Set(
                    (kept?.recovery.filter { $0.usedAt != nil }.map(\.id) ?? [])
                        + (kept?.pending.compactMap(\.recoveryCode) ?? []))
                fresh.recovery.removeAll { used.contains($0.id) }
                kept = fresh
            }
            logger.debug("an offline credential was made", metadata: ["user": "\(user)", "mode": "\(mode.rawValue)"])
        } catch {
            logger.warning(
                "an offline credential could not be made; the user's last one stays",
                metadata: ["user": "\(user)", "error": "\(error)"])
        }
    }

    /// `authenticate` decided here because the hub cannot be reached: the password against the
    /// terminal's verifier and the code against the tags, within the policy's offline limits.
    /// Every refusal costs one Argon2 run and gets the reply of any failed login; the attempt is
    /// counted against the offline limit before Argon2 runs.
    func authenticateOffline(_ context: RequestContext, member: MemberRole) async throws -> AuthenticateReply {
        let fields = try LoginFields(context.request)
        let (name, password, code) = (fields.name, fields.password, fields.code)
        let (service, tty, remoteHost) = (fields.service, fields.tty, fields.remoteHost)
        try await requireSelfOrPermission(context, user: name)
        let policy = context.engine.policy
        let limits = policy.settings.offline
        let now = context.now

        let subject = member.mirror.subject(name)
        let roles = subject?.assignments.filter { $0.isCurrent(at: now) }.map(\.role) ?? []
        let mode = context.engine.offlineLogin(roles: roles, zone: context.zone)
        let credential = member.offline?.credential(of: name)
        var reason: String?
        if subject == nil {
            reason = LoginFailure.unknownUser.rawValue
        } else if subject?.user.disabled == true {
            reason = LoginFailure.disabled.rawValue
        } else if let until = subject?.lockedUntil, until > now {
            reason = LoginFailure.locked.rawValue
        } else if mode == .deny {
            reason = OfflineRefusal.denied.rawValue
        } else if credential == nil || credential?.mode == OfflineLogin.deny.rawValue
            || (mode == .tags && credential?.mode != OfflineLogin.tags.rawValue)
        {
            reason = OfflineRefusal.noCredential.rawValue
        } else if let credential, now.timeIntervalSince(credential.onlineAt) > Double(limits.maximumAgeDays) * 86_400 {
            reason = OfflineRefusal.tooOld.rawValue
        }
        // The attempt, counted before Argon2: parallel guesses cannot pass the limit. A local
        // lock lasts the lockout's lock-minutes, as online (or until an online login here).
        let lockSeconds = Double(lockout(for: subject?.assignments ?? [], context).0.lockMinutes * 60)
        var reserved = false
        if reason == nil, let store = member.offline {
            reserved = try store.update(name) { kept in
                guard var held = kept else { return false }
                if let locked = held.lockedAt, now.timeIntervalSince(locked) >= lockSeconds {
                    held.lockedAt = nil
                    held.failures = 0
                }
                guard held.lockedAt == nil, held.failures < limits.failures else {
                    kept = held
                    return false
                }
                held.failures += 1
                kept = held
                return true
            }
            if !reserved { reason = OfflineRefusal.locked.rawValue }
        }
        let usable = !password.isEmpty && password.count <= PasswordHasher.maximumPasswordLength
        let input = usable ? password : Self.standInPassword
        // One Argon2 run whatever was found: the credential's own parameters, or the policy's.
        let argon2 = policy.settings.argon2
        let salt = credential.map { Array($0.salt) } ?? random.bytes(16)
        let stretched = try await runArgon2(context) {
            try OfflineKeys.stretch(
                input, salt: salt, memoryKiB: credential?.memoryKiB ?? argon2.memoryKiB,
                iterations: credential?.iterations ?? argon2.iterations,
                parallelism: credential?.parallelism ?? argon2.parallelism)
        }
        var outcome = OfflineCheck.failed(.password)
        if reason == nil, usable, let credential, let store = member.offline {
            if mode == .passwordOnly {
                let matches = constantTimeEquals(
                    OfflineKeys.verifier(stretched, terminalKey: store.terminalKey), credential.verifier)
                outcome = matches ? .passwordOnly : .failed(.password)
            } else {
                outcome = OfflineKeys.check(
                    credential, stretched: stretched, terminalKey: store.terminalKey, code: code, at: now,
                    window: policy.settings.totpWindow)
            }
        }
        if case .failed(let failure) = outcome, reason == nil { reason = failure.rawValue }

        if reason == nil, let store = member.offline {
            // Recorded only if nothing took the step or the code meanwhile (a parallel login).
            let sequence = store.nextSequence()
            let factors: Set<Factor>? = try store.update(name) { kept in
                // The credential checked, not one made meanwhile by an online login.
                guard var held = kept, let checked = credential, held.salt == checked.salt else { return nil }
                var event = OfflineEvent(kind: "login", at: now, sequence: sequence, onlineAt: held.onlineAt)
                var factors: Set<Factor> = [.password]
                switch outcome {
                case .totp(let step):
                    guard held.lastUsedStep.map({ step > $0 }) ?? true else { return nil }
                    held.lastUsedStep = step
                    event.step = step
                    factors.insert(.totp)
                case .recoveryCode(let index):
                    // By the hub's identifier, as checked.
                    guard let checked = credential?.recovery[index],
                        let position = held.recovery.firstIndex(where: { $0.id == checked.id }),
                        held.recovery[position].usedAt == nil
                    else { return nil }
                    held.recovery[position].usedAt = now
                    event.recoveryCode = checked.id
                    factors.insert(.recoveryCode)
                case .passwordOnly:
                    break
                case .failed:
                    return nil
                }
                held.failures = 0
                held.pending.append(event)
                kept = held
                return factors
            }
            if let factors {
                let ticket = newTicket()
                keepTicket(ticket, user: name, factors: factors, at: now, offline: true)
                cache.touch(user: name, at: now)
                try await self.store.appendAudit(
                    audit(
                        context, event: .authSuccess, target: name, outcome: .success,
                        detail: [
                            "factors": factors.map(\.rawValue).sorted().joined(separator: ","), "service": service,
                            "tty": tty ?? "", "rhost": remoteHost ?? "", "offline": "yes",
                        ]))
                return AuthenticateReply(
                    user: name, factors: factors.map(\.rawValue).sorted(), ticket: ticket,
                    passwordChangeRequired: subject?.user.mustChangePassword ?? false)
            }
            reason = LoginFailure.replay.rawValue
        }

        let why = reason ?? LoginFailure.password.rawValue
        if reserved, let store = member.offline {
            let sequence = store.nextSequence()
            let lockSequence = store.nextSequence()
            let locked: Bool = try store.update(name) { kept in
                guard var held = kept else { return false }
                held.pending.append(
                    OfflineEvent(kind: "failure", at: now, reason: why, sequence: sequence, onlineAt: held.onlineAt))
                var locked = false
                if held.failures >= limits.failures, held.lockedAt == nil {
                    held.lockedAt = now
                    held.pending.append(
                        OfflineEvent(kind: "lock", at: now, sequence: lockSequence, onlineAt: held.onlineAt))
                    locked = true
                }
                kept = held
                return locked
            }
            if locked {
                try await self.store.appendAudit(
                    audit(
                        context, event: .authLockout, target: name, outcome: .failure,
                        detail: ["failures": "\(limits.failures)", "offline": "yes"]))
            }
        }
        try await self.store.appendAudit(
            audit(
                context, event: .authFailure, target: name, outcome: .failure,
                detail: [
                    "reason": why, "service": service, "tty": tty ?? "", "rhost": remoteHost ?? "", "offline": "yes",
                ]))
        throw WireError(.authenticationFailed, "Authentication failed.")
    }

    /// The reply to a forwarded `authenticate` the hub could not take: decided here.
    func answerOffline(_ request: WireRequest, caller: Caller, member: MemberRole) async -> [UInt8] {
        let now = clock.now()
        let context = RequestContext(
            request: request, caller: caller, now: now, engine: engine, terminal: configuration.terminal,
            zone: configuration.zone)
        do {
            if let deadline = try request.optionalInteger(.deadline).map({
                Date(timeIntervalSince1970: Double($0) / 1000)
            }), now > deadline {
                throw Self.pastDeadline
            }
            return WireReply.success(
                try await authenticateOffline(context, member: member).replyFields(), id: request.id)
        } catch {
            return WireReply.failure(Self.wireError(error, id: request.id), id: request.id)
        }
    }

    // MARK: Reporting to the hub

    /// What this terminal did offline that the hub has not acknowledged, oldest first, at most `limit`.
    func pendingOfflineUses(limit: Int) -> [(user: String, event: OfflineEvent)] {
        guard let store = member?.offline else { return [] }
        var all: [(user: String, event: OfflineEvent)] = []
        for user in store.users {
            for event in store.credential(of: user)?.pending ?? [] { all.append((user, event)) }
        }
        return Array(all.sorted { $0.event.sequence < $1.event.sequence }.prefix(limit))
    }

    /// The hub kept `sent`: they are forgotten here. `conflicts` (steps used offline on this
    /// terminal and another) are recorded in this terminal's chain.
    func acknowledgeOfflineUses(_ sent: [(user: String, event: OfflineEvent)], conflicts: [OfflineConflict])
        async
    {
        if let store = member?.offline {
            for user in Set(sent.map(\.user)) {
                let sequences = Set(sent.filter { $0.user == user }.map(\.event.sequence))
                do {
                    try store.update(user) { kept in
                        kept?.pending.removeAll { sequences.contains($0.sequence) }
                        if kept?.mode == OfflineLogin.deny.rawValue, kept?.pending.isEmpty == true { kept = nil }
                    }
                } catch {
                    logger.warning("an offline credential could not be written", metadata: ["user": "\(user)"])
                }
            }
        }
        let now = clock.now()
        for conflict in conflicts {
            logger.critical(
                "the hub found a TOTP step used offline on this terminal and another",
                metadata: [
                    "user": "\(conflict.user)", "step": "\(conflict.step)",
                    "terminals": "\(conflict.terminals.joined(separator: ","))",
                ])
            do {
                try await store.appendAudit(
                    AuditEntry(
                        time: now, actorUID: nil, actor: "hub", event: .offlineConflict, target: conflict.user,
                        outcome: .failure,
                        detail: [
                            "user": conflict.user, "step": "\(conflict.step)",
                            "terminals": conflict.terminals.joined(separator: ","),
                        ], terminal: configuration.terminal, zone: configuration.zone,
                        policyRevision: engine.revision))
            } catch {
                logger.error("a conflict the hub found could not be recorded", metadata: ["user": "\(conflict.user)"])
            }
        }
    }
}
