import Foundation
import MamoriTestSupport
import Testing

/// The policy's `session: idle-minutes` (15 in the town policy): a session not used for that long
/// lapses, is closed and recorded; use, saved across a restart, and authenticating again (a
/// screen unlock) keep it alive. Idle time is made by moving `opened_at` back in the SQLite file
/// while the daemon is stopped.
@Suite("sessions lapse when idle")
struct SessionIdleTests {
    func openSession(_ client: LineClient, code: String) throws -> String {
        let authenticated = try client.call(["op": "authenticate", "user": "mori", "password": "mori password", "code": code])
        let ticket = try #require(authenticated["ticket"] as? String, "\(authenticated)")
        return try #require(try client.call(["op": "session.open", "ticket": ticket, "service": "login"])["session"] as? String)
    }

    func use(_ client: LineClient, _ session: String) throws -> [String: Any] {
        try client.call(["op": "authorize", "session": session, "action": "mamori.status", "resource": "mamori:status"])
    }

    @Test("an unused session lapses; a used one survives a restart; authenticating again revives one")
    func idle() throws {
        let daemon = try startDaemon()
        var client = try LineClient(path: daemon.socketPath)
        let seed = try enrol(client, user: "mori", password: "mori password", roles: ["staff"])
        let codes = try #require(try client.call(["op": "recovery.issue", "user": "mori", "count": 3])["codes"] as? [String])
        let unused = try openSession(client, code: try oathCode(seed, offset: 30))
        let used = try openSession(client, code: codes[0])
        let revived = try openSession(client, code: codes[1])
        #expect(try use(client, used).ok)
        #expect(try use(client, revived).ok)
        daemon.stop()

        let database = daemon.stateDirectory + "/mamori.sqlite"
        let twentyMinutesAgo = Int64(Date().timeIntervalSince1970 * 1000) - 20 * 60_000
        let moved = try Subprocess.run("/usr/bin/python3", ["-c", """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1]); old = int(sys.argv[2])
            saved = db.execute("SELECT last_active_at FROM sessions WHERE id = ?", (sys.argv[3],)).fetchone()[0]
            db.execute("UPDATE sessions SET opened_at = ?", (old,))
            db.execute("UPDATE sessions SET last_active_at = ? WHERE id = ?", (old, sys.argv[4]))
            db.commit(); print(saved)
            """, database, "\(twentyMinutesAgo)", used, revived])
        #expect(moved.status == 0, "\(moved.stderr)")
        // The last use was saved at the stop.
        #expect((Int64(moved.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > twentyMinutesAgo + 19 * 60_000)

        #expect(try daemon.start() == nil, "\(daemon.log)")
        client = try LineClient(path: daemon.socketPath)
        let lapsed = try use(client, unused)
        #expect(lapsed.errorCode == "not_found")
        #expect(lapsed.errorMessage?.contains("lapsed after 15 idle minutes") == true)
        #expect(try use(client, unused).errorCode == "not_found")
        #expect(try use(client, used).ok)
        // `revived` is as stale as `unused` was; authenticating again (a screen unlock) revives it.
        let unlocked = try client.call(["op": "authenticate", "user": "mori", "password": "mori password", "code": codes[2]])
        #expect(unlocked.ok, "\(unlocked)")
        #expect(try use(client, revived).ok)
        let trail = try Subprocess.run(Subprocess.product("mamori"), ["audit", "export", "--socket", daemon.socketPath])
        let closes = trail.stdout.split(separator: "\n").filter { $0.contains(#""event":"session.close""#) }
        #expect(closes.count == 1)
        #expect(closes.first?.contains(#""reason":"idle""#) == true && closes.first?.contains(unused) == true)
        #expect(closes.first?.contains(#""actor":"mamorid""#) == true)
    }
}
