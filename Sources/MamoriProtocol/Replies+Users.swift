// The replies about users and their second factors.
// Each type's keys are its operation's declared reply fields (WireOperation.replyFields);
// WireTypeTests keeps the two equal.

/// A role assignment as administrators see it.
public struct AssignmentDescription: Codable, Sendable, Hashable {
    /// The user.
    public var user: String
    /// The role.
    public var role: String
    /// Who granted it.
    public var grantedBy: String
    /// When, ISO 8601.
    public var grantedAt: String
    /// When it ends, ISO 8601, or nil for never (`null`).
    @Nullable public var expiresAt: String?
    /// Whether it counts now.
    public var current: Bool

    /// An assignment from its parts.
    public init(user: String, role: String, grantedBy: String, grantedAt: String, expiresAt: String?, current: Bool) {
        self.user = user
        self.role = role
        self.grantedBy = grantedBy
        self.grantedAt = grantedAt
        self.expiresAt = expiresAt
        self.current = current
    }

    enum CodingKeys: String, CodingKey {
        case user, role, current
        case grantedBy = "granted_by"
        case grantedAt = "granted_at"
        case expiresAt = "expires_at"
    }
}

/// A user as administrators see them: `user.add`, `user.show`, and each of `user.list`.
public struct UserDescription: WireReplyBody, Hashable {
    /// The login name.
    public var user: String
    /// The name shown to people.
    public var displayName: String
    /// `staff`, `fiscal-year-staff`, …
    public var kind: String
    /// The organisation, or nil (`null`).
    @Nullable public var organisation: String?
    /// Whether logins are refused.
    public var disabled: Bool
    /// When the user was added, ISO 8601.
    public var createdAt: String
    /// The last successful login here, ISO 8601, or nil (`null`).
    @Nullable public var lastLoginAt: String?
    /// Whether the next login must change the password.
    public var mustChangePassword: Bool
    /// Whether a password is set.
    public var hasPassword: Bool
    /// `none`, `pending` (awaiting its first code) or `confirmed`.
    public var totp: String
    /// Whether the account is locked after failures.
    public var locked: Bool
    /// The user's assignments.
    public var roles: [AssignmentDescription]

    /// A description from its parts.
    public init(
        user: String, displayName: String, kind: String, organisation: String?, disabled: Bool, createdAt: String,
        lastLoginAt: String?, mustChangePassword: Bool, hasPassword: Bool, totp: String, locked: Bool,
        roles: [AssignmentDescription]
    ) {
        self.user = user
        self.displayName = displayName
        self.kind = kind
        self.organisation = organisation
        self.disabled = disabled
        self.createdAt = createdAt
        self.lastLoginAt = lastLoginAt
        self.mustChangePassword = mustChangePassword
        self.hasPassword = hasPassword
        self.totp = totp
        self.locked = locked
        self.roles = roles
    }

    enum CodingKeys: String, CodingKey {
        case user, kind, organisation, disabled, totp, locked, roles
        case displayName = "display_name"
        case createdAt = "created_at"
        case lastLoginAt = "last_login_at"
        case mustChangePassword = "must_change_password"
        case hasPassword = "has_password"
    }
}

/// `user.list`: every user.
public struct UserListReply: WireReplyBody, Hashable {
    /// Every user, by name.
    public var users: [UserDescription]

    /// A reply from its parts.
    public init(users: [UserDescription]) {
        self.users = users
    }
}

/// `user.disable` and `user.enable`.
public struct UserDisabledReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// Whether the user is now disabled.
    public var disabled: Bool

    /// A reply from its parts.
    public init(user: String, disabled: Bool) {
        self.user = user
        self.disabled = disabled
    }
}

/// `user.remove`.
public struct UserRemovedReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// Always true.
    public var removed: Bool

    /// A reply for a removed user.
    public init(user: String) {
        self.user = user
        removed = true
    }
}

/// `user.passwd` and `password.change`.
public struct PasswordSetReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// Whether the next login must change the password (after `user.passwd`: yes).
    public var mustChangePassword: Bool

    /// A reply from its parts.
    public init(user: String, mustChangePassword: Bool) {
        self.user = user
        self.mustChangePassword = mustChangePassword
    }

    enum CodingKeys: String, CodingKey {
        case user
        case mustChangePassword = "must_change_password"
    }
}

/// `user.unlock`.
public struct UserUnlockedReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// Always false.
    public var locked: Bool

    /// A reply for an unlocked user.
    public init(user: String) {
        self.user = user
        locked = false
    }
}

/// `user.roles`.
public struct UserRolesReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// The user's assignments.
    public var roles: [AssignmentDescription]

    /// A reply from its parts.
    public init(user: String, roles: [AssignmentDescription]) {
        self.user = user
        self.roles = roles
    }
}

/// `totp.enroll.begin`: the only reply that carries a seed.
public struct EnrolmentReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// The seed, base32: shown once, stored sealed. A secret.
    public var secret: String
    /// The otpauth:// URI for an authenticator app. A secret.
    public var uri: String
    /// `sha1`, `sha256` or `sha512`.
    public var algorithm: String
    /// Digits in a code.
    public var digits: Int
    /// Seconds a code lasts.
    public var period: Int

    /// A reply from its parts.
    public init(user: String, secret: String, uri: String, algorithm: String, digits: Int, period: Int) {
        self.user = user
        self.secret = secret
        self.uri = uri
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
    }
}

/// `totp.enroll.confirm`.
public struct EnrolmentConfirmedReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// Always true.
    public var confirmed: Bool

    /// A reply for a confirmed device.
    public init(user: String) {
        self.user = user
        confirmed = true
    }
}

/// `totp.reset`.
public struct TOTPResetReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// Always `none`: no device is enrolled any more.
    public var totp: String

    /// A reply for a reset device.
    public init(user: String) {
        self.user = user
        totp = "none"
    }
}

/// `recovery.issue`: the new codes, shown once.
public struct RecoveryCodesReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// The new codes: shown once, stored hashed. Secrets.
    public var codes: [String]

    /// A reply from its parts.
    public init(user: String, codes: [String]) {
        self.user = user
        self.codes = codes
    }
}
