import Foundation

/// A request's fields as a Swift value, for clients: the `mamori` command and the tests build
/// requests from these rather than from string keys. `op` is given beside it (several operations
/// take the same fields: ``UserRequest``), and `id`, `session` and `deadline` are the envelope's.
///
/// Each type's coding keys are its operation's declared ``WireOperation/requestFields``, its
/// optional properties the optional ones; a test reads every type's keys and compares them with
/// the declarations, so neither side can name a field the other does not know. mamorid itself
/// reads each field through its declaration where the operation needs it
/// (`request.string(.user)`), so that a refusal names the field and the rule it broke, in the
/// order the operation checks things, and `authorize`'s fast path reads two fields without
/// decoding the rest.
public protocol WireRequestBody: Codable, Sendable {}

extension WireRequestBody {
    /// The request's fields, as the socket carries them (besides `op` and the envelope).
    public func fields() throws -> [String: JSONValue] {
        guard case .object(let fields) = try JSONValue(encoding: self) else {
            throw EncodingError.invalidValue(self, .init(codingPath: [], debugDescription: "a request is an object"))
        }
        return fields
    }
}

/// No fields: `status`, `user.list`, `role.list`, `policy.reload`, `policy.status`,
/// `audit.public_key`, `audit.verify`, `inspect`.
public struct EmptyRequest: WireRequestBody, Hashable {
    /// A request with no fields.
    public init() {}
}

/// Only the user: `user.show`, `user.disable`, `user.enable`, `user.remove`, `user.unlock`,
/// `user.roles`, `totp.enroll.begin`, `totp.reset`.
public struct UserRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String

    /// A request about `user`.
    public init(user: String) {
        self.user = user
    }
}

/// `authenticate`.
public struct AuthenticateRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String
    /// The password presented. A secret.
    public var password: String
    /// A TOTP code, or a recovery code in its place. A secret.
    public var code: String?
    /// The PAM service that asks, for the audit trail.
    public var service: String?
    /// The terminal line, for the audit trail.
    public var tty: String?
    /// The remote host, for the audit trail.
    public var remoteHost: String?

    /// A login attempt.
    public init(
        user: String, password: String, code: String? = nil, service: String? = nil, tty: String? = nil,
        remoteHost: String? = nil
    ) {
        self.user = user
        self.password = password
        self.code = code
        self.service = service
        self.tty = tty
        self.remoteHost = remoteHost
    }

    enum CodingKeys: String, CodingKey {
        case user, password, code, service, tty
        case remoteHost = "rhost"
    }
}

/// `account`.
public struct AccountRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String
    /// The PAM service that asks.
    public var service: String?

    /// Whether `user` may log in here now.
    public init(user: String, service: String? = nil) {
        self.user = user
        self.service = service
    }
}

/// `session.open`.
public struct SessionOpenRequest: WireRequestBody, Hashable {
    /// The ticket `authenticate` returned. A secret.
    public var ticket: String
    /// The PAM service that asks.
    public var service: String?
    /// The terminal line.
    public var tty: String?
    /// The remote host.
    public var remoteHost: String?

    /// Opens the session a ticket allows.
    public init(ticket: String, service: String? = nil, tty: String? = nil, remoteHost: String? = nil) {
        self.ticket = ticket
        self.service = service
        self.tty = tty
        self.remoteHost = remoteHost
    }

    enum CodingKeys: String, CodingKey {
        case ticket, service, tty
        case remoteHost = "rhost"
    }
}

/// `session.close`.
public struct SessionCloseRequest: WireRequestBody, Hashable {
    /// The session's id.
    public var session: String

    /// Closes `session`.
    public init(session: String) {
        self.session = session
    }
}

/// `authorize`: by the caller's session (the envelope's `session`), or by user, then perhaps for
/// an imagined session in `zone` with `factors`.
public struct AuthorizeRequest: WireRequestBody, Hashable {
    /// The action, e.g. `asset.read`.
    public var action: String
    /// The resource, e.g. an asset's id.
    public var resource: String
    /// The user, when asking by user.
    public var user: String?
    /// The zone of an imagined session (default: the daemon's).
    public var zone: String?
    /// The factors of an imagined session (default: none).
    public var factors: [String]?

    /// A question for the policy engine.
    public init(
        action: String, resource: String, user: String? = nil, zone: String? = nil, factors: [String]? = nil
    ) {
        self.action = action
        self.resource = resource
        self.user = user
        self.zone = zone
        self.factors = factors
    }
}

/// `user.add`.
public struct UserAddRequest: WireRequestBody, Hashable {
    /// The Unix login name.
    public var user: String
    /// The name people read.
    public var displayName: String?
    /// `staff` (default), `fiscal-year-staff`, `contractor` or `service`.
    public var kind: String?
    /// An organisation of the policy.
    public var organisation: String?

    /// A new user.
    public init(user: String, displayName: String? = nil, kind: String? = nil, organisation: String? = nil) {
        self.user = user
        self.displayName = displayName
        self.kind = kind
        self.organisation = organisation
    }

    enum CodingKeys: String, CodingKey {
        case user, kind, organisation
        case displayName = "display_name"
    }
}

/// `user.passwd`: a temporary password.
public struct UserPasswdRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String
    /// The temporary password. A secret.
    public var password: String

    /// Sets a temporary password.
    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}

