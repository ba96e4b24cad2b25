public import Foundation
public import MamoriCore
public import MamoriProtocol
public import MamoriStore
import NIOConcurrencyHelpers

/// A member terminal's hub, as its daemon uses it (docs/town.md, "Member mode"): where the
/// operations the town decides are sent, and what keeps the terminal's ``SubjectMirror`` current.
/// The daemon knows nothing of TLS or certificates; `mamorid` gives it an implementation.
public protocol TownHub: Sendable {
    /// Sends `request` for the caller the terminal saw at its socket, and returns the hub's reply
    /// line (its newline included), exactly as the hub wrote it. Throws a `WireError` for a
    /// request refused before it was sent (the caller's reply then); anything else when the hub
    /// cannot be reached or does not answer in time, and nothing is known of whether it acted.
    func forward(_ request: WireRequest, uid: UInt32, pid: Int32, name: String?) async throws -> [UInt8]

    /// Reads `users` from the hub into the mirror before returning: after a change this terminal
    /// forwarded, its own next decision sees it without waiting for the change feed.
    func refresh(users: [String]) async throws

    /// The link's state, for `status`.
    var state: StatusReply.HubLinkState { get }

    /// Whether the terminal takes its hub for unreachable now (its stream fell silent, or a
    /// connection stalled, and it has not reconnected and reported since): logins are then
    /// decided here, offline, without trying the hub.
    var isCut: Bool { get }

    /// Whether the link's watch heard from the hub lately (its heartbeat comes every second): a
    /// connection that fails then is the connection's trouble (a limit at the hub, say), not the
    /// hub's absence, and a login is not decided offline for it.
    var watchIsAlive: Bool { get }

    /// A login found the hub unreachable (its connection could not be made, and the watch is
    /// silent too) and was decided here: from now on ``isCut`` holds until the link has
    /// reconnected and reported.
    func markUnreachable()
}

/// Thrown by ``TownHub/forward(_:uid:pid:name:)`` when the hub could not be reached or did not
/// answer: nothing is known of whether it acted.
public struct HubUnreachable: Error, CustomStringConvertible {
    /// Why, for the log.
    public let description: String

    /// Why, for the log.
    public init(_ description: String) { self.description = description }
}

/// Where a member terminal keeps its users' offline credentials (``OfflineCredential``) and the
/// key they are made with; it never holds a seed or a code.
public protocol OfflineCredentialStore: Sendable {
    /// The terminal's own key (32 bytes), made once and never sent anywhere.
    var terminalKey: [UInt8] { get }
    /// `user`'s credential, if this terminal keeps one.
    func credential(of user: String) -> OfflineCredential?
    /// Changes `user`'s credential (nil: none) under the store's lock, and writes it before
    /// returning: what `change` returns is true of the credential as stored.
    func update<T>(_ user: String, _ change: (inout OfflineCredential?) throws -> T) throws -> T
    /// Every user with a credential.
    var users: [String] { get }
    /// A number for the next ``OfflineEvent``, greater than every one given before.
    func nextSequence() -> Int64
}

/// What makes a daemon a member terminal: its hub, and the mirror its decisions read.
public struct MemberRole: Sendable {
    /// The hub that answers logins and administration.
    public let hub: any TownHub
    /// The users and assignments the hub last told this terminal of.
    public let mirror: SubjectMirror
    /// When the terminal joined its town: a session opened before then was opened for a user of
    /// the terminal's own, not the town's, and is not honoured.
    public let joinedAt: Date
    /// The users' offline credentials (nil: no login through a network cut on this terminal).
    public let offline: (any OfflineCredentialStore)?

    /// A role from its parts.
    public init(
        hub: any TownHub, mirror: SubjectMirror, joinedAt: Date, offline: (any OfflineCredentialStore)? = nil
    ) {
        self.hub = hub
        self.mirror = mirror
        self.joinedAt = joinedAt
        self.offline = offline
    }
}

/// One user as a member terminal holds it: the record without any secret, every assignment, and
/// the lock the hub had on it.
public struct MirroredSubject: Sendable, Hashable {
    /// The user (no password hash: the hub keeps it).
    public var user: UserRecord
    /// Every assignment, current or not: decisions judge them at their own time.
    public var assignments: [AssignmentRecord]
    /// Until when the hub locked the account after failed logins; nil when it is not locked.
    public var lockedUntil: Date?

