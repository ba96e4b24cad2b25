import Foundation
import MamoriCore
import MamoriTestSupport
import Testing

/// The canonical text each audit hash covers must be what an auditor's Python writes with the
/// standard library: `json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
@Suite("audit entries: canonical JSON and chain hashes against Python")
struct AuditCanonicalTests {
    static let awkward = [
        "mamori:terminals/kametsu-mn-01", #"a "quoted" \ backslash"#, "tab\tnew\nline\rcarriage\u{08}\u{0C}",
        "\u{01}\u{1F}\u{7F}", "徳之島町 マイナンバー利用事務系", "emoji 🔐", "", "</script>",
    ]

    @Test("byte for byte what Python's json.dumps writes, and the same SHA-256 chain link", arguments: awkward)
    func matchesPython(_ text: String) throws {
        let entry = AuditEntry(
            time: Date(timeIntervalSince1970: 1_764_460_800.123), actorUID: text.isEmpty ? nil : 1000, actor: "tanaka",
            event: "decision.deny", target: text, outcome: "denied",
            detail: ["rules": text, "action": "asset.read", "ä": "1", "Z": text],
            terminal: "kametsu-mn-01", zone: "mynumber", policyRevision: "sha256:abc"
        )
        // The entry goes to Python as plain data (JSONSerialization), and comes back canonical.
        let object: [String: Any] = [
            "time": 1_764_460_800_123, "actor_uid": entry.actorUID.map { $0 as Any } ?? NSNull(), "actor": entry.actor,
            "event": entry.event, "target": entry.target, "outcome": entry.outcome, "detail": entry.detail,
            "terminal": entry.terminal, "zone": entry.zone, "policy_revision": entry.policyRevision,
        ]
        let input = try JSONSerialization.data(withJSONObject: object)
        let result = try Subprocess.python(
            """
            import json, sys, hashlib
            entry = json.load(sys.stdin)
            canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            sys.stdout.write(hashlib.sha256(bytes(32) + canonical.encode()).hexdigest() + "\\n" + canonical)
            """, input: Array(input))
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        #expect(lines.count == 2)
        #expect(entry.canonicalJSON == String(lines.last ?? ""))
        let hash = AuditEntry.chainHash(previous: AuditEntry.genesis, canonicalJSON: entry.canonicalJSON)
        #expect(hash.map { String(format: "%02x", $0) }.joined() == String(lines.first ?? ""))
    }

    @Test("a stored entry hashes its detail as stored: the same detail in another form no longer matches")
    func storedDetailAsWritten() {
        let entry = AuditEntry(
            time: Date(timeIntervalSince1970: 1_764_460_800), actorUID: 0, actor: "root", event: "role.grant",
            target: "ito",
            outcome: "success", detail: ["role": "staff", "until": ""], terminal: "t", zone: "mynumber",
            policyRevision: "r"
        )
        let hash = AuditEntry.chainHash(previous: AuditEntry.genesis, canonicalJSON: entry.canonicalJSON)
        func stored(_ detail: String) -> AuditChain.StoredEntry {
            AuditChain.StoredEntry(
                sequence: 1, timeMillis: 1_764_460_800_000, actorUID: 0, actor: "root", event: "role.grant",
                target: "ito",
                outcome: "success", detailJSON: detail, terminal: "t", zone: "mynumber", policyRevision: "r",
                previousHash: AuditEntry.genesis, hash: hash
            )
        }
        #expect(entry.canonicalDetail == #"{"role":"staff","until":""}"#)
        #expect(AuditChain.check(entries: [stored(entry.canonicalDetail)], checkpoints: [], publicKey: nil).holds)
        let respaced = AuditChain.check(
            entries: [stored(#"{"until": "", "role": "staff"}"#)], checkpoints: [], publicKey: nil)
        #expect(respaced.problems == [.altered(sequence: 1)])
        #expect(stored(#"{"until": "", "role": "staff"}"#).entry.detail == ["role": "staff", "until": ""])
    }
}
