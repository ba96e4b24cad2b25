import Foundation

/// Entries from long ago, which a daemon cannot be asked to write.
public enum AuditHistory {
    /// Writes one `user.add` entry for each of `times` (Unix milliseconds) into the empty trail of
    /// the SQLite database at `database`, chained the way Mamori chains them but computed
    /// independently, in Python (SHA-256 over the previous hash and the sorted-key JSON).
    /// Returns the script's result.
    public static func seed(_ database: String, times: [Int64], terminal: String = "old-terminal") throws
        -> ProcessResult
    {
        try Subprocess.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3, sys, json, hashlib
                db = sqlite3.connect(sys.argv[1]); terminal = sys.argv[2]; previous = bytes(32)
                for number, millis in enumerate(sys.argv[3:]):
                    entry = {"time": int(millis), "actor_uid": 0, "actor": "root", "event": "user.add", "target": "old%d" % number,
                             "outcome": "success", "detail": {}, "terminal": terminal, "zone": "mynumber",
                             "policy_revision": "sha256:old"}
                    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                    digest = hashlib.sha256(previous + canonical.encode()).digest()
                    db.execute("INSERT INTO audit (time, actor_uid, actor, event, target, outcome, detail, terminal, zone, "
                               "policy_revision, prev_hash, hash) VALUES (?, 0, 'root', 'user.add', ?, 'success', '{}', "
                               "?, 'mynumber', 'sha256:old', ?, ?)", (int(millis), entry["target"], terminal, previous, digest))
                    previous = digest
                db.commit()
                """, database, terminal,
            ] + times.map(String.init))
    }
}
