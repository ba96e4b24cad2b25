import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore
import NIOConcurrencyHelpers

/// What the daemon does with each request: parse, authorise the caller with the policy engine,
/// act on the store, record the act in the audit chain, reply. No socket code lives here.
///
/// Secrets (passwords, codes, seeds, recovery codes, tickets) never reach a log line, an error or
/// a reply, except the replies that hand a new secret to its owner: `totp.enroll.begin` and
/// `recovery.issue`.
final class MamoriService: Sendable {
    let configuration: DaemonConfiguration
    let store: any MamoriStorage
    let logger: Logger
    /// Every "now" of the service: decisions, windows, expiries, audit entries.
    let clock: any WallClock
    /// Tickets, session ids, TOTP seeds, recovery codes and password salts come from here.
    let random: any RandomByteSource
    let startedAt: Date
    let cipher: SeedCipher
    let auditSigner: AuditSigner
    /// The newest signed head, kept outside the database.
    let witness: WitnessKeeper
    let argonPool: Argon2Pool
    private let engineBox: NIOLockedValueBox<PolicyEngine>
    let tickets = NIOLockedValueBox<[String: Ticket]>([:])
    let cache: SubjectCache
    /// Folds repeated denials into counted entries and cuts off callers past the rate.
    let denials: DenialLedger
    /// The last verification of the audit chain (at start, then by each `audit.verify` and `inspect`),
    /// which `status` reports so that monitoring sees a broken chain without asking for it.
    let lastChainCheck = NIOLockedValueBox<ChainCheck?>(nil)

    struct ChainCheck {
        let time: Date
        let holds: Bool
        let entries: Int
        let problems: Int
    }

    /// A successful authentication waiting for `session.open`.
    struct Ticket {
        let user: String
        let factors: Set<Factor>
        let expires: Date
    }

    /// How long a ticket from `authenticate` stays valid for `session.open`.
    static let ticketLifetime: TimeInterval = 300

    /// A service from its parts; no I/O (``ServiceFactory`` does the daemon's set-up). The policy
    /// must have the configuration's zone.
    ///
    /// - Parameter assignmentGeneration: the store's current generation, which decisions carry.
    init(
        configuration: DaemonConfiguration, store: any MamoriStorage, policy: Policy, cipher: SeedCipher,
        auditSigner: AuditSigner, witness: WitnessKeeper, assignmentGeneration: Int64, clock: any WallClock,
        random: any RandomByteSource, logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.cipher = cipher
        self.auditSigner = auditSigner
        self.witness = witness
        self.clock = clock
        self.random = random
        self.logger = logger
        startedAt = clock.now()
        cache = SubjectCache(generation: assignmentGeneration, clock: clock)
        engineBox = NIOLockedValueBox(PolicyEngine(policy: policy))
        denials = DenialLedger(
            interval: TimeInterval(configuration.denialIntervalSeconds), perInterval: configuration.denialsPerInterval,
            now: clock.now()
        )
        argonPool = Argon2Pool(
            workers: configuration.argon2Workers, queue: configuration.argon2Queue, perUID: configuration.argon2PerUID
        )
    }

    var engine: PolicyEngine { engineBox.withLockedValue { $0 } }

    /// Signs the chain's head, so that nothing written before the stop can be cut off unseen.
    func shutdown() async {
        await argonPool.shutdown()
        await closeDenialInterval(force: true)
        do {
            try await store.saveSessionActivity(cache.sessionActivity)
        } catch {
            logger.warning("the sessions' last use could not be saved; they will look idle after the restart")
        }
        await signChainHead()
        do {
            try await store.close()
        } catch {
            logger.warning("\(error)")
        }
    }

    /// Signs the head of the audit chain unless it is signed already.
    func signChainHead() async {
        do {
            try await store.writeCheckpoint(at: clock.now())
        } catch {
            logger.critical("an audit checkpoint could not be written", metadata: ["error": "\(error)"])
        }
    }

    /// Writes the summaries of the denials counted in the interval that ended (all, with `force`).
    func closeDenialInterval(force: Bool = false) async {
        for entry in denials.closeInterval(at: clock.now(), force: force) {
            do {
                try await store.appendAudit(entry)
            } catch {
                logger.critical("a summary of repeated denials could not be recorded", metadata: ["actor": "\(entry.actor)"])
            }
        }
    }

