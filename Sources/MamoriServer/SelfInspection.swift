import Foundation
import MamoriCore
import MamoriStore

/// The self-inspection (自己点検): reads the store, the policy, the audit chain and this
/// terminal's PAM services, and reports each of the guideline's checks as pass, warn or fail with
/// the accounts or items involved. Read-only; the caller verifies the chain and records the run.
struct SelfInspection {
    let store: any MamoriStorage
    let engine: PolicyEngine
    let configuration: DaemonConfiguration
    /// The whole chain checked with the daemon's key (``MamoriService/checkChain(at:)``).
    let chain: AuditReport
    let now: Date
    /// Who asked, named in the report.
    let inspector: String
    /// At a hub: the member terminals' chains as the hub holds them, verified
    /// (``MamoriService/terminalChains(_:)``); nil elsewhere.
    var terminalChains: [AuditReport.TerminalChain]? = nil
    /// At a hub: the terminals in its register, to find those whose chain stopped arriving.
    var terminals: [TerminalRecord] = []
    /// At a hub: what the member terminals reported of their logins through network cuts.
    var offline: OfflineFacts? = nil

    struct OfflineFacts {
        let summaries: [OfflineUseSummary]
        let logins: [(terminal: String, use: OfflineUse)]
        let conflicts: [OfflineConflict]
        /// What terminals reported that the hub never made possible.
        let refused: [(terminal: String, use: OfflineUse, reason: String)]
    }

    func run() async throws -> InspectionReport {
        let users = try await store.users()
        let assignments = try await store.allAssignments()
        let byUser = Dictionary(grouping: assignments, by: \.user)
        let active = users.filter { !$0.disabled }
        var findings: [InspectionReport.Finding] = []
        findings.append(try await mfaEnrolment(active, byUser))
        findings.append(idleAccounts(active))
        findings.append(expiredAssignments(users, assignments))
        findings.append(privilegedHolders(assignments))
        findings.append(separationOfDuty(active, byUser))
        findings.append(try await lockedAndTemporary(active))
        findings += auditChain()
        if let terminalChains { findings.append(townAudit(terminalChains)) }
        if let offline { findings.append(offlineLogins(offline, byUser)) }
        findings.append(try await accessReview())
        findings.append(pamServices())
        findings.append(policyWarnings())
        return InspectionReport(
            time: now, timeZone: settings.timeZone, inspector: inspector, terminal: configuration.terminal,
            zone: configuration.zone, policyRevision: engine.revision, findings: findings
        )
    }

    private var settings: PolicySettings { engine.policy.settings }

    private func currentRoles(_ user: UserRecord, _ byUser: [String: [AssignmentRecord]]) -> [String] {
        (byUser[user.name] ?? []).filter { $0.isCurrent(at: now) }.map(\.role)
    }

    // MARK: The checks

    /// 1. Every account that may log in where the zone asks for a TOTP code has one confirmed.
    private func mfaEnrolment(_ users: [UserRecord], _ byUser: [String: [AssignmentRecord]]) async throws
        -> InspectionReport.Finding
    {
        let confirmed = try await store.totpConfirmation()
        let zones = engine.policy.zones.filter { $0.loginFactors.contains(.totp) }
        var items: [String] = []
        for user in users {
            let roles = currentRoles(user, byUser)
            let usableIn = zones.filter { zone in
                let usable = engine.roles(roles, takingEffectIn: zone.id)
                guard !usable.isEmpty else { return false }
                // The same question `account` asks at a terminal of that zone, with every factor presented.
                let decision = engine.evaluate(
                    AuthorizationRequest(
                        user: user.name, roles: usable, kind: user.kind, organisation: user.organisation, zone: zone.id,
                        factors: zone.loginFactors, time: now, action: MamoriAction.login.rawValue,
                        resource: "mamori:terminals/inspection"
                    ))
                return decision.isAllowed
            }
            guard !usableIn.isEmpty, confirmed[user.name] != true else { continue }
            let state =
                confirmed[user.name] == false ? "TOTP enrolment begun, not confirmed" : "no TOTP device enrolled"
            items.append(
                "\(user.name): \(state); may log in to \(usableIn.map(\.id).joined(separator: ", ")) as \(roles.joined(separator: ", "))"
            )
        }
        return InspectionReport.Finding(
            check: "mfa-enrolment", title: "Second factor for accounts usable in the My Number zone",
            status: items.isEmpty ? .pass : .fail,
            summary: items.isEmpty
                ? "Every account that may log in where a TOTP code is required has a confirmed TOTP device."
                : "\(items.count) account(s) may log in where a TOTP code is required but have no confirmed TOTP device.",
            items: items,
            basis:
                "Basic policy 5.3; guideline, authentication: multi-factor authentication at My Number zone terminals (check 1)"
        )
    }

