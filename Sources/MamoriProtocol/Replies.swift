import Foundation

/// The success reply of an operation as a Swift value: mamorid builds one, the `mamori` command
/// and the tests decode one (``WireReplyBody/init(reply:)``).
///
/// Each type's coding keys are the names its operation's ``WireOperation/replyFields`` declare.
/// The schema in `docs/protocol-v1.schema.json` is generated from those declarations (Swift
/// cannot derive a JSON Schema from a `Codable` type), and the test suite checks every reply the
/// daemon sends against it with an independent validator, so a type and its declaration cannot
/// drift apart unseen. Times are ISO 8601 text, as on the wire. `authorize` alone is written by
/// hand (``DecisionReply/fields``): it sits on the fast path, where an encoder would cost more
/// than the decision.
public protocol WireReplyBody: Codable, Sendable {}

extension WireReplyBody {
    /// Reads this reply from a success reply's fields (`ok` and `id` are ignored).
    public init(reply fields: [String: JSONValue]) throws {
        var fields = fields
        fields["ok"] = nil
        fields["id"] = nil
        self = try JSONValue.object(fields).decode(Self.self)
    }

    /// The reply's fields, as the socket carries them (besides `ok` and `id`).
    public func replyFields() throws -> [String: JSONValue] {
        guard case .object(let fields) = try JSONValue(encoding: self) else {
            throw EncodingError.invalidValue(self, .init(codingPath: [], debugDescription: "a reply is an object"))
        }
        return fields
    }
}

/// A value the wire carries as `null` when absent, rather than leaving the key out: the schema's
/// `.nullable` fields (an organisation, an expiry), which a client may rely on seeing.
@propertyWrapper
public struct Nullable<Value: Codable & Sendable & Hashable>: Codable, Sendable, Hashable {
    /// The value, or nil for `null`.
    public var wrappedValue: Value?

    /// Wraps a value (nil is `null`).
    public init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    /// Reads the value or `null`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    /// Writes the value, or `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

// MARK: - Logins and sessions

/// `status`: what the daemon runs on.
public struct StatusReply: WireReplyBody, Hashable {
    /// The daemon's version (``MamoriVersion/current``).
    public var version: String
    /// The protocol version it speaks.
    public var protocolVersion: Int
    /// The terminal's zone.
    public var zone: String
    /// The terminal's name.
    public var terminal: String
    /// The factors a login on this terminal must present.
    public var loginFactors: [String]
    /// The policy in force.
    public var policyRevision: String
    /// Seconds since the daemon started.
    public var uptimeSeconds: Int
    /// How many users, open sessions, locked users and audit entries the store holds.
    public var counts: [String: Int]
    /// The store's durability settings.
    public var storage: [String: String]
    /// The last verification of the whole audit chain.
    public var auditChain: ChainCheck

    /// The last verification of the audit chain; only `checked` until one has finished.
    public struct ChainCheck: Codable, Sendable, Hashable {
        /// Whether a verification has finished since the start.
        public var checked: Bool
        /// Whether the chain held.
        public var holds: Bool?
        /// Entries verified.
        public var entries: Int?
        /// Problems found.
        public var problems: Int?
        /// When, ISO 8601.
        public var verifiedAt: String?

        /// A check's result; all nil (and `checked` false) before the first.
        public init(
            checked: Bool, holds: Bool? = nil, entries: Int? = nil, problems: Int? = nil, verifiedAt: String? = nil
        ) {
            self.checked = checked
            self.holds = holds
            self.entries = entries
            self.problems = problems
            self.verifiedAt = verifiedAt
        }

        enum CodingKeys: String, CodingKey {
            case checked, holds, entries, problems
            case verifiedAt = "verified_at"
        }
    }

    /// A status from its parts.
    public init(
        version: String, protocolVersion: Int, zone: String, terminal: String, loginFactors: [String],
        policyRevision: String, uptimeSeconds: Int, counts: [String: Int], storage: [String: String],
        auditChain: ChainCheck
    ) {
        self.version = version
        self.protocolVersion = protocolVersion
        self.zone = zone
        self.terminal = terminal
        self.loginFactors = loginFactors
        self.policyRevision = policyRevision
        self.uptimeSeconds = uptimeSeconds
        self.counts = counts
        self.storage = storage
        self.auditChain = auditChain
    }

    enum CodingKeys: String, CodingKey {
        case version, zone, terminal, counts, storage
        case protocolVersion = "protocol"
        case loginFactors = "login_factors"
        case policyRevision = "policy_revision"
        case uptimeSeconds = "uptime_seconds"
        case auditChain = "audit_chain"
    }
}

/// `authenticate`: the factors checked and the ticket that opens the session.
public struct AuthenticateReply: WireReplyBody, Hashable {
    /// The user's login name.
    public var user: String
    /// The factors checked, sorted.
    public var factors: [String]
    /// Opens the session: single use, 5 minutes. A secret: never logged.
    public var ticket: String
    /// Whether the password must be changed before the session opens.
    public var passwordChangeRequired: Bool

