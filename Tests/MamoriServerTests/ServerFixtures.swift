import Foundation
import MamoriTestSupport
import Testing

/// A daemon on a temporary socket with a cheap Argon2 setting (tests exercise logic, not cost).
func startDaemon(cheapArgon2: Bool = true, configuration: String = "") throws -> DaemonHarness {
    let daemon = try DaemonHarness()
    if cheapArgon2 {
        let settings = daemon.policyDirectory + "/settings.yaml"
        let text = try String(contentsOfFile: settings, encoding: .utf8)
            .replacingOccurrences(of: "memory-kib: 65536", with: "memory-kib: 1024")
            .replacingOccurrences(of: "iterations: 3", with: "iterations: 1")
            .replacingOccurrences(of: "parallelism: 4", with: "parallelism: 1")
        try text.write(toFile: settings, atomically: true, encoding: .utf8)
    }
    if let status = try daemon.start(extraConfiguration: configuration) {
        throw SubprocessError(description: "mamorid exited with \(status):\n\(daemon.log)")
    }
    return daemon
}

/// The TOTP code for `secret` at `offset` seconds from now, from oathtool.
func oathCode(_ secret: String, offset: Int = 0) throws -> String {
    let time = Int(Date().timeIntervalSince1970) + offset
    let result = try Subprocess.run("oathtool", ["--totp", "-b", "-N", "@\(time)", secret])
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

extension Dictionary where Key == String, Value == Any {
    var ok: Bool { self["ok"] as? Bool == true }
    var errorCode: String? { (self["error"] as? [String: Any])?["code"] as? String }
    var errorMessage: String? { (self["error"] as? [String: Any])?["message"] as? String }
}

/// Creates a user with a password, a confirmed TOTP device and roles; returns the base32 seed.
@discardableResult
func enrol(_ client: LineClient, user: String, password: String, roles: [String], organisation: String = "planning")
    throws -> String
{
    #expect(try client.call(["op": "user.add", "user": user, "kind": "staff", "organisation": organisation]).ok)
    #expect(try client.call(["op": "user.passwd", "user": user, "password": password]).ok)
    let begin = try client.call(["op": "totp.enroll.begin", "user": user])
    let secret = try #require(begin["secret"] as? String)
    let confirm = try client.call(["op": "totp.enroll.confirm", "user": user, "code": try oathCode(secret)])
    #expect(confirm.ok, "\(confirm)")
    for role in roles { #expect(try client.call(["op": "role.grant", "user": user, "role": role]).ok) }
    return secret
}

/// Runs a Python client as an unprivileged uid (65534, nobody) and returns its reply lines.
func callAsNobody(socket: String, lines: [String]) throws -> [String] {
    let script = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
        for line in sys.argv[2:]:
            f.write(line.encode() + b"\\n"); f.flush(); print(f.readline().decode().strip())
        """
    let result = try Subprocess.run(
        "setpriv",
        ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script, socket] + lines
    )
    guard result.status == 0 else { throw SubprocessError(description: "client failed: \(result.stderr)") }
    return result.stdout.split(separator: "\n").map(String.init)
}