    /// 2a. No enabled account unused for longer than `accounts: idle-days`.
    private func idleAccounts(_ users: [UserRecord]) -> InspectionReport.Finding {
        let limit = TimeInterval(settings.idleAccountDays) * 86_400
        let items = users.compactMap { user -> String? in
            let last = user.lastLoginAt ?? user.createdAt
            guard now.timeIntervalSince(last) > limit else { return nil }
            let days = Int(now.timeIntervalSince(last) / 86_400)
            return "\(user.name): "
                + (user.lastLoginAt == nil
                    ? "never logged in, created \(days) days ago" : "last login \(days) days ago")
        }
        return InspectionReport.Finding(
            check: "idle-accounts", title: "Idle accounts", status: items.isEmpty ? .pass : .fail,
            summary: items.isEmpty
                ? "No enabled account has been idle for more than \(settings.idleAccountDays) days."
                : "\(items.count) enabled account(s) idle for more than \(settings.idleAccountDays) days: disable or remove them.",
            items: items,
            basis: "Guideline, authentication: unused IDs are not left active (check 2); settings accounts.idle-days"
        )
    }

    /// 2b. Ended assignments (they grant nothing, but should be revoked) and accounts left with none current.
    private func expiredAssignments(_ users: [UserRecord], _ assignments: [AssignmentRecord])
        -> InspectionReport.Finding
    {
        let formatter = Date.ISO8601FormatStyle().year().month().day()
        var items = assignments.filter { !$0.isCurrent(at: now) }.map { assignment in
            "\(assignment.user): \(assignment.role) ended \(assignment.expiresAt.map { $0.formatted(formatter) } ?? "?")"
        }
        let byUser = Dictionary(grouping: assignments, by: \.user)
        for user in users where !user.disabled {
            let held = byUser[user.name] ?? []
            if !held.isEmpty && !held.contains(where: { $0.isCurrent(at: now) }) {
                items.append("\(user.name): every assignment has ended, yet the account is enabled")
            }
        }
        return InspectionReport.Finding(
            check: "expired-assignments", title: "Expired role assignments", status: items.isEmpty ? .pass : .warn,
            summary: items.isEmpty
                ? "No role assignment has ended without being revoked."
                : "\(items.count) ended assignment(s) or account(s): they grant nothing, but revoke or disable them.",
            items: items, basis: "Guideline, authentication: IDs changed or removed on transfer and leaving (check 2)"
        )
    }

    /// 3. Privileged roles within their holder limits; every holder listed with who granted it.
    private func privilegedHolders(_ assignments: [AssignmentRecord]) -> InspectionReport.Finding {
        var items: [String] = []
        var over: [String] = []
        for role in engine.policy.roles where role.privileged {
            let holders = assignments.filter { $0.role == role.id && $0.isCurrent(at: now) }
            let limit = role.maxHolders.map { " of at most \($0)" } ?? ""
            if let maximum = role.maxHolders, holders.count > maximum { over.append(role.id) }
            let names = holders.map { "\($0.user) (granted by \($0.grantedBy))" }.joined(separator: ", ")
            items.append("\(role.id): \(holders.count)\(limit) holder(s)" + (names.isEmpty ? "" : ": \(names)"))
        }
        return InspectionReport.Finding(
            check: "privileged-holders", title: "Privileged roles and their holders",
            status: over.isEmpty ? .pass : .fail,
            summary: over.isEmpty
                ? "Every privileged role is within its holder limit."
                : "Over their holder limit: \(over.joined(separator: ", ")).",
            items: items,
            basis:
                "Guideline, privileged IDs (特権ID): as few holders as possible; grants record who approved them (check 3)"
        )
    }