/// `password.change`.
public struct PasswordChangeRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String
    /// The current password. A secret.
    public var oldPassword: String
    /// The new password. A secret.
    public var newPassword: String

    /// Changes a password.
    public init(user: String, oldPassword: String, newPassword: String) {
        self.user = user
        self.oldPassword = oldPassword
        self.newPassword = newPassword
    }

    enum CodingKeys: String, CodingKey {
        case user
        case oldPassword = "old_password"
        case newPassword = "new_password"
    }
}

/// `totp.enroll.confirm`.
public struct EnrolmentConfirmRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String
    /// The first code from the device. A secret.
    public var code: String

    /// Confirms an enrolment.
    public init(user: String, code: String) {
        self.user = user
        self.code = code
    }
}

/// `recovery.issue`.
public struct RecoveryIssueRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String
    /// How many codes, 1–20 (default 10).
    public var count: Int?

    /// Issues a new set of recovery codes.
    public init(user: String, count: Int? = nil) {
        self.user = user
        self.count = count
    }
}

/// `role.grant`.
public struct RoleGrantRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String
    /// The role's id.
    public var role: String
    /// The last day (YYYY-MM-DD, to its end in Tokyo) or an ISO 8601 time.
    public var until: String?

    /// Grants a role.
    public init(user: String, role: String, until: String? = nil) {
        self.user = user
        self.role = role
        self.until = until
    }
}

/// `role.revoke`.
public struct RoleRevokeRequest: WireRequestBody, Hashable {
    /// The login name.
    public var user: String
    /// The role's id.
    public var role: String

    /// Revokes a role.
    public init(user: String, role: String) {
        self.user = user
        self.role = role
    }
}

/// `audit.read`.
public struct AuditReadRequest: WireRequestBody, Hashable {
    /// `read` (default), `export` or `tail`.
    public var purpose: String?
    /// The newest entries to return.
    public var last: Int?
    /// Entries after this sequence number.
    public var after: Int64?
    /// The most entries in one page.
    public var limit: Int?
    /// Only entries written at or after this time, ISO 8601.
    public var since: String?
    /// Only entries written before this time, ISO 8601.
    public var until: String?

    /// A page of the trail.
    public init(
        purpose: String? = nil, last: Int? = nil, after: Int64? = nil, limit: Int? = nil, since: String? = nil,
        until: String? = nil
    ) {
        self.purpose = purpose
        self.last = last
        self.after = after
        self.limit = limit
        self.since = since
        self.until = until
    }
}

/// `audit.trail`.
public struct AuditTrailRequest: WireRequestBody, Hashable {
    /// Entries after this sequence number (0: the first page, with the checkpoints).
    public var after: Int64?
    /// The most entries in one page.
    public var limit: Int?

    /// A page of the trail as stored.
    public init(after: Int64? = nil, limit: Int? = nil) {
        self.after = after
        self.limit = limit
    }
}

/// `audit.prune`.
public struct AuditPruneRequest: WireRequestBody, Hashable {
    /// Remove entries written before this time, ISO 8601 (past the retention only).
    public var before: String

    /// Prunes the trail.
    public init(before: String) {
        self.before = before
    }
}

/// `review.record`.
public struct ReviewRecordRequest: WireRequestBody, Hashable {
    /// A note on the access review.
    public var note: String?

    /// Records an access review.
    public init(note: String? = nil) {
        self.note = note
    }
}

/// `terminal.add` (a hub's).
public struct TerminalAddRequest: WireRequestBody, Hashable {
    /// The terminal's name.
    public var terminal: String
    /// The policy zone it is in.
    public var zone: String
    /// How many hours its join token is accepted (default 24).
    public var expiresHours: Int?

    /// Adds a terminal.
    public init(terminal: String, zone: String, expiresHours: Int? = nil) {
        self.terminal = terminal
        self.zone = zone
        self.expiresHours = expiresHours
    }

    enum CodingKeys: String, CodingKey {
        case terminal, zone
        case expiresHours = "expires_hours"
    }
}

/// `terminal.remove` (a hub's).
public struct TerminalRequest: WireRequestBody, Hashable {
    /// The terminal's name.
    public var terminal: String

    /// Names a terminal.
    public init(terminal: String) {
        self.terminal = terminal
    }
}

extension WireOperation {
    /// The type of the operation's request fields, for clients.
    public var requestType: any WireRequestBody.Type {
        switch self {
        case .status, .userList, .roleList, .policyReload, .policyStatus, .auditPublicKey, .auditVerify, .inspect,
            .terminalList:
            EmptyRequest.self
        case .userShow, .userDisable, .userEnable, .userRemove, .userUnlock, .userRoles, .totpEnrollBegin, .totpReset:
            UserRequest.self
        case .authenticate: AuthenticateRequest.self
        case .account: AccountRequest.self
        case .sessionOpen: SessionOpenRequest.self
        case .sessionClose: SessionCloseRequest.self
        case .authorize: AuthorizeRequest.self
        case .userAdd: UserAddRequest.self
        case .userPasswd: UserPasswdRequest.self
        case .passwordChange: PasswordChangeRequest.self
        case .totpEnrollConfirm: EnrolmentConfirmRequest.self
        case .recoveryIssue: RecoveryIssueRequest.self
        case .roleGrant: RoleGrantRequest.self
        case .roleRevoke: RoleRevokeRequest.self
        case .auditRead: AuditReadRequest.self
        case .auditTrail: AuditTrailRequest.self
        case .auditPrune: AuditPruneRequest.self
        case .reviewRecord: ReviewRecordRequest.self
        case .terminalAdd: TerminalAddRequest.self
        case .terminalRemove: TerminalRequest.self
        }
    }
}
