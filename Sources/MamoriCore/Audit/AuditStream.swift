internal import Crypto
public import Foundation

/// A member terminal's audit chain as it reaches its hub (docs/town.md, "The audit trail of a
/// town"): the terminal sends its entries exactly as stored, in order, with the checkpoints it
/// signed among them; the hub checks that each batch continues the copy it holds, keeps it, and
/// answers with an ``AuditAcknowledgement`` signed with its own key.
///
/// The hub is the witness outside the terminal: once an entry is acknowledged, cutting it from the
/// terminal's database (with every checkpoint and the witness file) is seen at the next batch,
/// which no longer continues the hub's copy, and by `audit verify` at the hub.
public enum AuditStream {
    /// Why a batch is refused: one sentence naming the entry.
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        /// The sentence.
        public let description: String

        /// A refusal saying `description`.
        public init(_ description: String) {
            self.description = description
        }
    }

    /// The most entries one batch may carry.
    public static let maximumEntries = 1000
    /// The most checkpoints one batch may carry.
    public static let maximumCheckpoints = 100
    /// The latest time an entry or checkpoint may carry (the end of the year 9999, in ms): later
    /// ones are not well formed, and could not be turned into dates and back.
    static let latestMillis: Int64 = 253_402_300_799_999
    /// Above any sequence number a real trail reaches; keeps arithmetic on sequences from overflowing.
    static let largestSequence: Int64 = 1 << 53

    /// Checks what a batch is made of before anything is done with it: sequence numbers from 1,
    /// consecutive and ascending; times within the years 1970–9999; within the limits. Nil when
    /// it is well formed.
    public static func wellFormed(
        entries: [AuditTrailExport.Entry], checkpoints: [AuditTrailExport.Checkpoint]
    ) -> Refusal? {
        guard entries.count <= maximumEntries, checkpoints.count <= maximumCheckpoints else {
            return Refusal(
                "A batch carries at most \(maximumEntries) entries and \(maximumCheckpoints) checkpoints.")
        }
        let times = entries.map(\.timeMillis) + checkpoints.map(\.timeMillis)
        guard times.allSatisfy({ (0...latestMillis).contains($0) }) else {
            return Refusal("A time in the batch is not one between 1970 and 9999.")
        }
        let first = entries.first?.seq ?? 1
        guard checkpoints.allSatisfy({ (0..<largestSequence).contains($0.sequence) }),
            (1..<largestSequence - Int64(maximumEntries)).contains(first),
            entries.enumerated().allSatisfy({ $0.element.seq == first + Int64($0.offset) })
        else {
            return Refusal("The batch's sequence numbers are not consecutive numbers from 1 on.")
        }
        return nil
    }

    /// Checks that `entries` (well formed) continue `head`, the last entry held of this terminal
    /// (nil when none is held yet, and then the batch may start anywhere, as a pruned trail does),
    /// and that each one's hash covers it and links to the one before.
    ///
    /// - Returns: nil when the entries may be kept.
    public static func check(
        _ entries: [AuditChain.StoredEntry], continuing head: (sequence: Int64, hash: [UInt8])?
    ) -> Refusal? {
        guard let first = entries.first else { return nil }
        if let head, first.sequence != head.sequence &+ 1 || !constantTimeEquals(first.previousHash, head.hash) {
            return Refusal(
                "Entry \(first.sequence) does not continue the copy the hub holds, which ends at entry \(head.sequence): "
                    + "the terminal's trail was altered, cut or replaced after the hub acknowledged it.")
        }
        var previous = (sequence: first.sequence - 1, hash: first.previousHash)
        for entry in entries {
            guard entry.sequence == previous.sequence + 1, constantTimeEquals(entry.previousHash, previous.hash) else {
                return Refusal("Entry \(entry.sequence) does not follow entry \(previous.sequence) in the batch.")
            }
            let recomputed = AuditEntry.chainHash(previous: entry.previousHash, canonicalJSON: entry.canonicalJSON)
            guard constantTimeEquals(recomputed, entry.hash) else {
                return Refusal("Entry \(entry.sequence)'s hash does not cover its contents.")
            }
            previous = (entry.sequence, entry.hash)
        }
        return nil
    }

    /// Checks checkpoints sent with a batch: each signed by `publicKey`, each naming an entry with
    /// the hash it has (`hash(sequence)`: in the batch or in the hub's copy), or one older than
    /// the copy's first entry (`firstHeld`; signed before a pruning, nothing left to compare).
    ///
    /// - Returns: nil when they may be kept.
    public static func check(
        checkpoints: [AuditCheckpoint], publicKey: [UInt8], firstHeld: Int64?, hash: (Int64) -> [UInt8]?
    ) -> Refusal? {
        guard case .success(let validation) = AuditCheckpoint.validating(checkpoints, publicKey: publicKey) else {
            return Refusal("The terminal's audit verifying key is not an Ed25519 key.")
        }
        if let forged = validation.forged.first {
            return Refusal("The checkpoint at entry \(forged.sequence) is not signed by the terminal's audit key.")
        }
        for checkpoint in checkpoints {
            if let held = hash(checkpoint.sequence) {
                guard constantTimeEquals(held, checkpoint.headHash) else {
                    return Refusal(
                        "The checkpoint at entry \(checkpoint.sequence) does not match that entry as the hub holds it.")
                }
            } else if checkpoint.sequence >= (firstHeld ?? 0) {
                return Refusal("The checkpoint at entry \(checkpoint.sequence) names no entry the hub holds.")
            }
        }
        return nil
    }
}