    /// 4. No one holds roles that separation of duty forbids together (inherited roles count).
    private func separationOfDuty(_ users: [UserRecord], _ byUser: [String: [AssignmentRecord]])
        -> InspectionReport.Finding
    {
        var items: [String] = []
        for user in users {
            let roles = currentRoles(user, byUser)
            guard let first = roles.first else { continue }
            for case .separationOfDuty(let constraint, let together, _) in engine.checkGrant(
                role: first, to: roles, holders: 0)
            {
                items.append("\(user.name): holds \(together.joined(separator: " and ")) (constraint \(constraint))")
            }
        }
        return InspectionReport.Finding(
            check: "separation-of-duty", title: "Separation of duty", status: items.isEmpty ? .pass : .fail,
            summary: items.isEmpty
                ? "No account holds roles that a separation-of-duty constraint forbids together."
                : "\(items.count) conflict(s): revoke one of the roles.",
            items: items,
            basis: "Guideline, roles: audits independent of those audited; contractors hold no privileged IDs (check 4)"
        )
    }

    /// 5. Lockout on; accounts locked now, and temporary passwords not yet changed.
    private func lockedAndTemporary(_ users: [UserRecord]) async throws -> InspectionReport.Finding {
        var items = try await store.allFailures().filter { $0.isLocked(at: now) }.map { failure in
            "\(failure.user): locked after \(failure.count) failed logins until \(failure.lockedUntil?.formatted(.iso8601) ?? "?")"
        }
        items += users.filter(\.mustChangePassword).map { "\($0.name): temporary password not yet changed" }
        return InspectionReport.Finding(
            check: "locked-and-temporary", title: "Locked accounts and temporary passwords",
            status: items.isEmpty ? .pass : .warn,
            summary: (items.isEmpty
                ? "No account is locked or waiting to change a temporary password. "
                : "\(items.count) account(s) to follow up. ")
                + "Lockout: \(settings.lockout.failures) failures in \(settings.lockout.windowMinutes) min "
                + "(privileged: \(settings.privilegedLockout.failures)).",
            items: items,
            basis:
                "Guideline, authentication: a limit on login attempts; temporary passwords changed at first use (check 5)"
        )
    }

    /// 6. The chain verifies end to end with the daemon's key, and reaches back the retention period.
    private func auditChain() -> [InspectionReport.Finding] {
        let report = chain
        let integrity = InspectionReport.Finding(
            check: "audit-integrity", title: "Audit trail integrity", status: report.holds ? .pass : .fail,
            summary: report.holds
                ? "The chain holds: \(report.entryCount) entries, \(report.checkpointCount) signed checkpoint(s)."
                : "The chain is broken in \(report.problems.count) place(s).",
            items: report.problems.map(\.description),
            basis: "Basic policy 6; guideline, logs: protected from tampering and deletion (check 6)"
        )
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = settings.timeZone
        let horizon = calendar.date(byAdding: .year, value: -settings.auditRetentionYears, to: now) ?? now
        let day = Date.ISO8601FormatStyle(timeZone: settings.timeZone).year().month().day()
        let basis =
            "Guideline, logs: kept for a set period (operation histories 7 years); settings audit.retention-years (check 6)"
        let coverage: InspectionReport.Finding
        if report.prunedThrough == 0 {
            coverage = InspectionReport.Finding(
                check: "audit-retention", title: "Audit trail retention", status: .pass,
                summary: "The trail is complete from its first entry"
                    + (report.oldestEntryTime.map { " (\($0.formatted(day)))" } ?? "")
                    + "; the policy keeps \(settings.auditRetentionYears) years.",
                basis: basis
            )
        } else {
            // Pruning is refused within the retention period; a trail pruned under a shorter
            // retention than today's, or by hand, has lost entries the policy says to keep.
            let prunedAt = report.prunedThroughTime ?? now
            let covered = prunedAt < horizon
            coverage = InspectionReport.Finding(
                check: "audit-retention", title: "Audit trail retention", status: covered ? .pass : .fail,
                summary:
                    "Entries through \(report.prunedThrough), written up to \(prunedAt.formatted(day)), were pruned; "
                    + (covered
                        ? "nothing within the \(settings.auditRetentionYears)-year retention (from \(horizon.formatted(day))) is missing."
                        : "that is within the \(settings.auditRetentionYears)-year retention (from \(horizon.formatted(day))): entries the policy keeps are gone."),
                items: covered
                    ? [] : ["entries 1–\(report.prunedThrough): pruned, the last written \(prunedAt.formatted(day))"],
                basis: basis
            )
        }
        return [integrity, coverage]
    }

