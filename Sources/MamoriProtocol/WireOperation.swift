/// Every operation of protocol version 1, by its `op` string, with the fields its request takes
/// and the fields its success reply carries. docs/protocol.md says what each does and who may.
public enum WireOperation: String, Sendable, CaseIterable {
    // Logins and decisions (pam_mamori.so, applications).
    case status
    case authenticate
    case account
    case sessionOpen = "session.open"
    case sessionClose = "session.close"
    case authorize
    // Users.
    case userAdd = "user.add"
    case userShow = "user.show"
    case userList = "user.list"
    case userDisable = "user.disable"
    case userEnable = "user.enable"
    case userRemove = "user.remove"
    case userPasswd = "user.passwd"
    case userUnlock = "user.unlock"
    case userRoles = "user.roles"
    case passwordChange = "password.change"
    // Second factors.
    case totpEnrollBegin = "totp.enroll.begin"
    case totpEnrollConfirm = "totp.enroll.confirm"
    case totpReset = "totp.reset"
    case recoveryIssue = "recovery.issue"
    // Roles.
    case roleGrant = "role.grant"
    case roleRevoke = "role.revoke"
    case roleList = "role.list"
    // Policy.
    case policyReload = "policy.reload"
    case policyStatus = "policy.status"
    // The audit trail and the self-inspection.
    case auditPublicKey = "audit.public_key"
    case auditRead = "audit.read"
    case auditTrail = "audit.trail"
    case auditVerify = "audit.verify"
    case auditPrune = "audit.prune"
    case reviewRecord = "review.record"
    case inspect
    // A hub's terminals (docs/town.md); a daemon that is not a hub refuses them.
    case terminalAdd = "terminal.add"
    case terminalList = "terminal.list"
    case terminalRemove = "terminal.remove"

    /// The fields the request takes besides `op`, `id`, `session` and `deadline` (which every
    /// request may carry).
    public var requestFields: [WireField] {
        switch self {
        case .status, .userList, .roleList, .policyReload, .policyStatus, .auditPublicKey, .auditVerify, .inspect,
            .terminalList:
            return []
        case .authenticate:
            return [.user, .password, .code.optional, .service.optional, .tty.optional, .remoteHost.optional]
        case .account: return [.user, .service.optional]
        case .sessionOpen: return [.ticket, .service.optional, .tty.optional, .remoteHost.optional]
        case .sessionClose: return [.session]
        case .authorize:
            // By session, or by user (then zone and factors may describe an imagined session).
            return [.action, .resource, .user.optional, .zone.optional, .factors.optional]
        case .userAdd: return [.user, .displayName.optional, .kind.optional, .organisation.optional]
        case .userShow, .userDisable, .userEnable, .userRemove, .userUnlock, .userRoles, .totpEnrollBegin, .totpReset:
            return [.user]
        case .userPasswd: return [.user, .temporaryPassword]
        case .passwordChange: return [.user, .oldPassword, .newPassword]
        case .totpEnrollConfirm: return [.user, .code]
        case .recoveryIssue: return [.user, .count.optional]
        case .roleGrant: return [.user, .role, .until.optional]
        case .roleRevoke: return [.user, .role]
        case .auditRead:
            return [
                .purpose.optional, .last.optional, .after.optional, .limit.optional, .since.optional,
                .untilTime.optional,
            ]
        case .auditTrail: return [.after.optional, .limit.optional]
        case .auditPrune: return [.before]
        case .reviewRecord: return [.note.optional]
        case .terminalAdd: return [.terminal, .terminalZone, .expiresHours.optional]
        case .terminalRemove: return [.terminal]
        }
    }

