public import Foundation
public import MamoriCore

/// A Mamori user: a person or a program, named by their Unix login name.
public struct UserRecord: Sendable, Hashable {
    /// The Unix login name: the account's key, unique in the store.
    public var name: String
    /// The name shown to people in listings.
    public var displayName: String
    /// What kind of person or program the user is; the policy's scope tells the kinds apart.
    public var kind: UserKind
    /// The id of the policy organisation the user belongs to; nil when none was named.
    public var organisation: String?
    /// True while the account is disabled: it cannot log in and its roles do not count.
    public var disabled: Bool
    /// When the account was added (an absolute time).
    public var createdAt: Date
    /// When the user last logged in successfully; nil until the first login.
    public var lastLoginAt: Date?
    /// Set when an administrator gave a temporary password: the next login must change it.
    public var mustChangePassword: Bool
    /// The Argon2id PHC string; nil until a password is set.
    public var passwordHash: String?

    /// Creates a record; by default the account is enabled, has no password and has never logged in.
    public init(
        name: String, displayName: String, kind: UserKind, organisation: String?, disabled: Bool = false,
        createdAt: Date, lastLoginAt: Date? = nil, mustChangePassword: Bool = false, passwordHash: String? = nil
    ) {
        self.name = name
        self.displayName = displayName
        self.kind = kind
        self.organisation = organisation
        self.disabled = disabled
        self.createdAt = createdAt
        self.lastLoginAt = lastLoginAt
        self.mustChangePassword = mustChangePassword
        self.passwordHash = passwordHash
    }
}

/// A TOTP enrolment: the seed only in sealed form.
public struct TOTPRecord: Sendable, Hashable {
    /// The login name of the enrolled user.
    public var user: String
    /// The seed sealed by ``SeedCipher``.
    public var sealedSeed: [UInt8]
    /// The algorithm, number of digits and time step the codes are made with.
    public var parameters: OTPParameters
    /// The last time step accepted; a step at or before it is a replay.
    public var lastAcceptedStep: UInt64?
    /// False until the user proved possession with a first code.
    public var confirmed: Bool
    /// When the enrolment began (an absolute time).
    public var createdAt: Date

    /// Creates an unconfirmed enrolment that has accepted no step yet.
    ///
    /// `sealedSeed` must already be sealed for `user` by ``SeedCipher`` (AES-GCM): never pass a plain seed.
    public init(
        user: String, sealedSeed: [UInt8], parameters: OTPParameters, lastAcceptedStep: UInt64? = nil,
        confirmed: Bool = false, createdAt: Date
    ) {
        self.user = user
        self.sealedSeed = sealedSeed
        self.parameters = parameters
        self.lastAcceptedStep = lastAcceptedStep
        self.confirmed = confirmed
        self.createdAt = createdAt
    }
}

/// A role held by a user.
public struct AssignmentRecord: Sendable, Hashable {
    /// The login name of the user who holds the role.
    public var user: String
    /// The role's id, as the policy declares it.
    public var role: String
    /// Who granted the role: the granting caller's login name, or `uid:` and its uid when it has none.
    public var grantedBy: String
    /// When the role was granted (an absolute time).
    public var grantedAt: Date
    /// Fiscal-year appointments end: after this the role no longer counts.
    public var expiresAt: Date?

    /// Creates an assignment; a nil `expiresAt` means it never ends.
    public init(user: String, role: String, grantedBy: String, grantedAt: Date, expiresAt: Date?) {
        self.user = user
        self.role = role
        self.grantedBy = grantedBy
        self.grantedAt = grantedAt
        self.expiresAt = expiresAt
    }

    /// True when the role counts at `time`: it has no end, or `time` is before it.
    public func isCurrent(at time: Date) -> Bool { expiresAt.map { time < $0 } ?? true }
}

/// Failed authentications and the lock they led to.
public struct FailureRecord: Sendable, Hashable {
    /// The login name of the account.
    public var user: String
    /// Failures counted in the window that began at `firstFailureAt`.
    public var count: Int
    /// When the first failure of the current window happened: the window is measured from it.
    public var firstFailureAt: Date
    /// When the lock the failures led to ends; nil when none was set. A time in the past: the lock ran out.
    public var lockedUntil: Date?

    /// Creates a record of `count` failures since `firstFailureAt`.
    public init(user: String, count: Int, firstFailureAt: Date, lockedUntil: Date?) {
        self.user = user
        self.count = count
        self.firstFailureAt = firstFailureAt
        self.lockedUntil = lockedUntil
    }

    /// True while a lock is in force at `time`.
    public func isLocked(at time: Date) -> Bool { lockedUntil.map { time < $0 } ?? false }
}

/// A login session opened after a successful authentication.
public struct SessionRecord: Sendable, Hashable {
    /// The session's identifier, made at random by the daemon (16 bytes in hex).
    public var id: String
    /// The login name of the user the session belongs to.
    public var user: String
    /// The id of the network zone of the terminal it was opened on.
    public var zone: String
    /// The id of the terminal it was opened on.
    public var terminal: String
    /// The authentication factors the login presented.
    public var factors: Set<Factor>
    /// The PAM service the login came through (e.g. `sshd`); `unknown` when the client did not say.
    public var service: String
    /// The terminal line, as PAM reported it; nil when not given.
    public var tty: String?
    /// The remote host of a remote login, as PAM reported it; nil for a local login or when not given.
    public var remoteHost: String?
    /// When the session was opened (an absolute time).
    public var openedAt: Date
    /// The latest time the session stays open: its maximum length after `openedAt`.
    public var expiresAt: Date
    /// When the session was closed; nil until it is (a session that ran out without being closed keeps nil).
    public var closedAt: Date?
    /// When the session was last used, as saved at the daemon's last stop (nil: never saved).
    public var lastActiveAt: Date?