    /// 6, at a hub: every member terminal's chain, as the hub holds it, holds and still continues
    /// the terminal's own trail.
    private func townAudit(_ chains: [AuditReport.TerminalChain]) -> InspectionReport.Finding {
        let broken = chains.filter { !$0.summary.holds }
        let entries = chains.reduce(0) { $0 + $1.summary.entries }
        // A joined terminal whose chain stopped arriving: switched off, cut off, or holding it back.
        let iso = ISO8601DateFormatter()
        var silent: [String] = []
        for terminal in terminals where terminal.state(at: now) == .joined {
            let chain = chains.last {
                $0.terminal == terminal.name && $0.joined == terminal.joinedAt?.formatted(.iso8601)
            }
            let received = chain?.received.flatMap(iso.date(from:))
            if let received, now.timeIntervalSince(received) <= Self.silentDays * 86_400 { continue }
            silent.append(
                "\(terminal.name): "
                    + (received.map { "nothing received since \($0.formatted(.iso8601))" } ?? "no entry received yet"))
        }
        let status: InspectionReport.Status = !broken.isEmpty ? .fail : silent.isEmpty ? .pass : .warn
        return InspectionReport.Finding(
            check: "town-audit-integrity", title: "Audit trails of the member terminals",
            status: status,
            summary: broken.isEmpty
                ? "The hub holds \(chains.count) terminal chain(s), \(entries) entries in all; every one holds."
                    + (silent.isEmpty
                        ? "" : " \(silent.count) joined terminal(s) sent nothing for \(Int(Self.silentDays)) days.")
                : "\(broken.count) of the \(chains.count) terminal chain(s) the hub holds do not hold.",
            items: broken.flatMap(\.lines) + silent,
            basis:
                "Basic policy 6; guideline, logs: protected from tampering and deletion, kept off the terminal (check 6)"
        )
    }

    /// At a hub: who logged in where through a network cut, and any such login the policy did not
    /// allow (past `offline.maximum-age-days` after the user's last online login there, or by a
    /// user whose roles do not allow it in the terminal's zone): a terminal that let one in was
    /// altered. A TOTP step used offline on two terminals fails the check: one of the two logins
    /// was not the user's.
    private func offlineLogins(_ facts: OfflineFacts, _ byUser: [String: [AssignmentRecord]])
        -> InspectionReport.Finding
    {
        let day = Date.ISO8601FormatStyle(timeZone: settings.timeZone).year().month().day()
        let zones = Dictionary(terminals.map { ($0.name, $0.zone) }) { first, _ in first }
        let limit = Double(settings.offline.maximumAgeDays) * 86_400
        var beyond: [String] = []
        for (terminal, use) in facts.logins {
            if let online = use.onlineAt, use.at.timeIntervalSince(online) > limit {
                beyond.append(
                    "\(terminal): \(use.user) logged in offline on \(use.at.formatted(day)), "
                        + "\(Int(use.at.timeIntervalSince(online) / 86_400)) days after the last online login there "
                        + "(the policy allows \(settings.offline.maximumAgeDays))")
            }
            let roles = (byUser[use.user] ?? []).filter { $0.isCurrent(at: use.at) }.map(\.role)
            if let zone = zones[terminal], engine.offlineLogin(roles: roles, zone: zone) == .deny {
                beyond.append(
                    "\(terminal): \(use.user) logged in offline on \(use.at.formatted(day)), which the policy "
                        + "does not allow for the user's roles in zone \(zone)")
            }
        }
        let forged = facts.refused.map { item in
            "\(item.terminal): reported a \(item.use.kind) of \(item.use.user) on \(item.use.at.formatted(day)) that the "
                + "hub never made possible (\(item.reason)); refused"
        }
        let twice = facts.conflicts.map {
            "\($0.user): TOTP step \($0.step) was used offline on both \($0.terminals.joined(separator: " and "))"
        }
        let use = facts.summaries.map { summary in
            "\(summary.terminal): \(summary.user): \(summary.logins) offline login(s)"
                + (summary.firstLogin.map { first in
                    ", \(first.formatted(day)) to \((summary.lastLogin ?? first).formatted(day))"
                } ?? "") + ", \(summary.failures) failure(s), \(summary.locks) local lock(s)"
        }
        let logins = facts.summaries.reduce(0) { $0 + $1.logins }
        let terminalsUsed = Set(facts.summaries.filter { $0.logins > 0 }.map(\.terminal)).count
        return InspectionReport.Finding(
            check: "offline-logins", title: "Logins through network cuts",
            status: twice.isEmpty && beyond.isEmpty && forged.isEmpty ? .pass : .fail,
            summary: (logins == 0
                ? "No terminal reported an offline login."
                : "\(logins) offline login(s) on \(terminalsUsed) terminal(s).")
                + (twice.isEmpty ? "" : " \(twice.count) TOTP step(s) were used offline on two terminals.")
                + (beyond.isEmpty ? "" : " \(beyond.count) offline login(s) went past the policy.")
                + (forged.isEmpty ? "" : " \(forged.count) reported use(s) were never possible: refused."),
            items: twice + forged + beyond + use,
            basis:
                "Basic policy 5.3 (multi-factor authentication); settings offline; docs/town.md, logins through a network cut"
        )
    }

