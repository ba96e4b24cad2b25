import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore
import NIOConcurrencyHelpers

extension WireOperation {
    /// Whether a member terminal sends this operation to its hub rather than answering it: logins,
    /// credentials and every change or read of users and roles, which the town decides in one
    /// place. `session.open` goes too, so that the hub knows the session when an administrator
    /// steps up with it; the terminal keeps a copy for its own decisions. `authorize`, `account`,
    /// `session.close` (the terminal closes its copy, then tells the hub), the terminal's own audit
    /// chain, its policy and `status` stay on the terminal; the hub's register of terminals is
    /// administered at the hub.
    var isAnsweredByHub: Bool {
        switch self {
        case .authenticate, .passwordChange, .totpEnrollBegin, .totpEnrollConfirm, .totpReset, .recoveryIssue,
            .userAdd, .userShow, .userList, .userDisable, .userEnable, .userRemove, .userPasswd, .userUnlock,
            .userRoles, .roleGrant, .roleRevoke, .roleList, .sessionOpen:
            true
        case .status, .account, .sessionClose, .authorize, .policyReload, .policyStatus,
            .auditPublicKey, .auditRead, .auditTrail, .auditVerify, .auditPrune, .reviewRecord, .inspect,
            .terminalAdd, .terminalList, .terminalRemove:
            false
        }
    }

    /// Whether a success of this operation changes what the terminal's mirror holds of the user it
    /// names, so that the terminal reads that user again before it answers.
    var changesMirroredUser: Bool {
        switch self {
        case .userAdd, .userDisable, .userEnable, .userRemove, .userPasswd, .userUnlock, .roleGrant, .roleRevoke,
            .passwordChange:
            true
        default: false
        }
    }
}

extension MamoriService {
    /// Member mode: the hub answers, for the caller this daemon saw at its socket, and its reply
    /// line goes back to the caller as the hub wrote it. A login the hub accepts leaves a note of
    /// its factors here, so that the session the hub opens with its ticket is copied here with
    /// them; a change to a user is read back into the mirror before the reply, so that this
    /// terminal's next decision sees it.
    func forwardToHub(_ request: WireRequest, _ operation: WireOperation, caller: Caller, member: MemberRole) async
        -> [UInt8]
    {
        // A login while the hub is known to be unreachable is decided here at once: it never
        // waits on the hub (docs/town.md, "Logins through a network cut").
        let offlineHere = operation == .authenticate && member.offline != nil && allowsOfflineLogins
        if offlineHere, member.hub.isCut {
            return await answerOffline(request, caller: caller, member: member)
        }
        var reply: [UInt8]
        do {
            reply = try await member.hub.forward(request, uid: caller.uid, pid: caller.pid, name: caller.name)
        } catch let unreachable as HubUnreachable where offlineHere && !member.hub.watchIsAlive {
            logger.notice(
                "the hub cannot be reached; the login is decided on this terminal",
                metadata: ["uid": "\(caller.uid)", "error": "\(unreachable)"])
            member.hub.markUnreachable()
            return await answerOffline(request, caller: caller, member: member)
        } catch let refusal as WireError {
            // Refused here before it reached the hub: the caller's share, the pool, the deadline.
            return WireReply.failure(WireError(refusal.code, refusal.message), id: request.id)
        } catch {
            logger.warning(
                "the hub did not answer a forwarded request",
                metadata: ["op": "\(request.op)", "uid": "\(caller.uid)", "error": "\(error)"])
            return WireReply.failure(
                WireError(.busy, "The hub cannot be reached or did not answer in time; try again shortly."),
                id: request.id)
        }
        // Only these replies leave something here; the rest go back unread.
        guard operation == .authenticate || operation == .sessionOpen || operation.changesMirroredUser,
            var fields = WireReply.parse(reply.last == UInt8(ascii: "\n") ? reply.dropLast() : reply[...])
        else { return reply }
        if operation == .authenticate, fields["offline"] != nil {
            // The grant is for this terminal alone, whatever else the reply holds: the caller gets
            // the reply without it, and the credential is made after the reply has gone.
            let grant = fields.removeValue(forKey: "offline")
            reply = WireReply.encodeRequest(fields)
            fields["offline"] = grant
        }
        guard case .bool(true)? = fields["ok"] else { return reply }
        if operation == .authenticate, let accepted = try? AuthenticateReply(reply: fields) {
            // Only with a grant is there anything to make: the password is kept no longer than that.
            if let offline = member.offline, let grant = accepted.offline,
                case .string(let password)? = request.fields["password"]
            {
                Task {
                    await self.keepOfflineCredential(
                        grant, user: accepted.user, password: password, caller: caller, store: offline)
                }
            }
            let now = clock.now()
            keepTicket(
                accepted.ticket, user: accepted.user, factors: Set(accepted.factors.compactMap(Factor.init(rawValue:))),
                at: now)
            cache.touch(user: accepted.user, at: now)
        }
        if operation == .sessionOpen, let opened = try? SessionOpenReply(reply: fields) {
            do {
                try await keepSessionCopy(opened, request: request, caller: caller)
            } catch {
                // Without the copy this terminal would refuse the session's every decision: the
                // caller learns the session did not open, and the hub closes its record of it.
                logger.error("a session the hub opened could not be kept", metadata: ["error": "\(error)"])
                await closeSessionAtHub(
                    WireRequest(
                        op: WireOperation.sessionClose.rawValue, id: nil, fields: ["session": .string(opened.session)]),
                    caller: caller, member: member)
                return WireReply.failure(
                    WireError(.internal, "The session could not be recorded on this terminal; log in again."),
                    id: request.id)
            }
        }
        if operation.changesMirroredUser, case .string(let user)? = request.fields["user"] {
            do {
                try await member.hub.refresh(users: [user])
            } catch {
                // The change feed brings it within a second of the hub's next push.
                logger.notice("a changed user could not be read back from the hub", metadata: ["user": "\(user)"])
            }
        }
        return reply
    }

