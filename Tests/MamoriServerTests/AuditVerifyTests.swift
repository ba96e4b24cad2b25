import Foundation
import MamoriTestSupport
import Testing

/// `mamori audit verify --export` on exports of copies of a real daemon's database, altered
/// directly in SQLite (exported with `mamorid export-audit`) or in the export file itself.
@Suite("mamori audit verify, offline")
struct AuditVerifyTests {
    static let mamori = Subprocess.product("mamori")
    static let mamorid = Subprocess.product("mamorid")

    /// `mamorid export-audit` of `database` into a file beside it; fails the test if it fails.
    static func export(_ database: String) throws -> String {
        let result = try Subprocess.run(mamorid, ["export-audit", "--database", database])
        #expect(result.status == 0, "\(result.stderr)")
        let path = database + ".\(UUID().uuidString.prefix(6)).trail.jsonl"
        try result.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A database with a few entries (user.add, user.passwd, role.grant ×2, user.disable), copied
    /// out of a stopped daemon's state folder.
    func database() throws -> (DaemonHarness, String) {
        try databaseAndKey().0
    }

    /// The same, with the verifying key written to a file (taken from the daemon before it stops).
    func databaseAndKey() throws -> ((DaemonHarness, String), String) {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        let keyFile = daemon.folder.appendingPathComponent("audit.pub").path
        let exported = try Subprocess.run(Self.mamori, ["audit", "public-key", "--socket", daemon.socketPath])
        try exported.stdout.write(toFile: keyFile, atomically: true, encoding: .utf8)
        for request: [String: Any] in [
            ["op": "user.add", "user": "ito"], ["op": "user.passwd", "user": "ito", "password": "audit me"],
            ["op": "role.grant", "user": "ito", "role": "staff"], ["op": "role.grant", "user": "ito", "role": "csirt"],
            ["op": "user.disable", "user": "ito"],
        ] {
            #expect(try client.call(request)["ok"] as? Bool == true)
        }
        daemon.stop()
        return ((daemon, daemon.stateDirectory + "/mamori.sqlite"), keyFile)
    }

    /// Copies the database, runs `sql` on the copy with Python's sqlite3, and verifies it.
    func verify(_ database: String, after sql: String, key: String? = nil) throws -> ProcessResult {
        let copy = database + ".\(UUID().uuidString.prefix(6)).copy"
        // SQLite's backup, as an operator would take it: complete even with a write-ahead log.
        let backup = try Subprocess.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3, sys
                source = sqlite3.connect(sys.argv[1]); target = sqlite3.connect(sys.argv[2]); source.backup(target); target.close()
                """, database, copy,
            ])
        #expect(backup.status == 0, "\(backup.stderr)")
        if !sql.isEmpty {
            let change = try Subprocess.run(
                "/usr/bin/python3",
                [
                    "-c",
                    """
                    import sqlite3, sys
                    db = sqlite3.connect(sys.argv[1]); db.execute("DROP TRIGGER IF EXISTS audit_no_update")
                    db.executescript(sys.argv[2]); db.commit()
                    """, copy, sql,
                ])
            #expect(change.status == 0, "\(change.stderr)")
        }
        let export = try Self.export(copy)
        let result = try Subprocess.run(
            Self.mamori, ["audit", "verify", "--export", export] + (key.map { ["--public-key", $0] } ?? []))
        // The auditors' independent verifier (Python's standard library and python3-cryptography)
        // must reach the same verdict on the same copy, and on its export.
        let peer = try Subprocess.run("/usr/bin/python3", [Self.pythonVerifier, copy] + (key.map { [$0] } ?? []))
        #expect(peer.status == result.status, "mamori: \(result.stdout)\npython: \(peer.stdout)\(peer.stderr)")
        let peerOnExport = try Subprocess.run(
            "/usr/bin/python3", [Self.pythonVerifier, export] + (key.map { [$0] } ?? []))
        #expect(
            peerOnExport.status == result.status,
            "mamori: \(result.stdout)\npython: \(peerOnExport.stdout)\(peerOnExport.stderr)")
        #expect(peerOnExport.stdout == peer.stdout)
        return result
    }

    /// contrib/mamori-audit-verify.py in this checkout.
    static var pythonVerifier: String {
        URL(fileURLWithPath: DaemonHarness.repositoryPolicies).deletingLastPathComponent()
            .appendingPathComponent("contrib/mamori-audit-verify.py").path
    }

    @Test("an untouched chain verifies")
    func intact() throws {
        let (daemon, database) = try database()
        let result = try verify(database, after: "")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.hasPrefix("The audit chain holds: 5 entries, the last is 5.\n"))
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

        let inserted = try verify(
            database,
            after: """
                INSERT INTO audit (seq, time, actor_uid, actor, event, target, outcome, detail, terminal, zone, policy_revision, prev_hash, hash)
                SELECT 6, time, actor_uid, actor, 'role.grant', 'ito', 'success', '{"role":"ciso"}', terminal, zone, policy_revision, hash, hash
                FROM audit WHERE seq = 5
                """)
        #expect(inserted.stdout.contains("BROKEN: entry 6 was altered"))

        let reordered = try verify(
            database,
            after: """
                UPDATE audit SET seq = 100 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 100
                """)
        #expect(reordered.stdout.contains("BROKEN: entry 3 does not follow entry 2"))
        #expect(reordered.stdout.contains("BROKEN: entry 4 does not follow entry 3"))
        #expect(reordered.status == 1)
        _ = daemon
    }

    @Test("signed checkpoints: verified with the key; a cut-off tail, a forged signature and the wrong key are caught")
    func checkpoints() throws {
        let ((daemon, database), key) = try databaseAndKey()
        // The daemon signed the head at shutdown (entry 5, after the public-key request's none).
        let intact = try verify(database, after: "", key: key)
        #expect(intact.status == 0, "\(intact.stdout)\(intact.stderr)")
        #expect(intact.stdout.contains("Checkpoints: 1 signed, the last at entry 5."))
        let unchecked = try verify(database, after: "")
        #expect(
            unchecked.stdout.contains(
                "Checkpoints: 1, the last at entry 5; their signatures were not checked: give --public-key."))

        let cut = try verify(database, after: "DELETE FROM audit WHERE seq = 5", key: key)
        #expect(cut.status == 1)
        #expect(cut.stdout.contains("BROKEN: the trail ends at entry 4, but a checkpoint signed entry 5"))
        // Without the key the checkpoint is still compared (though not trusted): the cut shows too.
        let cutUnsigned = try verify(database, after: "DELETE FROM audit WHERE seq = 5")
        #expect(cutUnsigned.status == 1)
        #expect(cutUnsigned.stdout.contains("BROKEN: the trail ends at entry 4, but a checkpoint signed entry 5"))

        let forged = try verify(database, after: "UPDATE checkpoints SET signature = zeroblob(64)", key: key)
        #expect(forged.stdout.contains("BROKEN: the checkpoint at entry 5 is not signed by this key"))

        let otherKey = daemon.folder.appendingPathComponent("other.pub").path
        try Data(repeating: 7, count: 32).base64EncodedString().write(
            toFile: otherKey, atomically: true, encoding: .utf8)
        let wrongKey = try verify(database, after: "", key: otherKey)
        #expect(wrongKey.status == 1)
        #expect(wrongKey.stdout.contains("BROKEN: the checkpoint at entry 5 is not signed by this key"))

        // Deleting the first entries without pruning leaves a start no checkpoint anchors.
        let headless = try verify(database, after: "DELETE FROM audit WHERE seq <= 2", key: key)
        #expect(headless.status == 1)
        #expect(headless.stdout.contains("BROKEN: the trail starts at entry 3 and no checkpoint anchors entries 1–2"))
    }

    @Test("export writes JSON lines and CSV, filtered by time, with nothing secret")
    func export() throws {
        let ((daemon, _), _) = try databaseAndKey()
        #expect(try daemon.start() == nil)
        let socket = ["--socket", daemon.socketPath]
        let lines = try Subprocess.run(Self.mamori, ["audit", "export"] + socket)
        #expect(lines.status == 0, "\(lines.stderr)")
        let objects = try lines.stdout.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        // The export's own read is recorded after its page is read.
        #expect(
            objects.map { $0["event"] as? String } == [
                "user.add", "user.passwd", "role.grant", "role.grant", "user.disable",
            ])
        #expect(objects.map { $0["seq"] as? Int } == [1, 2, 3, 4, 5])
        #expect(!lines.stdout.contains("audit me"))
        let csv = try Subprocess.run(Self.mamori, ["audit", "export", "--format", "csv"] + socket)
        let rows = csv.stdout.split(separator: "\n")
        #expect(rows.first == "seq,time,actor_uid,actor,event,target,outcome,detail,terminal,zone,policy_revision,hash")
        #expect(rows.count == 7)  // the header, the five entries and the first export's read
        #expect(rows[3].contains(#""{""role"":""staff"",""until"":""""}""#))
        let none = try Subprocess.run(Self.mamori, ["audit", "export", "--since", "2999-01-01"] + socket)
        #expect(none.status == 0 && none.stdout.isEmpty)
        #expect(try Subprocess.run(Self.mamori, ["audit", "export", "--format", "xml"] + socket).status == 64)
        #expect(
            try Subprocess.run(Self.mamori, ["audit", "export", "--format", "trail", "--since", "2026-01-01"] + socket)
                .status == 64)
    }

