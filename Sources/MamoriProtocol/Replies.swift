import Foundation

/// The success reply of an operation as a Swift value: mamorid builds one, the `mamori` command
/// and the tests decode one (``WireReplyBody/init(reply:)``).
///
/// Each type's coding keys are the names its operation's ``WireOperation/replyFields`` declare.
/// The schema in `docs/protocol-v1.schema.json` is generated from those declarations (Swift
/// cannot derive a JSON Schema from a `Codable` type), and the test suite checks every reply the
/// daemon sends against it with an independent validator, so a type and its declaration cannot
/// drift apart unseen. Times are ISO 8601 text, as on the wire. `authorize` alone is written by
/// hand (``DecisionReply/fields``): it sits on the fast path, where an encoder would cost more
/// than the decision.
public protocol WireReplyBody: Codable, Sendable {}

extension WireReplyBody {
    /// Reads this reply from a success reply's fields (`ok` and `id` are ignored).
    public init(reply fields: [String: JSONValue]) throws {
        var fields = fields
        fields["ok"] = nil
        fields["id"] = nil
        self = try JSONValue.object(fields).decode(Self.self)
    }

    /// The reply's fields, as the socket carries them (besides `ok` and `id`).
    public func replyFields() throws -> [String: JSONValue] {
        guard case .object(let fields) = try JSONValue(encoding: self) else {
            throw EncodingError.invalidValue(self, .init(codingPath: [], debugDescription: "a reply is an object"))
        }
        return fields
    }
}

/// A value the wire carries as `null` when absent, rather than leaving the key out: the schema's
/// `.nullable` fields (an organisation, an expiry), which a client may rely on seeing.
@propertyWrapper
public struct Nullable<Value: Codable & Sendable & Hashable>: Codable, Sendable, Hashable {
    /// The value, or nil for `null`.
    public var wrappedValue: Value?

    /// Wraps a value (nil is `null`).
    public init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    /// Reads the value or `null`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    /// Writes the value, or `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

// `audit.verify` answers with MamoriCore's `AuditReport.Summary`, which is itself `Codable` and
// is what `mamori audit verify --json` prints; `authorize` with ``DecisionReply``.

extension WireOperation {
    /// The type of the operation's success reply, for the tests that decode every reply they
    /// receive; nil for `audit.verify`, whose type lives in MamoriCore (`AuditReport.Summary`).
    public var replyType: (any WireReplyBody.Type)? {
        switch self {
        case .status: StatusReply.self
        case .authenticate: AuthenticateReply.self
        case .account: AccountReply.self
        case .sessionOpen: SessionOpenReply.self
        case .sessionClose: SessionCloseReply.self
        case .authorize: DecisionReply.self
        case .userAdd, .userShow: UserDescription.self
        case .userList: UserListReply.self
        case .userDisable, .userEnable: UserDisabledReply.self
        case .userRemove: UserRemovedReply.self
        case .userPasswd, .passwordChange: PasswordSetReply.self
        case .userUnlock: UserUnlockedReply.self
        case .userRoles: UserRolesReply.self
        case .totpEnrollBegin: EnrolmentReply.self
        case .totpEnrollConfirm: EnrolmentConfirmedReply.self
        case .totpReset: TOTPResetReply.self
        case .recoveryIssue: RecoveryCodesReply.self
        case .roleGrant: RoleGrantReply.self
        case .roleRevoke: RoleRevokeReply.self
        case .roleList: RoleListReply.self
        case .policyReload: PolicyReloadReply.self
        case .policyStatus: PolicyStatusReply.self
        case .auditPublicKey: AuditPublicKeyReply.self
        case .auditRead: AuditReadReply.self
        case .auditTrail: AuditTrailReply.self
        case .auditVerify: nil
        case .auditPrune: AuditPruneReply.self
        case .reviewRecord: ReviewRecordReply.self
        case .inspect: InspectReply.self
        case .terminalAdd: TerminalAddReply.self
        case .terminalList: TerminalListReply.self
        case .terminalRemove: TerminalRemovedReply.self
        }
    }
}
