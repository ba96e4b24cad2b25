public import Foundation
public import MamoriCore

// The store's interfaces, cut by what the service asks of it. Every mutation takes the audit
// entry that records it and must land with it in one transaction, or neither lands: a store that
// cannot promise that cannot conform. Errors are ``StoreError``s; nothing else is thrown.
//
// A conforming store only stores. The rules (the lockout's arithmetic, grant checks, audit
// verification) live in MamoriCore and are called by the store inside its transactions where
// they must see and change the same snapshot.

/// Users: the accounts Mamori knows, people and programs.
public protocol IdentityStore: Sendable {
    /// The user of that name, or nil.
    func user(named name: String) async throws -> UserRecord?
    /// Every user, by name.
    func users() async throws -> [UserRecord]
    /// Throws `conflict` when the name is taken.
    func addUser(_ user: UserRecord, audit: AuditEntry) async throws
    /// Throws `notFound` when there is no such user.
    func setDisabled(_ name: String, _ disabled: Bool, audit: AuditEntry) async throws
    /// Removes the user with their failures, closes their open sessions (at `audit`'s time), and
    /// changes the assignment generation, in one transaction. Throws `notFound`.
    func removeUser(_ name: String, audit: AuditEntry) async throws
    /// Throws `notFound`.
    func setPassword(_ name: String, hash: String, mustChange: Bool, audit: AuditEntry) async throws
}

/// Passwords' failures and lockout, TOTP enrolments and recovery codes.
public protocol CredentialStore: Sendable {
    /// A login's whole state in one read.
    func loginState(of name: String) async throws -> LoginState
    /// The user's failed-login count and lock, or nil when there is none.
    func failures(of name: String) async throws -> FailureRecord?
    /// Every account with failures on record, locked or not, by name.
    func allFailures() async throws -> [FailureRecord]

    /// Reserves a password attempt (``Lockout/reserve(_:user:at:threshold:window:)`` on the stored
    /// state, in one transaction). Every reserved attempt must be settled by ``recordFailure(_:attempt:at:threshold:window:lockFor:audit:)``,
    /// ``recordLogin(_:at:attempt:acceptedStep:consumedRecoveryCode:rehash:audit:)``, ``recordSuccess(_:at:)``
    /// or ``release(_:)``. Reservations a crash left unsettled are let go: by the embedded store
    /// when it opens again, by a shared store (several hubs) once they are older than any check
    /// can take.
    func reserveAttempt(_ name: String, at time: Date, threshold: Int, window: TimeInterval) async throws
        -> AttemptReservation
    /// Gives back an attempt that was not evaluated.
    func release(_ attempt: PasswordAttempt) async throws
    /// Counts a failure (``Lockout/fail(_:attempt:at:threshold:window:lockFor:)``) and records `audit`.
    func recordFailure(
        _ name: String, attempt: PasswordAttempt?, at time: Date, threshold: Int, window: TimeInterval,
        lockFor: TimeInterval, audit: AuditEntry
    ) async throws -> FailureRecord
    /// Settles a successful attempt that records nothing else (a password change).
    func recordSuccess(_ attempt: PasswordAttempt, at time: Date) async throws
    /// Records a successful login in one transaction: settles `attempt`, stores the last login
    /// and, when given, the accepted TOTP step (only if later than the stored one), the consumed
    /// recovery code (only if unused) and a stronger password hash (only over the hash verified).
    /// Returns false, changing nothing, when the account was locked meanwhile, the step was taken,
    /// the code used or the password replaced.
    func recordLogin(
        _ name: String, at time: Date, attempt: PasswordAttempt, acceptedStep: UInt64?, consumedRecoveryCode: Int64?,
        rehash: PasswordRehash?, audit: AuditEntry
    ) async throws -> Bool
    /// Forgives every failure and lifts the lock; attempts in flight stay reserved.
    func unlock(_ name: String, audit: AuditEntry) async throws

    /// The user's TOTP enrolment (sealed seed, parameters, last step), or nil.
    func totp(of name: String) async throws -> TOTPRecord?
    /// Every user's TOTP state: true when confirmed, false when enrolment is pending.
    func totpConfirmation() async throws -> [String: Bool]
    /// Stores a new, unconfirmed enrolment, replacing any earlier one. Throws `notFound` for an unknown user.
    func beginTOTP(_ record: TOTPRecord, audit: AuditEntry) async throws
    /// Confirms an enrolment with the step of its first code, which is then used up. Throws `notFound`.
    func confirmTOTP(_ name: String, step: UInt64, audit: AuditEntry) async throws
    /// Removes the user's TOTP enrolment, with `audit` in the same transaction.
    func resetTOTP(_ name: String, audit: AuditEntry) async throws
    /// The user's recovery codes as digests, the used ones with when.
    func recoveryCodes(of name: String) async throws -> [RecoveryCodeRecord]
    /// Replaces a user's recovery codes with a new set (digests only).
    func replaceRecoveryCodes(_ name: String, with codes: [StoredRecoveryCode], audit: AuditEntry) async throws
}