    /// A subject from its parts; any password hash in `user` is dropped.
    public init(user: UserRecord, assignments: [AssignmentRecord], lockedUntil: Date?) {
        var user = user
        user.passwordHash = nil
        self.user = user
        self.assignments = assignments
        self.lockedUntil = lockedUntil
    }
}

/// The users and assignments of the town, as a member terminal last heard them from its hub, in
/// memory. The terminal's `authorize`, `account` and sessions read them here, never over the
/// network; the hub's link keeps them current (a full read on every connection, then each change
/// pushed on the feed). Before the first read it is empty, and every decision is a refusal.
public final class SubjectMirror: Sendable {
    private struct State {
        var subjects: [String: MirroredSubject] = [:]
        /// The hub's change number each user was last read at (removed users too); a user not
        /// here was read by the last full read, at ``floor``.
        var readAt: [String: Int64] = [:]
        var floor: Int64 = -1
        /// When (this terminal's clock) a user was removed or replaced by a new one of the same
        /// name: sessions opened before then are not theirs.
        var retiredAt: [String: Date] = [:]
        /// Counts every change, as a store's assignment generation does.
        var generation: Int64 = 0
        /// The hub's change number the mirror is current to; nil before the first full read.
        var latest: Int64?
        var observers: [@Sendable (Set<String>) -> Void] = []

        /// Whether `new` (nil: removed) ends the identity `old` had.
        static func retires(_ old: MirroredSubject?, _ new: MirroredSubject?) -> Bool {
            guard let old else { return false }
            return new == nil || new?.user.createdAt != old.user.createdAt
        }
    }

    private let state = NIOLockedValueBox(State())
    private let clock: @Sendable () -> Date

    /// An empty mirror; `clock` dates the retirement of users.
    public init(clock: @escaping @Sendable () -> Date = { Date() }) {
        self.clock = clock
    }

    /// Replaces everything with `subjects`, read from the hub when its feed was at `latest`.
    public func replaceAll(_ subjects: [MirroredSubject], latest: Int64) {
        let now = clock()
        let (observers, retired) = state.withLockedValue { state in
            let fresh = Dictionary(subjects.map { ($0.user.name, $0) }, uniquingKeysWith: { _, last in last })
            let retired = Set(state.subjects.keys.filter { State.retires(state.subjects[$0], fresh[$0]) })
            for name in retired { state.retiredAt[name] = now }
            state.subjects = fresh
            state.readAt = [:]
            state.floor = latest
            state.generation += 1
            state.latest = latest
            return (state.observers, retired)
        }
        for observer in observers { observer(retired) }
    }

    /// Replaces the entries of `names` with `subjects` (a name without one was removed at the
    /// hub), read when the hub's feed was at `readAt`. A name already read at a later number
    /// keeps what it has: replies to reads made at once may arrive in any order, and an older
    /// one must not undo a revocation a newer one brought.
    public func update(_ names: Set<String>, with subjects: [MirroredSubject], readAt: Int64) {
        let now = clock()
        let (observers, retired) = state.withLockedValue { state in
            var retired: Set<String> = []
            for name in names where readAt >= (state.readAt[name] ?? state.floor) {
                let new = subjects.first { $0.user.name == name }
                if State.retires(state.subjects[name], new) {
                    retired.insert(name)
                    state.retiredAt[name] = now
                }
                state.subjects[name] = new
                state.readAt[name] = readAt
            }
            state.generation += 1
            return (state.observers, retired)
        }
        for observer in observers { observer(retired) }
    }

    /// When `name` was last removed or replaced by a new user of that name, while this terminal
    /// watched; nil if it was not.
    public func retired(_ name: String) -> Date? { state.withLockedValue { $0.retiredAt[name] } }

    /// Notes that the mirror is current to the hub's change `number`.
    public func advance(to number: Int64) {
        state.withLockedValue { state in state.latest = max(state.latest ?? 0, number) }
    }

    /// The hub's change number the mirror is current to; nil before the first full read.
    public var latest: Int64? { state.withLockedValue { $0.latest } }

