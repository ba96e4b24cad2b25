public import Foundation
public import MamoriCore
public import MamoriProtocol
public import MamoriStore

/// The operations a hub serves on its terminal port, besides those a terminal forwards for its
/// users (docs/protocol.md, "The hub's terminal port"). Requests and replies are the same JSON
/// lines as on the Unix socket.
public enum HubOperation: String, Sendable, CaseIterable {
    /// A terminal without a certificate yet presents its join token and a certificate request.
    case join = "terminal.join"
    /// A joined terminal asks who the hub takes it for.
    case hello = "terminal.hello"
    /// A joined terminal asks for the change feed after a number (the poll).
    case changes = "terminal.changes"
    /// A joined terminal asks for the feed after a number, then for every change as it commits,
    /// pushed on the same connection (the stream).
    case watch = "terminal.watch"
    /// A joined terminal asks for the users and their assignments, without any secret: what it
    /// needs to answer `authorize` and `account` itself.
    case subjects = "terminal.subjects"
    /// The hub's policy in force, file by file, for a terminal to validate and adopt.
    case policy = "terminal.policy"
    /// A joined terminal sends the next entries of its audit chain; the hub keeps them and
    /// acknowledges the head it holds, signed.
    case audit = "terminal.audit"
    /// A joined terminal asks for a new certificate for a new key, over a connection made with
    /// its current one (docs/town.md, "Certificates and their renewal").
    case renew = "terminal.renew"
    /// A joined terminal reports what it did through a network cut (logins, failures, local
    /// locks); the hub keeps it, consumes the steps and codes used, and answers with the double
    /// uses it found that concern this terminal.
    case offline = "terminal.offline"
}

/// `terminal.offline`: what a terminal did offline that the hub has not acknowledged yet (at most
/// ``maximumUses`` per request, oldest first). With none, it asks for the double uses found since.
public struct TerminalOfflineRequest: WireRequestBody, Hashable {
    /// What happened, oldest first.
    public var uses: [OfflineUseLine]

    /// The most uses one request carries: at most about 300 bytes each (a 64-byte name and
    /// reason), so that a full request stays well inside the hub's 64 KiB line.
    public static let maximumUses = 150

    /// A request from its parts.
    public init(uses: [OfflineUseLine]) { self.uses = uses }
}

/// One thing a terminal did offline.
public struct OfflineUseLine: Codable, Sendable, Hashable {
    /// The terminal's number for it, increasing: the hub keeps each (terminal, sequence) once.
    public var sequence: Int64
    /// The user's login name.
    public var user: String
    /// `login`, `failure` or `lock`.
    public var kind: String
    /// When, Unix milliseconds.
    public var at: Int64
    /// A login's TOTP step.
    public var step: UInt64?
    /// A login's recovery code, by the hub's identifier.
    public var recoveryCode: Int64?
    /// A failure's reason.
    public var reason: String?
    /// The user's last online login on the terminal then, Unix milliseconds.
    public var onlineAt: Int64?

    /// A use from its parts.
    public init(
        sequence: Int64, user: String, kind: String, at: Int64, step: UInt64?, recoveryCode: Int64?, reason: String?,
        onlineAt: Int64?
    ) {
        self.onlineAt = onlineAt
        self.sequence = sequence
        self.user = user
        self.kind = kind
        self.at = at
        self.step = step
        self.recoveryCode = recoveryCode
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case sequence, user, kind, at, step, reason
        case recoveryCode = "recovery_code"
        case onlineAt = "online_at"
    }
}

/// The reply to `terminal.offline`: every sequence the request carried is kept (so the terminal
/// may forget them), and the double uses that concern this terminal not reported to it before.
public struct TerminalOfflineReply: WireReplyBody, Hashable {
    /// How many of the request's uses were new to the hub.
    public var kept: Int
    /// The double uses that concern this terminal, not told to it before.
    public var conflicts: [OfflineConflictLine]

    /// A reply from its parts.
    public init(kept: Int, conflicts: [OfflineConflictLine]) {
        self.kept = kept
        self.conflicts = conflicts
    }
}

