/// What an audit entry records. The trail stores the raw value, so these names are part of the
/// record an auditor reads and filters by (docs/operations.md): rename none of them.
public enum AuditEvent: String, Sendable, CaseIterable {
    case authSuccess = "auth.success"
    case authFailure = "auth.failure"
    /// An account locked after too many failures.
    case authLockout = "auth.lockout"
    /// `account` answered that a user may not log in here now.
    case accountRefused = "account.refused"
    case sessionOpen = "session.open"
    case sessionClose = "session.close"
    case decisionAllow = "decision.allow"
    case decisionDeny = "decision.deny"
    /// The repeats of a denied decision within one interval, counted in one entry.
    case decisionDenyRepeated = "decision.deny.repeated"
    /// A caller denied too often, cut off until the interval ends.
    case callerRateLimited = "caller.rate_limited"
    case userAdd = "user.add"
    case userDisable = "user.disable"
    case userEnable = "user.enable"
    case userRemove = "user.remove"
    case userPasswd = "user.passwd"
    case userUnlock = "user.unlock"
    case passwordChange = "password.change"
    case totpEnrollBegin = "totp.enroll.begin"
    case totpEnrollConfirm = "totp.enroll.confirm"
    case totpReset = "totp.reset"
    case recoveryIssue = "recovery.issue"
    case roleGrant = "role.grant"
    case roleRevoke = "role.revoke"
    case policyReload = "policy.reload"
    case auditRead = "audit.read"
    case auditVerify = "audit.verify"
    case auditPrune = "audit.prune"
    /// A hub received a member terminal's signed checkpoint with the entries it covers (the
    /// detail holds the checkpoint), or refused a batch that did not continue its copy.
    case auditWitness = "audit.witness"
    /// The periodic access review (`review.record`).
    case accessReview = "access.review"
    /// A self-inspection report was made.
    case inspect
    /// A hub's administrator added a terminal and issued its join token.
    case terminalAdd = "terminal.add"
    /// A terminal used its join token and received its certificate.
    case terminalJoin = "terminal.join"
    /// A terminal was removed from service: its certificate is refused from then on.
    case terminalRemove = "terminal.remove"
    /// A joined terminal renewed its certificate over its own connection.
    case terminalRenew = "terminal.renew"
    /// A hub kept what a member terminal reported it did through a network cut.
    case terminalOffline = "terminal.offline"
    /// One TOTP step of one user was used offline on two terminals: recorded by the hub and by
    /// each of the terminals.
    case offlineConflict = "offline.conflict"
}

/// How the act an audit entry records ended.
public enum AuditOutcome: String, Sendable, CaseIterable {
    case success
    case failure
    /// The policy (or a rule such as the retention) refused it.
    case denied
}
