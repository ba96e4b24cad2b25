public import Foundation

/// The outcome of checking a whole trail: its links, its start, and its checkpoints.
public struct AuditReport: Sendable {
    /// How many entries were checked.
    public let entryCount: Int
    /// The first entry's sequence number (above 1 when pruned); nil for an empty trail.
    public let firstSequence: Int64?
    /// The last entry's sequence number; nil for an empty trail.
    public let lastSequence: Int64?
    /// The last entry removed by pruning (0 when the trail was never pruned).
    public let prunedThrough: Int64
    /// When that entry was written (its anchoring checkpoint's time).
    public let prunedThroughTime: Date?
    /// When the first remaining entry was written.
    public let oldestEntryTime: Date?
    /// How many checkpoints are stored, whether or not their signatures hold.
    public let checkpointCount: Int
    /// The newest checkpoint.
    public let lastCheckpoint: AuditCheckpoint?
    /// Whether the checkpoints' signatures were checked (a verifying key was given).
    public let signaturesChecked: Bool
    /// Empty when everything holds.
    public let problems: [AuditChain.Problem]

    /// True when no problem was found.
    public var holds: Bool { problems.isEmpty }

    /// The same report with one more problem (one found outside the entries, such as a missing witness).
    public func adding(_ problem: AuditChain.Problem) -> AuditReport {
        AuditReport(
            entryCount: entryCount, firstSequence: firstSequence, lastSequence: lastSequence,
            prunedThrough: prunedThrough,
            prunedThroughTime: prunedThroughTime, oldestEntryTime: oldestEntryTime, checkpointCount: checkpointCount,
            lastCheckpoint: lastCheckpoint, signaturesChecked: signaturesChecked, problems: problems + [problem]
        )
    }
}

/// Checks a trail entry by entry, in stored order, so that a long trail is checked page by page
/// without holding it in memory: every link, a pruned start against the checkpoint anchoring it,
/// and every checkpoint against the entry it names. With a verifying key, each checkpoint's
/// signature too.
///
/// Without a key the checkpoints are only compared, not trusted: whoever can write the file could
/// delete the first entries and add a matching checkpoint, or rewrite the chain and its
/// checkpoints together. Auditors pass the key.
public struct AuditVerifier: Sendable {
    private let checkpoints: [AuditCheckpoint]
    /// Signed hash by sequence, for the checkpoints whose signature holds (all, without a key).
    private var expected: [Int64: [UInt8]] = [:]
    private let signaturesChecked: Bool
    private var problems: [AuditChain.Problem] = []
    private var previous: (sequence: Int64, hash: [UInt8])?
    private var first: (sequence: Int64, time: Date)?
    private var count = 0
    private var prunedThrough: Int64 = 0
    private var prunedThroughTime: Date?
    private var matched: Set<Int64> = []

    /// The newest checkpoint as kept outside the database, if any.
    private let witness: AuditCheckpoint?
    private var witnessMatched = false

    /// - Parameters:
    ///   - checkpoints: the stored checkpoints in the order they were made.
    ///   - publicKey: the raw 32-byte Ed25519 verifying key, or nil to skip signatures.
    ///   - witness: the newest checkpoint as kept outside the database (the witness file); a
    ///     trail shorter than it, or not matching it, is broken.
    public init(checkpoints: [AuditCheckpoint], publicKey: [UInt8]?, witness: AuditCheckpoint? = nil) {
        self.checkpoints = checkpoints
        signaturesChecked = publicKey != nil
        var witness = witness
        if let publicKey, let candidate = witness,
            case .success(let checked) = AuditCheckpoint.validating([candidate], publicKey: publicKey),
            checked.valid.isEmpty
        {
            problems.append(.witnessMismatch(sequence: candidate.sequence))
            witness = nil
        }
        self.witness = witness
        // Each checkpoint names the one made before it; the first kept one may name a pruned one.
        for (earlier, later) in zip(checkpoints, checkpoints.dropFirst()) {
            if let named = later.previous, !constantTimeEquals(named, earlier.digest) {
                problems.append(.checkpointChainBroken(sequence: later.sequence))
            }
        }
        var valid = checkpoints
        if let publicKey {
            switch AuditCheckpoint.validating(checkpoints, publicKey: publicKey) {
            case .success(let good):
                valid = good.valid
                problems += good.forged.map { .badSignature(sequence: $0.sequence) }
            case .failure:
                problems.append(.badKey)
                valid = []
            }
        }
        for checkpoint in valid { expected[checkpoint.sequence] = checkpoint.headHash }
    }