    /// Keeps this terminal's copy of a session its hub opened: the factors from the login's note,
    /// the rest from the request and the reply, recorded in this terminal's chain.
    private func keepSessionCopy(_ opened: SessionOpenReply, request: WireRequest, caller: Caller) async throws {
        let now = clock.now()
        let ticketText = try request.string(.ticket)
        let ticket = tickets.withLockedValue { book in book.removeValue(forKey: ticketText) }
        guard let ticket, ticket.user == opened.user,
            let expires = ISO8601DateFormatter().date(from: opened.expiresAt)
        else { throw WireError(.internal, "The hub opened a session this terminal has no login for.") }
        let context = RequestContext(
            request: request, caller: caller, now: now, engine: engine, terminal: configuration.terminal,
            zone: configuration.zone)
        _ = try await recordSession(
            id: opened.session, user: opened.user, factors: ticket.factors, expiresAt: expires, context,
            extra: ["hub": "yes"])
    }

    /// Closes this terminal's copies of the sessions of users the hub removed or replaced. Until
    /// this commits, ``liveSession(_:at:)`` refuses them by the mirror's date of retirement.
    func closeSessions(ofRetired users: Set<String>) async {
        guard let store = store as? MemberStore else { return }
        let now = clock.now()
        for user in users.sorted() {
            do {
                try await store.closeSessions(
                    of: user, at: now,
                    audit: AuditEntry(
                        time: now, actorUID: nil, actor: "mamorid", event: .sessionClose, target: "user:\(user)",
                        outcome: .success, detail: ["user": user, "reason": "removed-at-hub"],
                        terminal: configuration.terminal, zone: configuration.zone, policyRevision: engine.revision))
            } catch {
                logger.error(
                    "the sessions of a user the hub removed could not be closed", metadata: ["user": "\(user)"])
            }
        }
    }

    /// After a member terminal closed its copy of a session: the hub closes its own, so that it
    /// no longer steps an administrator up with it. A hub that cannot be reached is logged; the
    /// session is closed here whatever it says, and lapses at the hub by its expiry.
    func closeSessionAtHub(_ request: WireRequest, caller: Caller, member: MemberRole) async {
        do {
            let reply = try await member.hub.forward(request, uid: caller.uid, pid: caller.pid, name: caller.name)
            if let fields = WireReply.parse(reply.dropLast()), fields["ok"] != .bool(true) {
                logger.notice(
                    "the hub did not close a session this terminal closed",
                    metadata: ["reply": "\(fields["error"] ?? .null)"])
            }
        } catch {
            logger.warning("the hub could not be told of a closed session", metadata: ["error": "\(error)"])
        }
    }