/// One TOTP step of one user used offline on two terminals.
public struct OfflineConflictLine: Codable, Sendable, Hashable {
    /// The user's login name.
    public var user: String
    /// The TOTP step.
    public var step: UInt64
    /// The terminals, sorted.
    public var terminals: [String]

    /// A conflict from its parts.
    public init(user: String, step: UInt64, terminals: [String]) {
        self.user = user
        self.step = step
        self.terminals = terminals
    }
}

/// `terminal.renew`: a certificate request for the terminal's new key. The reply is a
/// ``TerminalJoinReply``.
public struct TerminalRenewRequest: WireRequestBody, Hashable {
    /// The request, PEM (PKCS #10), signed with the new key (P-256).
    public var csr: String

    /// A renewal request.
    public init(csr: String) {
        self.csr = csr
    }
}

/// `terminal.audit`: the next entries of the terminal's chain, exactly as stored, with the
/// checkpoints among them (and the one just before them). With no entries, it asks how far the
/// hub holds the chain.
public struct TerminalAuditRequest: WireRequestBody, Hashable {
    /// The terminal's audit verifying key, base64 (`mamori audit public-key` on the terminal).
    public var publicKey: String
    /// The entries after the hub's head, oldest first (at most ``AuditStream/maximumEntries``,
    /// and within one request line).
    public var entries: [AuditTrailExport.Entry]
    /// The checkpoints signed after the newest the hub holds (its reply's `checkpoint`), in
    /// signing order, at entries the hub holds or the batch carries (at most
    /// ``AuditStream/maximumCheckpoints``).
    public var checkpoints: [AuditTrailExport.Checkpoint]

    /// A request from its parts.
    public init(
        publicKey: [UInt8], entries: [AuditTrailExport.Entry], checkpoints: [AuditTrailExport.Checkpoint]
    ) {
        self.publicKey = Data(publicKey).base64EncodedString()
        self.entries = entries
        self.checkpoints = checkpoints
    }

    enum CodingKeys: String, CodingKey {
        case entries, checkpoints
        case publicKey = "public_key"
    }
}

/// The reply to `terminal.audit`: the hub's signed acknowledgement of the head it holds.
public struct TerminalAuditReply: WireReplyBody, Hashable {
    /// The last entry of the terminal's chain the hub holds (0 for none).
    public var acknowledged: Int64
    /// That entry's hash, hex (empty for none).
    public var headHash: String
    /// When the hub acknowledged it, in Unix milliseconds.
    public var timeMillis: Int64
    /// The hub's Ed25519 signature over ``AuditAcknowledgement/message``, base64.
    public var signature: String
    /// The ``AuditCheckpoint/digest`` (hex) of the newest checkpoint of this terminal the hub
    /// holds; the terminal sends those it signed after it. Absent before the first.
    public var checkpoint: String?

    /// The reply for `acknowledgement`, naming the newest checkpoint held.
    public init(_ acknowledgement: AuditAcknowledgement, newestCheckpoint: [UInt8]?) {
        checkpoint = newestCheckpoint.map(AuditWitness.hex)
        acknowledged = acknowledgement.sequence
        headHash = AuditWitness.hex(acknowledgement.headHash)
        timeMillis = AuditEntry.milliseconds(acknowledgement.time)
        signature = Data(acknowledgement.signature).base64EncodedString()
    }

    enum CodingKeys: String, CodingKey {
        case acknowledged, signature, checkpoint
        case headHash = "head_hash"
        case timeMillis = "time_ms"
    }
}

/// `terminal.subjects`: every user, or those named.
public struct TerminalSubjectsRequest: WireRequestBody, Hashable {
    /// The users wanted (at most 100), or nil for all.
    public var users: [String]?

    /// A request for `users`, or for all.
    public init(users: [String]? = nil) {
        self.users = users
    }
}

/// One file of the hub's policy folder.
public struct PolicyFileText: Codable, Sendable, Hashable {
    /// The file's name in the folder (`rules.yaml`).
    public var name: String
    /// Its text.
    public var text: String

    /// A file from its parts.
    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }
}

/// `terminal.policy`'s reply: the policy the hub has in force.
public struct TerminalPolicyReply: WireReplyBody, Hashable {
    /// Its revision (`sha256:…`), which the files hash to.
    public var revision: String
    /// Every `.yaml` file of the hub's policy folder.
    public var files: [PolicyFileText]

