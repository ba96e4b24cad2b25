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
    /// The policy in force; ``reload(actor:)`` swaps it whole.
    let engineBox: NIOLockedValueBox<PolicyEngine>
    let tickets = NIOLockedValueBox<[String: Ticket]>([:])
    let cache: SubjectCache
    /// Folds repeated denials into counted entries and cuts off callers past the rate.
    let denials: DenialLedger
    /// The last verification of the audit chain (at start, then by each `audit.verify` and `inspect`),
    /// which `status` reports so that monitoring sees a broken chain without asking for it.
    let lastChainCheck = NIOLockedValueBox<ChainCheck?>(nil)
    /// Told of each policy ``reload(actor:)`` swaps in (the daemon republishes its ``LoginFactorsNotice``).
    let policyObservers = NIOLockedValueBox<[@Sendable (Policy) -> Void]>([])
    /// Set on a hub: its register of terminals and its CA's pin.
    let hub: HubRole?
    /// Set on a member terminal: the hub that answers logins and administration, and the mirror
    /// of users and assignments that this terminal's decisions read.
    let member: MemberRole?

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
        /// Issued by this member terminal for a login through a network cut: its session opens here.
        var offline = false
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
        random: any RandomByteSource, logger: Logger, hub: HubRole? = nil, member: MemberRole? = nil
    ) {
        self.hub = hub
        self.member = member
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
        // A change the hub told of (a revocation, a disable, a lock) reaches the next decision;
        // a user removed there, or replaced by a new one of the same name, loses their sessions.
        member?.mirror.observe { [cache] retired in
            cache.invalidate(assignmentsChanged: true)
            for user in retired { cache.forgetSessions(of: user) }
            if !retired.isEmpty { Task { await self.closeSessions(ofRetired: retired) } }
        }
    }

    var engine: PolicyEngine { engineBox.withLockedValue { $0 } }

    /// Calls `observer` with every policy swapped in from now on.
    func observePolicy(_ observer: @escaping @Sendable (Policy) -> Void) {
        policyObservers.withLockedValue { $0.append(observer) }
    }

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
                logger.critical(
                    "a summary of repeated denials could not be recorded", metadata: ["actor": "\(entry.actor)"])
            }
        }
    }

    /// Records a denial through the ledger: in full the first time in the interval, counted after,
    /// and once more when it cuts the caller off.
    func recordDenial(_ entry: AuditEntry, _ context: RequestContext, action: String, resource: String) async throws {
        let key = context.caller.isOperator ? nil : context.caller.shareKey
        switch denials.note(entry, caller: key, action: action, resource: resource) {
        case .record: try await store.appendAudit(entry)
        case .counted: break
        case .cutOff:
            logger.warning("caller cut off after repeated denials", metadata: ["uid": "\(context.caller.uid)"])
            var notice = entry
            notice.event = AuditEvent.callerRateLimited.rawValue
            notice.target = "uid:\(context.caller.uid)"
            notice.detail = [
                "denials": "\(denials.perInterval + 1)", "interval_seconds": "\(Int(denials.interval))",
            ]
            try await store.appendAudit(notice)
        }
    }

    /// The reply for a caller that is cut off, without doing any work; nil for everyone else.
    func refuseIfCutOff(_ request: WireRequest, caller: Caller) -> [UInt8]? {
        guard !caller.isOperator, denials.isCutOff(caller.shareKey) else { return nil }
        return WireReply.failure(
            WireError(
                .rateLimited,
                "Your user was denied too often; requests are refused for \(denials.secondsLeft(at: clock.now())) more second(s).",
                id: request.id
            ))
    }

    // MARK: Requests

    /// Answers one parsed request. Never throws: every failure becomes an error reply.
    func handle(_ request: WireRequest, caller: Caller) async -> [UInt8] {
        if let member, let operation = WireOperation(rawValue: request.op), operation.isAnsweredByHub,
            !(operation == .sessionOpen && holdsOfflineTicket(request))
        {
            return await forwardToHub(request, operation, caller: caller, member: member)
        }
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
        case is Argon2Pool.Busy:
            return WireError(.busy, "Too many authentications are in progress; try again shortly.", id: id)
        default: return WireError(.internal, "The daemon could not complete the request.", id: id)
        }
    }

    private func dispatch(_ request: WireRequest, caller: Caller) async throws -> [String: JSONValue] {
        guard let operation = WireOperation(rawValue: request.op) else {
            throw WireError(
                .unknownOperation, "There is no operation '\(request.op.prefix(64))'; see docs/protocol.md.")
        }
        let changes = operation.changes
        if changes != .nothing {
            // Before and after: a snapshot read during the write cannot be kept.
            cache.invalidate(assignmentsChanged: false)
        }
        defer {
            if changes != .nothing { cache.invalidate(assignmentsChanged: changes == .assignments) }
        }
        let now = clock.now()
        let deadline = try request.optionalInteger(.deadline).map { Date(timeIntervalSince1970: Double($0) / 1000) }
        if let deadline, now > deadline { throw Self.pastDeadline }
        let context = RequestContext(
            request: request, caller: caller, now: now, engine: engine, deadline: deadline,
            terminal: caller.origin?.terminal ?? configuration.terminal, zone: caller.origin?.zone ?? configuration.zone
        )
        switch operation {
        case .status: return try await status(context).replyFields()
        case .authenticate: return try await authenticate(context).replyFields()
        case .account: return try await account(context).replyFields()
        case .sessionOpen: return try await openSession(context).replyFields()
        case .sessionClose: return try await closeSession(context).replyFields()
        case .authorize: return try await authorize(context)
        case .userAdd: return try await addUser(context).replyFields()
        case .userShow: return try await showUser(context).replyFields()
        case .userList: return try await listUsers(context).replyFields()
        case .userDisable: return try await setDisabled(context, true).replyFields()
        case .userEnable: return try await setDisabled(context, false).replyFields()
        case .userRemove: return try await removeUser(context).replyFields()
        case .userPasswd: return try await setTemporaryPassword(context).replyFields()
        case .userUnlock: return try await unlock(context).replyFields()
        case .userRoles: return try await userRoles(context).replyFields()
        case .passwordChange: return try await changePassword(context).replyFields()
        case .totpEnrollBegin: return try await beginEnrolment(context).replyFields()
        case .totpEnrollConfirm: return try await confirmEnrolment(context).replyFields()
        case .totpReset: return try await resetTOTP(context).replyFields()
        case .recoveryIssue: return try await issueRecoveryCodes(context).replyFields()
        case .roleGrant: return try await grant(context).replyFields()
        case .roleRevoke: return try await revoke(context).replyFields()
        case .roleList: return try await listRoles(context).replyFields()
        case .policyReload: return try await reloadPolicy(context).replyFields()
        case .policyStatus: return try await policyStatus(context).replyFields()
        case .auditPublicKey: return try await publicKey(context).replyFields()
        case .auditRead: return try await readAudit(context).replyFields()
        case .auditTrail: return try await readTrail(context).replyFields()
        case .auditVerify: return try await verifyAudit(context)
        case .auditPrune: return try await pruneAudit(context).replyFields()
        case .reviewRecord: return try await recordReview(context).replyFields()
        case .inspect: return try await inspect(context).replyFields()
        case .terminalAdd: return try await addTerminal(context).replyFields()
        case .terminalList: return try await listTerminals(context).replyFields()
        case .terminalRemove: return try await removeTerminal(context).replyFields()
        }
    }

    struct RequestContext {
        let request: WireRequest
        let caller: Caller
        let now: Date
        let engine: PolicyEngine
        /// When the client stops waiting (`deadline`), if it said.
        var deadline: Date? = nil
        /// The terminal and zone the request comes from: this daemon's, or on a hub the member
        /// terminal's that forwarded it. Entries and decisions name these.
        var terminal: String
        var zone: String
    }

    /// A request read after its client stopped waiting: nothing was done.
    static let pastDeadline = WireError(.busy, "The request came after its deadline; nothing was done.")

    /// `audit.public_key`: the key that verifies the chain's checkpoints (public, so not recorded).
    func publicKey(_ context: RequestContext) async throws -> AuditPublicKeyReply {
        try await requirePermission(context, action: .auditRead, resource: "mamori:audit")
        return AuditPublicKeyReply(publicKey: Data(auditSigner.publicKey).base64EncodedString())
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
