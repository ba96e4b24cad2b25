import Foundation
import MamoriTestSupport
import Testing

@Suite("mamorid over its socket", .serialized)
struct DaemonTests {
    @Test("status answers any caller, root and an unprivileged uid alike")
    func status() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        let reply = try client.call(["op": "status", "id": 7])
        #expect(reply.ok)
        #expect(reply["id"] as? Int == 7)
        #expect(reply["zone"] as? String == "mynumber")
        #expect(reply["terminal"] as? String == "test-terminal")
        #expect((reply["policy_revision"] as? String)?.hasPrefix("sha256:") == true)
        let nobody = try callAsNobody(socket: daemon.socketPath, lines: [#"{"op":"status"}"#])
        #expect(nobody.first?.contains(#""ok":true"#) == true)
    }

    @Test("bad lines get error replies while another client keeps being served")
    func badInput() throws {
        let daemon = try startDaemon()
        let bad = try LineClient(path: daemon.socketPath)
        let good = try LineClient(path: daemon.socketPath)
        let cases: [(String, String)] = [
            ("not json", "bad_request"), ("[1,2]", "bad_request"), (#"{"id":1}"#, "bad_request"),
            (#"{"op":"launch","id":2}"#, "unknown_op"), (#"{"op":"user.show","user":5}"#, "bad_request"),
            (#"{"op":"user.show","user":"-rf"}"#, "bad_request"), (#"{"op":"status","id":{"x":1}}"#, "bad_request"),
        ]
        for (line, code) in cases {
            let reply = try bad.request(line)
            #expect(reply.contains(#""code":"\#(code)""#), "\(line) → \(reply)")
            #expect(try good.call(["op": "status"]).ok)
        }
        // An oversized line: refused, discarded, and the connection goes on.
        try bad.send(Array(repeating: UInt8(ascii: "a"), count: 70_000) + [10])
        #expect(try bad.readLine().contains(#""code":"line_too_long""#))
        #expect(try good.call(["op": "status"]).ok)
        #expect(try bad.call(["op": "status", "id": "after"])["id"] as? String == "after")
        // Pipelined requests are answered in order.
        try bad.send(Array(#"{"op":"status","id":1}\#n{"op":"nope","id":2}\#n{"op":"status","id":3}\#n"#.utf8))
        let ids = try (0..<3).map { _ in try bad.readLine() }.map { line -> Int? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["id"] as? Int
        }
        #expect(ids == [1, 2, 3])
    }

    @Test("a full login: password and TOTP, replay refused, session opened, authorized, closed")
    func login() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        let secret = try enrol(client, user: "tanaka", password: "Sekret-Horse-42", roles: ["staff"])
        // The enrolment used the current step; the next step's code is fresh (window ±1).
        let code = try oathCode(secret, offset: 30)
        let first = try client.call([
            "op": "authenticate", "user": "tanaka", "password": "Sekret-Horse-42", "code": code, "service": "login",
            "tty": "tty1",
        ])
        #expect(first.ok, "\(first)")
        #expect(first["factors"] as? [String] == ["password", "totp"])
        #expect(first["password_change_required"] as? Bool == true)
        let replay = try client.call([
            "op": "authenticate", "user": "tanaka", "password": "Sekret-Horse-42", "code": code,
        ])
        #expect(replay.errorCode == "auth_failed")
        #expect(replay.errorMessage == "Authentication failed.")

        let ticket = try #require(first["ticket"] as? String)
        let opened = try client.call(["op": "session.open", "ticket": ticket, "service": "login", "tty": "tty1"])
        let session = try #require(opened["session"] as? String, "\(opened)")
        #expect(try client.call(["op": "session.open", "ticket": ticket]).errorCode == "not_found")

        let allowed = try client.call([
            "op": "authorize", "session": session, "action": "asset.read", "resource": "point.participants",
        ])
        #expect(allowed["effect"] as? String == "allow", "\(allowed)")
        #expect(allowed["rules"] as? [String] == ["mynumber-staff-own-records"])
        let denied = try client.call([
            "op": "authorize", "session": session, "action": "asset.export", "resource": "point.ledger",
        ])
        #expect(denied["effect"] as? String == "deny")
        #expect(denied["rules"] as? [String] == ["no-export-from-mynumber"])
        #expect(try client.call(["op": "session.close", "session": session]).ok)
        #expect(
            try client.call(["op": "authorize", "session": session, "action": "asset.read", "resource": "point.ledger"])
                .errorCode == "not_found")
        // The audit trail records the failure's reason; the reply did not.
        #expect(daemon.log.contains("Sekret-Horse-42") == false)
        #expect(daemon.log.contains(secret) == false)
        #expect(daemon.log.contains(code) == false)
        #expect(daemon.log.contains(ticket) == false)
    }

    @Test("wrong password, wrong code, unknown user and no second factor all get the same reply")
    func genericFailure() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        let secret = try enrol(client, user: "sato", password: "right password", roles: ["staff"])
        #expect(try client.call(["op": "user.add", "user": "nofactor"]).ok)
        #expect(try client.call(["op": "user.passwd", "user": "nofactor", "password": "right password"]).ok)
        let attempts: [[String: Any]] = [
            [
                "op": "authenticate", "user": "sato", "password": "wrong password",
                "code": try oathCode(secret, offset: 30),
            ],
            ["op": "authenticate", "user": "sato", "password": "right password", "code": "000000"],
            ["op": "authenticate", "user": "sato", "password": "right password", "code": ""],
            ["op": "authenticate", "user": "ghost", "password": "right password", "code": "123456"],
            ["op": "authenticate", "user": "nofactor", "password": "right password", "code": "123456"],
        ]
        var replies: Set<String> = []
        for attempt in attempts {
            let reply = try client.call(attempt)
            #expect(reply.errorCode == "auth_failed")
            replies.insert(reply.errorMessage ?? "")
        }
        #expect(replies == ["Authentication failed."])
    }

    @Test("a recovery code stands in for the TOTP code once")
    func recoveryCode() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        try enrol(client, user: "kimura", password: "right password", roles: ["staff"])
        let issued = try client.call(["op": "recovery.issue", "user": "kimura", "count": 3])
        let codes = try #require(issued["codes"] as? [String])
        #expect(codes.count == 3)
        let used = try client.call([
            "op": "authenticate", "user": "kimura", "password": "right password", "code": codes[1],
        ])
        #expect(used.ok, "\(used)")
        #expect(used["factors"] as? [String] == ["password", "recovery-code"])
        let again = try client.call([
            "op": "authenticate", "user": "kimura", "password": "right password", "code": codes[1],
        ])
        #expect(again.errorCode == "auth_failed")
        #expect(daemon.log.contains(codes[1]) == false)
    }

    @Test("lockout after the policy's threshold survives a restart; unlock ends it")
    func lockout() throws {
        let daemon = try startDaemon()
        var client = try LineClient(path: daemon.socketPath)
        let secret = try enrol(client, user: "yamada", password: "right password", roles: ["staff"])
        for _ in 0..<10 {
            #expect(
                try client.call(["op": "authenticate", "user": "yamada", "password": "wrong", "code": "123456"])
                    .errorCode == "auth_failed")
        }
        let show = try client.call(["op": "user.show", "user": "yamada"])
        #expect(show["locked"] as? Bool == true)
        let listed = try client.call(["op": "user.list"])["users"] as? [[String: Any]]
        #expect(listed?.first { $0["user"] as? String == "yamada" }?["locked"] as? Bool == true)
        #expect(listed?.first { $0["user"] as? String == "yamada" }?["totp"] as? String == "confirmed")
        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        try daemon.start()
        client = try LineClient(path: daemon.socketPath)
        let locked = try client.call([
            "op": "authenticate", "user": "yamada", "password": "right password",
            "code": try oathCode(secret, offset: 30),
        ])
        #expect(locked.errorCode == "auth_failed")
        #expect(try client.call(["op": "account", "user": "yamada"])["result"] as? String == "denied")
        #expect(try client.call(["op": "user.unlock", "user": "yamada"]).ok)
        let unlocked = try client.call([
            "op": "authenticate", "user": "yamada", "password": "right password",
            "code": try oathCode(secret, offset: 30),
        ])
        #expect(unlocked.ok, "\(unlocked)")
    }

    @Test("account: temporary passwords, disabled users, users without a role in the zone, expired roles")
    func account() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        try enrol(client, user: "endo", password: "temporary pw", roles: ["staff"])
        #expect(try client.call(["op": "account", "user": "endo"])["result"] as? String == "password_change_required")
        let change = try client.call([
            "op": "password.change", "user": "endo", "old_password": "temporary pw",
            "new_password": "a new long password",
        ])
        #expect(change.ok, "\(change)")
        #expect(try client.call(["op": "account", "user": "endo"])["result"] as? String == "allowed")
        #expect(
            try client.call([
                "op": "password.change", "user": "endo", "old_password": "wrong", "new_password": "another password",
            ]).errorCode == "auth_failed")
        #expect(try client.call(["op": "user.disable", "user": "endo"]).ok)
        #expect(try client.call(["op": "account", "user": "endo"])["result"] as? String == "denied")
        #expect(try client.call(["op": "user.enable", "user": "endo"]).ok)