    /// The fields of the success reply besides `ok` and `id`.
    public var replyFields: [WireField] {
        typealias Reply = ReplyFields
        switch self {
        case .status: return Reply.status
        case .authenticate: return Reply.authenticate
        case .account:
            return [
                .init(
                    "result", .oneOf(["allowed", "denied", "expired", "password_change_required", "unknown_user"]),
                    "Whether the user may log in here now."),
                .init("reasons", .list(.string()), "Why not, one sentence each.").optional,
            ]
        case .sessionOpen:
            return [
                .init("session", .string(), "The new session's id."), Reply.user,
                .init("expires_at", .time, "When it ends at the latest."),
            ]
        case .sessionClose: return [.init("session", .string(), "The closed session's id.")]
        case .authorize: return Reply.decision
        case .userAdd, .userShow: return Reply.userDescription
        case .userList: return [.init("users", .list(.object(Reply.userDescription)), "Every user.")]
        case .userDisable, .userEnable:
            return [Reply.user, .init("disabled", .boolean, "Whether the user is now disabled.")]
        case .userRemove: return [Reply.user, .init("removed", .boolean, "Always true.")]
        case .userPasswd, .passwordChange:
            return [
                Reply.user, .init("must_change_password", .boolean, "Whether the next login must change the password."),
            ]
        case .userUnlock: return [Reply.user, .init("locked", .boolean, "Always false.")]
        case .userRoles:
            return [Reply.user, .init("roles", .list(.object(Reply.assignment)), "The user's assignments.")]
        case .totpEnrollBegin: return Reply.enrolment
        case .totpEnrollConfirm: return [Reply.user, .init("confirmed", .boolean, "Always true.")]
        case .totpReset: return [Reply.user, .init("totp", .oneOf(["none"]), "No device is enrolled any more.")]
        case .recoveryIssue:
            return [
                Reply.user,
                .init("codes", .list(.string(maxBytes: 64), maxItems: 20), "The new codes: shown once, stored hashed."),
            ]
        case .roleGrant: return [.init("assignment", .object(Reply.assignment), "The new assignment.")]
        case .roleRevoke:
            return [Reply.user, .init("role", .string(), "The role."), .init("revoked", .boolean, "Always true.")]
        case .roleList:
            return [.init("roles", .list(.object(Reply.role)), "Every role of the policy, with its current holders.")]
        case .policyReload:
            return [
                .init("previous_revision", .string(), "The revision replaced."),
                .init("revision", .string(), "The revision now in force."),
            ]
        case .policyStatus: return Reply.policyStatus
        case .auditPublicKey:
            return [
                .init("public_key", .string(), "The Ed25519 verifying key, base64."),
                .init("algorithm", .oneOf(["ed25519"]), "The signature algorithm."),
            ]
        case .auditRead:
            return [
                .init("entries", .list(.object(Reply.auditRecord)), "The entries, oldest first."),
                .init("more", .boolean, "Whether a full page came back: ask again after the last seq."),
                .init("last_sequence", .integer(), "The newest entry's number when the read was made."),
            ]
        case .auditTrail:
            return [
                .init("entries", .list(.object(Reply.trailEntry)), "The entries as stored, oldest first."),
                .init("more", .boolean, "Whether a full page came back: ask again after the last seq."),
                .init("checkpoints", .list(.object(Reply.checkpoint)), "Every signed checkpoint (first page only).")
                    .optional,
                .init("public_key", .string(), "The daemon's verifying key, base64 (first page only).").optional,
            ]
        case .auditVerify: return Reply.verification
        case .auditPrune:
            return [
                .init("removed", .integer(), "How many entries were removed."),
                .init("pruned_through", .integer(), "The last removed entry's number."),
            ]
        case .reviewRecord:
            return [
                .init("recorded", .time, "When the review was recorded."),
                .init("assignments", .integer(), "How many assignments the review covered."),
            ]
        case .inspect: return [.init("report", .object(Reply.inspection), "The self-inspection report.")]
        case .terminalAdd:
            return [
                Reply.terminal, .init("zone", .string(), "The terminal's zone."),
                .init(
                    "token", .string(), secret: true,
                    "The one-time join token: give it to the terminal's installer only."),
                .init("expires_at", .time, "When the token stops being accepted."),
            ]
        case .terminalList:
            return [.init("terminals", .list(.object(Reply.terminalDescription)), "Every terminal, removed ones too.")]
        case .terminalRemove: return [Reply.terminal, .init("removed", .boolean, "Always true.")]
        }
    }
}