    /// Creates a record; by default the session is not closed and has no saved activity.
    public init(
        id: String, user: String, zone: String, terminal: String, factors: Set<Factor>, service: String, tty: String?,
        remoteHost: String?, openedAt: Date, expiresAt: Date, closedAt: Date? = nil, lastActiveAt: Date? = nil
    ) {
        self.id = id
        self.user = user
        self.zone = zone
        self.terminal = terminal
        self.factors = factors
        self.service = service
        self.tty = tty
        self.remoteHost = remoteHost
        self.openedAt = openedAt
        self.expiresAt = expiresAt
        self.closedAt = closedAt
        self.lastActiveAt = lastActiveAt
    }

    /// Not closed and not past its maximum length. (Idleness is the daemon's to judge: it knows
    /// the last use.)
    public func isOpen(at time: Date) -> Bool { closedAt == nil && time < expiresAt }
}

/// A stronger hash of the password a login just verified, to store in place of the one it was
/// verified against, and only if that one is still the stored hash: a password set meanwhile (on
/// another terminal, by an administrator) is never overwritten by an upgrade of the old one.
public struct PasswordRehash: Sendable, Hashable {
    /// The stored hash the login verified the password against.
    public var verified: String
    /// The new hash of the same password at the policy's parameters.
    public var upgraded: String

    /// An upgrade of `verified` to `upgraded`.
    public init(verified: String, upgraded: String) {
        self.verified = verified
        self.upgraded = upgraded
    }
}

/// A stored recovery code with its row id.
public struct RecoveryCodeRecord: Sendable, Hashable {
    /// The store's identifier of this code, which ``CredentialStore/recordLogin(_:at:attempt:acceptedStep:consumedRecoveryCode:rehash:audit:)``
    /// takes to consume it.
    public var id: Int64
    /// The code's digest and when it was used; never the code itself.
    public var code: StoredRecoveryCode

    /// Creates a record.
    public init(id: Int64, code: StoredRecoveryCode) {
        self.id = id
        self.code = code
    }
}

/// Why a store operation was refused. The message is safe to show the caller: it never holds a
/// secret or a statement's arguments.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of refusal: a struct, not an enum, so that a store can add codes (a hub's
    /// `unavailable`, say) without breaking the switches of those who map them.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The code's name (e.g. `not-found`), stable for those who map codes.
        public let rawValue: String
        /// Makes a code from its name; a store may define codes of its own.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The user, session, enrolment or assignment named does not exist.
        public static let notFound = Code(rawValue: "not-found")
        /// It exists already, or the change collides with another.
        public static let conflict = Code(rawValue: "conflict")
        /// The store could not read or write: nothing was changed.
        public static let storage = Code(rawValue: "storage")
        /// What a login was judged on changed before it was recorded (its step was accepted, its
        /// recovery code used, its password replaced): the transaction was rolled back. Stores
        /// throw it inside their transaction and answer `recordLogin` with false.
        public static let takenMeanwhile = Code(rawValue: "taken-meanwhile")

        /// The code's name.
        public var description: String { rawValue }
    }

    /// What kind of refusal this is.
    public let code: Code
    /// A sentence for the caller; it holds no secret and no statement's arguments.
    public let message: String

    /// Creates an error.
    ///
    /// `message` is shown to the caller: put no secret and no statement's arguments in it.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// What ``AuditTrail/pruneAudit(before:audit:)`` removed.
public struct AuditPruneResult: Sendable, Hashable {
    /// The last removed entry; the signed checkpoint at it anchors what remains.
    public let prunedThrough: Int64
    /// How many entries were removed (0: none was old enough).
    public let removed: Int

    /// Creates a result.
    public init(prunedThrough: Int64, removed: Int) {
        self.prunedThrough = prunedThrough
        self.removed = removed
    }
}

/// Everything a login needs about one account, read at once (one round trip, one snapshot).
public struct LoginState: Sendable, Hashable {
    /// Nil when there is no such user; the other fields are then empty.
    public var user: UserRecord?
    /// The account's failures, lock and attempts in flight; nil when nothing is stored.
    public var failures: FailureState?
    /// The TOTP enrolment, confirmed or not, with its seed sealed; nil when there is none.
    public var totp: TOTPRecord?
    /// Every recovery code of the user, used or not (digests only).
    public var recoveryCodes: [RecoveryCodeRecord]
    /// Every assignment, current or not: the caller judges them at its own time.
    public var assignments: [AssignmentRecord]

    /// Creates a login state; for an unknown user, pass nil and empty values.
    public init(
        user: UserRecord?, failures: FailureState?, totp: TOTPRecord?, recoveryCodes: [RecoveryCodeRecord],
        assignments: [AssignmentRecord]
    ) {
        self.user = user
        self.failures = failures
        self.totp = totp
        self.recoveryCodes = recoveryCodes
        self.assignments = assignments
    }
}
