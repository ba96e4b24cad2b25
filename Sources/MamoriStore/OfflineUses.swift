public import Foundation
public import MamoriCore

/// One thing a member terminal did through a network cut, as it reported it to its hub.
public struct OfflineUse: Sendable, Hashable {
    /// The terminal's own number for it, increasing; a repeat of a number is ignored.
    public var sequence: Int64
    /// The user's login name.
    public var user: String
    /// `login`, `failure` or `lock`.
    public var kind: String
    /// When it happened.
    public var at: Date
    /// A login's TOTP step.
    public var step: UInt64?
    /// A login's recovery code, by the hub's identifier.
    public var recoveryCode: Int64?
    /// A failure's reason.
    public var reason: String?
    /// The user's last online login on the terminal, as the terminal held it then.
    public var onlineAt: Date?

    /// A use from its parts.
    public init(
        sequence: Int64, user: String, kind: String, at: Date, step: UInt64? = nil, recoveryCode: Int64? = nil,
        reason: String? = nil, onlineAt: Date? = nil
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
}

/// One TOTP step of one user used offline on two terminals.
public struct OfflineConflict: Sendable, Hashable {
    /// The user's login name.
    public var user: String
    /// The TOTP step.
    public var step: UInt64
    /// The two terminals, sorted.
    public var terminals: [String]

    /// A conflict from its parts.
    public init(user: String, step: UInt64, terminals: [String]) {
        self.user = user
        self.step = step
        self.terminals = terminals
    }
}

/// Offline use by one user on one terminal, for `mamori inspect` at the hub.
public struct OfflineUseSummary: Sendable, Hashable {
    /// The terminal.
    public var terminal: String
    /// The user's login name.
    public var user: String
    /// Offline logins.
    public var logins: Int
    /// Offline failures.
    public var failures: Int
    /// Local locks after offline failures.
    public var locks: Int
    /// The first and the last offline login, if any.
    public var firstLogin: Date?
    /// The last offline login, if any.
    public var lastLogin: Date?

    /// A summary from its parts.
    public init(
        terminal: String, user: String, logins: Int, failures: Int, locks: Int, firstLogin: Date?, lastLogin: Date?
    ) {
        self.terminal = terminal
        self.user = user
        self.logins = logins
        self.failures = failures
        self.locks = locks
        self.firstLogin = firstLogin
        self.lastLogin = lastLogin
    }
}

/// What a hub gave a terminal for one user at an online login: the steps it holds tags for and
/// the recovery codes it holds.
public struct OfflineGrantRecord: Sendable, Hashable {
    /// The steps of the codes sent, nil for a password-only grant.
    public var steps: ClosedRange<UInt64>?
    /// The TOTP period of those steps, in seconds.
    public var period: Int
    /// The hub's identifiers of the recovery codes sent.
    public var recovery: [Int64]

    /// A grant from its parts.
    public init(steps: ClosedRange<UInt64>?, period: Int, recovery: [Int64]) {
        self.steps = steps
        self.period = period
        self.recovery = recovery
    }
}

/// What a hub keeps of its terminals' logins through a network cut (docs/town.md).
public protocol OfflineUseArchive: Sendable {
    /// Records that `terminal` was given `grant` for `user`, widening what it was given before
    /// (a terminal may still use an older credential when making the new one failed).
    func recordOfflineGrant(terminal: String, user: String, grant: OfflineGrantRecord, at time: Date) async throws

    /// Keeps what `terminal` reported (each sequence once), in one transaction: every TOTP step a
    /// login used becomes the newest accepted for its user when it is newer, and every recovery
    /// code it used is consumed, so neither is accepted again anywhere; a step the same user used
    /// offline on another terminal is a conflict, recorded with `record(conflict)` in the hub's
    /// chain (which puts it in the change feed); the report itself is recorded with
    /// `record(nil)` when anything in it was new. A use the hub never made possible (a user,
    /// step or recovery code not granted to `terminal`, a step not yet come within `window`
    /// steps, a time in the future) is kept as refused and changes nothing. Returns how many
    /// uses were new, how many of them were refused, and the conflicts concerning `terminal` it
    /// was not told of before (it is told now).
    func receiveOfflineUses(
        terminal: String, uses: [OfflineUse], at time: Date, window: Int,
        record: @escaping @Sendable (OfflineConflict?, [String: String]) -> AuditEntry
    ) async throws -> (kept: Int, refused: Int, conflicts: [OfflineConflict])

    /// The uses refused since `since` (what a terminal reported that the hub never made possible).
    func refusedOfflineUses(since: Date) async throws -> [(terminal: String, use: OfflineUse, reason: String)]

    /// Offline use since `since`, by terminal and user.
    func offlineUseSummary(since: Date) async throws -> [OfflineUseSummary]

    /// Every offline login since `since`, oldest first.
    func offlineLogins(since: Date) async throws -> [(terminal: String, use: OfflineUse)]

    /// Every conflict found since `since`.
    func offlineConflicts(since: Date) async throws -> [OfflineConflict]
}
