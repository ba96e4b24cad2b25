import Foundation
import MamoriCore
import MamoriProtocol
import MamoriStore

/// The administrative operations behind the `mamori` CLI. Each is authorised by the policy engine
/// for the caller and recorded in the audit chain in the same transaction as the change.
extension MamoriService {
    private func userResource(_ name: String) -> String { "mamori:users/\(name)" }

    /// - Parameter totpConfirmed: nil without a TOTP enrolment, false while it awaits its first code.
    private func describe(_ user: UserRecord, roles: [AssignmentRecord], locked: Bool, totpConfirmed: Bool?)
        -> UserDescription
    {
        let formatter = ISO8601DateFormatter()
        return UserDescription(
            user: user.name, displayName: user.displayName, kind: user.kind.rawValue, organisation: user.organisation,
            disabled: user.disabled, createdAt: formatter.string(from: user.createdAt),
            lastLoginAt: user.lastLoginAt.map { formatter.string(from: $0) },
            mustChangePassword: user.mustChangePassword, hasPassword: user.passwordHash != nil,
            totp: totpConfirmed.map { $0 ? "confirmed" : "pending" } ?? "none", locked: locked,
            roles: roles.map(describe))
    }

    private func describe(_ assignment: AssignmentRecord) -> AssignmentDescription {
        let formatter = ISO8601DateFormatter()
        return AssignmentDescription(
            user: assignment.user, role: assignment.role, grantedBy: assignment.grantedBy,
            grantedAt: formatter.string(from: assignment.grantedAt),
            expiresAt: assignment.expiresAt.map { formatter.string(from: $0) },
            current: assignment.isCurrent(at: clock.now()))
    }

