import Foundation
import MamoriCore
import MamoriSQLite

/// The audit trail: appending entries (one transaction each, as the daemon does) against Python's
/// sqlite3 and hashlib doing the same, and verifying a long trail against the auditors' Python
/// verifier (contrib/) on the same file, in the same run. The peer also says whether it agrees.
enum AuditBench {
    static let appended = 20_000
    static let verified = 200_000

    /// The append peer: the same chain, written the same way, by Python's sqlite3 and hashlib.
    static let appendPeer = #"""
        import sqlite3, sys, json, hashlib, time
        path, count = sys.argv[1], int(sys.argv[2])
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, actor_uid INTEGER, actor TEXT NOT NULL, event TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL, terminal TEXT NOT NULL, zone TEXT NOT NULL, policy_revision TEXT NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL)")
        db.commit()
        start = time.perf_counter()
        for i in range(count):
            with db:
                row = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                previous = row[0] if row else bytes(32)
                detail = {"role": "staff", "until": ""}
                entry = {"time": 1764460800000 + i, "actor_uid": 0, "actor": "root", "event": "role.grant", "target": "user%d" % (i % 500), "outcome": "success", "detail": detail, "terminal": "kametsu-mn-01", "zone": "mynumber", "policy_revision": "sha256:bench"}
                canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                digest = hashlib.sha256(previous + canonical.encode()).digest()
                db.execute("INSERT INTO audit (time, actor_uid, actor, event, target, outcome, detail, terminal, zone, policy_revision, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (entry["time"], 0, "root", "role.grant", entry["target"], "success", json.dumps(detail, sort_keys=True, separators=(",", ":")), "kametsu-mn-01", "mynumber", "sha256:bench", previous, digest))
        print(time.perf_counter() - start)
        """#

    /// The verify peer is the auditors' own verifier, run by Debian's python3 (which has
    /// python3-cryptography for the signatures).
    static let verifyPeer = "contrib/mamori-audit-verify.py"

    static func entry(_ index: Int) -> AuditEntry {
        AuditEntry(
            time: Date(timeIntervalSince1970: 1_764_460_800 + Double(index) / 1000), actorUID: 0, actor: "root",
            event: "role.grant", target: "user\(index % 500)", outcome: "success",
            detail: ["role": "staff", "until": ""],
            terminal: "kametsu-mn-01", zone: "mynumber", policyRevision: "sha256:bench"
        )
    }

    static func run(python: String) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mamori-audit-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let signer = try AuditSigner(rawKey: (0..<32).map { UInt8($0) })

        // Appending: one transaction per entry, each reading the head, hashing and inserting.
        let store = try SQLiteStore(path: folder.appendingPathComponent("append.sqlite").path, signer: signer)
        let clock = ContinuousClock()
        let started = clock.now
        for index in 0..<appended { try await store.appendAudit(entry(index)) }
        let mamoriAppend = (clock.now - started) / .seconds(1)
        try await store.close()
        let peerAppend = try runProgram(
            python, ["-c", appendPeer, folder.appendingPathComponent("peer.sqlite").path, "\(appended)"],
            captureOutput: true)
        let peerAppendSeconds = Double(peerAppend.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan
        print("audit append, \(appended) entries, one transaction each (WAL)")
        print(String(format: "  Mamori (GRDB, signs every 100th)  %.0f entries/s", Double(appended) / mamoriAppend))
        print(
            String(format: "  Python sqlite3 + hashlib          %.0f entries/s", Double(appended) / peerAppendSeconds))
        print(String(format: "  ratio Mamori / Python (time): %.2f", mamoriAppend / peerAppendSeconds))
        print()

        // Verifying: a long trail written in big transactions, then checked whole by each.
        let longPath = folder.appendingPathComponent("long.sqlite").path
        let long = try SQLiteStore(path: longPath, signer: signer)
        try await long.appendForBenchmark((0..<verified).map(entry))
        try await long.close()
        let reader = try SQLiteStore(readOnlyPath: longPath)
        var ours: [Double] = []
        var report: AuditReport?
        for _ in 0..<3 {
            let begin = clock.now
            report = try await AuditVerifier.verify(reader, publicKey: signer.publicKey)
            ours.append((clock.now - begin) / .seconds(1))
        }
        let keyFile = folder.appendingPathComponent("audit.pub").path
        try Data(signer.publicKey).base64EncodedString().write(toFile: keyFile, atomically: true, encoding: .utf8)
        let system = "/usr/bin/python3"
        guard FileManager.default.fileExists(atPath: verifyPeer) else {
            print("audit verify: \(verifyPeer) not found (run from the repository's root); no peer")
            return
        }
        var peer: [Double] = []
        var agreement = ""
        for _ in 0..<3 {
            var result: (status: Int32, output: String) = (0, "")
            // The whole process, start included: about 30 ms of Python start against seconds of work.
            peer.append(
                try seconds { result = try runProgram(system, [verifyPeer, longPath, keyFile], captureOutput: true) })
            agreement = "the Python verifier says: " + result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let mamori = Timing(samples: ours).median
        let python = Timing(samples: peer).median
        print(
            "audit verify, \(verified) entries and \(report?.checkpointCount ?? 0) signed checkpoints (3 runs each, both check signatures)"
        )
        print(
            String(
                format: "  Mamori (pages of 5,000)                   %.0f entries/s  (%@)", Double(verified) / mamori,
                human(mamori)))
        print(
            String(
                format: "  contrib/mamori-audit-verify.py (process)  %.0f entries/s  (%@)", Double(verified) / python,
                human(python)))
        print(String(format: "  ratio Mamori / Python (time): %.2f", mamori / python))
        print("  agreement: Mamori found \(report?.problems.count ?? -1) problems; \(agreement)")
        print()
    }
}
