public import Foundation
public import MamoriCore

/// A Mamori user: a person or a program, named by their Unix login name.
public struct UserRecord: Sendable, Hashable {
    public var name: String
    public var displayName: String
    public var kind: UserKind
    public var organisation: String?
    public var disabled: Bool
    public var createdAt: Date
    public var lastLoginAt: Date?
    /// Set when an administrator gave a temporary password: the next login must change it.
    public var mustChangePassword: Bool
    /// The Argon2id PHC string; nil until a password is set.
    public var passwordHash: String?

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
    public var user: String
    /// The seed sealed by ``SeedCipher``.
    public var sealedSeed: [UInt8]
    public var parameters: OTPParameters
    /// The last time step accepted; a step at or before it is a replay.
    public var lastAcceptedStep: UInt64?
    /// False until the user proved possession with a first code.
    public var confirmed: Bool
    public var createdAt: Date

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
    public var user: String
    public var role: String
    public var grantedBy: String
    public var grantedAt: Date
    /// Fiscal-year appointments end: after this the role no longer counts.
    public var expiresAt: Date?

    public init(user: String, role: String, grantedBy: String, grantedAt: Date, expiresAt: Date?) {
        self.user = user
        self.role = role
        self.grantedBy = grantedBy
        self.grantedAt = grantedAt
        self.expiresAt = expiresAt
    }

    public func isCurrent(at time: Date) -> Bool { expiresAt.map { time < $0 } ?? true }
}

/// Failed authentications and the lock they led to.
public struct FailureRecord: Sendable, Hashable {
    public var user: String
    public var count: Int
    public var firstFailureAt: Date
    public var lockedUntil: Date?

    public init(user: String, count: Int, firstFailureAt: Date, lockedUntil: Date?) {
        self.user = user
        self.count = count
        self.firstFailureAt = firstFailureAt
        self.lockedUntil = lockedUntil
    }

    public func isLocked(at time: Date) -> Bool { lockedUntil.map { time < $0 } ?? false }
}

/// A login session opened after a successful authentication.
public struct SessionRecord: Sendable, Hashable {
    public var id: String
    public var user: String
    public var zone: String
    public var terminal: String
    public var factors: Set<Factor>
    public var service: String
    public var tty: String?
    public var remoteHost: String?
    public var openedAt: Date
    public var expiresAt: Date
    public var closedAt: Date?
    /// When the session was last used, as saved at the daemon's last stop (nil: never saved).
    public var lastActiveAt: Date?

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

/// A stored recovery code with its row id.
public struct RecoveryCodeRecord: Sendable, Hashable {
    /// The store's identifier of this code, which ``CredentialStore/recordLogin(_:at:attempt:acceptedStep:consumedRecoveryCode:rehash:audit:)``
    /// takes to consume it.
    public var id: Int64
    public var code: StoredRecoveryCode

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
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The user, session, enrolment or assignment named does not exist.
        public static let notFound = Code(rawValue: "not-found")
        /// It exists already, or the change collides with another.
        public static let conflict = Code(rawValue: "conflict")
        /// The store could not read or write: nothing was changed.
        public static let storage = Code(rawValue: "storage")

        public var description: String { rawValue }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// What ``AuditTrail/pruneAudit(before:audit:)`` removed.
public struct AuditPruneResult: Sendable, Hashable {
    /// The last removed entry; the signed checkpoint at it anchors what remains.
    public let prunedThrough: Int64
    public let removed: Int

    public init(prunedThrough: Int64, removed: Int) {
        self.prunedThrough = prunedThrough
        self.removed = removed
    }
}

/// Everything a login needs about one account, read at once (one round trip, one snapshot).
public struct LoginState: Sendable, Hashable {
    /// Nil when there is no such user; the other fields are then empty.
    public var user: UserRecord?
    public var failures: FailureState?
    public var totp: TOTPRecord?
    public var recoveryCodes: [RecoveryCodeRecord]
    /// Every assignment, current or not: the caller judges them at its own time.
    public var assignments: [AssignmentRecord]

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