    /// A reply from its parts.
    public init(revision: String, files: [PolicyFileText]) {
        self.revision = revision
        self.files = files
    }
}

/// One user as a terminal mirrors them: no password hash, no seed, no code.
public struct SubjectDescription: Codable, Sendable, Hashable {
    /// The login name.
    public var user: String
    /// The name shown to people.
    public var displayName: String
    /// `staff`, `fiscal-year-staff`, …
    public var kind: String
    /// The organisation, or nil.
    public var organisation: String?
    /// Whether logins are refused.
    public var disabled: Bool
    /// Whether the next login must change the password.
    public var mustChangePassword: Bool
    /// Whether the account is locked after failures now.
    public var locked: Bool
    /// Until when it is locked (ISO 8601), when ``locked``: a terminal lets the lock lapse on time.
    public var lockedUntil: String?
    /// When the user was added (ISO 8601).
    public var createdAt: String?
    /// The user's assignments, current or not.
    public var assignments: [SubjectAssignment]

    /// A user from its parts.
    public init(
        user: String, displayName: String, kind: String, organisation: String?, disabled: Bool,
        mustChangePassword: Bool, locked: Bool, lockedUntil: String? = nil, createdAt: String? = nil,
        assignments: [SubjectAssignment]
    ) {
        self.lockedUntil = lockedUntil
        self.createdAt = createdAt
        self.user = user
        self.displayName = displayName
        self.kind = kind
        self.organisation = organisation
        self.disabled = disabled
        self.mustChangePassword = mustChangePassword
        self.locked = locked
        self.assignments = assignments
    }

    enum CodingKeys: String, CodingKey {
        case user, kind, organisation, disabled, locked, assignments
        case displayName = "display_name"
        case mustChangePassword = "must_change_password"
        case lockedUntil = "locked_until"
        case createdAt = "created_at"
    }
}

extension SubjectDescription {
    /// A user as the hub describes it to its terminals, and as a member saves its mirror: times
    /// in ISO 8601 with milliseconds, so that a user removed and added again within a second is
    /// a new user by the time it was created. `lockedUntil` is the lock in force, if any.
    public init(_ user: UserRecord, assignments: [AssignmentRecord], lockedUntil: Date?) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        self.init(
            user: user.name, displayName: user.displayName, kind: user.kind.rawValue, organisation: user.organisation,
            disabled: user.disabled, mustChangePassword: user.mustChangePassword, locked: lockedUntil != nil,
            lockedUntil: lockedUntil.map(formatter.string(from:)), createdAt: formatter.string(from: user.createdAt),
            assignments: assignments.map {
                SubjectAssignment(
                    role: $0.role, grantedBy: $0.grantedBy, grantedAt: formatter.string(from: $0.grantedAt),
                    expiresAt: $0.expiresAt.map(formatter.string(from:)))
            })
    }
}

/// One assignment as a terminal mirrors it.
public struct SubjectAssignment: Codable, Sendable, Hashable {
    /// The role.
    public var role: String
    /// Who granted it.
    public var grantedBy: String
    /// When, ISO 8601.
    public var grantedAt: String
    /// When it ends, ISO 8601, or nil for never.
    public var expiresAt: String?

    /// An assignment from its parts.
    public init(role: String, grantedBy: String, grantedAt: String, expiresAt: String?) {
        self.role = role
        self.grantedBy = grantedBy
        self.grantedAt = grantedAt
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case role
        case grantedBy = "granted_by"
        case grantedAt = "granted_at"
        case expiresAt = "expires_at"
    }
}

/// The reply to `terminal.subjects`.
public struct TerminalSubjectsReply: WireReplyBody, Hashable {
    /// The users, by name.
    public var subjects: [SubjectDescription]
    /// The newest change number read before the users were: watch the feed from it, and nothing
    /// made after the snapshot is missed.
    public var latest: Int64

    /// A reply from its parts.
    public init(subjects: [SubjectDescription], latest: Int64) {
        self.subjects = subjects
        self.latest = latest
    }
}

