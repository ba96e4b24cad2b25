import Foundation
import MamoriTestSupport
import Testing

/// The CLI sends nothing to a server it does not trust: a fake mamorid run by another local
/// account (uid 65534, through setpriv) on a socket the CLI is pointed at.
@Suite("mamori trusts only root, the daemon's user or its own user as the server")
struct TrustTests {
    static let mamori = Subprocess.product("mamori")

    @Test(
        "a server run by uid 65534 gets no byte of a password, and the command says why",
        arguments: [
            ["status"], ["user", "passwd", "tanaka", "--password-stdin"],
        ])
    func untrustedServer(arguments: [String]) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mamori-trust-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        chmod(folder.path, 0o777)
        let socket = folder.appendingPathComponent("fake.sock").path
        let received = folder.appendingPathComponent("received").path
        // The fake server: accepts one connection, records how many bytes it got within 2 s.
        let script = """
            import socket, sys, os, time
            s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(1)
            open(sys.argv[2] + ".ready", "w").close()
            s.settimeout(10); c, _ = s.accept(); c.settimeout(2); data = b""
            try:
                while True:
                    chunk = c.recv(4096)
                    if not chunk: break
                    data += chunk
            except socket.timeout:
                pass
            open(sys.argv[2], "w").write(str(len(data)))
            """
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let server = try Subprocess.spawn(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script, socket, received],
            stdin: null, stdout: null, stderr: null
        )
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: received + ".ready") { usleep(20_000) }
        let result = try Subprocess.run(
            Self.mamori, arguments + ["--socket", socket, "--daemon-user", "root"],
            input: Array("a secret password\n".utf8)
        )
        _ = Subprocess.wait(for: server)
        #expect(result.status == 3)
        #expect(
            result.stderr.contains("refusing to talk to the server at \(socket): it runs as uid 65534"),
            "\(result.stderr)")
        #expect(try String(contentsOfFile: received, encoding: .utf8) == "0")
    }

    @Test("with no --socket and no MAMORI_SOCKET, the default is /run/mamori/mamori.sock, never the working folder")
    func noRelativeDefault() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mamori-cwd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent(".mamori"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // A socket in the working folder's .mamori/ that the command must not pick up.
        let planted = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(planted) }
        let path = folder.appendingPathComponent(".mamori/mamori.sock").path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(planted, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        listen(planted, 1)
        var environment = ProcessInfo.processInfo.environment
        environment["MAMORI_SOCKET"] = nil
        let result = try Subprocess.run(
            "/bin/sh", ["-c", "cd '\(folder.path)' && exec '\(Self.mamori)' status"], environment: environment
        )
        #expect(result.status == 3)
        #expect(result.stderr.contains("/run/mamori/mamori.sock"), "\(result.stderr)")
    }
}