    /// Records a denial through the ledger: in full the first time in the interval, counted after,
    /// and once more when it cuts the caller off.
    func recordDenial(_ entry: AuditEntry, _ context: RequestContext, action: String, resource: String) async throws {
        let uid = context.caller.isOperator ? nil : context.caller.uid
        switch denials.note(entry, uid: uid, action: action, resource: resource) {
        case .record: try await store.appendAudit(entry)
        case .counted: break
        case .cutOff:
            logger.warning("caller cut off after repeated denials", metadata: ["uid": "\(context.caller.uid)"])
            var notice = entry
            notice.event = "caller.rate_limited"
            notice.target = "uid:\(context.caller.uid)"
            notice.detail = [
                "denials": "\(denials.perInterval + 1)", "interval_seconds": "\(Int(denials.interval))",
            ]
            try await store.appendAudit(notice)
        }
    }

    /// The reply for a caller that is cut off, without doing any work; nil for everyone else.
    func refuseIfCutOff(_ request: WireRequest, caller: Caller) -> [UInt8]? {
        guard !caller.isOperator, denials.isCutOff(caller.uid) else { return nil }
        return WireReply.failure(WireError(
            .rateLimited,
            "Your user was denied too often; requests are refused for \(denials.secondsLeft(at: clock.now())) more second(s).",
            id: request.id
        ))
    }

    // MARK: Requests

    /// Answers one parsed request. Never throws: every failure becomes an error reply.
    func handle(_ request: WireRequest, caller: Caller) async -> [UInt8] {
        do {
            let fields = try await dispatch(request, caller: caller)
            logger.debug("request served", metadata: ["request": "\(request.safeDescription)", "uid": "\(caller.uid)"])
            return WireReply.success(fields, id: request.id)
        } catch {
            let failure = Self.wireError(error, id: request.id)
            logger.info(
                "request refused",
                metadata: ["op": "\(request.op)", "uid": "\(caller.uid)", "code": "\(failure.code.rawValue)"]
            )
            logger.debug("refused request", metadata: ["request": "\(request.safeDescription)"])
            return WireReply.failure(failure, id: request.id)
        }
    }

    /// Maps any failure to a code and a safe message; unexpected errors say nothing specific.
    static func wireError(_ error: any Error, id: JSONValue?) -> WireError {
        switch error {
        case let error as WireError: return WireError(error.code, error.message, id: id)
        case let error as StoreError:
            switch error.code {
            case .notFound: return WireError(.notFound, error.message, id: id)
            case .conflict: return WireError(.conflict, error.message, id: id)
            // Storage and any code a store adds: the caller learns only that nothing was done.
            default: return WireError(.internal, "The daemon could not record the change; nothing was done.", id: id)
            }
        case let error as PasswordError: return WireError(.invalid, error.message, id: id)
        case let error as OTPError: return WireError(.invalid, error.message, id: id)
        case is Argon2Pool.Busy: return WireError(.busy, "Too many authentications are in progress; try again shortly.", id: id)
        default: return WireError(.internal, "The daemon could not complete the request.", id: id)
        }
    }

    private func dispatch(_ request: WireRequest, caller: Caller) async throws -> [String: JSONValue] {
        guard let operation = WireOperation(rawValue: request.op) else {
            throw WireError(.unknownOperation, "There is no operation '\(request.op.prefix(64))'; see docs/protocol.md.")
        }
        let changes = operation.changes
        if changes != .nothing {
            // Before and after: a snapshot read during the write cannot be kept.
            cache.invalidate(assignmentsChanged: false)
        }
        defer {
            if changes != .nothing { cache.invalidate(assignmentsChanged: changes == .assignments) }
        }
        let context = RequestContext(request: request, caller: caller, now: clock.now(), engine: engine)
        switch operation {
        case .status: return try await status(context)
        case .authenticate: return try await authenticate(context)
        case .account: return try await account(context)
        case .sessionOpen: return try await openSession(context)
        case .sessionClose: return try await closeSession(context)
        case .authorize: return try await authorize(context)
        case .userAdd: return try await addUser(context)
        case .userShow: return try await showUser(context)
        case .userList: return try await listUsers(context)
        case .userDisable: return try await setDisabled(context, true)
        case .userEnable: return try await setDisabled(context, false)
        case .userRemove: return try await removeUser(context)
        case .userPasswd: return try await setTemporaryPassword(context)
        case .userUnlock: return try await unlock(context)
        case .userRoles: return try await userRoles(context)
        case .passwordChange: return try await changePassword(context)
        case .totpEnrollBegin: return try await beginEnrolment(context)
        case .totpEnrollConfirm: return try await confirmEnrolment(context)
        case .totpReset: return try await resetTOTP(context)
        case .recoveryIssue: return try await issueRecoveryCodes(context)
        case .roleGrant: return try await grant(context)
        case .roleRevoke: return try await revoke(context)
        case .roleList: return try await listRoles(context)
        case .policyReload: return try await reloadPolicy(context)
        case .policyStatus: return try await policyStatus(context)
        case .auditPublicKey: return try await publicKey(context)
        case .auditRead: return try await readAudit(context)
        case .auditTrail: return try await readTrail(context)
        case .auditVerify: return try await verifyAudit(context)
        case .auditPrune: return try await pruneAudit(context)
        case .reviewRecord: return try await recordReview(context)
        case .inspect: return try await inspect(context)
        }
    }

