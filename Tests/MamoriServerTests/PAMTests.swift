import Foundation
import MamoriTestSupport
import Testing

/// pam_mamori.so through the real Linux-PAM library (pam_start_confdir, a service file in the
/// test's own folder) and a real mamorid: `pam/tests/pam_harness.c` answers the prompts.
@Suite("pam_mamori.so through real PAM", .serialized)
struct PAMTests {
    static let build = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/pam").path

    let daemon: DaemonHarness
    let secret: String
    let confdir: String

    init() throws {
        daemon = try startDaemon()
        let client = try LineClient(path: daemon.socketPath)
        secret = try enrol(client, user: "tanaka", password: "pw-tanaka-1", roles: ["staff"])
        // A second account that is past its temporary password, for the session tests.
        confdir = daemon.folder.appendingPathComponent("pam.d").path
        try FileManager.default.createDirectory(atPath: confdir, withIntermediateDirectories: true)
        try writeService("mamori-test", socket: daemon.socketPath)
    }

    func writeService(_ name: String, socket: String, extra: String = "") throws {
        let module = Self.build + "/pam_mamori.so"
        try ["auth", "account", "session", "password"].map {
            "\($0) required \(module) socket=\(socket) timeout=1500 \(extra)"
        }
        .joined(separator: "\n").appending("\n")
        .write(toFile: confdir + "/" + name, atomically: true, encoding: .utf8)
    }