        try enrol(
            client, user: "vendor", password: "pw for vendor", roles: ["contractor"], organisation: "information-policy"
        )
        #expect(try client.call(["op": "account", "user": "vendor"])["result"] as? String == "denied")
        #expect(try client.call(["op": "account", "user": "nobody-here"])["result"] as? String == "unknown_user")

        // An assignment whose end has passed: ClockTests.endedAssignment moves the clock past it.
    }

    @Test("an unprivileged caller is refused administration, with a reason")
    func unprivileged() throws {
        let daemon = try startDaemon()
        let replies = try callAsNobody(
            socket: daemon.socketPath,
            lines: [
                #"{"op":"user.add","user":"intruder"}"#, #"{"op":"role.grant","user":"nobody","role":"ciso"}"#,
                #"{"op":"policy.reload"}"#, #"{"op":"authenticate","user":"root","password":"x","code":"1"}"#,
            ])
        #expect(replies.count == 4)
        for reply in replies { #expect(reply.contains(#""code":"denied""#), "\(reply)") }
        #expect(
            replies[0].contains(
                "Permission denied: your user nobody may not mamori.user.manage on mamori:users/intruder"))
        let client = try LineClient(path: daemon.socketPath)
        #expect(try client.call(["op": "user.show", "user": "intruder"]).errorCode == "not_found")
    }

    @Test("grants check separation of duty over inherited roles and holder limits")
    func grants() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        for name in ["a1", "a2", "a3"] { #expect(try client.call(["op": "user.add", "user": name]).ok) }
        #expect(try client.call(["op": "role.grant", "user": "a1", "role": "auditor"]).ok)
        let conflict = try client.call(["op": "role.grant", "user": "a1", "role": "ciso"])
        #expect(conflict.errorCode == "invalid")
        #expect(conflict.errorMessage?.contains("auditor-independent-of-security") == true)
        #expect(try client.call(["op": "role.grant", "user": "a2", "role": "ciso"]).ok)
        let limit = try client.call(["op": "role.grant", "user": "a3", "role": "ciso"])
        #expect(limit.errorMessage?.contains("may have at most 1 holder") == true)
        #expect(try client.call(["op": "role.grant", "user": "a3", "role": "wizard"]).errorCode == "invalid")
        let roles = try client.call(["op": "role.list"])
        let ciso = (roles["roles"] as? [[String: Any]])?.first { $0["role"] as? String == "ciso" }
        #expect(ciso?["holders"] as? [String] == ["a2"])
        #expect(try client.call(["op": "role.revoke", "user": "a2", "role": "ciso"]).ok)
        #expect(try client.call(["op": "role.revoke", "user": "a2", "role": "ciso"]).errorCode == "not_found")
    }

    @Test("users are added, listed, shown, disabled, enabled and removed; TOTP is reset")
    func users() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        #expect(
            try client.call([
                "op": "user.add", "user": "mori", "display_name": "森 花子", "kind": "fiscal-year-staff",
                "organisation": "planning",
            ]).ok)
        #expect(try client.call(["op": "user.add", "user": "mori"]).errorCode == "conflict")
        #expect(try client.call(["op": "user.add", "user": "x", "organisation": "mars"]).errorCode == "invalid")
        #expect(try client.call(["op": "user.add", "user": "y", "kind": "alien"]).errorCode == "bad_request")
        let list = try client.call(["op": "user.list"])
        #expect((list["users"] as? [[String: Any]])?.map { $0["user"] as? String } == ["mori"])
        let shown = try client.call(["op": "user.show", "user": "mori"])
        #expect(shown["display_name"] as? String == "森 花子")
        #expect(shown["kind"] as? String == "fiscal-year-staff")
        #expect(try client.call(["op": "totp.enroll.begin", "user": "mori"]).ok)
        #expect(try client.call(["op": "user.show", "user": "mori"])["totp"] as? String == "pending")
        let listed = try #require((try client.call(["op": "user.list"])["users"] as? [[String: Any]])?.first)
        #expect(listed["totp"] as? String == "pending" && listed["locked"] as? Bool == false)
        #expect(
            try client.call(["op": "totp.enroll.confirm", "user": "mori", "code": "000000"]).errorCode == "invalid")
        #expect(try client.call(["op": "totp.reset", "user": "mori"]).ok)
        #expect(try client.call(["op": "user.show", "user": "mori"])["totp"] as? String == "none")
        #expect(try client.call(["op": "user.remove", "user": "mori"]).ok)
        #expect(try client.call(["op": "user.remove", "user": "mori"]).errorCode == "not_found")
    }

    @Test("policy.reload keeps the old policy on error and swaps in a valid one; SIGHUP too")
    func reload() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        let before = try client.call(["op": "policy.status"])["revision"] as? String
        let extra = daemon.policyDirectory + "/extra.yaml"
        try "rules:\n  - id: broken\n    effect: perhaps\n".write(toFile: extra, atomically: true, encoding: .utf8)
        let failed = try client.call(["op": "policy.reload"])
        #expect(failed.errorCode == "invalid")
        #expect(failed.errorMessage?.contains("the old policy stays") == true)
        #expect(try client.call(["op": "policy.status"])["revision"] as? String == before)
        try "# nothing but a comment\n".write(toFile: extra, atomically: true, encoding: .utf8)
        let reloaded = try client.call(["op": "policy.reload"])
        #expect(reloaded["previous_revision"] as? String == before)
        let after = try #require(reloaded["revision"] as? String)
        #expect(after != before)
        try "# another comment\n".write(toFile: extra, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        var revision = after
        for _ in 0..<100 where revision == after {
            usleep(20_000)
            revision = try client.call(["op": "policy.status"])["revision"] as? String ?? after
        }
        #expect(revision != after)
    }

    @Test("the daemon refuses a state folder that others can write, naming the fix")
    func insecureState() throws {
        let daemon = try DaemonHarness()
        try FileManager.default.createDirectory(atPath: daemon.stateDirectory, withIntermediateDirectories: true)
        chmod(daemon.stateDirectory, 0o777)
        let status = try daemon.start()
        #expect(status == 2)
        #expect(daemon.log.contains("is writable by group or others"))
        #expect(daemon.log.contains("chmod go-w"))
    }

    @Test("every act is in the audit chain, and each entry links to the one before")
    func auditChain() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        try enrol(client, user: "chain", password: "chain password", roles: ["staff"])
        #expect(
            try client.call(["op": "authenticate", "user": "chain", "password": "nope", "code": "1"]).errorCode
                == "auth_failed")
        let check = try Subprocess.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3, sys, hashlib
                db = sqlite3.connect(sys.argv[1])
                previous = bytes(32); events = []
                for prev, h, event, detail in db.execute("SELECT prev_hash, hash, event, detail FROM audit ORDER BY seq"):
                    assert prev == previous, "broken link"
                    previous = h; events.append(event)
                    assert "chain password" not in detail
                print(",".join(events))
                """, daemon.stateDirectory + "/mamori.sqlite",
            ])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(
            check.stdout.trimmingCharacters(in: .newlines)
                == "user.add,user.passwd,totp.enroll.begin,totp.enroll.confirm,role.grant,auth.failure")
    }
}
