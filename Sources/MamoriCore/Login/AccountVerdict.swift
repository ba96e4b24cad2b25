/// What `account` answers for a user at this terminal now (the PAM account phase): whether a login
/// may happen at all, apart from its factors, which `authenticate` checks.
public enum AccountResult: String, Sendable, Hashable, CaseIterable {
    case allowed
    /// Disabled, locked, without a role that takes effect in this zone, or refused by the policy's `login` rule.
    case denied
    /// Every role assignment of the user has ended.
    case expired
    /// A temporary password: the login goes on to a password change.
    case passwordChangeRequired = "password_change_required"
    /// No such user (answered only to callers who may ask about any user).
    case unknownUser = "unknown_user"
}

/// The facts `account` gathers from the store and the policy; ``verdict(login:)`` decides.
public struct AccountFacts: Sendable, Hashable {
    /// An administrator disabled the account.
    public var disabled: Bool
    /// The account is locked after failed logins.
    public var locked: Bool
    /// The user holds assignments at all, ended ones included.
    public var hasAssignments: Bool
    /// The roles of the user's current assignments that take effect in this terminal's zone.
    public var rolesInZone: [String]
    /// Whether any assignment is current (in any zone).
    public var hasCurrentAssignments: Bool
    /// The user has a temporary password.
    public var mustChangePassword: Bool
    /// The terminal's zone, for the reason given.
    public var zone: String

    /// The facts of one `account` question.
    public init(
        disabled: Bool, locked: Bool, hasAssignments: Bool, hasCurrentAssignments: Bool, rolesInZone: [String],
        mustChangePassword: Bool, zone: String
    ) {
        self.disabled = disabled
        self.locked = locked
        self.hasAssignments = hasAssignments
        self.hasCurrentAssignments = hasCurrentAssignments
        self.rolesInZone = rolesInZone
        self.mustChangePassword = mustChangePassword
        self.zone = zone
    }

    /// The answer and its reasons, one sentence each. `login` asks the policy's `login` rule with
    /// the roles in zone; it is called only when nothing else has refused already.
    public func verdict(login: ([String]) -> Decision) -> (AccountResult, [String]) {
        if disabled { return (.denied, ["The account is disabled."]) }
        if locked { return (.denied, ["The account is locked after failed logins."]) }
        if !hasCurrentAssignments && hasAssignments {
            return (.expired, ["Every role assignment of this user has expired."])
        }
        if rolesInZone.isEmpty { return (.denied, ["The user holds no role that takes effect in the \(zone) zone."]) }
        let decision = login(rolesInZone)
        // Factors are checked by authenticate; here only whether a login may happen at all.
        if decision.effect == .deny { return (.denied, decision.reasons) }
        return (mustChangePassword ? .passwordChangeRequired : .allowed, [])
    }
}
