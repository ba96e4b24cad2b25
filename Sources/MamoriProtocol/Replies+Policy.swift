// The replies about roles and the policy.
// Each type's keys are its operation's declared reply fields (WireOperation.replyFields);
// WireTypeTests keeps the two equal.

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
