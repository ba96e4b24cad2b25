import Foundation
import MamoriTestSupport
import Testing

/// The audit trail through the daemon: verify, tail, export, prune, and timed checkpoints.
@Suite("audit trail through mamorid")
struct AuditTrailTests {
    static let mamori = Subprocess.product("mamori")

    func mamori(_ daemon: DaemonHarness, _ arguments: [String]) throws -> ProcessResult {
        try Subprocess.run(Self.mamori, arguments + ["--socket", daemon.socketPath])
    }

    /// Writes entries from long ago into an empty trail (``AuditHistory/seed(_:times:terminal:)``).
    func seedHistory(_ database: String, times: [Int64]) throws {
        let result = try AuditHistory.seed(database, times: times)
        #expect(result.status == 0, "\(result.stderr)")
    }

    /// Sets the policy's audit retention and reloads it.
    func setRetention(_ daemon: DaemonHarness, years: Int) throws {
        let path = daemon.policyDirectory + "/settings.yaml"
        let text = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(
                of: #"retention-years: \d+"#, with: "retention-years: \(years)", options: .regularExpression)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try mamori(daemon, ["policy", "reload"]).status == 0)
    }

    func inspectionStatus(_ daemon: DaemonHarness, _ check: String) throws -> String? {
        let result = try mamori(daemon, ["inspect", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let findings = try #require(report["findings"] as? [[String: Any]])
        return findings.first { $0["check"] as? String == check }?["status"] as? String
    }

    // 2010-01-01 and 2021-01-01, midnight in Tokyo.
    static let year2010: Int64 = 1_262_271_600_000
    static let year2021: Int64 = 1_609_426_800_000

    @Test(
        "prune: refused within retention; past it, a signed checkpoint anchors the rest and verify passes, online and offline"
    )
    func prune() throws {
        let daemon = try startDaemon()
        daemon.stop()
        let database = daemon.stateDirectory + "/mamori.sqlite"
        try seedHistory(database, times: [Self.year2010, Self.year2010 + 1000, Self.year2021, Self.year2021 + 1000])
        #expect(try daemon.start() == nil, "\(daemon.log)")

        // Python's chain and Mamori's agree.
        let before = try mamori(daemon, ["audit", "verify"])
        #expect(before.status == 0, "\(before.stdout)")
        #expect(before.stdout.hasPrefix("The audit chain holds: 4 entries, the last is 4.\n"))

        // Export through mamorid, filtered by time on its side.
        let window = try mamori(
            daemon, ["audit", "export", "--since", "2020-01-01", "--until", "2022-01-01", "--format", "csv"])
        #expect(window.status == 0, "\(window.stderr)")
        #expect(window.stdout.split(separator: "\n").dropFirst().map { $0.prefix(2) } == ["3,", "4,"])

        let refused = try mamori(daemon, ["audit", "prune", "--before", "2024-01-01"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("The policy keeps the audit trail for 7 years: only entries written before 20"))

        let pruned = try mamori(daemon, ["audit", "prune", "--before", "2015-01-01"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(pruned.stdout == "Pruned 2 entries, through entry 2; a signed checkpoint anchors the rest.\n")

        let after = try mamori(daemon, ["audit", "verify"])
        #expect(after.status == 0, "\(after.stdout)")
        #expect(after.stdout.contains("Entries 1–2 were pruned; the trail starts at 3, from 2020-12-31T15:00:00Z."))

        // Only an entitled user may prune: nobody (uid 65534) has no Mamori account.
        let asNobody = try callAsNobody(
            socket: daemon.socketPath, lines: [#"{"op":"audit.prune","before":"2015-01-01T00:00:00Z"}"#])
        #expect(asNobody.first?.contains(#""code":"denied""#) == true)

        // The prune is itself in the trail, and the export starts where the trail now starts.
        let export = try mamori(daemon, ["audit", "export"])
        let events = export.stdout.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).flatMap { $0["seq"] as? Int }
        }
        #expect(events.first == 3)
        #expect(export.stdout.contains(#""event":"audit.prune""#))
        #expect(export.stdout.contains(#""pruned_through":"2""#))

        // Offline, with the key, on a copy: the pruned trail verifies; without its anchor it does not.
        let keyFile = daemon.folder.appendingPathComponent("audit.pub").path
        try mamori(daemon, ["audit", "public-key"]).stdout.write(toFile: keyFile, atomically: true, encoding: .utf8)
        // Under a 1-year retention the 2021 entries may go too; back at 7 years the check fails,
        // since entries the policy keeps are gone.
        try setRetention(daemon, years: 1)
        #expect(
            try mamori(daemon, ["audit", "prune", "--before", "2022-01-01"]).stdout.hasPrefix(
                "Pruned 2 entries, through entry 4;"))
        #expect(try inspectionStatus(daemon, "audit-retention") == "pass")
        try setRetention(daemon, years: 7)
        #expect(try inspectionStatus(daemon, "audit-retention") == "fail")
        #expect(try inspectionStatus(daemon, "audit-integrity") == "pass")
        daemon.stop()

        let copy = database + ".copy"
        try FileManager.default.copyItem(atPath: database, toPath: copy)
        let offline = try Subprocess.run(
            Self.mamori, ["audit", "verify", "--export", try AuditVerifyTests.export(copy), "--public-key", keyFile])
        #expect(offline.status == 0, "\(offline.stdout)")
        #expect(offline.stdout.contains("Entries 1–4 were pruned; the trail starts at 5"))
        let peer = try Subprocess.run("/usr/bin/python3", [AuditVerifyTests.pythonVerifier, copy, keyFile])
        #expect(peer.status == 0, "\(peer.stdout)\(peer.stderr)")
        #expect(peer.stdout.contains("(entries 1-4 pruned)"))
        let unanchor = try Subprocess.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1]); db.execute("DELETE FROM checkpoints WHERE audit_seq = 4"); db.commit()
                """, copy,
            ])
        #expect(unanchor.status == 0)
        let broken = try Subprocess.run(
            Self.mamori, ["audit", "verify", "--export", try AuditVerifyTests.export(copy), "--public-key", keyFile])
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("BROKEN: the trail starts at entry 5 and no checkpoint anchors entries 1–4"))
        let peerBroken = try Subprocess.run("/usr/bin/python3", [AuditVerifyTests.pythonVerifier, copy, keyFile])
        #expect(peerBroken.status == 1)
        #expect(
            peerBroken.stdout.contains("BROKEN: the trail starts at entry 5 with no checkpoint anchoring entries 1-4"))
    }

    @Test("tail shows the newest entries; tail -f shows new ones as they come, recording the read once")
    func tail() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        for request: [String: Any] in [
            ["op": "user.add", "user": "ito"], ["op": "role.grant", "user": "ito", "role": "staff"],
            ["op": "user.disable", "user": "ito"],
        ] {
            #expect(try client.call(request).ok)
        }
        let last = try mamori(daemon, ["audit", "tail", "-n", "2"])
        let lines = last.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(
            lines.first?.hasPrefix("#2 ") == true
                && lines.first?.contains("role.grant success root (uid 0) → ito  role=staff") == true)
        #expect(lines.last?.contains("user.disable") == true)

        let output = daemon.folder.appendingPathComponent("tail.out").path
        let file = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let follower = try Subprocess.spawn(
            Self.mamori,
            ["audit", "tail", "-n", "0", "-f", "--interval", "0.2", "--json", "--socket", daemon.socketPath],
            stdin: null, stdout: file, stderr: file
        )
        close(file)
        close(null)
        Thread.sleep(forTimeInterval: 1)
        #expect(try client.call(["op": "user.enable", "user": "ito"]).ok)
        var seen = ""
        for _ in 0..<50 where !seen.contains("user.enable") {
            Thread.sleep(forTimeInterval: 0.1)
            seen = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        }
        kill(follower, SIGTERM)
        _ = Subprocess.wait(for: follower)
        let followed = seen.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
        #expect(
            followed.contains { $0["event"] as? String == "user.enable" && $0["target"] as? String == "ito" }, "\(seen)"
        )

        // Polling does not fill the trail: each tail is one audit.read entry. A reader cannot
        // avoid the record: a new connection is recorded again.
        let reader = try LineClient(path: daemon.socketPath)
        #expect(try reader.call(["op": "audit.read", "last": 1, "purpose": "tail"]).ok)
        #expect(try reader.call(["op": "audit.read", "after": 0, "purpose": "tail"]).ok)
        let export = try mamori(daemon, ["audit", "export"])
        let reads = export.stdout.split(separator: "\n").filter {
            $0.contains(#""event":"audit.read""#) && $0.contains(#""purpose":"tail""#)
        }
        #expect(reads.count == 3)
    }

    @Test("a quiet trail gets a signed checkpoint within checkpoint-seconds, not only at shutdown")
    func timedCheckpoint() throws {
        let daemon = try startDaemon(configuration: "checkpoint-seconds: 1")
        let client = try LineClient(path: daemon.socketPath)
        #expect(try client.call(["op": "user.add", "user": "ito"]).ok)
        var report: [String: Any] = [:]
        for _ in 0..<50 {
            Thread.sleep(forTimeInterval: 0.2)
            report = try client.call(["op": "audit.verify"])
            if report["last_checkpoint_sequence"] as? Int != nil { break }
        }
        #expect(report["holds"] as? Bool == true)
        #expect((report["last_checkpoint_sequence"] as? Int ?? 0) >= 1, "\(report)")
        #expect(report["signatures_checked"] as? Bool == true)
    }

    @Test("verify through the daemon names tampering in the live database and exits 1")
    func liveTampering() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        #expect(try client.call(["op": "user.add", "user": "ito"]).ok)
        #expect(try client.call(["op": "role.grant", "user": "ito", "role": "staff"]).ok)
        let tamper = try Subprocess.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1]); db.execute("DROP TRIGGER audit_no_update")
                db.execute("UPDATE audit SET detail = '{\\"role\\":\\"ciso\\",\\"until\\":\\"\\"}' WHERE seq = 2"); db.commit()
                """, daemon.stateDirectory + "/mamori.sqlite",
            ])
        #expect(tamper.status == 0, "\(tamper.stderr)")
        let result = try mamori(daemon, ["audit", "verify"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("BROKEN: entry 2 was altered"))
        let json = try mamori(daemon, ["audit", "verify", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(report["holds"] as? Bool == false)
        #expect(daemon.log.contains("the audit chain does not verify"))
        let chain = try #require(try client.call(["op": "status"])["audit_chain"] as? [String: Any])
        #expect(chain["holds"] as? Bool == false && chain["problems"] as? Int == 1)
        #expect(try mamori(daemon, ["status"]).stdout.contains("audit chain    BROKEN: 1 problem(s), verified "))

        // A restart checks the chain by itself and says so.
        daemon.stop()
        #expect(try daemon.start() == nil)
        var afterRestart: [String: Any] = [:]
        for _ in 0..<50 {
            afterRestart = try #require(
                try LineClient(path: daemon.socketPath).call(["op": "status"])["audit_chain"] as? [String: Any])
            if afterRestart["checked"] as? Bool == true { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(afterRestart["holds"] as? Bool == false, "\(afterRestart)")
        #expect(daemon.log.components(separatedBy: "the audit chain does not verify").count == 4)
    }

    @Test("when an entry cannot be written, the act it records is refused and nothing changes")
    func unwritableTrail() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        let seed = try enrol(client, user: "ito", password: "ito password", roles: ["staff"])
        // A trigger makes every new audit row fail, as a full disk or a broken file would.
        let block = try Subprocess.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1], timeout=10)
                db.execute("CREATE TRIGGER audit_refuses BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'no space'); END")
                db.commit()
                """, daemon.stateDirectory + "/mamori.sqlite",
            ])
        #expect(block.status == 0, "\(block.stderr)")
        let add = try client.call(["op": "user.add", "user": "sato"])
        #expect(add.errorCode == "internal")
        #expect(add.errorMessage == "The daemon could not record the change; nothing was done.")
        #expect(try client.call(["op": "user.show", "user": "sato"]).errorCode == "not_found")
        let grant = try client.call(["op": "role.grant", "user": "ito", "role": "csirt"])
        #expect(grant.errorCode == "internal")
        let roles = try client.call(["op": "user.roles", "user": "ito"])
        #expect(!"\(roles)".contains("csirt"), "\(roles)")
        // A login whose success cannot be recorded does not succeed.
        let login = try client.call([
            "op": "authenticate", "user": "ito", "password": "ito password", "code": try oathCode(seed),
        ])
        #expect(login.errorCode == "internal", "\(login)")
        #expect(login["ticket"] == nil)
    }

    @Test("malformed audit requests get bad_request, naming the field, and the daemon keeps serving")
    func malformed() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        let cases: [([String: Any], String)] = [
            (["op": "audit.read", "last": -1], "The field \"last\" must be a whole number from 0 to 10000."),
            (["op": "audit.read", "limit": 5000], "The field \"limit\" must be a whole number from 1 to 1000."),
            (
                ["op": "audit.read", "after": -1],
                "The field \"after\" must be a whole number from 0 to 999999999999999."
            ),
            (["op": "audit.trail", "limit": 0], "The field \"limit\" must be a whole number from 1 to 1000."),
            (["op": "audit.read", "purpose": "gossip"], "The field \"purpose\" must be one of export, read, tail."),
            (
                ["op": "audit.read", "since": "last week"],
                "The field \"since\" must be an ISO 8601 time with an offset, such as 2026-04-01T00:00:00+09:00."
            ),
            (
                ["op": "audit.prune", "before": "yesterday"],
                "The field \"before\" must be an ISO 8601 time with an offset, such as 2026-04-01T00:00:00+09:00."
            ),
        ]
        for (request, message) in cases {
            let reply = try client.call(request)
            #expect(reply.errorCode == "bad_request", "\(request)")
            #expect(reply.errorMessage == message)
        }
        let longNote = try client.call(["op": "review.record", "note": String(repeating: "長", count: 501)])
        #expect(longNote.errorCode == "bad_request")
        #expect(try client.call(["op": "audit.prune"]).errorCode == "bad_request")
        #expect(try client.call(["op": "audit.verify"])["holds"] as? Bool == true)
    }
}
