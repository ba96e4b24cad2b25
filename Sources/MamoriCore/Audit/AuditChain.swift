/// Checks the audit trail's hash chain: every entry's hash covers its contents and the hash of
/// the entry before it, so an altered, deleted, inserted or moved entry breaks a link.
///
/// Removing entries from the end leaves a shorter chain that still links; signed checkpoints
/// (to come) are what reveal that.
public enum AuditChain {
    /// One stored entry as the verifier reads it.
    public struct StoredEntry: Sendable {
        public let sequence: Int64
        public let entry: AuditEntry
        public let previousHash: [UInt8]
        public let hash: [UInt8]

        public init(sequence: Int64, entry: AuditEntry, previousHash: [UInt8], hash: [UInt8]) {
            self.sequence = sequence
            self.entry = entry
            self.previousHash = previousHash
            self.hash = hash
        }
    }

    /// What is wrong, and where.
    public enum Problem: Sendable, Hashable, CustomStringConvertible {
        /// The entry's contents no longer match its hash.
        case altered(sequence: Int64)
        /// Sequence numbers jump: the entries between were deleted.
        case missing(from: Int64, to: Int64)
        /// The entry does not link to the one before it: an entry was inserted, deleted or moved.
        case brokenLink(sequence: Int64, after: Int64?)
        /// A checkpoint's signature does not hold under the verifying key.
        case badSignature(sequence: Int64)
        /// A signed checkpoint names an entry whose hash is now different, or that is gone.
        case checkpointMismatch(sequence: Int64)
        /// The trail ends before an entry a checkpoint signed: entries were cut off the end.
        case truncated(last: Int64, signed: Int64)
        /// The verifying key is not an Ed25519 public key.
        case badKey

        public var description: String {
            switch self {
            case .altered(let sequence):
                "entry \(sequence) was altered: its contents no longer match its hash"
            case .missing(let from, let to):
                from == to ? "entry \(from) is missing (deleted)" : "entries \(from)–\(to) are missing (deleted)"
            case .brokenLink(let sequence, let after):
                "entry \(sequence) does not follow \(after.map { "entry \($0)" } ?? "the start of the trail"): "
                    + "an entry was inserted, deleted or moved here"
            case .badSignature(let sequence):
                "the checkpoint at entry \(sequence) is not signed by this key: forged, or the wrong key"
            case .checkpointMismatch(let sequence):
                "the checkpoint at entry \(sequence) does not match the trail: the chain was rewritten up to there"
            case .truncated(let last, let signed):
                "the trail ends at entry \(last), but a checkpoint signed entry \(signed): entries were cut off the end"
            case .badKey:
                "the verifying key is not an Ed25519 public key"
            }
        }
    }

    /// Every problem in `entries` (in stored order); empty when the chain holds.
    public static func verify(_ entries: [StoredEntry], startingFrom genesis: [UInt8] = AuditEntry.genesis) -> [Problem] {
        var problems: [Problem] = []
        var previous: StoredEntry?
        for stored in entries {
            if let previous, stored.sequence > previous.sequence + 1 {
                problems.append(.missing(from: previous.sequence + 1, to: stored.sequence - 1))
            }
            let expected = previous?.hash ?? genesis
            if !constantTimeEquals(stored.previousHash, expected) {
                problems.append(.brokenLink(sequence: stored.sequence, after: previous?.sequence))
            }
            let recomputed = AuditEntry.chainHash(previous: stored.previousHash, canonicalJSON: stored.entry.canonicalJSON)
            if !constantTimeEquals(recomputed, stored.hash) {
                problems.append(.altered(sequence: stored.sequence))
            }
            previous = stored
        }
        return problems
    }
}