/// Reply shapes that several operations share.
public enum ReplyFields {
    /// The user a reply is about.
    public static let user = WireField("user", .string(), "The user's login name.")

    /// `status`.
    public static let status: [WireField] = [
        .init("version", .string(), "The daemon's version."),
        .init("protocol", .integer(), "The protocol version it speaks."),
        .init("zone", .string(), "The terminal's zone."),
        .init("terminal", .string(), "The terminal's name."),
        .init(
            "login_factors", .list(.oneOf(WireField.factorNames)), "The factors a login on this terminal must present."),
        .init("policy_revision", .string(), "The policy in force."),
        .init("uptime_seconds", .integer(), "Seconds since the daemon started."),
        .init("counts", .map(.integer()), "How many users, sessions, entries the store holds."),
        .init("storage", .map(.string()), "The store's durability settings."),
        .init(
            "audit_chain",
            .object([
                .init("checked", .boolean, "Whether a verification has finished since the start."),
                .init("holds", .boolean, "Whether the chain held.").optional,
                .init("entries", .integer(), "Entries verified.").optional,
                .init("problems", .integer(), "Problems found.").optional,
                .init("verified_at", .time, "When.").optional,
            ]),
            "The last verification of the whole audit chain."
        ),
        .init(
            "hub",
            .object([
                .init("address", .string(), "The hub's terminal port, HOST:PORT."),
                .init("connected", .boolean, "Whether the terminal watches the hub's change feed now."),
                .init("change", .integer(), "The hub's change number the mirror is current to.").optional,
                .init("read_at", .time, "When the terminal last read every user from the hub.").optional,
                .init("error", .string(), "Why the last attempt to reach the hub failed.").optional,
                .init("audit_acknowledged", .integer(), "The last entry of this terminal's chain the hub holds.")
                    .optional,
                .init("audit_error", .string(), "Why the last batch of the chain did not reach the hub.").optional,
                .init(
                    "offline", .boolean,
                    "Whether the terminal takes the hub for unreachable and decides logins itself (docs/town.md)."
                ).optional,
            ]),
            "On a member terminal: its link to the hub (docs/town.md)."
        ).optional,
    ]

    /// `authenticate`.
    public static let authenticate: [WireField] = [
        user,
        .init("factors", .list(.oneOf(WireField.factorNames)), "The factors checked."),
        .init("ticket", .string(), secret: true, "Opens the session: single use, 5 minutes."),
        .init("password_change_required", .boolean, "Whether the password must be changed before the session opens."),
        .init(
            "offline",
            .object([
                .init("mode", .oneOf(["tags", "password-only"]), "What the zone accepts offline."),
                .init("first_step", .integer(), "The TOTP step of the first code."),
                .init("period", .integer(), "The TOTP period, seconds."),
                .init("digits", .integer(), "The digits of each code."),
                .init("codes", .string(), secret: true, "The codes of the coming steps, concatenated."),
                .init("last_used_step", .integer(), "No step up to this one is accepted offline.").optional,
                .init(
                    "recovery",
                    .list(
                        .object([
                            .init("id", .integer(), "The hub's identifier of the code."),
                            .init("digest", .string(), "The digest the hub stores, hex."),
                        ])), "The unused recovery codes."),
            ]), secret: true,
            "Only in a hub's reply to a member terminal: what the terminal makes its offline credential from "
                + "(docs/town.md). A terminal removes it before the reply reaches its caller."
        ).optional,
    ]

    /// A policy decision: the `authorize` reply, and what `mamori policy explain --json` and
    /// `mamori check --json` print (``DecisionReply``).
    public static let decision: [WireField] = [
        .init("effect", .oneOf(["allow", "deny", "step-up"]), "The decision."),
        .init("allowed", .boolean, "Whether the effect is allow."),
        .init("rules", .list(.string()), "The ids of the rules that decided."),
        .init("reasons", .list(.string()), "Why, one sentence each."),
        .init("missing_factors", .list(.oneOf(WireField.factorNames)), "With step-up: what a new login needs."),
        .init("policy_revision", .string(), "The policy it was made on."),
        .init("assignment_generation", .integer(), "The assignments it was made on (not offline).").optional,
    ]