    /// Checks the next entry.
    public mutating func add(_ stored: AuditChain.StoredEntry) {
        count += 1
        var link = AuditEntry.genesis
        if let previous {
            if stored.sequence > previous.sequence + 1 {
                problems.append(.missing(from: previous.sequence + 1, to: stored.sequence - 1))
            }
            link = previous.hash
        } else {
            first = (stored.sequence, stored.time)
            if stored.sequence > 1 {
                // A pruned trail: its first entry links to the hash the anchoring checkpoint signed.
                if let anchor = expected[stored.sequence - 1] {
                    prunedThrough = stored.sequence - 1
                    prunedThroughTime = checkpoints.last { $0.sequence == stored.sequence - 1 }?.time
                    matched.insert(stored.sequence - 1)
                    if !constantTimeEquals(stored.previousHash, anchor) {
                        problems.append(.checkpointMismatch(sequence: stored.sequence - 1))
                    }
                } else {
                    problems.append(.unanchoredStart(first: stored.sequence))
                }
                // Reported above if wrong; not again as a broken link.
                link = stored.previousHash
            }
        }
        if !constantTimeEquals(stored.previousHash, link) {
            problems.append(.brokenLink(sequence: stored.sequence, after: previous?.sequence))
        }
        let recomputed = AuditEntry.chainHash(previous: stored.previousHash, canonicalJSON: stored.canonicalJSON)
        if !constantTimeEquals(recomputed, stored.hash) {
            problems.append(.altered(sequence: stored.sequence))
        }
        if let signed = expected[stored.sequence] {
            matched.insert(stored.sequence)
            if !constantTimeEquals(signed, stored.hash) {
                problems.append(.checkpointMismatch(sequence: stored.sequence))
            }
        }
        if let witness, witness.sequence == stored.sequence {
            witnessMatched = true
            if !constantTimeEquals(witness.headHash, stored.hash) {
                problems.append(.witnessMismatch(sequence: stored.sequence))
            }
        }
        previous = (stored.sequence, stored.hash)
    }

    /// The report, once every entry was added.
    public func finish() -> AuditReport {
        var problems = self.problems
        let last = previous?.sequence ?? 0
        let start = first?.sequence ?? 1
        for sequence in expected.keys.sorted() where !matched.contains(sequence) {
            if sequence > last {
                problems.append(.truncated(last: last, signed: sequence))
            } else if sequence >= start {
                // Inside the trail, yet no entry carries that number: it was deleted.
                problems.append(.checkpointMismatch(sequence: sequence))
            }
            // Older than the anchor: signed before pruning, nothing left to compare.
        }
        if let witness, !witnessMatched {
            if witness.sequence > last {
                problems.append(.shorterThanWitness(last: last, witnessed: witness.sequence))
            } else if witness.sequence >= start {
                problems.append(.witnessMismatch(sequence: witness.sequence))
            }
        }
        return AuditReport(
            entryCount: count, firstSequence: first?.sequence, lastSequence: previous?.sequence,
            prunedThrough: prunedThrough,
            prunedThroughTime: prunedThroughTime, oldestEntryTime: first?.time, checkpointCount: checkpoints.count,
            lastCheckpoint: checkpoints.max { $0.sequence < $1.sequence }, signaturesChecked: signaturesChecked,
            problems: problems
        )
    }
}
