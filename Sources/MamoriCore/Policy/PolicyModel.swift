public import Foundation

/// An authentication factor a session can have used.
public enum Factor: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Something known: the Argon2id-checked password.
    case password
    /// Something held: a TOTP code from the enrolled device.
    case totp
    /// A single-use recovery code, standing in for the TOTP device.
    case recoveryCode = "recovery-code"

    /// Orders factors as declared (password, TOTP, recovery code), so that sorted lists, such as a step-up's
    /// missing factors, come out the same every time.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs) ?? 0 < allCases.firstIndex(of: rhs) ?? 0
    }
}

/// What kind of person (or program) a user is: the basic policy's scope distinguishes them.
public enum UserKind: String, Sendable, Hashable, CaseIterable {
    /// Regular town employees (職員).
    case staff
    /// Fiscal-year appointed staff (会計年度任用職員), whose appointments end on a date.
    case fiscalYearStaff = "fiscal-year-staff"
    /// Employees of an outside contractor (外部委託事業者).
    case contractor
    /// A program's service account (an application asking the daemon).
    case service
}

/// A network zone of the three-layer model (三層の対策).
public struct Zone: Sendable, Hashable {
    /// The id that rules, assets, roles and a terminal's `zone` setting refer to.
    public let id: String
    /// The name people read, e.g. マイナンバー利用事務系; the id when the policy gives none.
    public let title: String
    /// The factors a login on a terminal of this zone must present.
    public let loginFactors: Set<Factor>
    /// What a login on a terminal of this zone may present while the terminal cannot reach its
    /// hub (`offline-login`; ``OfflineLogin/deny`` when the policy says nothing).
    public var offlineLogin: OfflineLogin = .deny
}

/// What a zone accepts from a login while the terminal cannot reach its hub (docs/policy.md,
/// "Logins through a network cut"). Who may log in so is ``OfflineSettings/roles``.
public enum OfflineLogin: String, Sendable, Hashable, CaseIterable {
    /// The password, checked against the terminal's own verifier, and a TOTP code checked against
    /// the tags the hub sent at the last online login (the seed never leaves the hub).
    case tags
    /// The password alone.
    case passwordOnly = "password-only"
    /// No login while the hub cannot be reached.
    case deny
}

/// The policy's settings for logins through a network cut (`settings.offline`).
public struct OfflineSettings: Sendable, Hashable {
    /// The roles whose holders may log in offline; none when the policy says nothing.
    public let roles: Set<String>
    /// Hours of coming TOTP steps the hub sends tags for at each online login.
    public let windowHours: Int
    /// Days since the user's last online login on the terminal after which offline logins stop.
    public let maximumAgeDays: Int
    /// Offline failures after which the terminal locks the account itself, for the lockout's lock-minutes.
    public let failures: Int

    /// Settings from their parts, as the policy gives them.
    public init(roles: Set<String>, windowHours: Int, maximumAgeDays: Int, failures: Int) {
        self.roles = roles
        self.windowHours = windowHours
        self.maximumAgeDays = maximumAgeDays
        self.failures = failures
    }

    /// Nobody offline; the other values for when roles are named.
    public static let defaults = OfflineSettings(roles: [], windowHours: 72, maximumAgeDays: 7, failures: 5)
}

/// One classification axis (confidentiality, integrity, availability) with its levels, lowest first.
public struct ClassificationAxis: Sendable, Hashable {
    /// The id that assets and `where` tests name the axis by, e.g. `confidentiality`.
    public let id: String
    /// The name people read, e.g. 機密性; the id when the policy gives none.
    public let title: String
    /// Level names in ascending order, e.g. `1`, `2`, `3A`, `3B`, `3C`.
    public let levels: [String]
}

/// An organisation that owns assets and employs users (a secretariat, a school).
public struct Organisation: Sendable, Hashable {
    /// The id that an asset's `owner` and a user's organisation refer to.
    public let id: String
    /// The name people read, e.g. 企画課; the id when the policy gives none.
    public let title: String
}

/// An entry of the information asset register (情報資産台帳).
public struct Asset: Sendable, Hashable {
    /// The id that rules list and requests name as their resource.
    public let id: String
    /// The name people read, e.g. 住民記録; the id when the policy gives none.
    public let title: String
    /// The id of the zone the asset belongs to, which `where: {zone: …}` tests.
    public let zone: String
    /// The id of the organisation that owns the asset; `same-organisation` compares the user's with it.
    public let owner: String
    /// The index of the asset's level on each axis, by axis id.
    public let levels: [String: Int]
    /// Free-form labels such as `personal-data`; a `where: {tags: …}` test needs all of its tags here.
    public let tags: [String]
}