    /// A reply from its parts.
    public init(user: String, factors: [String], ticket: String, passwordChangeRequired: Bool) {
        self.user = user
        self.factors = factors
        self.ticket = ticket
        self.passwordChangeRequired = passwordChangeRequired
    }

    enum CodingKeys: String, CodingKey {
        case user, factors, ticket
        case passwordChangeRequired = "password_change_required"
    }
}

/// `account`: whether the user may log in here now.
public struct AccountReply: WireReplyBody, Hashable {
    /// `allowed`, `denied`, `expired`, `password_change_required` or `unknown_user`.
    public var result: String
    /// Why not, one sentence each; absent when allowed.
    public var reasons: [String]?

    /// A reply from its parts.
    public init(result: String, reasons: [String]? = nil) {
        self.result = result
        self.reasons = reasons
    }
}

/// `session.open`: the new session.
public struct SessionOpenReply: WireReplyBody, Hashable {
    /// The new session's id.
    public var session: String
    /// Whose it is.
    public var user: String
    /// When it ends at the latest, ISO 8601.
    public var expiresAt: String

    /// A reply from its parts.
    public init(session: String, user: String, expiresAt: String) {
        self.session = session
        self.user = user
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case session, user
        case expiresAt = "expires_at"
    }
}

/// `session.close`: the closed session's id.
public struct SessionCloseReply: WireReplyBody, Hashable {
    /// The closed session's id.
    public var session: String

    /// A reply from its parts.
    public init(session: String) {
        self.session = session
    }
}

// MARK: - Users and their factors

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

// MARK: - Roles and the policy

/// `role.grant`.
public struct RoleGrantReply: WireReplyBody, Hashable {
    /// The new assignment.
    public var assignment: AssignmentDescription

    /// A reply from its parts.
    public init(assignment: AssignmentDescription) {
        self.assignment = assignment
    }
}

/// `role.revoke`.
public struct RoleRevokeReply: WireReplyBody, Hashable {
    /// The user.
    public var user: String
    /// The role.
    public var role: String
    /// Always true.
    public var revoked: Bool

    /// A reply for a revoked role.
    public init(user: String, role: String) {
        self.user = user
        self.role = role
        revoked = true
    }
}

/// A role of the policy, with its current holders.
public struct RoleDescription: Codable, Sendable, Hashable {
    /// The role's id.
    public var role: String
    /// Its title.
    public var title: String
    /// Whether it is privileged (stricter lockout).
    public var privileged: Bool
    /// The most holders it may have, or nil (`null`).
    @Nullable public var maxHolders: Int?
    /// The roles it inherits.
    public var inherits: [String]
    /// Its current holders.
    public var holders: [String]

    /// A role from its parts.
    public init(role: String, title: String, privileged: Bool, maxHolders: Int?, inherits: [String], holders: [String])
    {
        self.role = role
        self.title = title
        self.privileged = privileged
        self.maxHolders = maxHolders
        self.inherits = inherits
        self.holders = holders
    }

    enum CodingKeys: String, CodingKey {
        case role, title, privileged, inherits, holders
        case maxHolders = "max_holders"
    }
}

/// `role.list`.
public struct RoleListReply: WireReplyBody, Hashable {
    /// Every role of the policy.
    public var roles: [RoleDescription]

    /// A reply from its parts.
    public init(roles: [RoleDescription]) {
        self.roles = roles
    }
}

/// `policy.reload`.
public struct PolicyReloadReply: WireReplyBody, Hashable {
    /// The revision replaced.
    public var previousRevision: String
    /// The revision now in force.
    public var revision: String

    /// A reply from its parts.
    public init(previousRevision: String, revision: String) {
        self.previousRevision = previousRevision
        self.revision = revision
    }

    enum CodingKeys: String, CodingKey {
        case revision
        case previousRevision = "previous_revision"
    }
}

/// `policy.status`.
public struct PolicyStatusReply: WireReplyBody, Hashable {
    /// The policy in force.
    public var revision: String
    /// The folder it was read from.
    public var directory: String
    /// The files read.
    public var files: [String]
    /// How many zones, assets, roles and rules.
    public var counts: [String: Int]
    /// What the loader warned of, file:line:column first.
    public var warnings: [String]

    /// A reply from its parts.
    public init(revision: String, directory: String, files: [String], counts: [String: Int], warnings: [String]) {
        self.revision = revision
        self.directory = directory
        self.files = files
        self.counts = counts
        self.warnings = warnings
    }
}

// MARK: - The audit trail and the self-inspection

/// `audit.public_key`.
public struct AuditPublicKeyReply: WireReplyBody, Hashable {
    /// The Ed25519 verifying key, base64.
    public var publicKey: String
    /// Always `ed25519`.
    public var algorithm: String

    /// A reply for an Ed25519 key.
    public init(publicKey: String) {
        self.publicKey = publicKey
        algorithm = "ed25519"
    }