    struct RequestContext {
        let request: WireRequest
        let caller: Caller
        let now: Date
        let engine: PolicyEngine
    }

    /// `audit.public_key`: the key that verifies the chain's checkpoints (public, so not recorded).
    private func publicKey(_ context: RequestContext) async throws -> [String: JSONValue] {
        try await requirePermission(context, action: "mamori.audit.read", resource: "mamori:audit")
        return ["public_key": .string(Data(auditSigner.publicKey).base64EncodedString()), "algorithm": .string("ed25519")]
    }

    // MARK: Audit and authorisation

    func audit(
        _ context: RequestContext, event: String, target: String, outcome: String, detail: [String: String] = [:]
    ) -> AuditEntry {
        AuditEntry(
            time: context.now, actorUID: Int(context.caller.uid), actor: context.caller.label, event: event, target: target,
            outcome: outcome, detail: detail, terminal: configuration.terminal, zone: configuration.zone,
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
        if let sessionID, let session = try await liveSession(sessionID, at: context.now), session.user == name {
            factors = session.factors
        }
        return authorizationRequest(
            name, snapshot, factors: factors, at: context.now, action: action, resource: resource
        )
    }

    /// What the engine decides on, for `name` as `snapshot` has them, on this terminal's zone with
    /// `factors`: the one way both the in-memory `authorize` and every other decision build it.
    func authorizationRequest(
        _ name: String, _ snapshot: SubjectCache.Snapshot, factors: Set<Factor>, at now: Date, action: String,
        resource: String
    ) -> AuthorizationRequest {
        AuthorizationRequest(
            user: name, roles: snapshot.currentRoles(at: now), kind: snapshot.user?.kind,
            organisation: snapshot.user?.organisation, zone: configuration.zone, factors: factors, time: now,
            action: action, resource: resource
        )
    }

    /// The user as decisions see them, from the cache or, once, from the store.
    func userSnapshot(_ name: String) async throws -> SubjectCache.Snapshot {
        if let cached = cache.user(name) { return cached }
        let epoch = cache.epoch
        let user = try await store.user(named: name)
        let snapshot = SubjectCache.Snapshot(user: user, assignments: user == nil ? [] : try await store.assignments(of: name))
        cache.keep(snapshot, for: name, readAt: epoch)
        return snapshot
    }

    /// The session if it is open and was used within the policy's `session: idle-minutes`, now
    /// counted as used again; nil otherwise. A session found idle is closed, and the close is
    /// recorded, so that the lapse is in the trail and nothing revives it.
    func liveSession(_ id: String, at now: Date) async throws -> SessionRecord? {
        guard let session = try await session(id), session.isOpen(at: now) else { return nil }
        let idleMinutes = engine.policy.settings.sessionIdleMinutes
        guard cache.use(session, at: now, idle: TimeInterval(idleMinutes * 60)) else {
            cache.forgetSession(id)
            do {
                try await store.closeSession(id, at: now, audit: AuditEntry(
                    time: now, actorUID: nil, actor: "mamorid", event: "session.close", target: id, outcome: "success",
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
        guard let stored = try await store.session(id) else { return nil }
        cache.keep(stored)
        return stored
    }

    /// Lets the request through if the policy permits the caller `action` on `resource` (an
    /// operator — root or the daemon's own user — always, and logged); otherwise records the denial and throws `denied` or `step_up_required`.
    func requirePermission(_ context: RequestContext, action: String, resource: String) async throws {
        if context.caller.isOperator {
            logger.notice("operator acts", metadata: ["uid": "\(context.caller.uid)", "op": "\(context.request.op)", "resource": "\(resource)"])
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
                context, event: "decision.deny", target: resource, outcome: "denied",
                detail: ["action": action, "effect": decision.effect.rawValue, "rules": decision.decidingRules.joined(separator: ",")]
            ),
            context, action: action, resource: resource
        )
        let rules = decision.decidingRules.isEmpty ? "no rule permits it" : "rule \(decision.decidingRules.joined(separator: ", "))"
        if decision.effect == .stepUp {
            throw WireError(
                .stepUpRequired,
                "Step up: your user \(context.caller.label) may \(action) on \(resource) only in a session with "
                    + "\(decision.missingFactors.map(\.rawValue).joined(separator: " and ")) (\(rules)); pass your MAMORI_SESSION."
            )
        }
        throw WireError(.denied, "Permission denied: your user \(context.caller.label) may not \(action) on \(resource) (\(rules)).")
    }

    /// For operations about a user (authenticate, account, sessions): root, the user themself,
    /// or a caller the policy lets `mamori.authenticate` on that user.
    func requireSelfOrPermission(_ context: RequestContext, user: String) async throws {
        if context.caller.name == user && !context.caller.isOperator { return }
        try await requirePermission(context, action: "mamori.authenticate", resource: "mamori:users/\(user)")
    }

    static func userName(_ request: WireRequest) throws -> String {
        let name = try request.string(.user)
        // Unix login names: letters, digits, '.', '_', '-'; not starting with '-'.
        let valid = !name.isEmpty && !name.hasPrefix("-") && name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0))
        }
        guard valid else {
            throw WireError(.badRequest, "A user name has only ASCII letters, digits, '.', '_' and '-', and does not start with '-'.")
        }
        return name
    }

    // MARK: status and policy

    private func status(_ context: RequestContext) async throws -> [String: JSONValue] {
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

    private func policyStatus(_ context: RequestContext) async throws -> [String: JSONValue] {
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

    private func reloadPolicy(_ context: RequestContext) async throws -> [String: JSONValue] {
        try await requirePermission(context, action: "mamori.policy.reload", resource: "mamori:policy")
        let (old, new) = try await reload(actor: context)
        return ["previous_revision": .string(old), "revision": .string(new)]
    }

    /// Loads the policy folder again and swaps it in whole, or keeps the old one on any error.
    /// Used by `policy.reload` and SIGHUP (`context` nil: the daemon itself).
    func reload(actor context: RequestContext?) async throws -> (String, String) {
        let old = engine.revision
        let now = clock.now()
        func entry(_ outcome: String, _ detail: [String: String]) -> AuditEntry {
            AuditEntry(
                time: now, actorUID: context.map { Int($0.caller.uid) }, actor: context?.caller.label ?? "mamorid",
                event: "policy.reload", target: "mamori:policy", outcome: outcome, detail: detail,
                terminal: configuration.terminal, zone: configuration.zone, policyRevision: old
            )
        }
        let policy: Policy
        do {
            policy = try PolicyLoader.load(directory: URL(fileURLWithPath: configuration.policyDirectory, isDirectory: true))
            guard policy.zones.contains(where: { $0.id == configuration.zone }) else {
                throw WireError(.invalid, "The new policy has no zone '\(configuration.zone)'; the old policy stays.")
            }
        } catch let error as PolicyLoadError {
            try await store.appendAudit(entry("failure", ["errors": "\(error.errors.count)"]))
            logger.error("policy reload failed; keeping the old policy", metadata: ["revision": "\(old)"])
            let first = error.errors.first.map { ": \($0)" } ?? ""
            throw WireError(.invalid, "The policy has \(error.errors.count) error(s); the old policy stays\(first)")
        }
        try await store.appendAudit(entry("success", ["new_revision": policy.revision]))
        engineBox.withLockedValue { $0 = PolicyEngine(policy: policy) }
        logger.notice("policy reloaded", metadata: ["old": "\(old)", "new": "\(policy.revision)"])
        return (old, policy.revision)
    }
}

extension WireOperation {
    /// What an operation changes that decisions read: the subject cache forgets it around each write.
    enum Changes {
        case nothing
        /// A user's record (added, disabled, enabled).
        case users
        /// Who holds which role (and so the assignment generation).
        case assignments
    }

    var changes: Changes {
        switch self {
        case .userAdd, .userDisable, .userEnable: .users
        case .userRemove, .roleGrant, .roleRevoke: .assignments
        default: .nothing
        }
    }
}
