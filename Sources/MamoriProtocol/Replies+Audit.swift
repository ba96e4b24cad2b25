// The replies of the audit trail and the self-inspection.
// Each type's keys are its operation's declared reply fields (WireOperation.replyFields);
// WireTypeTests keeps the two equal.

/// `audit.public_key`.
public struct AuditPublicKeyReply: WireReplyBody, Hashable {
    /// The Ed25519 verifying key, base64.
    public var publicKey: String
    /// Always `ed25519`.
    public var algorithm: String

    /// A reply for an Ed25519 key.
    public init(publicKey: String) {
        self.publicKey = publicKey
        algorithm = "ed25519"
    }

    enum CodingKeys: String, CodingKey {
        case algorithm
        case publicKey = "public_key"
    }
}

/// `audit.read`: a page of entries. Each entry is MamoriCore's `AuditRecord`, carried as JSON
/// here because this module depends on nothing but Foundation.
public struct AuditReadReply: WireReplyBody, Hashable {
    /// The entries, oldest first.
    public var entries: [JSONValue]
    /// Whether a full page came back: ask again after the last seq.
    public var more: Bool
    /// The newest entry's number when the read was made.
    public var lastSequence: Int64

    /// A reply from its parts.
    public init(entries: [JSONValue], more: Bool, lastSequence: Int64) {
        self.entries = entries
        self.more = more
        self.lastSequence = lastSequence
    }

    enum CodingKeys: String, CodingKey {
        case entries, more
        case lastSequence = "last_sequence"
    }
}

/// `audit.trail`: a page of the trail as stored. Entries and checkpoints are MamoriCore's
/// `AuditTrailExport.Entry` and `.Checkpoint`, carried as JSON.
public struct AuditTrailReply: WireReplyBody, Hashable {
    /// The entries as stored, oldest first.
    public var entries: [JSONValue]
    /// Whether a full page came back: ask again after the last seq.
    public var more: Bool
    /// Every signed checkpoint (first page only).
    public var checkpoints: [JSONValue]?
    /// The daemon's verifying key, base64 (first page only).
    public var publicKey: String?

    /// A reply from its parts; `checkpoints` and `publicKey` on the first page only.
    public init(entries: [JSONValue], more: Bool, checkpoints: [JSONValue]? = nil, publicKey: String? = nil) {
        self.entries = entries
        self.more = more
        self.checkpoints = checkpoints
        self.publicKey = publicKey
    }

    enum CodingKeys: String, CodingKey {
        case entries, more, checkpoints
        case publicKey = "public_key"
    }
}

/// `audit.prune`.
public struct AuditPruneReply: WireReplyBody, Hashable {
    /// How many entries were removed.
    public var removed: Int
    /// The last removed entry's number.
    public var prunedThrough: Int64

    /// A reply from its parts.
    public init(removed: Int, prunedThrough: Int64) {
        self.removed = removed
        self.prunedThrough = prunedThrough
    }

    enum CodingKeys: String, CodingKey {
        case removed
        case prunedThrough = "pruned_through"
    }
}

/// `review.record`.
public struct ReviewRecordReply: WireReplyBody, Hashable {
    /// When the review was recorded, ISO 8601.
    public var recorded: String
    /// How many assignments the review covered.
    public var assignments: Int

    /// A reply from its parts.
    public init(recorded: String, assignments: Int) {
        self.recorded = recorded
        self.assignments = assignments
    }
}

/// `inspect`: the report is MamoriCore's `InspectionReport`, carried as JSON.
public struct InspectReply: WireReplyBody, Hashable {
    /// The self-inspection report.
    public var report: JSONValue

    /// A reply from its parts.
    public init(report: JSONValue) {
        self.report = report
    }
}
