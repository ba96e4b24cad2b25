import Foundation
import MamoriCore
import MamoriTestSupport
import Testing

/// Reading /etc/pam.d stacks for the inspection's PAM check, on files written for each case.
@Suite("PAM stacks: is pam_mamori.so enforced, and can anything bypass it?")
struct PAMStackTests {
    /// Writes `files` into a fresh folder and reads `service` from it.
    func verdict(_ service: String, _ files: [String: String]) throws -> PAMStack.Verdict? {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pam-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for (name, text) in files {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return PAMStack(service: service, directory: folder.path)?.verdict
    }

    static let debianCommonAuth = """
        auth [success=1 default=ignore] pam_unix.so nullok
        auth requisite pam_deny.so
        auth required pam_permit.so
        """

    @Test("the shipped examples are enforced")
    func examples() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("pam/examples")
        for name in ["login", "sshd", "sudo", "screen-locker"] {
            let text = try String(contentsOf: examples.appendingPathComponent(name), encoding: .utf8)
            #expect(
                try verdict(name, [name: text, "common-session": "", "common-session-noninteractive": ""]) == .enforced,
                "\(name)")
        }
    }

    @Test("a service without the module, or only including Debian's common-auth, is absent")
    func absent() throws {
        #expect(
            try verdict("sshd", ["sshd": "@include common-auth\n", "common-auth": Self.debianCommonAuth]) == .absent)
        #expect(
            try verdict(
                "su",
                [
                    "su": "# auth required pam_mamori.so\nauth include common-auth\n",
                    "common-auth": Self.debianCommonAuth,
                ]) == .absent)
        #expect(try verdict("login", [:]) == nil)
    }

    @Test("found through @include, include and substack, with continuation lines and -type")
    func includes() throws {
        #expect(
            try verdict(
                "a",
                [
                    "a": "@include mamori-auth\n",
                    "mamori-auth": "-auth required /lib/security/pam_mamori.so \\\n  timeout=5000\n",
                ]) == .enforced)
        #expect(
            try verdict("b", ["b": "auth substack mamori-auth\n", "mamori-auth": "auth required pam_mamori.so\n"])
                == .enforced)
        // An include cycle ends instead of recursing forever.
        #expect(try verdict("c", ["c": "auth include c\nauth required pam_mamori.so\n"]) == .enforced)
    }

    @Test("sufficient, success=done and jumps past the module before it are bypasses; optional does not count")
    func bypasses() throws {
        guard
            case .bypass(let origin, let module)? = try verdict(
                "s", ["s": "auth sufficient pam_rootok.so\nauth required pam_mamori.so\n"])
        else {
            Issue.record("sufficient before pam_mamori.so is a bypass")
            return
        }
        #expect(module == "pam_rootok.so")
        #expect(origin.hasSuffix("/s:1"))
        guard
            case .bypass? = try verdict(
                "d", ["d": "auth [success=done default=ignore] pam_unix.so\nauth required pam_mamori.so\n"])
        else {
            Issue.record("success=done before pam_mamori.so is a bypass")
            return
        }
        guard
            case .bypass? = try verdict(
                "j",
                [
                    "j":
                        "auth [success=2 default=ignore] pam_unix.so\nauth required pam_mamori.so\nauth required pam_deny.so\nauth required pam_permit.so\n"
                ])
        else {
            Issue.record("a jump over pam_mamori.so is a bypass")
            return
        }
        // Debian's common-auth before the module jumps one line (over pam_deny), not past it.
        #expect(
            try verdict(
                "k", ["k": "@include common-auth\nauth required pam_mamori.so\n", "common-auth": Self.debianCommonAuth])
                == .enforced)
        // After the module, a sufficient line is the break-glass path, not a bypass.
        #expect(
            try verdict(
                "l",
                [
                    "l":
                        "auth [success=done authinfo_unavail=ignore default=die] pam_mamori.so\nauth sufficient pam_unix.so\n"
                ]) == .enforced)
        guard case .optional? = try verdict("o", ["o": "auth optional pam_mamori.so\n"]) else {
            Issue.record("an optional pam_mamori.so does not enforce anything")
            return
        }
    }
}

/// The pam-auth-update profile (contrib/pam-configs/mamori), through Debian's own pam-auth-update
/// in a root of the test's own (`--root`): the common stacks it writes, read as the inspection reads
/// a service that includes them.
@Suite(
    "the pam-auth-update profile",
    .enabled(
        if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/pam-auth-update") && geteuid() == 0,
        "needs Debian's pam-auth-update (libpam-runtime), as root"))
struct PAMAuthUpdateTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("enabled, it puts pam_mamori.so before pam_unix in common-auth, enforced, with root's break-glass")
    func enabledProfile() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pam-root-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let configs = root.appendingPathComponent("usr/share/pam-configs")
        try FileManager.default.createDirectory(at: configs, withIntermediateDirectories: true)
        for folder in ["etc/pam.d", "var/lib/pam"] {
            try FileManager.default.createDirectory(
                at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        // Debian's own profiles beside Mamori's, as on an installed system.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/usr/share/pam-configs")) ?? [] {
            try FileManager.default.copyItem(
                at: URL(fileURLWithPath: "/usr/share/pam-configs/" + name), to: configs.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(
            at: Self.repository.appendingPathComponent("contrib/pam-configs/mamori"),
            to: configs.appendingPathComponent("mamori"))
        let enabled = try Subprocess.run(
            "/usr/sbin/pam-auth-update", ["--root", root.path, "--force", "--enable", "mamori"],
            environment: ["DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        #expect(enabled.status == 0, "\(enabled)")
        let pam = root.appendingPathComponent("etc/pam.d")
        let auth = try String(contentsOf: pam.appendingPathComponent("common-auth"), encoding: .utf8)
        let mamori = try #require(auth.range(of: "pam_mamori.so"))
        let unix = try #require(auth.range(of: "pam_unix.so"))
        #expect(mamori.lowerBound < unix.lowerBound, "\(auth)")
        #expect(auth.contains("pam_succeed_if.so user = root quiet"), "\(auth)")
        // Password changes: root's own local password through pam_unix (without use_authtok, which
        // would need an earlier module's new password), everyone else's through mamorid.
        let password = try String(contentsOf: pam.appendingPathComponent("common-password"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        #expect(password.first?.contains("pam_succeed_if.so user = root quiet") == true, "\(password)")
        #expect(password.dropFirst().first?.contains("pam_unix.so obscure yescrypt") == true, "\(password)")
        #expect(password.dropFirst(2).first?.contains("pam_mamori.so") == true, "\(password)")
        // A login service that includes the common stacks, as Debian's login does.
        try "@include common-auth\n@include common-account\n@include common-session\n".write(
            to: pam.appendingPathComponent("login"), atomically: true, encoding: .utf8)
        #expect(PAMStack(service: "login", directory: pam.path)?.verdict == .enforced, "\(auth)")
        // Disabled again, the common stacks have no trace of it.
        let disabled = try Subprocess.run(
            "/usr/sbin/pam-auth-update", ["--root", root.path, "--force", "--remove", "mamori"],
            environment: ["DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        #expect(disabled.status == 0, "\(disabled)")
        #expect(
            !(try String(contentsOf: pam.appendingPathComponent("common-auth"), encoding: .utf8)).contains("pam_mamori")
        )
    }
}