    @Test("a trail export through mamorid verifies offline with its key; an edited export is caught by both verifiers")
    func trailThroughDaemon() throws {
        let ((daemon, _), key) = try databaseAndKey()
        #expect(try daemon.start() == nil)
        let exported = try Subprocess.run(
            Self.mamori, ["audit", "export", "--format", "trail", "--socket", daemon.socketPath])
        #expect(exported.status == 0, "\(exported.stderr)")
        let lines = exported.stdout.split(separator: "\n").map(String.init)
        let header = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(header["format"] as? String == "mamori-audit-trail-v1")
        #expect(
            header["public_key"] as? String
                == (try String(contentsOfFile: key, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines))
        // The shutdown checkpoint at entry 5, then the five entries and the earlier exports' reads.
        #expect(lines.filter { $0.contains(#""type":"checkpoint""#) }.count == 1)
        #expect(lines.filter { $0.contains(#""type":"entry""#) }.count >= 5)
        #expect(!exported.stdout.contains("audit me"))
        // The export is recorded as one, like audit.read's exports.
        let last = try LineClient(path: daemon.socketPath).call(["op": "audit.read", "last": 1])
        let record = try #require((last["entries"] as? [[String: Any]])?.first, "\(last)")
        #expect(record["event"] as? String == "audit.read")
        #expect(
            record["detail"] as? [String: String] == [
                "purpose": "export", "format": "trail", "entries": "\(lines.count - 2)",
            ])
        daemon.stop()
        let file = daemon.folder.appendingPathComponent("trail.jsonl").path
        try exported.stdout.write(toFile: file, atomically: true, encoding: .utf8)