    /// Calls `observer` after every change to the mirror, with the users it retired (removed, or
    /// replaced by a new user of the same name): the daemon forgets what it cached, and closes
    /// the retired users' sessions.
    public func observe(_ observer: @escaping @Sendable (Set<String>) -> Void) {
        state.withLockedValue { $0.observers.append(observer) }
    }

    /// The user `name`, if the hub has one.
    public func subject(_ name: String) -> MirroredSubject? { state.withLockedValue { $0.subjects[name] } }

    /// Every user, by name.
    public var subjects: [MirroredSubject] {
        state.withLockedValue { $0.subjects.values.sorted { $0.user.name < $1.user.name } }
    }

    /// How many changes the mirror has taken.
    public var generation: Int64 { state.withLockedValue { $0.generation } }
}

/// A member terminal's store: sessions and the terminal's own audit chain in its embedded store,
/// users and assignments from the ``SubjectMirror``. What the hub decides (passwords, codes,
/// lockouts, every administrative change) is never written here: the daemon forwards those
/// operations, and a write that reaches this store anyway is refused, so that a terminal cannot
/// quietly keep a second truth.
final class MemberStore: MamoriStorage {
    let local: any MamoriStorage
    let mirror: SubjectMirror

    init(local: any MamoriStorage, mirror: SubjectMirror) {
        self.local = local
        self.mirror = mirror
    }

    static let answeredByHub = StoreError(
        .conflict, "On a member terminal, the hub keeps users and credentials; this change is made there.")

    // MARK: Read from the mirror

    func user(named name: String) async throws -> UserRecord? { mirror.subject(name)?.user }
    func users() async throws -> [UserRecord] { mirror.subjects.map(\.user) }
    func assignments(of name: String) async throws -> [AssignmentRecord] { mirror.subject(name)?.assignments ?? [] }
    func allAssignments() async throws -> [AssignmentRecord] { mirror.subjects.flatMap(\.assignments) }
    func assignmentGeneration() async throws -> Int64 { mirror.generation }

    func failures(of name: String) async throws -> FailureRecord? {
        guard let lockedUntil = mirror.subject(name)?.lockedUntil else { return nil }
        // The hub counts the failures; a terminal knows only the lock they led to.
        return FailureRecord(user: name, count: 0, firstFailureAt: lockedUntil, lockedUntil: lockedUntil)
    }

    func allFailures() async throws -> [FailureRecord] {
        var records: [FailureRecord] = []
        for subject in mirror.subjects {
            if let record = try await failures(of: subject.user.name) { records.append(record) }
        }
        return records
    }

    func loginState(of name: String) async throws -> LoginState {
        let subject = mirror.subject(name)
        return LoginState(
            user: subject?.user, failures: nil, totp: nil, recoveryCodes: [], assignments: subject?.assignments ?? [])
    }

    func totp(of name: String) async throws -> TOTPRecord? { nil }
    func totpConfirmation() async throws -> [String: Bool] { [:] }
    func recoveryCodes(of name: String) async throws -> [RecoveryCodeRecord] { [] }

    // MARK: Decided at the hub

    func addUser(_ user: UserRecord, audit: AuditEntry) async throws { throw Self.answeredByHub }

