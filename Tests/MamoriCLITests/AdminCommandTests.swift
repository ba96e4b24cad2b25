import Foundation
import MamoriTestSupport
import Testing

/// The real `mamori` binary against a real `mamorid` on a temporary socket.
@Suite("mamori administration over the socket", .serialized)
struct AdminCommandTests {
    let daemon: DaemonHarness

    init() throws {
        daemon = try DaemonHarness()
        if let status = try daemon.start() {
            throw SubprocessError(description: "mamorid exited \(status): \(daemon.log)")
        }
    }

    func run(_ arguments: [String], input: String = "", environment: [String: String] = [:]) throws -> ProcessResult {
        var variables = ProcessInfo.processInfo.environment
        variables["MAMORI_SOCKET"] = daemon.socketPath
        variables["MAMORI_SESSION"] = nil
        for (key, value) in environment { variables[key] = value }
        return try Subprocess.run(mamori, arguments, input: Array(input.utf8), environment: variables)
    }

    func json(_ result: ProcessResult) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
    }

    @Test("status, user add/show/list/disable/enable/remove, with text and --json")
    func users() throws {
        let status = try run(["status"])
        #expect(status.status == 0)
        #expect(status.stdout.contains("zone           mynumber"))
        #expect(try json(try run(["status", "--json"]))["terminal"] as? String == "test-terminal")

        let added = try run([
            "user", "add", "sato", "--display-name", "佐藤 花子", "--kind", "fiscal-year-staff", "--organisation",
            "planning",
        ])
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.hasPrefix("Added sato."))
        let again = try run(["user", "add", "sato"])
        #expect(again.status == 2)
        #expect(again.stderr == "mamori: The user 'sato' already exists.\n")
        #expect(try run(["user", "add", "kato", "--display-name", "加藤"]).status == 0)

        let list = try run(["user", "list"])
        let lines = list.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        // Display widths line up: two-column kanji pad like two ASCII characters.
        #expect(lines[0].hasPrefix("USER  NAME       KIND"))
        #expect(lines[2].hasPrefix("sato  佐藤 花子  fiscal-year-staff"), "\(lines)")
        #expect(lines[1].hasPrefix("kato  加藤       staff"), "\(lines)")
        let listed = try json(try run(["user", "list", "--json"]))
        #expect((listed["users"] as? [[String: Any]])?.count == 2)

        let shown = try run(["user", "show", "sato"])
        #expect(shown.stdout.contains("name          佐藤 花子"))
        #expect(try run(["user", "disable", "sato"]).stdout == "Disabled sato.\n")
        #expect(try json(try run(["user", "show", "sato", "--json"]))["disabled"] as? Bool == true)
        #expect(try run(["user", "enable", "sato"]).status == 0)
        #expect(try run(["user", "remove", "kato"]).stdout == "Removed kato.\n")
        let missing = try run(["user", "show", "kato"])
        #expect(missing.status == 2)
        #expect(missing.stderr == "mamori: There is no user 'kato'.\n")
    }

    @Test("enrolment shows a QR code that decodes to the URI, and is confirmed only by the right code")
    func enrolment() throws {
        #expect(try run(["user", "add", "mori", "--organisation", "planning"]).status == 0)
        // A wrong first code: refused, the enrolment stays pending.
        let wrong = try run(["totp", "enroll", "mori"], input: "000000\n")
        #expect(wrong.status == 2)
        #expect(wrong.stderr.contains("The code does not match"))
        #expect(try json(try run(["user", "show", "mori", "--json"]))["totp"] as? String == "pending")

        // The right code, computed by oathtool from the key the command shows.
        let session = try InteractiveProcess(
            mamori, ["totp", "enroll", "mori"], environment: ["MAMORI_SOCKET": daemon.socketPath])
        let shown = try session.readUntil("URI")
        let secret = try #require(
            shown.components(separatedBy: "key       ").last?.prefix { $0 != "\n" }.trimmingCharacters(in: .whitespaces)
        )
        let code = try Subprocess.run("oathtool", ["--totp", "-b", secret]).stdout.trimmingCharacters(in: .newlines)
        try session.write(code + "\n")
        let finished = try session.finish()
        #expect(finished.status == 0, "\(finished.stderr)")
        #expect((shown + finished.stdout).contains("TOTP is enrolled for mori."))
        #expect(try json(try run(["user", "show", "mori", "--json"]))["totp"] as? String == "confirmed")

        // The QR drawing decodes (zbarimg) to the URI printed beside it.
        let uri = try #require(shown.components(separatedBy: "URI       ").last?.prefix { $0 != "\n" })
            .trimmingCharacters(in: .whitespaces)
        let decoded = try decodeQR(in: shown)
        #expect(decoded == uri)
        #expect(try run(["totp", "reset", "mori"]).stdout == "Removed the TOTP device of mori.\n")
    }

    @Test("passwords: temporary from stdin, refused as an argument or without a terminal; one's own change")
    func passwords() throws {
        #expect(try run(["user", "add", "endo"]).status == 0)
        let set = try run(["user", "passwd", "endo", "--password-stdin"], input: "temporary pw\n")
        #expect(set.status == 0, "\(set.stderr)")
        #expect(!set.stdout.contains("temporary pw"))
        let noTerminal = try run(["user", "passwd", "endo"])
        #expect(noTerminal.status == 2)
        #expect(noTerminal.stderr.contains("pipe it in with --password-stdin"))
        #expect(try run(["user", "passwd", "endo", "temporary pw"]).status == 64)
        #expect(try json(try run(["user", "show", "endo", "--json"]))["must_change_password"] as? Bool == true)
        // `mamori passwd` changes the caller's own password: root has no Mamori user here.
        let own = try run(["passwd", "--password-stdin"], input: "old\nnew password\n")
        #expect(own.status == 1)
        #expect(own.stderr == "mamori: Authentication failed.\n")
    }

    @Test("roles: grant with an end date, separation of duty and holder limits explained, revoke, list")
    func roles() throws {
        for name in ["audit1", "boss1", "boss2"] { #expect(try run(["user", "add", name]).status == 0) }
        let granted = try run(["role", "grant", "audit1", "auditor", "--until", "2099-03-31"])
        #expect(granted.stdout == "Granted auditor to audit1 until 2099-03-31T15:00:00Z.\n")
        let conflict = try run(["role", "grant", "audit1", "ciso"])
        #expect(conflict.status == 2)
        #expect(
            conflict.stderr.contains(
                "Separation of duty 'auditor-independent-of-security': one person may not hold auditor and security-manager together"
            ))
        #expect(try run(["role", "grant", "boss1", "ciso"]).status == 0)
        let limit = try run(["role", "grant", "boss2", "ciso"])
        #expect(limit.stderr.contains("The role 'ciso' may have at most 1 holder; it has 1."))
        let list = try run(["role", "list"])
        #expect(list.stdout.contains("ciso"))
        #expect(list.stdout.contains("1/1"))
        // Japanese titles line up: every row's HOLDERS cell starts at the same display column.
        let rows = list.stdout.split(separator: "\n").dropFirst()
        let holderColumns = Set(
            rows.map { row -> Int in
                let text = String(row)
                guard let range = text.range(of: #"  \d+(/\d+)?(  |$)"#, options: .regularExpression) else { return -1 }
                return MamoriCLITestsWidth.width(String(text[..<range.lowerBound]))
            })
        #expect(holderColumns.count == 1, "\(list.stdout)")
        let roles = try run(["user", "roles", "audit1"])
        #expect(roles.stdout.contains("auditor"))
        #expect(try run(["role", "revoke", "boss1", "ciso"]).stdout == "Revoked ciso from boss1.\n")
    }

    @Test("check, unlock, recovery issue, policy status and reload")
    func misc() throws {
        #expect(try run(["user", "add", "tanaka", "--organisation", "planning"]).status == 0)
        #expect(try run(["role", "grant", "tanaka", "staff"]).status == 0)
        let allowed = try run([
            "check", "tanaka", "asset.read", "point.participants", "--zone", "mynumber", "--factors", "password,totp",
        ])
        #expect(allowed.status == 0)
        #expect(allowed.stdout.hasPrefix("allow\n  deciding rules: mynumber-staff-own-records\n"))
        let stepUp = try run(["check", "tanaka", "asset.read", "point.participants", "--factors", "password", "--json"])
        #expect(stepUp.status == 1)
        #expect(try json(stepUp)["effect"] as? String == "step-up")
        // One decision shape: the socket's, which `policy explain --json` prints too (offline, so
        // without the assignment generation).
        #expect(
            Set(try json(stepUp).keys) == [
                "effect", "allowed", "rules", "reasons", "missing_factors", "policy_revision", "assignment_generation",
            ])
        #expect(try run(["check", "tanaka", "asset.read"]).status == 64)
        #expect(try run(["unlock", "tanaka"]).stdout == "Unlocked tanaka.\n")
        let codes = try run(["recovery", "issue", "tanaka", "--count", "3"])
        #expect(codes.stdout.split(separator: "\n").count == 4)
        let policy = try run(["policy", "status"])
        #expect(policy.stdout.contains("revision  sha256:"))
        let reload = try run(["policy", "reload"])
        #expect(reload.stdout.hasPrefix("Reloaded the policy: sha256:"))
    }

    @Test("errors a person can act on: daemon down, permission denied")
    func errors() throws {
        let down = try Subprocess.run(mamori, ["status", "--socket", "/nonexistent/mamori.sock"])
        #expect(down.status == 3)
        #expect(down.stderr.hasPrefix("mamori: cannot reach mamorid at /nonexistent/mamori.sock"))
        #expect(down.stderr.contains("is it running? (`make run`)"))
        // An unprivileged uid: the policy refuses it, and says which user and why.
        let denied = try Subprocess.run(
            "setpriv",
            [
                "--reuid=65534", "--regid=65534", "--clear-groups", mamori, "role", "grant", "nobody", "ciso",
                "--socket", daemon.socketPath,
            ])
        #expect(denied.status == 4, "\(denied.stderr)")
        #expect(
            denied.stderr.hasPrefix(
                "mamori: permission denied: your user nobody may not mamori.role.grant on mamori:roles/ciso"))
    }
}