/// Role assignments, and the generation counter that tells caches they changed.
public protocol AssignmentStore: Sendable {
    /// A user's assignments, current or not, by role.
    func assignments(of name: String) async throws -> [AssignmentRecord]
    /// Every assignment, by role then user.
    func allAssignments() async throws -> [AssignmentRecord]
    /// Grants a role, running `check` inside the same transaction on the roles the user holds at
    /// the grant's time and the role's current holder count, so that two grants at once cannot
    /// both pass a holder limit or a separation of duty. Returns `check`'s reasons: when not
    /// empty nothing was granted and `denial` was recorded instead of `audit`. Throws `notFound`
    /// for an unknown user.
    func grant(
        _ assignment: AssignmentRecord, audit: AuditEntry, denial: @escaping @Sendable ([String]) -> AuditEntry,
        check: @escaping @Sendable (_ held: [String], _ holders: Int) -> [String]
    ) async throws -> [String]
    /// Throws `notFound` when the user does not hold the role.
    func revoke(_ name: String, role: String, audit: AuditEntry) async throws
    /// A counter changed by every grant, revoke and user removal (decisions carry it).
    func assignmentGeneration() async throws -> Int64
}

/// Login sessions.
public protocol SessionStore: Sendable {
    /// Stores a new open session with its audit entry, atomically; throws `notFound` when its user
    /// no longer exists or is disabled, so that a ticket outlives neither.
    func openSession(_ session: SessionRecord, audit: AuditEntry) async throws
    /// The session of that id, open or closed, or nil.
    func session(_ id: String) async throws -> SessionRecord?
    /// Saves when open sessions were last used (at shutdown), so that a restart does not make
    /// them look idle. Bookkeeping, not an act: no audit entry.
    func saveSessionActivity(_ activity: [String: Date]) async throws
    /// Throws `notFound` when there is no open session of that id.
    func closeSession(_ id: String, at time: Date, audit: AuditEntry) async throws
}

/// The audit chain: entries appended with their hash links, and signed checkpoints.
public protocol AuditTrail: AuditPageReader {
    /// Appends an entry on its own (a decision, a failed request).
    func appendAudit(_ entry: AuditEntry) async throws
    /// Up to `limit` entries after sequence `after`, oldest first, written at or after `since`
    /// and before `until` when given.
    func auditEntries(after: Int64, limit: Int, since: Date?, until: Date?) async throws -> [AuditChain.StoredEntry]
    /// The last `count` entries, oldest first.
    func lastAuditEntries(_ count: Int) async throws -> [AuditChain.StoredEntry]
    /// The sequence number of the newest entry (0: empty).
    func auditHead() async throws -> Int64
    /// The newest entry of `event` with outcome `success`, if any.
    func latestAuditEntry(event: String) async throws -> AuditChain.StoredEntry?
    /// Signs the head of the chain unless it is signed already (a store without a key: nothing).
    func writeCheckpoint(at time: Date) async throws
    /// Removes the oldest entries written before `cutoff` as a prefix of the chain, anchoring what
    /// remains with a checkpoint at the last removed, and appends the entry `audit` makes of the
    /// result, in one transaction. Needs the signing key.
    func pruneAudit(before cutoff: Date, audit: @escaping @Sendable (AuditPruneResult) -> AuditEntry) async throws
        -> AuditPruneResult
}

/// A store that can keep sessions of users it does not hold: a member terminal's embedded store,
/// whose users are its hub's (docs/town.md). The caller has checked the user against the store
/// that holds them.
public protocol ForeignSessionStore: Sendable {
    /// Records `session` with `audit` in one transaction, without looking for its user here.
    func openSession(ofUserHeldElsewhere session: SessionRecord, audit: AuditEntry) async throws
    /// Closes every open session of `user` with `audit`, in one transaction.
    func closeSessions(ofUser user: String, at time: Date, audit: AuditEntry) async throws
}

/// Everything the service needs from one store, and what `status` reports of it.
public protocol MamoriStorage: IdentityStore, CredentialStore, AssignmentStore, SessionStore, AuditTrail {
    /// Row counts for `status`: users, open_sessions, locked_users, audit_entries.
    func counts(at time: Date) async throws -> [String: Int]
    /// How commits reach the disk, as the store reports it (for `status`; e.g. SQLite's
    /// `synchronous` and `journal_mode`).
    func durability() async throws -> [String: String]
    /// Finishes the store's writes and closes it (at shutdown); unusable after.
    func close() async throws
}
