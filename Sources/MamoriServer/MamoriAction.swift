/// The actions mamorid asks the policy engine about for its own operations. The bundled policy
/// declares each (`policies/actions.yaml`, checked by a test), and a town's policy grants them to
/// roles: renaming one would silently take a permission away, so rename none.
public enum MamoriAction: String, CaseIterable, Sendable {
    /// Logging in at a terminal (`account`), on `mamori:terminals/ID`.
    case login
    /// Reading the daemon's and the policy's status.
    case status = "mamori.status"
    /// Authenticating, checking or opening sessions for another user.
    case authenticate = "mamori.authenticate"
    /// Asking about another user's session or decisions.
    case sessionQuery = "mamori.session.query"
    /// Adding, changing, disabling or removing a user.
    case userManage = "mamori.user.manage"
    /// Granting a role.
    case roleGrant = "mamori.role.grant"
    /// Revoking a role.
    case roleRevoke = "mamori.role.revoke"
    /// Enrolling or resetting a TOTP device, issuing recovery codes.
    case totpEnroll = "mamori.totp.enroll"
    /// Unlocking a locked account.
    case accountUnlock = "mamori.account.unlock"
    /// Reloading the policy.
    case policyReload = "mamori.policy.reload"
    /// Reading the audit trail.
    case auditRead = "mamori.audit.read"
    /// Exporting the audit trail.
    case auditExport = "mamori.audit.export"
    /// Pruning the audit trail past its retention.
    case auditPrune = "mamori.audit.prune"
    /// Running the self-inspection.
    case inspect = "mamori.inspect"
    /// Recording the access review.
    case reviewRecord = "mamori.review.record"
    /// Adding, listing or removing a hub's terminals, on `mamori:terminals/NAME`.
    case terminalManage = "mamori.terminal.manage"
}