/// Display width as the CLI computes it, for checking alignment from outside.
enum MamoriCLITestsWidth {
    static func width(_ text: String) -> Int {
        text.unicodeScalars.reduce(0) { total, scalar in
            let value = scalar.value
            let wide =
                (0x1100...0x115F).contains(value) || (0x2E80...0xA4CF).contains(value)
                || (0xAC00...0xD7A3).contains(value)
                || (0xF900...0xFAFF).contains(value) || (0xFF00...0xFF60).contains(value)
            return total + (wide ? 2 : 1)
        }
    }
}

/// Turns a QR code drawn with half blocks (blocks = light modules) into a PBM and reads it with
/// zbarimg, an independent decoder.
func decodeQR(in output: String) throws -> String {
    let drawn = output.split(separator: "\n").map(String.init).filter { line in
        !line.isEmpty && line.allSatisfy { "█▀▄ ".contains($0) }
    }
    var rows: [[Int]] = []
    for line in drawn {
        rows.append(line.map { "█▀".contains($0) ? 0 : 1 })
        rows.append(line.map { "█▄".contains($0) ? 0 : 1 })
    }
    let scale = 4
    let width = (rows.first?.count ?? 0) * scale
    var pbm = "P1\n\(width) \(rows.count * scale)\n"
    for row in rows {
        let line = row.flatMap { Array(repeating: String($0), count: scale) }.joined(separator: " ")
        for _ in 0..<scale { pbm += line + "\n" }
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("qr-\(UUID().uuidString).pbm").path
    try pbm.write(toFile: path, atomically: true, encoding: .ascii)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let result = try Subprocess.run("zbarimg", ["-q", "--raw", path])
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A process whose output can be read while it runs, and answered (posix_spawn with pipes).
final class InteractiveProcess {
    private let pid: pid_t
    private let input: Int32
    private let output: Int32
    private let errorPath: String
    private var collected = ""

    init(_ executable: String, _ arguments: [String], environment: [String: String]) throws {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw SubprocessError(description: "pipe failed") }
        // Only the child's copies (made by posix_spawn's dup2) survive exec.
        for descriptor in toChild + fromChild { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        errorPath = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString)").path
        let errors = open(errorPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment { variables[key] = value }
        variables["MAMORI_SESSION"] = nil
        pid = try Subprocess.spawn(
            executable, arguments, environment: variables, stdin: toChild[0], stdout: fromChild[1], stderr: errors)
        close(toChild[0])
        close(fromChild[1])
        close(errors)
        input = toChild[1]
        output = fromChild[0]
    }

    deinit {
        close(input)
        close(output)
        try? FileManager.default.removeItem(atPath: errorPath)
    }

    /// Reads stdout until a line containing `marker` has been printed in full.
    func readUntil(_ marker: String, timeout: Int32 = 15_000) throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let range = collected.range(of: marker), collected[range.upperBound...].contains("\n") {
                return collected
            }
            var poller = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, timeout) > 0 else { break }
            let count = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            collected += String(decoding: buffer[..<count], as: UTF8.self)
        }
        throw SubprocessError(description: "'\(marker)' did not appear; output so far:\n\(collected)")
    }

    func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(input, $0.baseAddress, $0.count) }) == bytes.count else {
            throw SubprocessError(description: "write failed")
        }
    }

    /// Waits for the end; returns the rest of stdout and all of stderr.
    func finish() throws -> ProcessResult {
        var rest: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            rest += buffer[..<count]
        }
        let status = Subprocess.wait(for: pid)
        return ProcessResult(
            status: status, stdout: String(decoding: rest, as: UTF8.self),
            stderr: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        )
    }
}
