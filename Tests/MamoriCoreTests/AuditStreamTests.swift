import Foundation
import MamoriCore
import Testing

/// What a hub accepts of a terminal's streamed chain: a batch that continues its copy, each entry
/// hashed and linked as stored, each checkpoint signed by the terminal's key at an entry of it.
/// 32 random bytes: any is an Ed25519 private key.
private func randomKey() -> [UInt8] { (0..<32).map { _ in UInt8.random(in: 0...255) } }

@Suite("the audit stream's check")
struct AuditStreamTests {
    let signer: AuditSigner

    init() throws {
        signer = try AuditSigner(rawKey: randomKey())
    }

    /// Entries `range` of a chain whose hashes link from the genesis.
    static func chain(_ count: Int) -> [AuditChain.StoredEntry] {
        var previous = AuditEntry.genesis
        return (1...Int64(count)).map { sequence in
            let entry = AuditEntry(
                time: Date(timeIntervalSince1970: 1_764_460_800 + Double(sequence)), actorUID: 1000, actor: "sato",
                event: "decision.allow", target: "point.participants", outcome: "success",
                detail: ["action": "asset.read"], terminal: "kametsu-11", zone: "mynumber", policyRevision: "sha256:r")
            let hash = AuditEntry.chainHash(previous: previous, canonicalJSON: entry.canonicalJSON)
            defer { previous = hash }
            return AuditChain.StoredEntry(
                sequence: sequence, timeMillis: AuditEntry.milliseconds(entry.time), actorUID: 1000, actor: "sato",
                event: entry.event, target: entry.target, outcome: entry.outcome, detailJSON: entry.canonicalDetail,
                terminal: entry.terminal, zone: entry.zone, policyRevision: entry.policyRevision,
                previousHash: previous, hash: hash)
        }
    }

    func checkpoint(at entry: AuditChain.StoredEntry, using signer: AuditSigner? = nil) -> AuditCheckpoint {
        (signer ?? self.signer).sign(
            sequence: entry.sequence, headHash: entry.hash, time: entry.time, previous: AuditCheckpoint.genesis)
    }

    /// The hashes a hub would look checkpoints up in: those of `entries`.
    static func hashes(_ entries: ArraySlice<AuditChain.StoredEntry>) -> (Int64) -> [UInt8]? {
        let byNumber = Dictionary(uniqueKeysWithValues: entries.map { ($0.sequence, $0.hash) })
        return { byNumber[$0] }
    }

