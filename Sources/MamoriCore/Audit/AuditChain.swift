public import Foundation

/// Checks the audit trail's hash chain: every entry's hash covers its contents and the hash of
/// the entry before it, so an altered, deleted, inserted or moved entry breaks a link.
///
/// Removing entries from the end leaves a shorter chain that still links; signed checkpoints
/// (``AuditCheckpoint``) are what reveal that. A trail pruned past its retention starts after a
/// signed checkpoint (the *anchor*) that names the hash its first remaining entry links to.
public enum AuditChain {
    /// One stored entry as the verifier reads it: the columns as stored, the detail as its raw
    /// text (hashed as it is; parsed only when ``entry`` is asked for).
    public struct StoredEntry: Sendable {
        /// Position in the trail, counted from 1 without gaps: a gap means entries were deleted.
        public let sequence: Int64
        /// When it was written, in Unix milliseconds, as stored and hashed.
        public let timeMillis: Int64
        /// The caller's Unix uid; nil (null in the hash) for the daemon's own acts.
        public let actorUID: Int?
        /// Who acted: the caller's login name, or the daemon itself.
        public let actor: String
        /// What happened, as a dotted name such as `auth.failure`.
        public let event: String
        /// What it happened to: a user, role, session or resource.
        public let target: String
        /// `success`, `failure` or `denied`.
        public let outcome: String
        /// The `detail` column exactly as stored.
        public let detailJSON: String
        /// The terminal the act happened on.
        public let terminal: String
        /// The zone of that terminal.
        public let zone: String
        /// The revision of the policy in force (`sha256:…`).
        public let policyRevision: String
        /// The stored link: the hash of the entry before it (``AuditEntry/genesis`` for entry 1).
        public let previousHash: [UInt8]
        /// The stored hash: SHA-256 of ``previousHash`` followed by ``canonicalJSON``, when untouched.
        public let hash: [UInt8]

        /// Takes the columns exactly as stored: nothing is recomputed, so that the verifier judges
        /// what the store holds.
        public init(
            sequence: Int64, timeMillis: Int64, actorUID: Int?, actor: String, event: String, target: String,
            outcome: String,
            detailJSON: String, terminal: String, zone: String, policyRevision: String, previousHash: [UInt8],
            hash: [UInt8]
        ) {
            self.sequence = sequence
            self.timeMillis = timeMillis
            self.actorUID = actorUID
            self.actor = actor
            self.event = event
            self.target = target
            self.outcome = outcome
            self.detailJSON = detailJSON
            self.terminal = terminal
            self.zone = zone
            self.policyRevision = policyRevision
            self.previousHash = previousHash
            self.hash = hash
        }

        /// The text this entry's hash covers.
        public var canonicalJSON: String {
            AuditEntry.canonicalJSON(
                timeMillis: timeMillis, actorUID: actorUID, actor: actor, event: event, target: target,
                outcome: outcome,
                detailJSON: detailJSON, terminal: terminal, zone: zone, policyRevision: policyRevision
            )
        }

        /// ``timeMillis`` as a date.
        public var time: Date { Date(timeIntervalSince1970: Double(timeMillis) / 1000) }

        /// The entry, its detail parsed (an unreadable detail reads as empty).
        public var entry: AuditEntry {
            let detail = (try? JSONDecoder().decode([String: String].self, from: Data(detailJSON.utf8))) ?? [:]
            return AuditEntry(
                time: time, actorUID: actorUID, actor: actor, event: event, target: target, outcome: outcome,
                detail: detail,
                terminal: terminal, zone: zone, policyRevision: policyRevision
            )
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
        /// The trail starts after entry 1 with no checkpoint anchoring its start: its beginning was
        /// deleted, not pruned.
        case unanchoredStart(first: Int64)
        /// A checkpoint does not name the one stored before it: a checkpoint was deleted or replaced.
        case checkpointChainBroken(sequence: Int64)
        /// The trail ends before the entry the witness outside the database signed: entries were
        /// cut off the end together with their checkpoints.
        case shorterThanWitness(last: Int64, witnessed: Int64)
        /// The witness names an entry whose hash is now different, or its signature does not hold.
        case witnessMismatch(sequence: Int64)
        /// The trail has signed checkpoints but their witness outside the database is gone or unreadable.
        case witnessMissing(signed: Int64)
        /// A hub's copy of a terminal's chain ends before the entry the hub acknowledged to it.
        case shorterThanAcknowledged(last: Int64, acknowledged: Int64)

        /// One sentence for the operator or auditor: what is wrong, where, and what was likely done.
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
            case .unanchoredStart(let first):
                "the trail starts at entry \(first) and no checkpoint anchors entries 1–\(first - 1): "
                    + "they were deleted, not pruned"
            case .checkpointChainBroken(let sequence):
                "the checkpoint at entry \(sequence) does not name the checkpoint stored before it: one was deleted or replaced"
            case .shorterThanWitness(let last, let witnessed):
                "the trail ends at entry \(last), but the witness outside the database signed entry \(witnessed): "
                    + "entries were cut off the end with their checkpoints"
            case .witnessMismatch(let sequence):
                "the witness's checkpoint at entry \(sequence) does not match the trail or its signature does not hold"
            case .witnessMissing(let signed):
                "checkpoints up to entry \(signed) are signed, but their witness outside the database is missing or "
                    + "unreadable: it was removed, and the trail may have been cut with it"
            case .shorterThanAcknowledged(let last, let acknowledged):
                "the hub's copy ends at entry \(last), but the hub acknowledged entry \(acknowledged) to the terminal: "
                    + "entries were deleted from the hub's database"
            }
        }
    }
}