/// A role: what a user may be granted.
public struct Role: Sendable, Hashable {
    /// The id that assignments, rules and constraints refer to; never contains `*`, which rules use for any user.
    public let id: String
    /// The title people read (Japanese titles welcome).
    public let title: String
    /// Roles whose permissions this one includes.
    public let inherits: [String]
    /// Privileged roles get stricter lockout and show up in inspections.
    public let privileged: Bool
    /// At most this many users may hold the role; nil for no limit.
    public let maxHolders: Int?
    /// The zones in which the role takes effect; nil for every zone.
    public let zones: [String]?
}

/// An action a rule can permit or forbid, such as `asset.read` or `mamori.role.grant`.
public struct PolicyAction: Sendable, Hashable {
    /// The id that requests name and rules list; never contains `*` or `?`, which rules use as patterns.
    public let id: String
    /// The name people read; the id when the policy gives none.
    public let title: String
    /// Mamori's own administrative actions, which inspections list separately.
    public let administrative: Bool
}

/// Whether a rule grants or takes away.
public enum RuleEffect: String, Sendable, Hashable {
    case permit, forbid
}

/// A comparison of an asset's level on an axis, such as `confidentiality >= 3`.
public struct LevelTest: Sendable, Hashable {
    /// How the asset's level must relate to the test's; raw values are the operators written in a `where` test.
    public enum Comparison: String, Sendable, Hashable, CaseIterable {
        case equal = "="
        case atLeast = ">="
        case atMost = "<="
        case above = ">"
        case below = "<"
    }

    /// The id of the axis whose level is compared.
    public let axis: String
    /// How the asset's level must compare with ``level``: by position on the axis, not by name.
    public let comparison: Comparison
    /// Index of the level on the axis.
    public let level: Int

    func holds(for assetLevel: Int) -> Bool {
        switch comparison {
        case .equal: assetLevel == level
        case .atLeast: assetLevel >= level
        case .atMost: assetLevel <= level
        case .above: assetLevel > level
        case .below: assetLevel < level
        }
    }
}

/// Which resources a rule covers. Listed assets and patterns are alternatives; `where` tests (on
/// registered assets only) must all hold in addition. With nothing given, every resource.
public struct ResourceSelector: Sendable, Hashable {
    /// Asset ids from the register.
    public let assets: [String]
    /// Glob patterns (`*` any run, `?` one character) over resource names, e.g. `mamori:users/*`.
    public let patterns: [String]
    /// Classification tests.
    public let levels: [LevelTest]
    /// The asset's zone must be one of these.
    public let assetZones: [String]?
    /// The asset must carry every one of these tags.
    public let tags: [String]

    /// Whether the selector needs the resource to be a registered asset.
    var needsAsset: Bool { !levels.isEmpty || assetZones != nil || !tags.isEmpty }
    /// Whether nothing names resources: then every resource (subject to the `where` tests).
    var namesNothing: Bool { assets.isEmpty && patterns.isEmpty }
}

/// A local time-of-day window, in minutes after midnight; `end` before `start` crosses midnight.
public struct TimeWindow: Sendable, Hashable {
    /// The first minute inside the window.
    public let start: Int
    /// The first minute after the window (exclusive); never equal to ``start``.
    public let end: Int

    func contains(minute: Int) -> Bool {
        start <= end ? (minute >= start && minute < end) : (minute >= start || minute < end)
    }
}

/// Conditions on the request: all that are given must hold.
public struct RuleConditions: Sendable, Hashable {
    /// The session's zone is one of these.
    public var zones: [String]?
    /// The session used every one of these factors.
    public var factors: Set<Factor>?
    /// The terminal's local time falls in this window.
    public var hours: TimeWindow?
    /// The terminal's local weekday (1 = Monday … 7 = Sunday) is one of these.
    public var weekdays: Set<Int>?
    /// The user is of one of these kinds.
    public var userKinds: Set<UserKind>?
    /// The user's organisation owns the asset.
    public var sameOrganisation: Bool

    /// No conditions: what a rule without `when` has, so that it applies in any session.
    public static let none = RuleConditions(sameOrganisation: false)

    var isEmpty: Bool { self == .none }
}

/// A permit or forbid rule.
public struct Rule: Sendable, Hashable {
    /// The id that decisions, explanations and test cases name the rule by.
    public let id: String
    /// Whether the rule permits or forbids; a forbid that applies beats any permit.
    public let effect: RuleEffect
    /// Why the rule exists, for explanations.
    public let description: String
    /// Role ids the rule applies to; nil for any authenticated user (`roles: ["*"]`).
    public let roles: [String]?
    /// Action ids, with patterns already expanded against the declared actions.
    public let actions: [String]
    /// Which resources the rule covers; every resource when the policy gives no `resources`.
    public let resources: ResourceSelector
    /// Conditions that must all hold for the rule to apply; ``RuleConditions/none`` when none are given.
    /// A permit that fails only on factors the session lacks answers step-up, naming them.
    public let when: RuleConditions
    /// The rule does not apply when all of these hold.
    public let unless: RuleConditions?
    /// Where the rule is written in the policy files, so that warnings about it point there.
    public let location: SourceLocation
}

