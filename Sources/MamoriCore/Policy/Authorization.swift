public import Foundation

/// "May this user, in this session, do this on that resource?": everything the engine needs,
/// and nothing it would have to look up.
public struct AuthorizationRequest: Sendable, Hashable {
    /// The user's login name.
    public var user: String
    /// The roles the user holds now (assignments that have not expired), by id.
    public var roles: [String]
    /// What kind of user this is; rules with a `user-kind` condition cannot be evaluated without it.
    public var kind: UserKind?
    /// The user's organisation, for `same-organisation` conditions.
    public var organisation: String?
    /// The zone of the terminal the session is on.
    public var zone: String?
    /// The factors the session was authenticated with.
    public var factors: Set<Factor>
    /// When the request is made, for time-of-day conditions.
    public var time: Date?
    /// The action's id, such as `asset.read`.
    public var action: String
    /// The resource: an asset id from the register, or another name such as `mamori:users/tanaka`.
    public var resource: String

    /// A request; leave out what is not known rather than guess: a rule whose condition needs a missing value
    /// denies the request (fail closed).
    public init(
        user: String, roles: [String], kind: UserKind? = nil, organisation: String? = nil, zone: String? = nil,
        factors: Set<Factor> = [], time: Date? = nil, action: String, resource: String
    ) {
        self.user = user
        self.roles = roles
        self.kind = kind
        self.organisation = organisation
        self.zone = zone
        self.factors = factors
        self.time = time
        self.action = action
        self.resource = resource
    }
}

/// The engine's answer, with why.
public struct Decision: Sendable {
    /// Allow, deny, or "allowed once the session has more factors".
    public enum Effect: String, Sendable, Hashable {
        case allow
        case deny
        /// A permit exists but the session lacks factors (``Decision/missingFactors``): no access
        /// now; a fresh login with those factors would be allowed.
        case stepUp = "step-up"
    }

    /// The answer. Anything but `allow` means no.
    public let effect: Effect
    /// Factors the session lacks, for a step-up.
    public let missingFactors: [Factor]
    /// The digest of the policy files the decision was made with.
    public let policyRevision: String

    let storage: CompiledPolicy
    let deciding: [Int32]
    let matched: [Int32]
    let notes: [Note]

    /// Facts behind the answer that are not rules: rendered into ``reasons`` on demand, so that a
    /// decision costs no string building unless someone reads it.
    enum Note: Sendable {
        case unknownAction(String)
        case unknownRole(String)
        case noPermit
        case ruleError(Int32, String)
    }

    /// Whether the answer is allow.
    public var isAllowed: Bool { effect == .allow }

    /// The ids of the rules that decided: the forbids that denied, the permits that allowed, or the
    /// permits that need a step-up. Empty for a default deny.
    public var decidingRules: [String] { deciding.map { storage.rules[Int($0)].id } }

    /// Every rule that applied to the request, deciding or overridden (used for test coverage).
    public var matchedRules: [String] { matched.map { storage.rules[Int($0)].id } }

    /// Readable sentences saying why, deciding rules first.
    public var reasons: [String] {
        var lines: [String] = []
        for note in notes {
            switch note {
            case .unknownAction(let action): lines.append("The action '\(action)' is not in the policy; denied.")
            case .unknownRole(let role): lines.append("The role '\(role)' is not in the policy and was ignored.")
            case .ruleError(let index, let message):
                lines.append(
                    "Rule '\(storage.rules[Int(index)].id)' cannot be evaluated (\(message)); denied to fail closed.")
            case .noPermit:
                lines.append("No rule permits this action on this resource for these roles; denied by default.")
            }
        }
        let factors = missingFactors.map(\.rawValue).joined(separator: " and ")
        let failed = notes.compactMap { note -> Int32? in
            if case .ruleError(let index, _) = note { index } else { nil }
        }
        for index in deciding where !failed.contains(index) {
            let rule = storage.rules[Int(index)]
            let why = rule.description.isEmpty ? "" : ": \(rule.description)"
            switch (effect, rule.effect) {
            case (.allow, _): lines.append("Permitted by rule '\(rule.id)'\(why).")
            case (.deny, .forbid): lines.append("Forbidden by rule '\(rule.id)'\(why).")
            case (.stepUp, .permit):
                lines.append("Step up: rule '\(rule.id)' permits this only in a session with \(factors)\(why).")
            case (.stepUp, .forbid):
                lines.append("Step up: rule '\(rule.id)' forbids this unless the session has \(factors)\(why).")
            default: lines.append("Rule '\(rule.id)'\(why).")
            }
        }
        return lines
    }
}

/// Why a role may not be granted.
public enum GrantViolation: Sendable, Hashable, CustomStringConvertible {
    /// The role is not in the policy.
    case unknownRole(String)
    /// Holding it with the user's other roles (inherited ones included) breaks a constraint.
    case separationOfDuty(constraint: String, roles: [String], reason: String)
    /// The role already has as many holders as it may.
    case holderLimit(role: String, limit: Int, holders: Int)

    /// A sentence saying why the grant is refused, for the operator who asked.
    public var description: String {
        switch self {
        case .unknownRole(let role): "The role '\(role)' is not in the policy."
        case .separationOfDuty(let constraint, let roles, let reason):
            "Separation of duty '\(constraint)': one person may not hold \(roles.joined(separator: " and ")) together"
                + (reason.isEmpty ? "." : " (\(reason)).")
        case .holderLimit(let role, let limit, let holders):
            "The role '\(role)' may have at most \(limit) holder\(limit == 1 ? "" : "s"); it has \(holders)."
        }
    }
}