    /// An assignment of a role to a user.
    public static let assignment: [WireField] = [
        user,
        .init("role", .string(), "The role."),
        .init("granted_by", .string(), "Who granted it."),
        .init("granted_at", .time, "When."),
        .init("expires_at", .nullable(.time), "When it ends, or null."),
        .init("current", .boolean, "Whether it counts now."),
    ]

    /// The terminal a reply is about.
    public static let terminal = WireField("terminal", .string(), "The terminal's name.")

    /// A terminal as a hub's administrators see it.
    public static let terminalDescription: [WireField] = [
        terminal,
        .init("zone", .string(), "Its zone."),
        .init(
            "state", .oneOf(["awaiting-join", "joined", "removed", "token-expired"]),
            "Awaiting its join, its token expired unused, joined, or removed."),
        .init("added_at", .time, "When it was added."),
        .init("added_by", .string(), "Who added it."),
        .init("token_expires_at", .nullable(.time), "When its unused join token expires, or null."),
        .init("joined_at", .nullable(.time), "When it joined, or null."),
        .init("certificate_serial", .nullable(.string()), "Its certificate's serial number (hex), or null."),
        .init("certificate_expires_at", .nullable(.time), "When its certificate expires, or null."),
        .init("removed_at", .nullable(.time), "When it was removed, or null."),
    ]

    /// A user as administrators see them.
    public static let userDescription: [WireField] = [
        user,
        .init("display_name", .string(), "The name shown to people."),
        .init("kind", .oneOf(WireField.userKinds), "The kind of user."),
        .init("organisation", .nullable(.string()), "The organisation, or null."),
        .init("disabled", .boolean, "Whether logins are refused."),
        .init("created_at", .time, "When the user was added."),
        .init("last_login_at", .nullable(.time), "The last successful login here, or null."),
        .init("must_change_password", .boolean, "Whether the next login must change the password."),
        .init("has_password", .boolean, "Whether a password is set."),
        .init(
            "totp", .oneOf(["confirmed", "none", "pending"]),
            "The TOTP device: none, pending its first code, or confirmed."),
        .init("locked", .boolean, "Whether the account is locked after failures."),
        .init("roles", .list(.object(assignment)), "The user's assignments."),
    ]

    /// `totp.enroll.begin`: the only reply that carries a seed.
    public static let enrolment: [WireField] = [
        user,
        .init("secret", .string(), secret: true, "The seed, base32: shown once, stored sealed."),
        .init("uri", .string(), secret: true, "The otpauth:// URI for an authenticator app."),
        .init("algorithm", .oneOf(["sha1", "sha256", "sha512"]), "The HMAC algorithm."),
        .init("digits", .integer(6...8), "Digits in a code."),
        .init("period", .integer(), "Seconds a code lasts."),
    ]

    /// A role of the policy in `role.list`.
    public static let role: [WireField] = [
        .init("role", .string(), "The role's id."),
        .init("title", .string(), "Its title."),
        .init("privileged", .boolean, "Whether it is privileged (stricter lockout)."),
        .init("max_holders", .nullable(.integer()), "The most holders it may have, or null."),
        .init("inherits", .list(.string()), "The roles it inherits."),
        .init("holders", .list(.string()), "Its current holders."),
    ]

    /// `policy.status`.
    public static let policyStatus: [WireField] = [
        .init("revision", .string(), "The policy in force."),
        .init("directory", .string(), "The folder it was read from."),
        .init("files", .list(.string()), "The files read."),
        .init("counts", .map(.integer()), "How many zones, assets, roles and rules."),
        .init("warnings", .list(.string()), "What the loader warned of, file:line:column first."),
    ]

    /// Who did what to what, and where: the columns both shapes of an audit entry carry.
    private static let entryColumns: [WireField] = [
        .init("seq", .integer(), "The entry's number in the chain."),
        .init("actor_uid", .nullable(.integer()), "The caller's uid, or null for the daemon's own acts."),
        .init("actor", .string(), "The caller's name."),
        .init("event", .string(), "What happened."),
        .init("target", .string(), "To what."),
        .init("outcome", .string(), "success, failure or denied."),
        .init("terminal", .string(), "The terminal."),
        .init("zone", .string(), "Its zone."),
        .init("policy_revision", .string(), "The policy in force."),
    ]