        let pinned = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", file, "--public-key", key])
        #expect(pinned.status == 0, "\(pinned.stdout)\(pinned.stderr)")
        #expect(pinned.stdout.contains("Checkpoints: 1 signed, the last at entry 5."))
        #expect(!pinned.stdout.contains("key inside the export"))
        // Without the key the auditor holds, the key in the header is not used: a re-signed
        // export would pass with it. The links still hold; the signatures are not vouched for.
        let noKey = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", file, "--json"])
        #expect(noKey.status == 0, "\(noKey.stdout)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(noKey.stdout.utf8)) as? [String: Any])
        #expect(summary["signatures_checked"] as? Bool == false)
        let noKeyText = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", file])
        #expect(noKeyText.stdout.contains("The signatures were not checked: no --public-key was given."))
        let pythonNoKey = try Subprocess.run("/usr/bin/python3", [Self.pythonVerifier, file])
        #expect(pythonNoKey.stdout.contains("the key inside the export proves nothing"), "\(pythonNoKey.stdout)")
        #expect(!pythonNoKey.stdout.contains("signed and checked"))
        let python = try Subprocess.run("/usr/bin/python3", [Self.pythonVerifier, file, key])
        #expect(python.status == 0, "\(python.stdout)\(python.stderr)")

        // The auditor's copy edited: entry 3's target changed in the file.
        let edited = daemon.folder.appendingPathComponent("edited.jsonl").path
        var changed = lines
        let third = try #require(changed.firstIndex { $0.contains(#""seq":3,"#) })
        changed[third] = changed[third].replacingOccurrences(of: #""target":"ito""#, with: #""target":"someone-else""#)
        #expect(changed[third] != lines[third])
        try (changed.joined(separator: "\n") + "\n").write(toFile: edited, atomically: true, encoding: .utf8)
        let caught = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", edited, "--public-key", key])
        #expect(caught.status == 1)
        #expect(caught.stdout.contains("BROKEN: entry 3 was altered"), "\(caught.stdout)")
        let peerCaught = try Subprocess.run("/usr/bin/python3", [Self.pythonVerifier, edited, key])
        #expect(peerCaught.status == 1)
        #expect(peerCaught.stdout.contains("BROKEN: entry 3 was altered"), "\(peerCaught.stdout)")

        // A key given twice: readers differ on which counts, so the auditors' verifier refuses it.
        var doubled = lines
        doubled[third] = doubled[third].replacingOccurrences(
            of: #""target":"ito""#, with: #""target":"ito","target":"x""#)
        let twice = daemon.folder.appendingPathComponent("twice.jsonl").path
        try (doubled.joined(separator: "\n") + "\n").write(toFile: twice, atomically: true, encoding: .utf8)
        let refused = try Subprocess.run("/usr/bin/python3", [Self.pythonVerifier, twice, key])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("the key 'target' appears twice"), "\(refused.stderr)")

        // A line removed from the middle of the export.
        let shortened = daemon.folder.appendingPathComponent("shortened.jsonl").path
        try (lines.enumerated().filter { $0.offset != third }.map(\.element).joined(separator: "\n") + "\n")
            .write(toFile: shortened, atomically: true, encoding: .utf8)
        let gap = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", shortened, "--public-key", key])
        #expect(gap.status == 1)
        #expect(gap.stdout.contains("BROKEN: entry 3 is missing (deleted)"), "\(gap.stdout)")
    }

