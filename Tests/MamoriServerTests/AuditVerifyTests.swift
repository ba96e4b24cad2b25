import Foundation
import MamoriTestSupport
import Testing

/// `mamori audit verify --db` on copies of a real daemon's database, altered directly in SQLite.
@Suite("mamori audit verify, offline")
struct AuditVerifyTests {
    static let mamori = Subprocess.product("mamori")

    /// A database with a few entries (user.add, user.passwd, role.grant ×2, user.disable), copied
    /// out of a stopped daemon's state folder.
    func database() throws -> (DaemonHarness, String) {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        for request: [String: Any] in [
            ["op": "user.add", "user": "ito"], ["op": "user.passwd", "user": "ito", "password": "audit me"],
            ["op": "role.grant", "user": "ito", "role": "staff"], ["op": "role.grant", "user": "ito", "role": "csirt"],
            ["op": "user.disable", "user": "ito"],
        ] {
            #expect(try client.call(request)["ok"] as? Bool == true)
        }
        daemon.stop()
        return (daemon, daemon.stateDirectory + "/mamori.sqlite")
    }

    /// Copies the database, runs `sql` on the copy with Python's sqlite3, and verifies it.
    func verify(_ database: String, after sql: String) throws -> ProcessResult {
        let copy = database + ".\(UUID().uuidString.prefix(6)).copy"
        try FileManager.default.copyItem(atPath: database, toPath: copy)
        if !sql.isEmpty {
            let change = try Subprocess.run("/usr/bin/python3", ["-c", """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1]); db.execute("DROP TRIGGER IF EXISTS audit_no_update")
                db.executescript(sys.argv[2]); db.commit()
                """, copy, sql])
            #expect(change.status == 0, "\(change.stderr)")
        }
        return try Subprocess.run(Self.mamori, ["audit", "verify", "--db", copy])
    }

    @Test("an untouched chain verifies")
    func intact() throws {
        let (daemon, database) = try database()
        let result = try verify(database, after: "")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout == "The audit chain holds: 5 entries, the last is 5.\n")
        _ = daemon
    }

    @Test("altered, deleted, inserted and reordered entries are each named")
    func tampering() throws {
        let (daemon, database) = try database()
        let altered = try verify(database, after: "UPDATE audit SET target = 'someone-else' WHERE seq = 3")
        #expect(altered.status == 1)
        #expect(altered.stdout.contains("BROKEN: entry 3 was altered"))

        let deleted = try verify(database, after: "DELETE FROM audit WHERE seq = 2")
        #expect(deleted.stdout.contains("BROKEN: entry 2 is missing (deleted)"))
        #expect(deleted.stdout.contains("BROKEN: entry 3 does not follow entry 1"))

        let inserted = try verify(database, after: """
            INSERT INTO audit (seq, time, actor_uid, actor, event, target, outcome, detail, terminal, zone, policy_revision, prev_hash, hash)
            SELECT 6, time, actor_uid, actor, 'role.grant', 'ito', 'success', '{"role":"ciso"}', terminal, zone, policy_revision, hash, hash
            FROM audit WHERE seq = 5
            """)
        #expect(inserted.stdout.contains("BROKEN: entry 6 was altered"))

        let reordered = try verify(database, after: """
            UPDATE audit SET seq = 100 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 100
            """)
        #expect(reordered.stdout.contains("BROKEN: entry 3 does not follow entry 2"))
        #expect(reordered.stdout.contains("BROKEN: entry 4 does not follow entry 3"))
        #expect(reordered.status == 1)
        _ = daemon
    }

    @Test("a missing database is an error, not a pass")
    func missing() throws {
        let result = try Subprocess.run(Self.mamori, ["audit", "verify", "--db", "/nonexistent/mamori.sqlite"])
        #expect(result.status == 2)
        #expect(result.stderr == "mamori: There is no readable database at /nonexistent/mamori.sqlite.\n")
    }
}