    /// A member terminal adopts the policy its hub published: validated here again (its files,
    /// and the terminal's zone in it), written over the terminal's copy of the hub's policy
    /// folder (`policyDirectory`, so that a restart or SIGHUP reads the same), then swapped in.
    /// On any error the policy in force stays, and the refusal is recorded. Returns the revision
    /// in force after.
    func adoptHubPolicy(_ files: [(name: String, text: String)]) async -> String {
        let old = engine.revision
        let now = clock.now()
        func entry(_ outcome: AuditOutcome, _ detail: [String: String]) -> AuditEntry {
            AuditEntry(
                time: now, actorUID: nil, actor: "hub", event: .policyReload, target: "mamori:policy",
                outcome: outcome, detail: detail.merging(["source": "hub"]) { $1 },
                terminal: configuration.terminal, zone: configuration.zone, policyRevision: old)
        }
        let policy: Policy
        do {
            // Named as the hub's in diagnostics; the revision hashes base names, so it is the hub's.
            policy = try PolicyLoader.load(files: files.map { ("hub/" + $0.name, $0.text) })
        } catch {
            logger.error(
                "the hub's policy is invalid here; keeping the old policy",
                metadata: ["errors": "\(error.errors.count)", "first": "\(error.errors.first.map { "\($0)" } ?? "")"])
            try? await store.appendAudit(entry(.failure, ["errors": "\(error.errors.count)"]))
            return old
        }
        guard policy.revision != old else { return old }
        guard policy.zones.contains(where: { $0.id == configuration.zone }) else {
            logger.error(
                "the hub's policy has no zone for this terminal; keeping the old policy",
                metadata: ["zone": "\(configuration.zone)", "revision": "\(policy.revision)"])
            try? await store.appendAudit(entry(.failure, ["new_revision": policy.revision, "reason": "no-zone"]))
            return old
        }
        do {
            try Self.replaceFolder(configuration.policyDirectory, with: files)
        } catch {
            logger.error(
                "the hub's policy could not be written to this terminal's folder; keeping the old policy",
                metadata: ["folder": "\(configuration.policyDirectory)", "error": "\(error)"])
            return old
        }
        do {
            try await store.appendAudit(entry(.success, ["new_revision": policy.revision]))
        } catch {
            logger.critical("the adoption of the hub's policy could not be recorded; adopting it anyway")
        }
        putInForce(policy)
        logger.notice("the hub's policy is in force", metadata: ["old": "\(old)", "new": "\(policy.revision)"])
        return policy.revision
    }

    /// Writes `files` into a new folder beside `folder`, then puts it in `folder`'s place, so that
    /// no reader sees half of each. A crash between the two renames leaves no folder: the next
    /// start copies the configured one again, and the hub's is read at its first connection.
    static func replaceFolder(_ folder: String, with files: [(name: String, text: String)]) throws {
        let manager = FileManager.default
        let fresh = folder + ".new"
        let old = folder + ".old"
        try? manager.removeItem(atPath: fresh)
        try? manager.removeItem(atPath: old)
        try manager.createDirectory(
            atPath: fresh, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for file in files {
            // A name is a file in the folder, never a path out of it.
            guard !file.name.contains("/"), !file.name.hasPrefix("."),
                file.name.hasSuffix(".yaml") || file.name.hasSuffix(".yml")
            else { throw ConfigurationError("The hub sent a policy file named '\(file.name)'.") }
            guard manager.createFile(atPath: fresh + "/" + file.name, contents: Data(file.text.utf8)) else {
                throw ConfigurationError("\(fresh)/\(file.name) cannot be written.")
            }
        }
        if manager.fileExists(atPath: folder) { try manager.moveItem(atPath: folder, toPath: old) }
        try manager.moveItem(atPath: fresh, toPath: folder)
        try? manager.removeItem(atPath: old)
    }
}