    @Test("a file that is not an export, or a malformed line, is an error naming file and line")
    func malformedExport() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mamori-export-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let notExport = folder.appendingPathComponent("notes.jsonl").path
        try "{\"seq\":1}\n".write(toFile: notExport, atomically: true, encoding: .utf8)
        let first = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", notExport])
        #expect(first.status == 2)
        #expect(first.stderr.contains("\(notExport):1: not an audit trail export"), "\(first.stderr)")
        let badLine = folder.appendingPathComponent("bad.jsonl").path
        try """
        {"exported":"2026-12-03T00:00:00Z","format":"mamori-audit-trail-v1","type":"header"}
        {"type":"entry","seq":1}

        """.write(toFile: badLine, atomically: true, encoding: .utf8)
        let second = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", badLine])
        #expect(second.status == 2)
        #expect(second.stderr.contains("\(badLine):2: an entry without every field"), "\(second.stderr)")
    }

    @Test("a missing export or database is an error, not a pass")
    func missing() throws {
        let result = try Subprocess.run(Self.mamori, ["audit", "verify", "--export", "/nonexistent/trail.jsonl"])
        #expect(result.status == 2)
        #expect(result.stderr == "mamori: There is no readable export at /nonexistent/trail.jsonl.\n")
        let database = try Subprocess.run(Self.mamorid, ["export-audit", "--database", "/nonexistent/mamori.sqlite"])
        #expect(database.status == 2)
        #expect(database.stderr == "mamorid: There is no readable database at /nonexistent/mamori.sqlite.\n")
        #expect(database.stdout.isEmpty)
    }
}