extension AuditChain {
    /// Checks a whole trail held in memory (see ``AuditVerifier``).
    public static func check(
        entries: [StoredEntry], checkpoints: [AuditCheckpoint], publicKey: [UInt8]?, witness: AuditCheckpoint? = nil
    ) -> AuditReport {
        var verifier = AuditVerifier(checkpoints: checkpoints, publicKey: publicKey, witness: witness)
        for entry in entries { verifier.add(entry) }
        return verifier.finish()
    }
}

extension AuditReport {
    /// The report as it travels (the daemon's `audit.verify` reply) and as `--json` prints it.
    public struct Summary: Codable, Sendable, Hashable {
        /// True when no problem was found.
        public var holds: Bool
        /// How many entries were checked.
        public var entries: Int
        /// The first entry's sequence number; absent for an empty trail.
        public var firstSequence: Int64?
        /// The last entry's sequence number; absent for an empty trail.
        public var lastSequence: Int64?
        /// The last entry removed by pruning (0 when the trail was never pruned).
        public var prunedThrough: Int64
        /// ISO 8601.
        public var oldestEntry: String?
        /// How many checkpoints are stored.
        public var checkpoints: Int
        /// The entry the newest checkpoint signed.
        public var lastCheckpointSequence: Int64?
        /// ISO 8601.
        public var lastCheckpointTime: String?
        /// Whether checkpoint signatures were checked; when false the checkpoints were only
        /// compared, not trusted, and the verdict proves less.
        public var signaturesChecked: Bool
        /// One sentence each, saying what is wrong and where.
        public var problems: [String]
        /// At a hub: each member terminal's chain as the hub holds it; ``holds`` is false when
        /// any of them does not hold. Absent elsewhere.
        public var terminals: [TerminalChain]?

        enum CodingKeys: String, CodingKey {
            case holds, entries, checkpoints, problems, terminals
            case firstSequence = "first_sequence"
            case lastSequence = "last_sequence"
            case prunedThrough = "pruned_through"
            case oldestEntry = "oldest_entry"
            case lastCheckpointSequence = "last_checkpoint_sequence"
            case lastCheckpointTime = "last_checkpoint_time"
            case signaturesChecked = "signatures_checked"
        }

        /// The summary of a chain that could not be read at all, with why.
        public static func missing(_ problems: [String]) -> Summary {
            Summary(
                holds: false, entries: 0, prunedThrough: 0, checkpoints: 0, signaturesChecked: false,
                problems: problems)
        }

        /// What a person reads: the verdict, then each problem; at a hub, then each terminal's chain.
        public var lines: [String] {
            ownLines + (terminals ?? []).flatMap(\.lines)
        }

        private var ownLines: [String] {
            guard problems.isEmpty else {
                return problems.map { "BROKEN: \($0)" } + ["\(problems.count) problem(s) in \(entries) entries."]
            }
            var lines = [
                "The audit chain holds: \(entries) entries, the last is \(lastSequence.map { "\($0)" } ?? "none")."
            ]
            if prunedThrough > 0 {
                lines.append(
                    "Entries 1–\(prunedThrough) were pruned; the trail starts at \(prunedThrough + 1), from \(oldestEntry ?? "?")."
                )
            }
            if checkpoints > 0 {
                let last = lastCheckpointSequence.map { "\($0)" } ?? "none"
                lines.append(
                    signaturesChecked
                        ? "Checkpoints: \(checkpoints) signed, the last at entry \(last)."
                        : "Checkpoints: \(checkpoints), the last at entry \(last); their signatures were not checked: give --public-key."
                )
            }
            return lines
        }
    }

    /// A member terminal's chain as its hub holds it (``Summary/terminals``).
    public struct TerminalChain: Codable, Sendable, Hashable {
        /// The terminal's name.
        public var terminal: String
        /// When it joined (ISO 8601): which of the name's terminals this is.
        public var joined: String
        /// When the hub last kept a batch of it (ISO 8601); absent before the first.
        public var received: String?
        /// The copy verified with the terminal's key and the head the hub's chain witnessed.
        public var summary: Summary

        /// A terminal's chain from its parts.
        public init(terminal: String, joined: String, received: String?, summary: Summary) {
            self.terminal = terminal
            self.joined = joined
            self.received = received
            self.summary = summary
        }

        /// What a person reads: one line when it holds, one for each problem when not.
        public var lines: [String] {
            let name = "Terminal \(terminal) (joined \(joined))"
            guard summary.problems.isEmpty else { return summary.problems.map { "\(name): BROKEN: \($0)" } }
            return [
                "\(name): holds: \(summary.entries) entries, the last is \(summary.lastSequence.map { "\($0)" } ?? "none")"
                    + (received.map { ", received \($0)." } ?? ".")
            ]
        }
    }

    /// The report as it travels and as `--json` prints it: times in ISO 8601, problems as sentences.
    public var summary: Summary {
        Summary(
            holds: holds, entries: entryCount, firstSequence: firstSequence, lastSequence: lastSequence,
            prunedThrough: prunedThrough,
            oldestEntry: oldestEntryTime?.formatted(.iso8601), checkpoints: checkpointCount,
            lastCheckpointSequence: lastCheckpoint?.sequence,
            lastCheckpointTime: lastCheckpoint?.time.formatted(.iso8601),
            signaturesChecked: signaturesChecked, problems: problems.map(\.description)
        )
    }
}
