import Foundation
import MamoriCore
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