/// Roles one person may not hold together: no more than `maximum` of `roles` (counting inherited
/// roles).
public struct SeparationOfDuty: Sendable, Hashable {
    /// The id that a refused grant names.
    public let id: String
    /// The roles one person may not hold together; at least two. Roles held through inheritance count.
    public let roles: [String]
    /// How many of ``roles`` one person may hold at once; 1 unless the policy says otherwise.
    public let maximum: Int
    /// Why the duties are kept apart, e.g. 監査は独立して行う; quoted when a grant is refused. May be empty.
    public let reason: String
}

/// Lockout thresholds: `failures` within `windowMinutes` lock for `lockMinutes`.
public struct LockoutSettings: Sendable, Hashable {
    /// Failures within the window that lock the account.
    public let failures: Int
    /// Minutes from the first failure during which failures add up; after that, counting starts again.
    public let windowMinutes: Int
    /// Minutes a lock lasts once the failures reach the threshold.
    public let lockMinutes: Int
}

/// Settings the other parts of Mamori read from the policy.
public struct PolicySettings: Sendable, Hashable {
    /// The terminal's time zone, for time-of-day conditions.
    public let timeZone: TimeZone
    /// Argon2id cost for new hashes; a stored hash weaker than this is rehashed at the next successful login.
    public let argon2: Argon2Parameters
    /// How codes are made for devices enrolled from now on; enrolled devices keep the parameters they got.
    public let totp: OTPParameters
    /// Steps either side of now that a TOTP code may come from.
    public let totpWindow: Int
    /// The lockout for accounts that hold no privileged role.
    public let lockout: LockoutSettings
    /// The lockout while an account holds a privileged role; the guideline asks for it to be stricter than
    /// ``lockout``, and a looser one is warned about.
    public let privilegedLockout: LockoutSettings
    /// Idle minutes after which a session ends.
    public let sessionIdleMinutes: Int
    /// Hours after which a session ends whatever happens.
    public let sessionMaximumHours: Int
    /// Years the audit trail is kept.
    public let auditRetentionYears: Int
    /// Whether allowed decisions go to the audit trail too (denied ones always do).
    public let auditAllowedDecisions: Bool
    /// Days without a login after which an account counts as idle.
    public let idleAccountDays: Int
    /// Days between access reviews.
    public let accessReviewDays: Int
    /// Logins through a network cut.
    public var offline: OfflineSettings = .defaults

    /// The values used where a policy sets nothing.
    public static let defaults = PolicySettings(
        timeZone: TimeZone(identifier: "Asia/Tokyo") ?? TimeZone(secondsFromGMT: 9 * 3600) ?? .current,
        argon2: .default, totp: .default, totpWindow: 1,
        lockout: LockoutSettings(failures: 10, windowMinutes: 15, lockMinutes: 30),
        privilegedLockout: LockoutSettings(failures: 5, windowMinutes: 15, lockMinutes: 60),
        sessionIdleMinutes: 15, sessionMaximumHours: 12, auditRetentionYears: 7, auditAllowedDecisions: false,
        idleAccountDays: 90, accessReviewDays: 365
    )
}

/// A whole validated policy: every file of a policy folder, merged, with its revision.
public struct Policy: Sendable {
    /// `sha256:` and the hex digest of the files' names and contents, in name order.
    public let revision: String
    /// The files it was read from, relative to the folder.
    public let files: [String]
    /// The zones of the three-layer model; a policy declares at least one.
    public let zones: [Zone]
    /// The classification axes; the guideline's usual three (confidentiality 1–3, integrity 1–2,
    /// availability 1–2) when the policy declares none.
    public let axes: [ClassificationAxis]
    /// The organisations that own assets and employ users.
    public let organisations: [Organisation]
    /// The information asset register (情報資産台帳); every asset has a level on every axis.
    public let assets: [Asset]
    /// Every role; inheritance has no cycles and no role's inherited roles break a constraint.
    public let roles: [Role]
    /// Every action rules may name; a request for any other action is denied.
    public let actions: [PolicyAction]
    /// The permit and forbid rules, validated, with action patterns expanded to declared actions.
    public let rules: [Rule]
    /// Roles that one person may not hold together, checked whenever a role is granted.
    public let separationOfDuty: [SeparationOfDuty]
    /// What the rest of Mamori reads from the policy; ``PolicySettings/defaults`` where it sets nothing.
    public let settings: PolicySettings
    /// Warnings found while loading; the policy is usable.
    public let warnings: [PolicyDiagnostic]
}
