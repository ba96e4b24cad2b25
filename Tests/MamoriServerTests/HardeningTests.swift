import Foundation
import MamoriTestSupport
import Testing

/// The local attacker (issue 11): guesses in parallel and through other operations, failures
/// that could tell users apart, grants that race a limit, and a state folder others can read.
/// Each test runs the attack against a real mamorid and reads the real SQLite file.
@Suite("mamorid against the local attacker: lockout, failures, grants, the state folder")
struct HardeningTests {
    /// Audit rows of `event` as (target, reason) pairs, read from the database file itself.
    static func failures(_ daemon: DaemonHarness, event: String = "auth.failure") throws -> [(String, String)] {
        let result = try Subprocess.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3, sys, json
                db = sqlite3.connect(sys.argv[1])
                for target, detail in db.execute("SELECT target, detail FROM audit WHERE event = ? ORDER BY seq", (sys.argv[2],)):
                    print(target, json.loads(detail).get("reason", ""))
                """, daemon.stateDirectory + "/mamori.sqlite", event,
            ])
        guard result.status == 0 else { throw SubprocessError(description: result.stderr) }
        return result.stdout.split(separator: "\n").map { line in
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
    }

    /// Runs `count` requests at once, each on its own connection and thread.
    static func parallel(_ daemon: DaemonHarness, _ count: Int, _ request: @escaping @Sendable (Int) -> [String: Any])
        -> [[String: Any]]
    {
        let replies = Replies()
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let object = request(index)
                guard let client = try? LineClient(path: daemon.socketPath, timeoutSeconds: 60),
                    let data = try? JSONSerialization.data(withJSONObject: object),
                    let reply = try? client.request(String(decoding: data, as: UTF8.self))
                else { return }
                replies.add(reply)
            }
        }
        group.wait()
        return replies.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    @Test("60 parallel wrong guesses evaluate at most the lockout's 10; the right password is then refused")
    func parallelGuesses() throws {
        let daemon = try startDaemon(configuration: "argon2-workers: 2\nargon2-queue: 100")
        let client = try LineClient(path: daemon.socketPath)
        let secret = try enrol(client, user: "sato", password: "right password", roles: ["staff"])
        let code = try oathCode(secret)
        let replies = Self.parallel(daemon, 60) { index in
            ["op": "authenticate", "user": "sato", "password": "guess \(index)", "code": code]
        }
        #expect(replies.count == 60)
        #expect(
            replies.allSatisfy { $0.errorCode == "auth_failed" }, "\(replies.filter { $0.errorCode != "auth_failed" })")
        let reasons = try Self.failures(daemon).filter { $0.0 == "sato" }.map(\.1)
        #expect(reasons.count == 60)
        // Only reserved attempts reach Argon2's answer; the rest are refused before it.
        #expect(reasons.filter { $0 == "password" }.count == 10, "\(reasons)")
        #expect(reasons.allSatisfy { ["password", "locked", "attempts-in-flight"].contains($0) }, "\(reasons)")
        let right = try client.call([
            "op": "authenticate", "user": "sato", "password": "right password",
            "code": try oathCode(secret, offset: 30),
        ])
        #expect(right.errorCode == "auth_failed")
        #expect(try client.call(["op": "user.show", "user": "sato"])["locked"] as? Bool == true)
        #expect(try Self.failures(daemon, event: "auth.lockout").count == 1)
    }

    @Test("password.change counts a wrong old password against the lockout and refuses a locked account")
    func passwordChangeOracle() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        try enrol(client, user: "ito", password: "old password", roles: ["staff"])
        for attempt in 0..<15 {
            let reply = try client.call([
                "op": "password.change", "user": "ito", "old_password": "guess \(attempt)",
                "new_password": "new password 1",
            ])
            #expect(reply.errorCode == "auth_failed")
        }
        let right = try client.call([
            "op": "password.change", "user": "ito", "old_password": "old password", "new_password": "new password 1",
        ])
        #expect(right.errorCode == "auth_failed", "the 16th, right, old password must not pass a locked account")
        #expect(try client.call(["op": "user.show", "user": "ito"])["locked"] as? Bool == true)
        let reasons = try Self.failures(daemon, event: "password.change").map(\.1)
        #expect(reasons.filter { $0 == "password" }.count == 10, "\(reasons)")
        #expect(reasons.filter { $0 == "locked" }.count == 6, "\(reasons)")
        // After an unlock, the right old password changes it, and a login with the new one works.
        #expect(try client.call(["op": "user.unlock", "user": "ito"]).ok)
        #expect(
            try client.call([
                "op": "password.change", "user": "ito", "old_password": "old password",
                "new_password": "new password 1",
            ]).ok)
    }

    @Test("empty, over-long, wrong, unknown, disabled, locked: one reply, and every attempt recorded")
    func oneAnswer() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        let secret = try enrol(client, user: "kato", password: "kato password", roles: ["staff"])
        try enrol(client, user: "off", password: "off password", roles: ["staff"])
        #expect(try client.call(["op": "user.disable", "user": "off"]).ok)
        let long = String(repeating: "x", count: 5_000)
        let code = try oathCode(secret)
        let attempts: [(String, String)] = [
            ("kato", ""), ("ghost", ""), ("kato", long), ("ghost", long), ("kato", "wrong"), ("ghost", "wrong"),
            ("off", "off password"), ("off", ""),
        ]
        var replies: [String] = []
        for (user, password) in attempts {
            let raw = try client.request(
                String(
                    decoding: try JSONSerialization.data(
                        withJSONObject: [
                            "op": "authenticate", "user": user, "password": password, "code": code,
                        ], options: [.sortedKeys]), as: UTF8.self)
            )
            replies.append(raw)
        }
        #expect(Set(replies).count == 1, "\(replies)")
        #expect(replies[0] == #"{"error":{"code":"auth_failed","message":"Authentication failed."},"ok":false}"#)
        let recorded = try Self.failures(daemon)
        #expect(recorded.count == attempts.count, "\(recorded)")
        #expect(
            recorded.map(\.1) == [
                "password", "unknown-user", "password", "unknown-user", "password", "unknown-user", "disabled",
                "disabled",
            ])
    }

    @Test("recovery codes log in after a TOTP reset; enrolling over a confirmed device needs a reset")
    func recoveryWithoutDevice() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        try enrol(client, user: "mori", password: "mori password", roles: ["staff"])
        let again = try client.call(["op": "totp.enroll.begin", "user": "mori"])
        #expect(again.errorCode == "conflict", "\(again)")
        #expect(again.errorMessage?.contains("mamori totp reset mori") == true)
        #expect(try client.call(["op": "totp.reset", "user": "mori"]).ok)
        let codes = try #require(
            try client.call(["op": "recovery.issue", "user": "mori", "count": 2])["codes"] as? [String])
        let login = try client.call([
            "op": "authenticate", "user": "mori", "password": "mori password", "code": codes[0],
        ])
        #expect(login.ok, "\(login)")
        #expect(login["factors"] as? [String] == ["password", "recovery-code"])
        #expect(
            try client.call(["op": "authenticate", "user": "mori", "password": "mori password", "code": codes[0]])
                .errorCode == "auth_failed")
        // With the device reset and no code at all, still the one failure.
        #expect(
            try client.call(["op": "authenticate", "user": "mori", "password": "mori password", "code": ""]).errorCode
                == "auth_failed")
        #expect(try client.call(["op": "totp.enroll.begin", "user": "mori"]).ok)
    }

    @Test("parallel grants of a role with max-holders 1 leave exactly one holder")
    func grantRace() throws {
        let daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        for index in 0..<8 {
            #expect(
                try client.call(["op": "user.add", "user": "cand\(index)", "kind": "staff", "organisation": "planning"])
                    .ok)
        }
        let replies = Self.parallel(daemon, 8) { index in ["op": "role.grant", "user": "cand\(index)", "role": "ciso"] }
        #expect(replies.filter(\.ok).count == 1, "\(replies)")
        #expect(replies.filter { $0.errorCode == "invalid" }.count == 7)
        let roles = try #require(try client.call(["op": "role.list"])["roles"] as? [[String: Any]])
        #expect((roles.first { $0["role"] as? String == "ciso" }?["holders"] as? [String])?.count == 1)
        #expect(try Self.failures(daemon, event: "role.grant").count == 8)
    }

    @Test(
        "key files and the database readable by group or others are refused, naming the file and the fix",
        arguments: ["seed.key", "audit.key", "mamori.sqlite"])
    func readableSecrets(file: String) throws {
        let daemon = try startDaemon()
        daemon.stop()
        let path = daemon.stateDirectory + "/" + file
        #expect(chmod(path, 0o644) == 0)
        #expect(try daemon.start() == 2)
        #expect(daemon.log.contains("\(path) is readable by group or others"), "\(daemon.log)")
        #expect(daemon.log.contains("chmod 600 \(path)"))
        // Fixed as the sentence says, it starts.
        #expect(chmod(path, 0o600) == 0)
        #expect(try daemon.start() == nil)
    }

    @Test("a new state folder's files are private, and status says commits are synchronous=FULL")
    func durableAndPrivate() throws {
        let daemon = try startDaemon()
        for file in ["seed.key", "audit.key", "mamori.sqlite"] {
            var info = stat()
            #expect(stat(daemon.stateDirectory + "/" + file, &info) == 0)
            #expect(info.st_mode & 0o077 == 0, "\(file) mode \(String(info.st_mode & 0o777, radix: 8))")
        }
        let status = try LineClient(path: daemon.socketPath).call(["op": "status"])
        let storage = try #require(status["storage"] as? [String: Any])
        #expect(storage["synchronous"] as? String == "full")
        #expect(storage["journal_mode"] as? String == "wal")
    }
}
