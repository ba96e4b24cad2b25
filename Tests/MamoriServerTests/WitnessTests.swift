import Foundation
import MamoriTestSupport
import Testing

/// The trail cut off at its end together with its checkpoints, by a real edit of the SQLite file
/// while mamorid is stopped: the witness outside the database shows it, at start, in `status`,
/// in `audit verify` (through mamorid and offline) and in `inspect`.
@Suite("the audit witness and the chain of checkpoints")
struct WitnessTests {
    static let mamori = Subprocess.product("mamori")

    /// A daemon with a checkpoint every 5 entries and about 20 entries written, then stopped.
    static func stoppedDaemon() throws -> DaemonHarness {
        let daemon = try startDaemon(configuration: "checkpoint-entries: 5")
        let client = try LineClient(path: daemon.socketPath)
        for index in 0..<18 {
            #expect(
                try client.call(["op": "user.add", "user": "w\(index)", "kind": "staff", "organisation": "planning"]).ok
            )
        }
        daemon.stop()
        return daemon
    }

    static func sql(_ daemon: DaemonHarness, _ statements: String) throws {
        let result = try Subprocess.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1]); db.executescript(sys.argv[2]); db.commit()
                """, daemon.stateDirectory + "/mamori.sqlite", statements,
            ])
        #expect(result.status == 0, "\(result.stderr)")
    }

    static var witnessPath: (DaemonHarness) -> String { { $0.stateDirectory + ".witness" } }

    @Test("every signed head goes to the witness file and the log; the checkpoints name each other")
    func witnessKept() throws {
        let daemon = try Self.stoppedDaemon()
        let witness = try String(contentsOfFile: Self.witnessPath(daemon), encoding: .utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(witness.utf8)) as? [String: Any])
        // 18 adds, the start-up verification's… nothing else writes: the head at shutdown is signed.
        let head = try #require(object["sequence"] as? Int)
        #expect(head >= 18)
        #expect(daemon.log.contains("mamori audit head seq=\(head) hash="))
        var info = stat()
        #expect(stat(Self.witnessPath(daemon), &info) == 0 && info.st_mode & 0o077 == 0)
        let result = try Subprocess.run(
            "/usr/bin/python3",
            [
                AuditVerifyTests.pythonVerifier, daemon.stateDirectory + "/mamori.sqlite",
                "--witness", Self.witnessPath(daemon),
            ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    @Test(
        "entries cut off the end with their checkpoints: BROKEN at start, in status, verify, offline verify and inspect"
    )
    func cutWithCheckpoints() throws {
        let daemon = try Self.stoppedDaemon()
        try Self.sql(daemon, "DELETE FROM audit WHERE seq > 10; DELETE FROM checkpoints WHERE audit_seq > 10;")
        // Without the witness the shortened trail still holds on its own: that is the attack.
        let export = try AuditVerifyTests.export(daemon.stateDirectory + "/mamori.sqlite")
        let alone = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", export])
        #expect(alone.status == 0, "\(alone.stdout)")
        let offline = try Subprocess.run(
            Self.mamori,
            [
                "audit", "verify", "--export", export, "--witness", Self.witnessPath(daemon),
            ])
        #expect(offline.status == 1)
        #expect(offline.stdout.contains("but the witness outside the database signed entry"), "\(offline.stdout)")
        let python = try Subprocess.run(
            "/usr/bin/python3",
            [
                AuditVerifyTests.pythonVerifier, daemon.stateDirectory + "/mamori.sqlite",
                "--witness", Self.witnessPath(daemon),
            ])
        #expect(python.status == 1)
        #expect(python.stdout.contains("but the witness outside the database signed entry"), "\(python.stdout)")
        #expect(try daemon.start() == nil)
        let client = try LineClient(path: daemon.socketPath)
        var chain: [String: Any] = [:]
        for _ in 0..<100 {
            chain = try #require(try client.call(["op": "status"])["audit_chain"] as? [String: Any])
            if chain["checked"] as? Bool == true { break }
            usleep(50_000)
        }
        #expect(chain["holds"] as? Bool == false, "\(chain)")
        #expect(daemon.log.contains("BROKEN"))
        let verify = try Subprocess.run(Self.mamori, ["audit", "verify", "--socket", daemon.socketPath])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("but the witness outside the database signed entry"), "\(verify.stdout)")
        let inspect = try Subprocess.run(Self.mamori, ["inspect", "--json", "--socket", daemon.socketPath])
        #expect(inspect.status == 1)
        // By now mamorid has written new entries after the cut, so the witness names a missing one.
        #expect(inspect.stdout.contains("the witness's checkpoint at entry"), "\(inspect.stdout)")
    }

    @Test("the witness removed while checkpoints exist is BROKEN")
    func witnessRemoved() throws {
        let daemon = try Self.stoppedDaemon()
        #expect(unlink(Self.witnessPath(daemon)) == 0)
        #expect(try daemon.start() == nil)
        let verify = try Subprocess.run(Self.mamori, ["audit", "verify", "--socket", daemon.socketPath])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("their witness outside the database is missing"), "\(verify.stdout)")
    }

    @Test("a checkpoint deleted from the middle breaks the chain of checkpoints", arguments: [false, true])
    func middleCheckpoint(withKey: Bool) throws {
        let daemon = try Self.stoppedDaemon()
        try Self.sql(daemon, "DELETE FROM checkpoints WHERE audit_seq = 10;")
        let database = daemon.stateDirectory + "/mamori.sqlite"
        var arguments = ["audit", "verify", "--export", try AuditVerifyTests.export(database)]
        var peer = [AuditVerifyTests.pythonVerifier, database]
        if withKey {
            #expect(try daemon.start() == nil)
            let key = daemon.folder.appendingPathComponent("audit.pub").path
            let exported = try Subprocess.run(Self.mamori, ["audit", "public-key", "--socket", daemon.socketPath])
            try exported.stdout.write(toFile: key, atomically: true, encoding: .utf8)
            daemon.stop()
            arguments += ["--public-key", key]
            peer.append(key)
        }
        let result = try Subprocess.run(Self.mamori, arguments)
        #expect(result.status == 1)
        #expect(result.stdout.contains("does not name the checkpoint stored before it"), "\(result.stdout)")
        let python = try Subprocess.run("/usr/bin/python3", peer)
        #expect(python.status == 1)
        #expect(python.stdout.contains("does not name the checkpoint stored before it"), "\(python.stdout)")
    }
}
