/// The catalogue of request fields: each name, shape and limit written once. The daemon reads
/// requests through these (``WireRequest/string(_:)`` and its siblings), ``WireOperation`` lists
/// which each operation takes, and the schema is generated from them.
extension WireField {
    // MARK: Who and where

    /// A Unix login name: ASCII letters, digits, `.`, `_`, `-`, not starting with `-`.
    public static let user = WireField(
        "user", .string(maxBytes: 64, pattern: "^[A-Za-z0-9._][A-Za-z0-9._-]*$"), "A user's login name."
    )
    /// An open session's id, as `session.open` returned it. Any request may name the caller's
    /// session, so that the policy sees the factors it was opened with.
    public static let session = WireField(
        "session", .string(maxBytes: 128), "An open session's id; on any request, the caller's own session."
    )
    /// When the client stops waiting, in milliseconds since 1970 (UTC). Any request may carry one:
    /// mamorid does nothing for a request it reads, or whose password check would start, after it,
    /// and answers `busy`. So a request that waited in a frozen or overloaded daemon after its
    /// client gave up spends no one-time code and changes no password unseen.
    public static let deadline = WireField(
        "deadline", .integer(0...99_999_999_999_999),
        "Milliseconds since 1970 after which the client no longer waits: nothing is done past it (busy)."
    )
    /// The PAM service that asks (`login`, `sshd`, `sudo`), for the audit trail.
    public static let service = WireField(
        "service", .string(maxBytes: 64), "The PAM service asking, for the audit trail.")
    /// The terminal line, for the audit trail.
    public static let tty = WireField("tty", .string(maxBytes: 64), "The terminal line, for the audit trail.")
    /// The remote host PAM reports, for the audit trail.
    public static let remoteHost = WireField("rhost", .string(maxBytes: 256), "The remote host, for the audit trail.")

    // MARK: Secrets

    /// The password presented at a login: long enough for any passphrase a line can hold.
    public static let password = WireField(
        "password", .string(maxBytes: WireLimits.maximumLineLength), secret: true, "The password presented."
    )
    /// A temporary password an administrator sets (`user.passwd`); the hasher's own limit.
    public static let temporaryPassword = WireField(
        "password", .string(maxBytes: 1024), secret: true, "The temporary password, to be changed at the next login."
    )
    /// The password being replaced (`password.change`).
    public static let oldPassword = WireField(
        "old_password", .string(maxBytes: WireLimits.maximumLineLength), secret: true, "The current password."
    )
    /// The new password (`password.change`): 8 bytes or more, different from the old.
    public static let newPassword = WireField(
        "new_password", .string(maxBytes: WireLimits.maximumLineLength), secret: true, "The new password."
    )
    /// A TOTP code or a recovery code.
    public static let code = WireField(
        "code", .string(maxBytes: 64), secret: true, "A one-time code (TOTP), or a recovery code in its place."
    )
    /// The single-use ticket `authenticate` returned, which opens the session.
    public static let ticket = WireField(
        "ticket", .string(maxBytes: 128), secret: true, "The ticket from authenticate (single use, 5 minutes)."
    )

    // MARK: Decisions

    /// The action asked about, e.g. `asset.read`.
    public static let action = WireField("action", .string(maxBytes: 128), "The action, e.g. asset.read.")
    /// The resource asked about: an asset id or a `mamori:` resource.
    public static let resource = WireField(
        "resource", .string(maxBytes: 512), "The resource: an asset id or a mamori: resource.")
    /// The zone of a session imagined by `authorize` by user.
    public static let zone = WireField(
        "zone", .string(maxBytes: 64), "The zone of an imagined session (default: the daemon's).")
    /// The factors of a session imagined by `authorize` by user.
    public static let factors = WireField(
        "factors", .list(.oneOf(factorNames), maxItems: 8), "The factors of an imagined session (default: none)."
    )
    /// The factors a login can present, as the wire spells them.
    public static let factorNames = ["password", "recovery-code", "totp"]

    // MARK: Users and roles

    /// How a user is shown to people.
    public static let displayName = WireField(
        "display_name", .string(maxBytes: 256), "The name shown to people (default: the login name).")
    /// The kinds of users the policy knows.
    public static let kind = WireField("kind", .oneOf(userKinds), "The kind of user (default: staff).")
    /// The user kinds, as the wire spells them.
    public static let userKinds = ["contractor", "fiscal-year-staff", "service", "staff"]
    /// An organisation (課) of the policy.
    public static let organisation = WireField("organisation", .string(maxBytes: 128), "An organisation of the policy.")
    /// A role of the policy.
    public static let role = WireField("role", .string(maxBytes: 128), "A role of the policy.")
    /// When a grant ends: a day (the whole day in Tokyo) or an ISO 8601 time.
    public static let until = WireField(
        "until", .string(maxBytes: 64),
        "When the grant ends: a day such as 2027-03-31 (to its end in Tokyo) or an ISO 8601 time."
    )
    /// How many recovery codes to issue.
    public static let count = WireField("count", .integer(1...20), "How many recovery codes to issue (default 10).")

    // MARK: The audit trail

    /// Why the trail is read: recorded, and `export` needs its own permission.
    public static let purpose = WireField(
        "purpose", .oneOf(["export", "read", "tail"]), "Why the trail is read (default: read).")
    /// The newest entries to return.
    public static let last = WireField("last", .integer(0...10_000), "The number of newest entries to return.")
    /// Entries after this sequence number.
    public static let after = WireField(
        "after", .integer(0...999_999_999_999_999), "Entries after this sequence number (default 0).")
    /// Entries in one page.
    public static let limit = WireField("limit", .integer(1...1_000), "The most entries in one page (default 500).")
    /// Only entries written at or after this time.
    public static let since = WireField("since", .time, "Only entries written at or after this time.")
    /// Only entries written before this time.
    public static let untilTime = WireField("until", .time, "Only entries written before this time.")
    /// Prune entries written before this time.
    public static let before = WireField(
        "before", .time, "Remove entries written before this time (past the retention only).")
    /// A note on the access review.
    public static let note = WireField("note", .string(maxBytes: 500), "A note on the access review.")

    // MARK: Terminals (a hub's)

    /// A terminal's name: what its certificate names, unique in the town.
    public static let terminal = WireField(
        "terminal", .string(maxBytes: 64, pattern: "^[A-Za-z0-9][A-Za-z0-9._-]*$"), "A terminal's name in the town."
    )
    /// The policy zone a terminal is in.
    public static let terminalZone = WireField("zone", .string(maxBytes: 64), "The policy zone the terminal is in.")
    /// How long a join token is accepted.
    public static let expiresHours = WireField(
        "expires_hours", .integer(1...168), "How many hours the join token is accepted (default 24)."
    )
}
