public import Foundation

/// An authentication factor a session can have used.
public enum Factor: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Something known: the Argon2id-checked password.
    case password
    /// Something held: a TOTP code from the enrolled device.
    case totp
    /// A single-use recovery code, standing in for the TOTP device.
    case recoveryCode = "recovery-code"

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
    public let id: String
    public let title: String
    /// The factors a login on a terminal of this zone must present.
    public let loginFactors: Set<Factor>
}

/// One classification axis (confidentiality, integrity, availability) with its levels, lowest first.
public struct ClassificationAxis: Sendable, Hashable {
    public let id: String
    public let title: String
    /// Level names in ascending order, e.g. `1`, `2`, `3A`, `3B`, `3C`.
    public let levels: [String]
}

/// An organisation that owns assets and employs users (a secretariat, a school).
public struct Organisation: Sendable, Hashable {
    public let id: String
    public let title: String
}

/// An entry of the information asset register (情報資産台帳).
public struct Asset: Sendable, Hashable {
    public let id: String
    public let title: String
    public let zone: String
    public let owner: String
    /// The index of the asset's level on each axis, by axis id.
    public let levels: [String: Int]
    public let tags: [String]
}

/// A role: what a user may be granted.
public struct Role: Sendable, Hashable {
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
    public let id: String
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
    public enum Comparison: String, Sendable, Hashable, CaseIterable {
        case equal = "="
        case atLeast = ">="
        case atMost = "<="
        case above = ">"
        case below = "<"
    }

    public let axis: String
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
    public let start: Int
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

    public static let none = RuleConditions(sameOrganisation: false)

    var isEmpty: Bool { self == .none }
}

/// A permit or forbid rule.
public struct Rule: Sendable, Hashable {
    public let id: String
    public let effect: RuleEffect
    /// Why the rule exists, for explanations.
    public let description: String
    /// Role ids the rule applies to; nil for any authenticated user (`roles: ["*"]`).
    public let roles: [String]?
    /// Action ids, with patterns already expanded against the declared actions.
    public let actions: [String]
    public let resources: ResourceSelector
    public let when: RuleConditions
    /// The rule does not apply when all of these hold.
    public let unless: RuleConditions?
    public let location: SourceLocation
}

/// Roles one person may not hold together: no more than `maximum` of `roles` (counting inherited
/// roles).
public struct SeparationOfDuty: Sendable, Hashable {
    public let id: String
    public let roles: [String]
    public let maximum: Int
    public let reason: String
}

/// Lockout thresholds: `failures` within `windowMinutes` lock for `lockMinutes`.
public struct LockoutSettings: Sendable, Hashable {
    public let failures: Int
    public let windowMinutes: Int
    public let lockMinutes: Int
}

/// Settings the other parts of Mamori read from the policy.
public struct PolicySettings: Sendable, Hashable {
    /// The terminal's time zone, for time-of-day conditions.
    public let timeZone: TimeZone
    public let argon2: Argon2Parameters
    public let totp: OTPParameters
    /// Steps either side of now that a TOTP code may come from.
    public let totpWindow: Int
    public let lockout: LockoutSettings
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
    public let zones: [Zone]
    public let axes: [ClassificationAxis]
    public let organisations: [Organisation]
    public let assets: [Asset]
    public let roles: [Role]
    public let actions: [PolicyAction]
    public let rules: [Rule]
    public let separationOfDuty: [SeparationOfDuty]
    public let settings: PolicySettings
    /// Warnings found while loading; the policy is usable.
    public let warnings: [PolicyDiagnostic]
}