    /// Closes this terminal's copies of `user`'s sessions: the user was removed at the hub, or
    /// replaced by a new user of the same name.
    func closeSessions(of user: String, at time: Date, audit: AuditEntry) async throws {
        guard let foreign = local as? any ForeignSessionStore else { return }
        try await foreign.closeSessions(ofUser: user, at: time, audit: audit)
    }
    func setDisabled(_ name: String, _ disabled: Bool, audit: AuditEntry) async throws { throw Self.answeredByHub }
    func removeUser(_ name: String, audit: AuditEntry) async throws { throw Self.answeredByHub }
    func setPassword(_ name: String, hash: String, mustChange: Bool, audit: AuditEntry) async throws {
        throw Self.answeredByHub
    }
    func reserveAttempt(_ name: String, at time: Date, threshold: Int, window: TimeInterval) async throws
        -> AttemptReservation
    { throw Self.answeredByHub }
    func release(_ attempt: PasswordAttempt) async throws { throw Self.answeredByHub }
    func recordFailure(
        _ name: String, attempt: PasswordAttempt?, at time: Date, threshold: Int, window: TimeInterval,
        lockFor: TimeInterval, audit: AuditEntry
    ) async throws -> FailureRecord { throw Self.answeredByHub }
    func recordSuccess(_ attempt: PasswordAttempt, at time: Date) async throws { throw Self.answeredByHub }
    func recordLogin(
        _ name: String, at time: Date, attempt: PasswordAttempt, acceptedStep: UInt64?, consumedRecoveryCode: Int64?,
        rehash: PasswordRehash?, audit: AuditEntry
    ) async throws -> Bool { throw Self.answeredByHub }
    func unlock(_ name: String, audit: AuditEntry) async throws { throw Self.answeredByHub }
    func beginTOTP(_ record: TOTPRecord, audit: AuditEntry) async throws { throw Self.answeredByHub }
    func confirmTOTP(_ name: String, step: UInt64, audit: AuditEntry) async throws { throw Self.answeredByHub }
    func resetTOTP(_ name: String, audit: AuditEntry) async throws { throw Self.answeredByHub }
    func replaceRecoveryCodes(_ name: String, with codes: [StoredRecoveryCode], audit: AuditEntry) async throws {
        throw Self.answeredByHub
    }
    func grant(
        _ assignment: AssignmentRecord, audit: AuditEntry, denial: @escaping @Sendable ([String]) -> AuditEntry,
        check: @escaping @Sendable (_ held: [String], _ holders: Int) -> [String]
    ) async throws -> [String] { throw Self.answeredByHub }
    func revoke(_ name: String, role: String, audit: AuditEntry) async throws { throw Self.answeredByHub }

    // MARK: The terminal's own

    /// A copy of a session the hub opened, for a user the mirror holds enabled.
    func openSession(_ session: SessionRecord, audit: AuditEntry) async throws {
        guard let foreign = local as? any ForeignSessionStore else {
            throw StoreError(.storage, "This terminal's store cannot keep sessions of the hub's users.")
        }
        guard let subject = mirror.subject(session.user), !subject.user.disabled else {
            throw StoreError(.notFound, "There is no enabled user '\(session.user)'; authenticate again.")
        }
        try await foreign.openSession(ofUserHeldElsewhere: session, audit: audit)
    }
    func session(_ id: String) async throws -> SessionRecord? { try await local.session(id) }
    func saveSessionActivity(_ activity: [String: Date]) async throws {
        try await local.saveSessionActivity(activity)
    }
    func closeSession(_ id: String, at time: Date, audit: AuditEntry) async throws {
        try await local.closeSession(id, at: time, audit: audit)
    }
    func checkpoints() async throws -> [AuditCheckpoint] { try await local.checkpoints() }
    func auditPage(after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry] {
        try await local.auditPage(after: after, limit: limit)
    }
    func appendAudit(_ entry: AuditEntry) async throws { try await local.appendAudit(entry) }
    func auditEntries(after: Int64, limit: Int, since: Date?, until: Date?) async throws -> [AuditChain.StoredEntry] {
        try await local.auditEntries(after: after, limit: limit, since: since, until: until)
    }
    func lastAuditEntries(_ count: Int) async throws -> [AuditChain.StoredEntry] {
        try await local.lastAuditEntries(count)
    }
    func auditHead() async throws -> Int64 { try await local.auditHead() }
    func latestAuditEntry(event: String) async throws -> AuditChain.StoredEntry? {
        try await local.latestAuditEntry(event: event)
    }
    func writeCheckpoint(at time: Date) async throws { try await local.writeCheckpoint(at: time) }
    func pruneAudit(before cutoff: Date, audit: @escaping @Sendable (AuditPruneResult) -> AuditEntry) async throws
        -> AuditPruneResult
    { try await local.pruneAudit(before: cutoff, audit: audit) }

    func counts(at time: Date) async throws -> [String: Int] {
        var counts = try await local.counts(at: time)
        let subjects = mirror.subjects
        counts["users"] = subjects.count
        counts["locked_users"] = subjects.filter { ($0.lockedUntil ?? .distantPast) > time }.count
        return counts
    }
    func durability() async throws -> [String: String] { try await local.durability() }
    func close() async throws { try await local.close() }
}