    enum CodingKeys: String, CodingKey {
        case algorithm
        case publicKey = "public_key"
    }
}

/// `audit.read`: a page of entries. Each entry is MamoriCore's `AuditRecord`, carried as JSON
/// here because this module depends on nothing but Foundation.
public struct AuditReadReply: WireReplyBody, Hashable {
    /// The entries, oldest first.
    public var entries: [JSONValue]
    /// Whether a full page came back: ask again after the last seq.
    public var more: Bool
    /// The newest entry's number when the read was made.
    public var lastSequence: Int64

    /// A reply from its parts.
    public init(entries: [JSONValue], more: Bool, lastSequence: Int64) {
        self.entries = entries
        self.more = more
        self.lastSequence = lastSequence
    }

    enum CodingKeys: String, CodingKey {
        case entries, more
        case lastSequence = "last_sequence"
    }
}

/// `audit.trail`: a page of the trail as stored. Entries and checkpoints are MamoriCore's
/// `AuditTrailExport.Entry` and `.Checkpoint`, carried as JSON.
public struct AuditTrailReply: WireReplyBody, Hashable {
    /// The entries as stored, oldest first.
    public var entries: [JSONValue]
    /// Whether a full page came back: ask again after the last seq.
    public var more: Bool
    /// Every signed checkpoint (first page only).
    public var checkpoints: [JSONValue]?
    /// The daemon's verifying key, base64 (first page only).
    public var publicKey: String?

    /// A reply from its parts; `checkpoints` and `publicKey` on the first page only.
    public init(entries: [JSONValue], more: Bool, checkpoints: [JSONValue]? = nil, publicKey: String? = nil) {
        self.entries = entries
        self.more = more
        self.checkpoints = checkpoints
        self.publicKey = publicKey
    }

    enum CodingKeys: String, CodingKey {
        case entries, more, checkpoints
        case publicKey = "public_key"
    }
}

/// `audit.prune`.
public struct AuditPruneReply: WireReplyBody, Hashable {
    /// How many entries were removed.
    public var removed: Int
    /// The last removed entry's number.
    public var prunedThrough: Int64

    /// A reply from its parts.
    public init(removed: Int, prunedThrough: Int64) {
        self.removed = removed
        self.prunedThrough = prunedThrough
    }

    enum CodingKeys: String, CodingKey {
        case removed
        case prunedThrough = "pruned_through"
    }
}

/// `review.record`.
public struct ReviewRecordReply: WireReplyBody, Hashable {
    /// When the review was recorded, ISO 8601.
    public var recorded: String
    /// How many assignments the review covered.
    public var assignments: Int

    /// A reply from its parts.
    public init(recorded: String, assignments: Int) {
        self.recorded = recorded
        self.assignments = assignments
    }
}

/// `inspect`: the report is MamoriCore's `InspectionReport`, carried as JSON.
public struct InspectReply: WireReplyBody, Hashable {
    /// The self-inspection report.
    public var report: JSONValue

    /// A reply from its parts.
    public init(report: JSONValue) {
        self.report = report
    }
}

// `audit.verify` answers with MamoriCore's `AuditReport.Summary`, which is itself `Codable` and
// is what `mamori audit verify --json` prints; `authorize` with ``DecisionReply``.

extension WireOperation {
    /// The type of the operation's success reply, for the tests that decode every reply they
    /// receive; nil for `audit.verify`, whose type lives in MamoriCore (`AuditReport.Summary`).
    public var replyType: (any WireReplyBody.Type)? {
        switch self {
        case .status: StatusReply.self
        case .authenticate: AuthenticateReply.self
        case .account: AccountReply.self
        case .sessionOpen: SessionOpenReply.self
        case .sessionClose: SessionCloseReply.self
        case .authorize: DecisionReply.self
        case .userAdd, .userShow: UserDescription.self
        case .userList: UserListReply.self
        case .userDisable, .userEnable: UserDisabledReply.self
        case .userRemove: UserRemovedReply.self
        case .userPasswd, .passwordChange: PasswordSetReply.self
        case .userUnlock: UserUnlockedReply.self
        case .userRoles: UserRolesReply.self
        case .totpEnrollBegin: EnrolmentReply.self
        case .totpEnrollConfirm: EnrolmentConfirmedReply.self
        case .totpReset: TOTPResetReply.self
        case .recoveryIssue: RecoveryCodesReply.self
        case .roleGrant: RoleGrantReply.self
        case .roleRevoke: RoleRevokeReply.self
        case .roleList: RoleListReply.self
        case .policyReload: PolicyReloadReply.self
        case .policyStatus: PolicyStatusReply.self
        case .auditPublicKey: AuditPublicKeyReply.self
        case .auditRead: AuditReadReply.self
        case .auditTrail: AuditTrailReply.self
        case .auditVerify: nil
        case .auditPrune: AuditPruneReply.self
        case .reviewRecord: ReviewRecordReply.self
        case .inspect: InspectReply.self
        }
    }
}
