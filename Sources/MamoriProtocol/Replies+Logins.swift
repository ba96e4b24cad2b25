// The replies of logins and sessions.
// Each type's keys are its operation's declared reply fields (WireOperation.replyFields);
// WireTypeTests keeps the two equal.

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

    /// On a member terminal: its link to the hub; nil on a standalone daemon or a hub.
    public var hub: HubLinkState?

    /// A member terminal's link to its hub, as `status` shows it.
    public struct HubLinkState: Codable, Sendable, Hashable {
        /// The hub's terminal port, `HOST:PORT`.
        public var address: String
        /// Whether the terminal watches the hub's change feed now.
        public var connected: Bool
        /// The hub's change number the mirror is current to; nil before the first read.
        public var change: Int64?
        /// When the terminal last read every user from the hub (ISO 8601).
        public var readAt: String?
        /// Why the last attempt to reach the hub failed, while it is not connected.
        public var error: String?
        /// The last entry of this terminal's audit chain the hub acknowledged holding; nil before
        /// the first acknowledgement.
        public var auditAcknowledged: Int64?
        /// Why the last batch of the audit chain did not reach the hub, until one does.
        public var auditError: String?
        /// Whether the terminal takes the hub for unreachable and decides logins itself, within
        /// the policy's offline limits, until it has reconnected and reported what it did.
        public var offline: Bool?

        /// A state from its parts.
        public init(
            address: String, connected: Bool, change: Int64?, readAt: String?, error: String?,
            auditAcknowledged: Int64? = nil, auditError: String? = nil, offline: Bool? = nil
        ) {
            self.offline = offline
            self.auditAcknowledged = auditAcknowledged
            self.auditError = auditError
            self.address = address
            self.connected = connected
            self.change = change
            self.readAt = readAt
            self.error = error
        }

        enum CodingKeys: String, CodingKey {
            case address, connected, change, error, offline
            case readAt = "read_at"
            case auditAcknowledged = "audit_acknowledged"
            case auditError = "audit_error"
        }
    }

    /// A status from its parts.
    public init(
        version: String, protocolVersion: Int, zone: String, terminal: String, loginFactors: [String],
        policyRevision: String, uptimeSeconds: Int, counts: [String: Int], storage: [String: String],
        auditChain: ChainCheck, hub: HubLinkState? = nil
    ) {
        self.hub = hub
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
        case version, zone, terminal, counts, storage, hub
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
    /// Only in a hub's reply to a member terminal, when the policy lets this user log in there
    /// through a network cut: what the terminal needs to make its offline credential. The
    /// terminal removes it before the reply goes on to its caller.
    public var offline: OfflineGrant?

    /// A reply from its parts.
    public init(
        user: String, factors: [String], ticket: String, passwordChangeRequired: Bool, offline: OfflineGrant? = nil
    ) {
        self.user = user
        self.factors = factors
        self.ticket = ticket
        self.passwordChangeRequired = passwordChangeRequired
        self.offline = offline
    }

    enum CodingKeys: String, CodingKey {
        case user, factors, ticket, offline
        case passwordChangeRequired = "password_change_required"
    }
}

/// What a hub gives a member terminal at a user's online login for that user's logins through a
/// network cut (docs/town.md). The codes are secrets: the terminal turns them into tags at once
/// and never stores, logs or passes them on.
public struct OfflineGrant: Codable, Sendable, Hashable {
    /// `tags` (password and a code checked against tags) or `password-only`.
    public var mode: String
    /// The TOTP step the first code is for; the steps after it follow in order.
    public var firstStep: UInt64
    /// The TOTP period (seconds) and number of digits of the codes.
    public var period: Int
    /// The number of digits of each code.
    public var digits: Int
    /// The codes of the coming steps, `digits` each, concatenated; empty for `password-only`.
    public var codes: String
    /// The step this login used (or the newest the hub had accepted): no step up to it is accepted offline.
    public var lastUsedStep: UInt64?
    /// The user's unused recovery codes: the hub's identifier and the stored digest (hex), never the code.
    public var recovery: [OfflineRecoveryDigest]

    /// A grant from its parts.
    public init(
        mode: String, firstStep: UInt64, period: Int, digits: Int, codes: String, lastUsedStep: UInt64?,
        recovery: [OfflineRecoveryDigest]
    ) {
        self.mode = mode
        self.firstStep = firstStep
        self.period = period
        self.digits = digits
        self.codes = codes
        self.lastUsedStep = lastUsedStep
        self.recovery = recovery
    }

    enum CodingKeys: String, CodingKey {
        case mode, period, digits, codes, recovery
        case firstStep = "first_step"
        case lastUsedStep = "last_used_step"
    }
}

/// One unused recovery code in an ``OfflineGrant``: its identifier at the hub and its stored digest.
public struct OfflineRecoveryDigest: Codable, Sendable, Hashable {
    /// The hub's identifier of the code.
    public var id: Int64
    /// The SHA-256 digest the hub stores, as hex.
    public var digest: String

    /// A digest from its parts.
    public init(id: Int64, digest: String) {
        self.id = id
        self.digest = digest
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