    func addUser(_ context: RequestContext) async throws -> UserDescription {
        let request = context.request
        let name = try Self.userName(request)
        try await requirePermission(context, action: .userManage, resource: userResource(name))
        // The declaration lists the core's kinds (a test keeps the two equal), so this maps.
        guard let kind = UserKind(rawValue: try request.optionalString(.kind) ?? UserKind.staff.rawValue) else {
            throw WireError(
                .badRequest, "The kind must be one of \(UserKind.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        let organisation = try request.optionalString(.organisation)
        if let organisation, !context.engine.policy.organisations.isEmpty,
            !context.engine.policy.organisations.contains(where: { $0.id == organisation })
        {
            throw WireError(.invalid, "The organisation '\(organisation)' is not in the policy.")
        }
        let user = UserRecord(
            name: name, displayName: try request.optionalString(.displayName) ?? name, kind: kind,
            organisation: organisation, createdAt: context.now
        )
        try await store.addUser(
            user,
            audit: audit(
                context, event: .userAdd, target: name, outcome: .success,
                detail: ["kind": kind.rawValue, "organisation": organisation ?? ""]
            ))
        return describe(user, roles: [], locked: false, totpConfirmed: nil)
    }

    func showUser(_ context: RequestContext) async throws -> UserDescription {
        let name = try Self.userName(context.request)
        if context.caller.name != name || context.caller.isOperator {
            try await requirePermission(context, action: .userManage, resource: userResource(name))
        }
        guard let user = try await store.user(named: name) else {
            throw WireError(.notFound, "There is no user '\(name)'.")
        }
        let locked = try await store.failures(of: name)?.isLocked(at: context.now) ?? false
        return describe(
            user, roles: try await store.assignments(of: name), locked: locked,
            totpConfirmed: try await store.totp(of: name)?.confirmed
        )
    }

    func listUsers(_ context: RequestContext) async throws -> UserListReply {
        try await requirePermission(context, action: .userManage, resource: "mamori:users/*")
        // Four reads for the whole list, not three per user.
        let assignments = Dictionary(grouping: try await store.allAssignments(), by: \.user)
        let locked = Set(try await store.allFailures().filter { $0.isLocked(at: context.now) }.map(\.user))
        let totp = try await store.totpConfirmation()
        let users = try await store.users().map { user in
            describe(
                user, roles: assignments[user.name] ?? [], locked: locked.contains(user.name),
                totpConfirmed: totp[user.name])
        }
        return UserListReply(users: users)
    }

    func setDisabled(_ context: RequestContext, _ disabled: Bool) async throws -> UserDisabledReply {
        let name = try Self.userName(context.request)
        try await requirePermission(context, action: .userManage, resource: userResource(name))
        try await store.setDisabled(
            name, disabled,
            audit: audit(
                context, event: disabled ? .userDisable : .userEnable, target: name, outcome: .success
            ))
        return UserDisabledReply(user: name, disabled: disabled)
    }

    func removeUser(_ context: RequestContext) async throws -> UserRemovedReply {
        let name = try Self.userName(context.request)
        try await requirePermission(context, action: .userManage, resource: userResource(name))
        try await store.removeUser(name, audit: audit(context, event: .userRemove, target: name, outcome: .success))
        cache.forgetSessions(of: name)
        return UserRemovedReply(user: name)
    }

    /// Sets a temporary password: the next login must change it.
    func setTemporaryPassword(_ context: RequestContext) async throws -> PasswordSetReply {
        let request = context.request
        let name = try Self.userName(request)
        try await requirePermission(context, action: .userManage, resource: userResource(name))
        let password = Array(try request.string(.temporaryPassword).utf8)
        let hasher = try PasswordHasher(parameters: context.engine.policy.settings.argon2, random: random)
        let hash = try await runArgon2(context) { try hasher.hash(password) }
        try await store.setPassword(
            name, hash: hash, mustChange: true,
            audit: audit(
                context, event: .userPasswd, target: name, outcome: .success, detail: ["temporary": "yes"]
            ))
        return PasswordSetReply(user: name, mustChangePassword: true)
    }

    /// Changes one's own password: the old one must verify, through the same counting as a login
    /// (a wrong old password is a failure against the lockout; a locked or disabled account is
    /// refused); the new one must differ and be at least 8 bytes.
    func changePassword(_ context: RequestContext) async throws -> PasswordSetReply {
        let request = context.request
        let name = try Self.userName(request)
        try await requireSelfOrPermission(context, user: name)
        let old = Array(try request.string(.oldPassword).utf8)
        let new = Array(try request.string(.newPassword).utf8)
        guard new.count >= 8 else { throw WireError(.invalid, "The new password must be at least 8 bytes long.") }
        guard new.count <= PasswordHasher.maximumPasswordLength else {
            throw WireError(
                .invalid, "The new password must be at most \(PasswordHasher.maximumPasswordLength) bytes long.")
        }
        guard !constantTimeEquals(old, new) else {
            throw WireError(.invalid, "The new password must differ from the old one.")
        }
        let check = try await checkPassword(name, old, context)
        guard check.matched, let attempt = check.attempt else {
            let entry = audit(
                context, event: .passwordChange, target: name, outcome: .failure,
                detail: ["reason": (check.reason ?? .password).rawValue]
            )
            try await recordFailure(check, reason: check.reason ?? .password, entry: entry, context)
            throw WireError(.authenticationFailed, "Authentication failed.")
        }
        let hasher = try PasswordHasher(parameters: context.engine.policy.settings.argon2, random: random)
        let hash: String
        do {
            hash = try await runArgon2(context) { try hasher.hash(new) }
            try await store.recordSuccess(attempt, at: context.now)
        } catch {
            try? await store.release(attempt)
            throw error
        }
        try await store.setPassword(
            name, hash: hash, mustChange: false,
            audit: audit(
                context, event: .passwordChange, target: name, outcome: .success
            ))
        return PasswordSetReply(user: name, mustChangePassword: false)
    }

    func unlock(_ context: RequestContext) async throws -> UserUnlockedReply {
        let name = try Self.userName(context.request)
        try await requirePermission(context, action: .accountUnlock, resource: userResource(name))
        try await store.unlock(name, audit: audit(context, event: .userUnlock, target: name, outcome: .success))
        return UserUnlockedReply(user: name)
    }

    func userRoles(_ context: RequestContext) async throws -> UserRolesReply {
        let name = try Self.userName(context.request)
        if context.caller.name != name || context.caller.isOperator {
            try await requirePermission(context, action: .userManage, resource: userResource(name))
        }
        let assignments = try await store.assignments(of: name)
        return UserRolesReply(user: name, roles: assignments.map(describe))
    }

    // MARK: Second factors

    /// Makes a new TOTP seed, stores it sealed and unconfirmed, and returns it once (with the key
    /// URI) so that it can be shown to its owner.
    func beginEnrolment(_ context: RequestContext) async throws -> EnrolmentReply {
        let name = try Self.userName(context.request)
        try await requirePermission(context, action: .totpEnroll, resource: userResource(name))
        if try await store.totp(of: name)?.confirmed == true {
            throw WireError(
                .conflict,
                "'\(name)' has a confirmed TOTP device already; remove it first with: mamori totp reset \(name)"
            )
        }
        let parameters = context.engine.policy.settings.totp
        let seed = TOTP.generateSecret(for: parameters.algorithm, using: random)
        let record = TOTPRecord(
            user: name, sealedSeed: try cipher.seal(seed, for: name), parameters: parameters, createdAt: context.now)
        try await store.beginTOTP(
            record, audit: audit(context, event: .totpEnrollBegin, target: name, outcome: .success))
        let uri = try OTPAuthURI(issuer: configuration.issuer, account: name, secret: seed, parameters: parameters)
        return EnrolmentReply(
            user: name, secret: Base32.encode(seed), uri: uri.uri, algorithm: parameters.algorithm.rawValue,
            digits: parameters.digits, period: parameters.period)
    }

    /// Confirms an enrolment with a first code from the device.
    func confirmEnrolment(_ context: RequestContext) async throws -> EnrolmentConfirmedReply {
        let name = try Self.userName(context.request)
        try await requirePermission(context, action: .totpEnroll, resource: userResource(name))
        let code = try context.request.string(.code)
        guard let record = try await store.totp(of: name) else {
            throw WireError(.notFound, "'\(name)' has no TOTP enrolment to confirm.")
        }
        guard !record.confirmed else {
            throw WireError(.conflict, "'\(name)' has a confirmed TOTP device already; reset it first.")
        }
        let totp = try TOTP(secret: try cipher.open(record.sealedSeed, for: name), parameters: record.parameters)
        guard
            case .accepted(let step) = totp.verify(
                code, at: context.now, window: context.engine.policy.settings.totpWindow)
        else {
            try await store.appendAudit(audit(context, event: .totpEnrollConfirm, target: name, outcome: .failure))
            throw WireError(.invalid, "The code does not match; check the device's clock and try the next code.")
        }
        try await store.confirmTOTP(
            name, step: step, audit: audit(context, event: .totpEnrollConfirm, target: name, outcome: .success))
        return EnrolmentConfirmedReply(user: name)
    }

    func resetTOTP(_ context: RequestContext) async throws -> TOTPResetReply {
        let name = try Self.userName(context.request)
        try await requirePermission(context, action: .totpEnroll, resource: userResource(name))
        try await store.resetTOTP(name, audit: audit(context, event: .totpReset, target: name, outcome: .success))
        return TOTPResetReply(user: name)
    }

    /// Issues a new set of recovery codes, replacing the old; the codes are in this reply only.
    func issueRecoveryCodes(_ context: RequestContext) async throws -> RecoveryCodesReply {
        let name = try Self.userName(context.request)
        try await requirePermission(context, action: .totpEnroll, resource: userResource(name))
        guard try await store.user(named: name) != nil else {
            throw WireError(.notFound, "There is no user '\(name)'.")
        }
        let count = try context.request.optionalInteger(.count) ?? RecoveryCodes.defaultCount
        let issued = RecoveryCodes.generate(count: count, using: random)
        try await store.replaceRecoveryCodes(
            name, with: issued.map(\.stored),
            audit: audit(
                context, event: .recoveryIssue, target: name, outcome: .success, detail: ["count": "\(count)"]
            ))
        return RecoveryCodesReply(user: name, codes: issued.map(\.formatted))
    }

    // MARK: Roles

    func grant(_ context: RequestContext) async throws -> RoleGrantReply {
        let request = context.request
        let name = try Self.userName(request)
        let role = try request.string(.role)
        try await requirePermission(context, action: .roleGrant, resource: "mamori:roles/\(role)")
        var expires: Date?
        if let until = try request.optionalString(.until) {
            let timeZone = context.engine.policy.settings.timeZone
            guard let date = ISO8601DateFormatter().date(from: until) ?? Self.dayEnd(until, in: timeZone) else {
                throw WireError(.badRequest, "\"until\" is a date (2027-03-31) or an ISO 8601 time with offset.")
            }
            guard date > context.now else { throw WireError(.invalid, "\"until\" is in the past.") }
            expires = date
        }
        let assignment = AssignmentRecord(
            user: name, role: role, grantedBy: context.caller.label, grantedAt: context.now, expiresAt: expires)
        let engine = context.engine
        let denied = audit(context, event: .roleGrant, target: name, outcome: .denied, detail: ["role": role])
        let violations = try await store.grant(
            assignment,
            audit: audit(
                context, event: .roleGrant, target: name, outcome: .success,
                detail: ["role": role, "until": expires.map { ISO8601DateFormatter().string(from: $0) } ?? ""]
            ),
            denial: { reasons in
                var entry = denied
                entry.detail["violations"] = reasons.joined(separator: " ")
                return entry
            },
            check: { held, holders in engine.checkGrant(role: role, to: held, holders: holders).map(\.description) }
        )
        guard violations.isEmpty else {
            throw WireError(
                .invalid, "The role '\(role)' cannot be granted to \(name): " + violations.joined(separator: " "))
        }
        return RoleGrantReply(assignment: describe(assignment))
    }

    /// The end of a calendar day in the policy's time zone, for "until: 2027-03-31" (the
    /// assignment ends when that day ends).
    static func dayEnd(_ text: String, in timeZone: TimeZone) -> Date? {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3 else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        guard let start = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2])) else {
            return nil
        }
        return calendar.date(byAdding: .day, value: 1, to: start)
    }

    func revoke(_ context: RequestContext) async throws -> RoleRevokeReply {
        let name = try Self.userName(context.request)
        let role = try context.request.string(.role)
        try await requirePermission(context, action: .roleRevoke, resource: "mamori:roles/\(role)")
        try await store.revoke(
            name, role: role,
            audit: audit(context, event: .roleRevoke, target: name, outcome: .success, detail: ["role": role]))
        return RoleRevokeReply(user: name, role: role)
    }

    func listRoles(_ context: RequestContext) async throws -> RoleListReply {
        try await requirePermission(context, action: .userManage, resource: "mamori:users/*")
        let assignments = try await store.allAssignments()
        let roles = context.engine.policy.roles.map { role in
            RoleDescription(
                role: role.id, title: role.title, privileged: role.privileged, maxHolders: role.maxHolders,
                inherits: role.inherits,
                holders: assignments.filter { $0.role == role.id && $0.isCurrent(at: context.now) }.map(\.user))
        }
        return RoleListReply(roles: roles)
    }
}
