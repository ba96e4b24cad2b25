import Foundation
import MamoriTestSupport
import Testing

/// `mamori inspect` against a real daemon: every check seeded to fail (or warn), then fixed.
/// States the daemon refuses to create (two holders of a one-holder role, a separation-of-duty
/// conflict) are written into its SQLite file, as a policy change would leave them, and so is a
/// tampered entry, as an attacker would. The checks that need time to pass (idle accounts, ended
/// assignments) run in-process with a moved clock: MamoriServiceTests' InspectionClockTests.
@Suite("mamori inspect")
struct InspectionTests {
    static let mamori = Subprocess.product("mamori")

    final class Terminal {
        let daemon: DaemonHarness
        let client: LineClient
        let pam: String
        var database: String { daemon.stateDirectory + "/mamori.sqlite" }

        /// A daemon reading PAM services from a folder of its own; `services` go in it first.
        init(services: [String: String] = [:], configuration: String = "") throws {
            pam =
                FileManager.default.temporaryDirectory.appendingPathComponent("pam.d-\(UUID().uuidString.prefix(8))")
                .path
            try FileManager.default.createDirectory(atPath: pam, withIntermediateDirectories: true)
            for (name, text) in services { try text.write(toFile: pam + "/" + name, atomically: true, encoding: .utf8) }
            daemon = try startDaemon(configuration: "pam-directory: \(pam)\n\(configuration)")
            client = try LineClient(path: daemon.socketPath)
        }

        deinit { try? FileManager.default.removeItem(atPath: pam) }

        func mamori(_ arguments: [String]) throws -> ProcessResult {
            try Subprocess.run(InspectionTests.mamori, arguments + ["--socket", daemon.socketPath])
        }

        func sql(_ statements: String) throws {
            let result = try Subprocess.run(
                "/usr/bin/python3",
                [
                    "-c",
                    """
                    import sqlite3, sys
                    db = sqlite3.connect(sys.argv[1], timeout=10); db.executescript(sys.argv[2]); db.commit()
                    """, database, statements,
                ])
            #expect(result.status == 0, "\(result.stderr)")
        }

        func call(_ request: [String: Any]) throws {
            let reply = try client.call(request)
            #expect(reply.ok, "\(request["op"] ?? ""): \(reply)")
        }

        func pamService(_ name: String, _ text: String) throws {
            try text.write(toFile: pam + "/" + name, atomically: true, encoding: .utf8)
        }

        /// Runs `mamori inspect --json`: its exit status and each check's status and items.
        func inspect() throws -> (Int32, [String: (status: String, items: [String])]) {
            let result = try mamori(["inspect", "--json"])
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
            var checks: [String: (String, [String])] = [:]
            for finding in report["findings"] as? [[String: Any]] ?? [] {
                checks[finding["check"] as? String ?? ""] = (
                    finding["status"] as? String ?? "", finding["items"] as? [String] ?? []
                )
            }
            return (result.status, checks)
        }
    }

    static let allChecks = [
        "mfa-enrolment", "idle-accounts", "expired-assignments", "privileged-holders", "separation-of-duty",
        "locked-and-temporary", "audit-integrity", "audit-retention", "access-review", "pam-services",
        "policy-warnings",
    ]