    @Test("a first batch, then the next one continuing it, with checkpoints at entries held, are kept")
    func continuing() {
        let entries = Self.chain(10)
        #expect(AuditStream.check(Array(entries[0..<5]), continuing: nil) == nil)
        #expect(AuditStream.check(Array(entries[5...]), continuing: (5, entries[4].hash)) == nil)
        #expect(
            AuditStream.check(
                checkpoints: [checkpoint(at: entries[4]), checkpoint(at: entries[9])], publicKey: signer.publicKey,
                firstHeld: 1, hash: Self.hashes(entries[...])) == nil)
        // Signed before the copy's first entry (a pruned trail's older checkpoints): nothing to compare.
        #expect(
            AuditStream.check(
                checkpoints: [checkpoint(at: entries[2])], publicKey: signer.publicKey, firstHeld: 6,
                hash: Self.hashes(entries[5...])) == nil)
    }

    @Test("a batch out of order, with numbers that would overflow or times past 9999, is not well formed")
    func wellFormed() {
        let entries = Self.chain(60).map(AuditTrailExport.Entry.init)
        #expect(AuditStream.wellFormed(entries: Array(entries[10..<20]), checkpoints: []) == nil)
        #expect(AuditStream.wellFormed(entries: [entries[59], entries[54]], checkpoints: []) != nil)
        #expect(AuditStream.wellFormed(entries: [entries[1], entries[1]], checkpoints: []) != nil)
        var overflowing = entries[0]
        overflowing.seq = Int64.min
        #expect(AuditStream.wellFormed(entries: [overflowing], checkpoints: []) != nil)
        overflowing.seq = Int64.max
        #expect(AuditStream.wellFormed(entries: [overflowing], checkpoints: []) != nil)
        var late = entries[0]
        late.timeMillis = Int64.max
        #expect(AuditStream.wellFormed(entries: [late], checkpoints: []) != nil)
        var signed = AuditTrailExport.Checkpoint(checkpoint(at: Self.chain(1)[0]))
        signed.timeMillis = Int64.max
        #expect(AuditStream.wellFormed(entries: [], checkpoints: [signed]) != nil)
        signed.timeMillis = 0
        signed.sequence = -1
        #expect(AuditStream.wellFormed(entries: [], checkpoints: [signed]) != nil)
    }

    @Test("a batch that skips, repeats or replaces what the hub holds is refused, naming the entry")
    func notContinuing() throws {
        let entries = Self.chain(10)
        let skipped = try #require(AuditStream.check(Array(entries[6...]), continuing: (5, entries[4].hash)))
        #expect(skipped.description.contains("Entry 7 does not continue"))
        // Another chain with the same numbers: the terminal's trail was rewritten after entry 5 was held.
        let other = Self.chain(10).map { entry in
            AuditChain.StoredEntry(
                sequence: entry.sequence, timeMillis: entry.timeMillis, actorUID: entry.actorUID, actor: entry.actor,
                event: entry.event, target: entry.target, outcome: entry.outcome, detailJSON: entry.detailJSON,
                terminal: entry.terminal, zone: entry.zone, policyRevision: entry.policyRevision,
                previousHash: [UInt8](repeating: 7, count: 32), hash: entry.hash)
        }
        #expect(AuditStream.check(Array(other[5...]), continuing: (5, entries[4].hash)) != nil)
        // A gap inside the batch.
        let gap = try #require(AuditStream.check([entries[0], entries[2]], continuing: nil))
        #expect(gap.description.contains("Entry 3 does not follow entry 1"))
    }

    @Test("an entry whose contents no longer match its hash is refused")
    func altered() throws {
        var entries = Self.chain(3)
        let second = entries[1]
        entries[1] = AuditChain.StoredEntry(
            sequence: second.sequence, timeMillis: second.timeMillis, actorUID: second.actorUID, actor: "suzuki",
            event: second.event, target: second.target, outcome: second.outcome, detailJSON: second.detailJSON,
            terminal: second.terminal, zone: second.zone, policyRevision: second.policyRevision,
            previousHash: second.previousHash, hash: second.hash)
        let refusal = try #require(AuditStream.check(entries, continuing: nil))
        #expect(refusal.description.contains("Entry 2's hash does not cover its contents"))
    }

    @Test("a checkpoint signed with another key, naming an entry the hub does not hold, or another hash, is refused")
    func checkpoints() throws {
        let entries = Self.chain(6)
        let stranger = try AuditSigner(rawKey: randomKey())
        let forged = try #require(
            AuditStream.check(
                checkpoints: [checkpoint(at: entries[5], using: stranger)], publicKey: signer.publicKey, firstHeld: 1,
                hash: Self.hashes(entries[...])))
        #expect(forged.description.contains("not signed by the terminal's audit key"))
        let ahead = try #require(
            AuditStream.check(
                checkpoints: [checkpoint(at: entries[5])], publicKey: signer.publicKey, firstHeld: 1,
                hash: Self.hashes(entries[0..<3])))
        #expect(ahead.description.contains("names no entry the hub holds"))
        let other = Self.chain(6)
        let mismatched = try #require(
            AuditStream.check(
                checkpoints: [checkpoint(at: other[3])], publicKey: signer.publicKey, firstHeld: 1,
                hash: { _ in [UInt8](repeating: 1, count: 32) }))
        #expect(mismatched.description.contains("does not match that entry"))
    }

    @Test("the hub's acknowledgement holds under its key and under no other, and covers the terminal's name")
    func acknowledgement() throws {
        let head = Self.chain(2)[1]
        let acknowledged = signer.acknowledge(terminal: "kametsu-11", sequence: 2, headHash: head.hash, time: Date())
        #expect(acknowledged.holds(under: signer.publicKey))
        let stranger = try AuditSigner(rawKey: randomKey())
        #expect(!acknowledged.holds(under: stranger.publicKey))
        let renamed = AuditAcknowledgement(
            terminal: "kametsu-12", sequence: 2, headHash: head.hash, time: acknowledged.time,
            signature: acknowledged.signature)
        #expect(!renamed.holds(under: signer.publicKey))
    }
}
