import Foundation
import Testing

@testable import MamoriServer

/// The hand-written manual pages (man/) stay true to the code they describe.
@Suite("the manual pages")
struct ManualTests {
    static func page(_ name: String) throws -> String {
        try String(contentsOf: ProtocolTests.repository.appendingPathComponent("man/" + name), encoding: .utf8)
    }

    @Test("mamorid.yaml(5) names every key the configuration reads, and no other")
    func configurationKeys() throws {
        let text = try Self.page("mamorid.yaml.5")
        for key in DaemonConfiguration.keys {
            #expect(text.contains("Ic \(key)"), "man/mamorid.yaml.5 does not describe \(key)")
        }
        let named = text.split(separator: "\n").filter { $0.hasPrefix(".It Ic ") }.flatMap { line in
            line.dropFirst(".It ".count).split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "Ic ", with: "")
            }
        }
        for key in named { #expect(DaemonConfiguration.keys.contains(key), "man/mamorid.yaml.5 names \(key)") }
    }

    @Test("pam_mamori(8) names every argument the module reads")
    func moduleArguments() throws {
        let text = try Self.page("pam_mamori.8")
        let source = try String(
            contentsOf: ProtocolTests.repository.appendingPathComponent("pam/pam_support.c"), encoding: .utf8)
        for argument in [
            "socket", "timeout", "password_prompt", "code_prompt", "daemon_user", "use_first_pass", "try_first_pass",
            "use_authtok", "debug",
        ] {
            #expect(source.contains("\"\(argument)"), "pam/pam_support.c does not read \(argument)")
            #expect(text.contains("Cm \(argument)"), "man/pam_mamori.8 does not describe \(argument)")
        }
    }
}