    @Test("each check fails (or warns) on a seeded problem, names who is involved, and passes once it is fixed")
    func seededAndFixed() throws {
        let terminal = try Terminal()
        let repository = URL(fileURLWithPath: DaemonHarness.repositoryPolicies).deletingLastPathComponent()
        let goodLogin = try String(contentsOf: repository.appendingPathComponent("pam/examples/login"), encoding: .utf8)
        let goodSudo = try String(contentsOf: repository.appendingPathComponent("pam/examples/sudo"), encoding: .utf8)

        // The seeded state.
        try enrol(terminal.client, user: "sato", password: "sato password", roles: ["staff", "ciso"])
        try enrol(terminal.client, user: "kansa", password: "kansa password", roles: ["auditor"])
        try terminal.call(["op": "user.add", "user": "suzuki", "kind": "staff", "organisation": "planning"])
        try terminal.call(["op": "user.passwd", "user": "suzuki", "password": "temporary one"])
        try terminal.call(["op": "role.grant", "user": "suzuki", "role": "staff"])
        try terminal.call(["op": "role.grant", "user": "sato", "role": "csirt"])
        try terminal.call(["op": "user.add", "user": "yamada", "kind": "staff", "organisation": "planning"])
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try terminal.sql(
            """
            INSERT INTO assignments (user, role, granted_by, granted_at) VALUES ('suzuki', 'ciso', 'root', \(now));
            INSERT INTO assignments (user, role, granted_by, granted_at) VALUES ('kansa', 'security-manager', 'root', \(now));
            INSERT INTO failures (user, count, first_failure_at, locked_until) VALUES ('sato', 5, \(now), \(now + 3_600_000));
            DROP TRIGGER audit_no_update;
            UPDATE audit SET target = 'someone-else' WHERE seq = 1;
            """)
        try terminal.pamService("login", goodLogin)
        try terminal.pamService("sudo", "auth sufficient pam_unix.so\n" + goodSudo)
        try terminal.pamService("sshd", "@include common-auth\naccount required pam_unix.so\n")
        try terminal.pamService(
            "common-auth",
            "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\n"
        )

        let (failing, seeded) = try terminal.inspect()
        #expect(failing == 1)
        #expect(Set(seeded.keys) == Set(Self.allChecks))
        #expect(seeded["mfa-enrolment"]?.status == "fail")
        #expect(
            seeded["mfa-enrolment"]?.items == ["suzuki: no TOTP device enrolled; may log in to mynumber as ciso, staff"]
        )
        // Nobody has been idle for long, and no assignment has ended yet (InspectionClockTests moves time).
        #expect(seeded["idle-accounts"]?.status == "pass")
        #expect(seeded["expired-assignments"]?.status == "pass")
        #expect(seeded["privileged-holders"]?.status == "fail")
        #expect(
            seeded["privileged-holders"]?.items.contains(
                "ciso: 2 of at most 1 holder(s): sato (granted by root), suzuki (granted by root)") == true)
        #expect(seeded["separation-of-duty"]?.status == "fail")
        #expect(
            seeded["separation-of-duty"]?.items == [
                "kansa: holds auditor and security-manager (constraint auditor-independent-of-security)"
            ])
        #expect(seeded["locked-and-temporary"]?.status == "warn")
        let pending = seeded["locked-and-temporary"]?.items ?? []
        #expect(pending.first?.hasPrefix("sato: locked after 5 failed logins until ") == true)
        #expect(
            pending.dropFirst() == [
                "kansa: temporary password not yet changed", "sato: temporary password not yet changed",
                "suzuki: temporary password not yet changed",
            ])
        #expect(seeded["audit-integrity"]?.status == "fail")
        #expect(
            seeded["audit-integrity"]?.items.contains("entry 1 was altered: its contents no longer match its hash")
                == true)
        #expect(seeded["access-review"]?.status == "fail")
        #expect(seeded["pam-services"]?.status == "fail")
        #expect(
            seeded["pam-services"]?.items.sorted() == [
                "sshd: its auth stack does not run pam_mamori.so",
                "sudo: pam_unix.so at \(terminal.pam)/sudo:1 can let a login through before pam_mamori.so",
            ])
        #expect(seeded["audit-retention"]?.status == "pass")
        #expect(seeded["policy-warnings"]?.status == "pass")

        // The printable forms carry the same verdicts.
        let markdown = try terminal.mamori(["inspect", "--format", "markdown"])
        #expect(markdown.status == 1)
        #expect(markdown.stdout.contains("| Separation of duty | **FAIL** |"))
        #expect(markdown.stdout.contains("| Terminal | test-terminal |"))
        #expect(markdown.stdout.contains("| Run by | root |"))
        #expect(
            markdown.stdout.range(
                of: #"\| Date \| 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00 \|"#, options: .regularExpression) != nil)
        let html = try terminal.mamori(["inspect", "--format", "html"])
        #expect(html.stdout.contains("<h1>Self-inspection report (自己点検結果)</h1>"))
        #expect(html.stdout.contains("<li>kansa: holds auditor and security-manager"))
        let text = try terminal.mamori(["inspect"])
        #expect(text.stdout.contains("[FAIL] Separation of duty:"))
        #expect(text.stdout.contains("Result: 4 pass, 1 warn, 6 fail."))

        // The fixes.
        let secret = try #require(
            try terminal.client.call(["op": "totp.enroll.begin", "user": "suzuki"])["secret"] as? String)
        try terminal.call(["op": "totp.enroll.confirm", "user": "suzuki", "code": try oathCode(secret)])
        // A locked account cannot change its password (the same counting as a login): unlock first.
        try terminal.call(["op": "user.unlock", "user": "sato"])
        for (user, old) in [("suzuki", "temporary one"), ("sato", "sato password"), ("kansa", "kansa password")] {
            try terminal.call([
                "op": "password.change", "user": user, "old_password": old, "new_password": "\(user)'s own",
            ])
        }
        try terminal.call(["op": "user.disable", "user": "yamada"])
        try terminal.call(["op": "role.revoke", "user": "sato", "role": "csirt"])
        try terminal.call(["op": "role.revoke", "user": "suzuki", "role": "ciso"])
        try terminal.call(["op": "role.revoke", "user": "kansa", "role": "security-manager"])
        try terminal.sql("UPDATE audit SET target = 'sato' WHERE seq = 1;")
        try terminal.pamService("sudo", goodSudo)
        try terminal.pamService(
            "sshd", try String(contentsOf: repository.appendingPathComponent("pam/examples/sshd"), encoding: .utf8))
        let recorded = try terminal.mamori(["review", "record", "--note", "FY2026 review with HR"])
        #expect(recorded.status == 0, "\(recorded.stderr)")

        let (passing, fixed) = try terminal.inspect()
        for check in Self.allChecks {
            #expect(fixed[check]?.status == "pass", "\(check): \(fixed[check]?.items ?? [])")
        }
        #expect(passing == 0)
        #expect(fixed["access-review"]?.items.first?.hasSuffix("root — FY2026 review with HR") == true)
    }

    @Test("an unentitled caller is refused, and the run is recorded")
    func permissions() throws {
        let terminal = try Terminal()
        let replies = try callAsNobody(
            socket: terminal.daemon.socketPath, lines: [#"{"op":"inspect"}"#, #"{"op":"review.record"}"#])
        #expect(replies.allSatisfy { $0.contains(#""code":"denied""#) }, "\(replies)")
        // An empty PAM folder is not a pass: nothing was checked.
        #expect(try terminal.inspect().1["pam-services"]?.status == "warn")
        let trail = try terminal.mamori(["audit", "export"])
        #expect(trail.stdout.contains(#""event":"inspect""#))
        #expect(trail.stdout.contains(#""result":"fail""#))
    }

    @Test("pam-services names the services a terminal must route through pam_mamori.so; a path there is refused")
    func configuredServices() throws {
        let terminal = try Terminal(
            services: ["custom-locker": "auth required pam_unix.so\n", "sshd": "auth required pam_unix.so\n"],
            configuration: "pam-services: [custom-locker, login]"
        )
        let (_, checks) = try terminal.inspect()
        #expect(checks["pam-services"]?.status == "fail")
        // sshd is not in the list, so it is not checked.
        #expect(checks["pam-services"]?.items == ["custom-locker: its auth stack does not run pam_mamori.so"])

        let refused = try DaemonHarness()
        #expect(try refused.start(extraConfiguration: "pam-services: [../shadow]") == 2)
        #expect(refused.log.contains("'pam-services' must be a list of service names"))
    }
}
