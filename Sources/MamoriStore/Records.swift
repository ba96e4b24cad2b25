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

    public func isLocked(at time: Date) -> Bool { lockedUntil.map { time < $0 } ?? false }
}

/// A password attempt reserved in the store before its Argon2 run (see
/// ``Store/reserveAttempt(_:at:threshold:window:)``); settle it exactly once.
public struct PasswordAttempt: Sendable, Hashable {
    public let user: String
    /// The lockout threshold and window it was reserved against.
    public let threshold: Int
    public let window: TimeInterval
    /// Failures within the window when it was reserved: a success forgives only these.
    public let failuresBefore: Int
    /// Where that window started.
    public let windowStart: Date
}

/// Whether a password attempt may be evaluated.
public enum AttemptReservation: Sendable, Hashable {
    /// Evaluate it, then settle the attempt.
    case reserved(PasswordAttempt)
    /// Do not evaluate it: the account is locked (`locked`), or the attempts already in flight
    /// would reach the threshold.
    case refused(locked: Bool)
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
    public var id: Int64
    public var code: StoredRecoveryCode
}

/// Why a store operation was refused.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notFound = "not-found"
        case conflict
        case storage
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