    /// Days without a batch after which a joined terminal is named.
    static let silentDays = 7.0

    /// 8. The last access review recorded (`mamori review record`) within `accounts: access-review-days`.
    private func accessReview() async throws -> InspectionReport.Finding {
        let last = try await store.latestAuditEntry(event: AuditEvent.accessReview.rawValue)
        let limit = settings.accessReviewDays
        let basis =
            "Guideline, authentication: ID procedures checked with HR; self-inspection every fiscal year (check 8); settings accounts.access-review-days"
        guard let last else {
            return InspectionReport.Finding(
                check: "access-review", title: "Access review", status: .fail,
                summary: "No access review is recorded. Review who holds which role, then run `mamori review record`.",
                basis: basis
            )
        }
        let days = Int(now.timeIntervalSince(last.entry.time) / 86_400)
        let note = last.entry.detail["note"].map { " — \($0)" } ?? ""
        return InspectionReport.Finding(
            check: "access-review", title: "Access review", status: days > limit ? .fail : .pass,
            summary: "The last access review was \(days) day(s) ago, by \(last.entry.actor)"
                + (days > limit ? ", beyond the \(limit)-day interval." : ", within the \(limit)-day interval."),
            items: ["\(last.entry.time.formatted(.iso8601)) \(last.entry.actor)\(note)"], basis: basis
        )
    }

    /// 7. Every login service on this terminal runs pam_mamori.so in `auth`, with no bypass before it.
    private func pamServices() -> InspectionReport.Finding {
        let requiresMFA =
            engine.policy.zones.first { $0.id == configuration.zone }?.loginFactors.contains(.totp) ?? true
        var checked: [String] = []
        var items: [String] = []
        for service in configuration.pamServices {
            guard let stack = PAMStack(service: service, directory: configuration.pamDirectory) else { continue }
            checked.append(service)
            switch stack.verdict {
            case .enforced: continue
            case .absent: items.append("\(service): its auth stack does not run pam_mamori.so")
            case .optional(let origin): items.append("\(service): pam_mamori.so is only optional (\(origin))")
            case .bypass(let origin, let module):
                items.append("\(service): \(module) at \(origin) can let a login through before pam_mamori.so")
            }
        }
        let bad: InspectionReport.Status = requiresMFA ? .fail : .warn
        // No login service at all is not a pass: the wrong folder is being read, or logins are
        // configured where this check cannot see them.
        let status: InspectionReport.Status = checked.isEmpty ? .warn : items.isEmpty ? .pass : bad
        return InspectionReport.Finding(
            check: "pam-services", title: "PAM services on this terminal", status: status,
            summary: items.isEmpty
                ? (checked.isEmpty
                    ? "No login service (\(configuration.pamServices.prefix(4).joined(separator: ", "))\(configuration.pamServices.count > 4 ? ", …" : "")) found in \(configuration.pamDirectory): check `pam-directory` and `pam-services`."
                    : "\(checked.count) login service(s) in \(configuration.pamDirectory) run pam_mamori.so with no bypass: \(checked.joined(separator: ", ")).")
                : "\(items.count) of \(checked.count) login service(s) in \(configuration.pamDirectory) do not route through pam_mamori.so"
                    + (requiresMFA ? " although the \(configuration.zone) zone requires a TOTP code." : "."),
            items: items,
            basis:
                "Basic policy 5.3; guideline, three layers: a login in the My Number zone needs two factors (check 7)"
        )
    }

    /// The policy loaded, but with warnings (rules that can never match, and so on).
    private func policyWarnings() -> InspectionReport.Finding {
        let warnings = engine.policy.warnings.map(\.description)
        return InspectionReport.Finding(
            check: "policy-warnings", title: "Policy warnings", status: warnings.isEmpty ? .pass : .warn,
            summary: warnings.isEmpty
                ? "The policy \(engine.revision.prefix(19))… loaded without warnings."
                : "The policy loaded with \(warnings.count) warning(s).",
            items: warnings, basis: "Basic policy 7: the policy is revised when audits or changes require it"
        )
    }
}