/// One change of the town's feed, as a terminal receives it.
public struct ChangeDescription: Codable, Sendable, Hashable {
    /// Its place in the feed: numbers commit in order, without gaps.
    public var number: Int64
    /// When it was made, ISO 8601.
    public var time: String
    /// The audit event that made it (`role.revoke`, `user.disable`, `terminal.remove`, …).
    public var kind: String
    /// Whom it concerns (a user, the policy, a terminal).
    public var subject: String

    /// A change from its parts.
    public init(number: Int64, time: String, kind: String, subject: String) {
        self.number = number
        self.time = time
        self.kind = kind
        self.subject = subject
    }
}

/// `terminal.changes` and `terminal.watch`: the feed after a number.
public struct TerminalChangesRequest: WireRequestBody, Hashable {
    /// The newest number the terminal has seen (0 for none).
    public var since: Int64

    /// A request for what came after `since`.
    public init(since: Int64) {
        self.since = since
    }
}

/// The reply to `terminal.changes` and `terminal.watch`, and each line the stream pushes after a
/// watch (with `event` `changes`).
public struct TerminalChangesReply: WireReplyBody, Hashable {
    /// The changes after the number asked for, oldest first (at most 1000 in a reply).
    public var changes: [ChangeDescription]
    /// The newest number given when the reply was made.
    public var latest: Int64
    /// Whether more than one reply's worth came after the number: ask again after the last one.
    public var more: Bool
    /// True when changes after the number asked for were deleted (the feed keeps a set number of
    /// days): the terminal has missed some and must read every user anew (`terminal.subjects`).
    public var resync: Bool?

    /// A reply from its parts.
    public init(changes: [ChangeDescription], latest: Int64, more: Bool, resync: Bool? = nil) {
        self.resync = resync
        self.changes = changes
        self.latest = latest
        self.more = more
    }

    /// The `event` of a pushed line.
    public static let pushEvent = "changes"
}

/// The caller a member terminal saw at its own socket, sent with each request it forwards to the
/// hub as the `caller` field: the kernel's word there (peer credentials), the terminal's word here.
public struct ForwardedCaller: Codable, Sendable, Hashable {
    /// The caller's uid on the terminal.
    public var uid: UInt32
    /// The caller's process id on the terminal.
    public var pid: Int32
    /// The caller's login name on the terminal, or nil when it has none.
    public var name: String?

    /// A caller from its parts.
    public init(uid: UInt32, pid: Int32, name: String?) {
        self.uid = uid
        self.pid = pid
        self.name = name
    }

    /// The field a forwarded request carries it in.
    public static let field = "caller"
}

/// `terminal.join`: the one request a connection without a certificate may make.
public struct TerminalJoinRequest: WireRequestBody, Hashable {
    /// The join token (`mamori1.SECRET.PIN`): a secret.
    public var token: String
    /// The terminal's certificate signing request, PEM (PKCS #10), signed with its new key.
    public var csr: String

    /// A join request.
    public init(token: String, csr: String) {
        self.token = token
        self.csr = csr
    }
}

/// The reply to `terminal.join`: the terminal's certificate and the CA that signed it.
public struct TerminalJoinReply: WireReplyBody, Hashable {
    /// The terminal's name, as the hub's administrator added it.
    public var terminal: String
    /// Its zone.
    public var zone: String
    /// The certificate the hub's CA issued for the request's key, PEM.
    public var certificate: String
    /// The hub's CA certificate, PEM: the only root the terminal trusts for its hub.
    public var ca: String

    /// A reply from its parts.
    public init(terminal: String, zone: String, certificate: String, ca: String) {
        self.terminal = terminal
        self.zone = zone
        self.certificate = certificate
        self.ca = ca
    }
}

/// The reply to `terminal.hello`: who the hub takes the connected terminal for.
public struct TerminalHelloReply: WireReplyBody, Hashable {
    /// The terminal's name, from its certificate's record.
    public var terminal: String
    /// Its zone.
    public var zone: String
    /// The hub's version.
    public var hubVersion: String

    /// A reply from its parts.
    public init(terminal: String, zone: String, hubVersion: String) {
        self.terminal = terminal
        self.zone = zone
        self.hubVersion = hubVersion
    }

    enum CodingKeys: String, CodingKey {
        case terminal, zone
        case hubVersion = "hub_version"
    }
}
