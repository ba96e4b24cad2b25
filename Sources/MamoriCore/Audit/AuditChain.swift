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

        public var description: String {
            switch self {
            case .altered(let sequence):
                "entry \(sequence) was altered: its contents no longer match its hash"
            case .missing(let from, let to):
                from == to ? "entry \(from) is missing (deleted)" : "entries \(from)–\(to) are missing (deleted)"
            case .brokenLink(let sequence, let after):
                "entry \(sequence) does not follow \(after.map { "entry \($0)" } ?? "the start of the trail"): "
                    + "an entry was inserted, deleted or moved here"
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