/// The hub's signed statement "of terminal T, I hold the chain up to entry N, whose hash is H":
/// what a terminal receives for each batch it streams.
public struct AuditAcknowledgement: Sendable, Hashable {
    /// The terminal whose chain it is, as the hub's register names it.
    public let terminal: String
    /// The last entry the hub holds.
    public let sequence: Int64
    /// That entry's hash.
    public let headHash: [UInt8]
    /// When the hub acknowledged it.
    public let time: Date
    /// Ed25519 over ``message`` with the hub's audit key.
    public let signature: [UInt8]

    /// An acknowledgement as received; its signature is not checked here (``holds(under:)``).
    public init(terminal: String, sequence: Int64, headHash: [UInt8], time: Date, signature: [UInt8]) {
        self.terminal = terminal
        self.sequence = sequence
        self.headHash = headHash
        self.time = time
        self.signature = signature
    }

    /// The bytes signed: a fixed label, the terminal's name, the sequence, the head hash in hex
    /// and the time in milliseconds.
    public var message: [UInt8] {
        let hex = AuditWitness.hex(headHash)
        return Array(
            "mamori-audit-acknowledgement-v1\n\(terminal)\n\(sequence)\n\(hex)\n\(AuditEntry.milliseconds(time))".utf8)
    }

    /// Whether the signature holds under the hub's verifying key (`mamori audit public-key` at the hub).
    public func holds(under publicKey: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

extension AuditSigner {
    /// Acknowledges that the chain of `terminal` is held up to entry `sequence` with hash `headHash`.
    public func acknowledge(terminal: String, sequence: Int64, headHash: [UInt8], time: Date) -> AuditAcknowledgement {
        let unsigned = AuditAcknowledgement(
            terminal: terminal, sequence: sequence, headHash: headHash, time: time, signature: [])
        return AuditAcknowledgement(
            terminal: terminal, sequence: sequence, headHash: headHash, time: time,
            signature: signature(for: unsigned.message))
    }
}

extension AuditCheckpoint {
    /// The checkpoint as an audit entry's detail (the witness file's field names, as text), so
    /// that a hub's chain can hold a terminal's signed head and give it back (``init(detail:)``).
    public var detail: [String: String] {
        var detail = [
            "sequence": "\(sequence)", "head_hash": AuditWitness.hex(headHash),
            "time_ms": "\(AuditEntry.milliseconds(time))", "signature": Data(signature).base64EncodedString(),
        ]
        if let previous { detail["previous"] = AuditWitness.hex(previous) }
        return detail
    }

    /// The checkpoint an entry's ``detail`` holds; nil when it holds none.
    public init?(detail: [String: String]) {
        guard let sequence = detail["sequence"].flatMap({ Int64($0) }),
            let head = detail["head_hash"].flatMap(AuditWitness.unhex),
            let time = detail["time_ms"].flatMap({ Int64($0) }),
            let signature = detail["signature"].flatMap({ Data(base64Encoded: $0) })
        else { return nil }
        var previous: [UInt8]?
        if let text = detail["previous"] {
            guard let bytes = AuditWitness.unhex(text) else { return nil }
            previous = bytes
        }
        self.init(
            sequence: sequence, headHash: head, time: Date(timeIntervalSince1970: Double(time) / 1000),
            previous: previous, signature: Array(signature))
    }
}