    /// Runs the harness; returns its output lines.
    func pam(_ user: String, _ phases: String, _ answers: [String], service: String = "mamori-test") throws -> [String]
    {
        let result = try Subprocess.run(Self.build + "/pam_harness", [confdir, service, user, phases] + answers)
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init)
    }

    func code(offset: Int = 30) throws -> String { try oathCode(secret, offset: offset) }

    static let prompts = ["prompt-off Password: ", "prompt-off Verification code: "]

    @Test("right password and code: prompts in order, then success; the session is exported and valid")
    func success() throws {
        let lines = try pam("tanaka", "auth,open", ["pw-tanaka-1", try code()])
        #expect(Array(lines.prefix(2)) == Self.prompts)
        #expect(lines[2] == "auth 0 PAM_SUCCESS")
        #expect(lines[3] == "open 0 PAM_SUCCESS")
        let session = try #require(
            lines.first { $0.hasPrefix("env MAMORI_SESSION=") }?.dropFirst("env MAMORI_SESSION=".count))
        #expect(session.count == 32)
        let client = try LineClient(path: daemon.socketPath)
        let decision = try client.call([
            "op": "authorize", "session": String(session), "action": "asset.read", "resource": "point.participants",
        ])
        #expect(decision["effect"] as? String == "allow", "\(decision)")
    }

    @Test("wrong password, wrong code, replayed code, empty code, unknown user: the same prompts, PAM_AUTH_ERR")
    func failures() throws {
        let good = try code()
        #expect(try pam("tanaka", "auth", ["pw-tanaka-1", good]).last == "auth 0 PAM_SUCCESS")
        let attempts: [(String, [String])] = [
            ("tanaka", ["wrong password", try code(offset: 0)]),
            ("tanaka", ["pw-tanaka-1", "000000"]),
            ("tanaka", ["pw-tanaka-1", good]),
            ("tanaka", ["pw-tanaka-1", ""]),
            ("nobody-at-all", ["pw-tanaka-1", "123456"]),
        ]
        for (user, answers) in attempts {
            let lines = try pam(user, "auth", answers)
            #expect(lines == Self.prompts + ["auth 7 PAM_AUTH_ERR"], "\(user) \(answers.count)")
        }
    }

    @Test("a recovery code stands in for the TOTP code")
    func recovery() throws {
        let client = try LineClient(path: daemon.socketPath)
        let codes = try #require(
            try client.call(["op": "recovery.issue", "user": "tanaka", "count": 2])["codes"] as? [String])
        #expect(try pam("tanaka", "auth", ["pw-tanaka-1", codes[0]]).last == "auth 0 PAM_SUCCESS")
        #expect(try pam("tanaka", "auth", ["pw-tanaka-1", codes[0]]).last == "auth 7 PAM_AUTH_ERR")
    }

    @Test("a locked account fails even with the right password and code")
    func locked() throws {
        for _ in 0..<10 { _ = try pam("tanaka", "auth", ["wrong", "000000"]) }
        #expect(try pam("tanaka", "auth", ["pw-tanaka-1", try code()]).last == "auth 7 PAM_AUTH_ERR")
        #expect(try pam("tanaka", "account", []).last == "account 6 PAM_PERM_DENIED")
    }

    @Test("account: temporary password asks for a new one; the password phase changes it; policy refusals")
    func accountAndPassword() throws {
        #expect(try pam("tanaka", "account", []).last == "account 12 PAM_NEW_AUTHTOK_REQD")
        let change = try pam("tanaka", "chauthtok", ["pw-tanaka-1", "a brand new password", "a brand new password"])
        #expect(
            change == [
                "prompt-off Current password: ", "prompt-off New password: ", "prompt-off Retype new password: ",
                "chauthtok 0 PAM_SUCCESS",
            ])
        #expect(try pam("tanaka", "account", []).last == "account 0 PAM_SUCCESS")
        #expect(try pam("tanaka", "auth", ["a brand new password", try code()]).last == "auth 0 PAM_SUCCESS")
        // A contractor's role does not take effect in the My Number zone: refused.
        let client = try LineClient(path: daemon.socketPath)
        try enrol(
            client, user: "vendor", password: "vendor password", roles: ["contractor"],
            organisation: "information-policy")
        #expect(try pam("vendor", "account", []).last == "account 6 PAM_PERM_DENIED")
        #expect(try pam("someone-else", "account", []).last == "account 10 PAM_USER_UNKNOWN")
    }

    @Test("over-long user names, passwords and codes fail cleanly")
    func overlong() throws {
        let long = String(repeating: "x", count: 2000)
        #expect(try pam(String(repeating: "u", count: 300), "auth", ["pw", "123456"]).last == "auth 7 PAM_AUTH_ERR")
        #expect(try pam("tanaka", "auth", [long, "123456"]).last == "auth 7 PAM_AUTH_ERR")
        #expect(try pam("tanaka", "auth", ["pw-tanaka-1", long]).last == "auth 7 PAM_AUTH_ERR")
    }

    @Test("the daemon down or hanging: PAM_AUTHINFO_UNAVAIL within the timeout")
    func unavailable() throws {
        try writeService("mamori-down", socket: daemon.folder.appendingPathComponent("nothing.sock").path)
        let start = Date()
        #expect(try pam("tanaka", "auth", ["pw", "1"], service: "mamori-down").last == "auth 9 PAM_AUTHINFO_UNAVAIL")
        #expect(Date().timeIntervalSince(start) < 1.4)
        // A socket that accepts and never answers.
        let hanging = daemon.folder.appendingPathComponent("hang.sock").path
        // It ends by itself after 30 s, and holds none of the test runner's output pipes.
        let script = """
            import signal, socket, sys
            signal.alarm(30)
            s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
            held = []
            while True:
                c, _ = s.accept(); held.append(c)
            """
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        let listener = try Subprocess.spawn(
            "/usr/bin/python3", ["-c", script, hanging], stdin: null, stdout: null, stderr: null)
        close(null)
        defer {
            kill(listener, SIGKILL)
            _ = Subprocess.wait(for: listener)
        }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: hanging) { usleep(20_000) }
        try writeService("mamori-hang", socket: hanging)
        let began = Date()
        #expect(try pam("tanaka", "auth", ["pw", "1"], service: "mamori-hang").last == "auth 9 PAM_AUTHINFO_UNAVAIL")
        let waited = Date().timeIntervalSince(began)
        #expect(waited >= 1.4 && waited < 5, "waited \(waited) s for a 1.5 s timeout")
    }

    @Test("the example login stack: Mamori decides; when mamorid is down only root may fall through")
    func exampleLoginStack() throws {
        let example = try String(
            contentsOfFile: URL(fileURLWithPath: Self.build).deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("pam/examples/login").path, encoding: .utf8)
        func install(_ name: String, socket: String) throws {
            let text = example.replacingOccurrences(of: " pam_mamori.so", with: " \(Self.build)/pam_mamori.so")
                .replacingOccurrences(of: "socket=/run/mamori/mamori.sock", with: "socket=\(socket)")
                .replacingOccurrences(of: "@include common-session", with: "")
            try text.write(toFile: confdir + "/" + name, atomically: true, encoding: .utf8)
        }
        try install("login-up", socket: daemon.socketPath)
        let prompts = ["prompt-off パスワード: ", "prompt-off 確認コード: "]
        #expect(
            try pam("tanaka", "auth", ["pw-tanaka-1", try code()], service: "login-up") == prompts + [
                "auth 0 PAM_SUCCESS"
            ])
        #expect(
            try pam("tanaka", "auth", ["wrong", "000000"], service: "login-up") == prompts + ["auth 7 PAM_AUTH_ERR"])
        try install("login-down", socket: daemon.folder.appendingPathComponent("gone.sock").path)
        // Not root: pam_succeed_if stops the fall-through; no password prompt from pam_unix.
        #expect(try pam("tanaka", "auth", [], service: "login-down") == ["auth 7 PAM_AUTH_ERR"])
    }

    @Test("use_first_pass takes the password from an earlier module and asks only for the code")
    func firstPass() throws {
        let module = Self.build + "/pam_mamori.so"
        try "auth optional pam_unix.so\nauth required \(module) socket=\(daemon.socketPath) use_first_pass\n"
            .write(toFile: confdir + "/first-pass", atomically: true, encoding: .utf8)
        let lines = try pam("tanaka", "auth", ["pw-tanaka-1", try code()], service: "first-pass")
        // The one "Password: " prompt is pam_unix's; pam_mamori adds only the code prompt.
        #expect(lines == Self.prompts + ["auth 0 PAM_SUCCESS"])
        try "auth required \(module) socket=\(daemon.socketPath) use_first_pass\n"
            .write(toFile: confdir + "/first-pass-alone", atomically: true, encoding: .utf8)
        #expect(try pam("tanaka", "auth", [], service: "first-pass-alone") == ["auth 7 PAM_AUTH_ERR"])
    }

    @Test("an independent PAM client: pamtester under pam_wrapper, answers piped in")
    func pamtester() throws {
        let services = daemon.folder.appendingPathComponent("wrapped").path
        try FileManager.default.createDirectory(atPath: services, withIntermediateDirectories: true)
        let stack = try String(contentsOfFile: confdir + "/mamori-test", encoding: .utf8)
        for name in ["mamori", "other"] {
            try stack.write(toFile: services + "/" + name, atomically: true, encoding: .utf8)
        }
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = "libpam_wrapper.so"
        environment["PAM_WRAPPER"] = "1"
        environment["PAM_WRAPPER_SERVICE_DIR"] = services
        let right = try Subprocess.run(
            "pamtester", ["mamori", "tanaka", "authenticate"], input: Array("pw-tanaka-1\n\(try code())\n".utf8),
            environment: environment
        )
        #expect(right.status == 0, "\(right.stderr)")
        #expect(right.stdout.contains("successfully authenticated"))
        let wrong = try Subprocess.run(
            "pamtester", ["mamori", "tanaka", "authenticate"], input: Array("pw-tanaka-1\n000000\n".utf8),
            environment: environment
        )
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("Authentication failure"))
        #expect(wrong.stderr.contains("Password: Verification code: "))
    }

    @Test("the harness under valgrind: no memory errors, nothing definitely lost")
    func valgrind() throws {
        let result = try Subprocess.run(
            "valgrind",
            [
                "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                Self.build + "/pam_harness", confdir, "mamori-test", "tanaka", "auth,account,open,close", "pw-tanaka-1",
                try code(),
            ])
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("auth 0 PAM_SUCCESS"))
        #expect(result.stderr.contains("ERROR SUMMARY: 0 errors"))
    }
}