    /// An audit entry as `audit.read` returns it.
    public static let auditRecord: [WireField] =
        entryColumns + [
            .init("time", .time, "When it was written."),
            .init("detail", .map(.string()), "More about it (never a secret)."),
            .init("hash", .string(), "The entry's chain hash, hex."),
        ]

    /// An audit entry exactly as stored, in `audit.trail` and the trail export.
    public static let trailEntry: [WireField] =
        entryColumns + [
            .init("type", .oneOf(["entry"]), "The export line's kind."),
            .init("time_ms", .integer(), "When it was written, in milliseconds since 1970."),
            .init("detail", .string(), "The detail as the stored text the hash covers."),
            .init("prev_hash", .string(), "The previous entry's hash, hex."),
            .init("hash", .string(), "This entry's hash, hex."),
        ]

    /// A signed checkpoint of the chain.
    public static let checkpoint: [WireField] = [
        .init("type", .oneOf(["checkpoint"]), "The export line's kind."),
        .init("sequence", .integer(), "The entry it signs."),
        .init("head_hash", .string(), "That entry's hash, hex."),
        .init("time_ms", .integer(), "When it was signed, in milliseconds since 1970."),
        .init("previous", .nullable(.string()), "The previous checkpoint's hash, hex.").optional,
        .init("signature", .string(), "The Ed25519 signature, base64."),
    ]

    /// `audit.verify`, and `mamori audit verify --json`; at a hub, with each member terminal's chain.
    public static let verification: [WireField] =
        chainVerification + [
            .init(
                "terminals",
                .list(
                    .object([
                        .init("terminal", .string(), "The terminal's name."),
                        .init("joined", .time, "When it joined: which of the name's terminals this is."),
                        .init("received", .time, "When the hub last kept a batch of its chain.").optional,
                        .init("summary", .object(chainVerification), "Its chain as the hub holds it, verified."),
                    ])),
                "At a hub: every member terminal's chain (holds is false when one does not hold)."
            ).optional
        ]

    /// One chain's verification: the fields of ``verification`` without `terminals`.
    static let chainVerification: [WireField] = [
        .init("holds", .boolean, "Whether every link and checkpoint holds."),
        .init("entries", .integer(), "Entries checked."),
        .init("first_sequence", .nullable(.integer()), "The first entry's number.").optional,
        .init("last_sequence", .nullable(.integer()), "The last entry's number.").optional,
        .init("pruned_through", .integer(), "The last entry pruned, or 0."),
        .init("oldest_entry", .nullable(.time), "When the oldest entry was written.").optional,
        .init("checkpoints", .integer(), "Signed checkpoints checked."),
        .init("last_checkpoint_sequence", .nullable(.integer()), "The newest checkpoint's entry.").optional,
        .init("last_checkpoint_time", .nullable(.time), "When it was signed.").optional,
        .init("signatures_checked", .boolean, "Whether signatures were checked against a key."),
        .init("problems", .list(.string()), "One sentence per problem, naming the entry."),
    ]

    /// `inspect`: the self-inspection report.
    public static let inspection: [WireField] = [
        .init("time", .time, "When it ran, in the policy's time zone."),
        .init("inspector", .string(), "Who ran it."),
        .init("terminal", .string(), "The terminal."),
        .init("zone", .string(), "Its zone."),
        .init("policy_revision", .string(), "The policy in force."),
        .init(
            "findings",
            .list(
                .object([
                    .init("check", .string(), "The check's id."),
                    .init("title", .string(), "Its title."),
                    .init("status", .oneOf(["fail", "pass", "warn"]), "Its verdict."),
                    .init("summary", .string(), "One sentence."),
                    .init("items", .list(.string()), "What it found, one line each."),
                    .init("basis", .string(), "The clause of the basic policy it checks."),
                ])),
            "One per check."
        ),
    ]
}
