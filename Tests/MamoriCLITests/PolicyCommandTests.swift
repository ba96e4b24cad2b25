import Foundation
import MamoriTestSupport
import Testing

/// The repository's `policies/` folder.
let townPolicy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("policies").path

@Suite("mamori policy")
struct PolicyCommandTests {
    @Test("check summarises the town policy; --json parses")
    func check() throws {
        let text = try Subprocess.run(mamori, ["policy", "check", townPolicy])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("is valid"))
        let json = try Subprocess.run(mamori, ["policy", "check", townPolicy, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["valid"] as? Bool == true)
        #expect((object["revision"] as? String)?.hasPrefix("sha256:") == true)
        #expect((object["counts"] as? [String: Int])?["zones"] == 3)
    }

    @Test("check lists every problem as file:line:column and exits 1")
    func checkInvalid() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mamori-policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in try FileManager.default.contentsOfDirectory(atPath: townPolicy) where name.hasSuffix(".yaml") {
            try FileManager.default.copyItem(
                atPath: "\(townPolicy)/\(name)", toPath: folder.appendingPathComponent(name).path)
        }
        try "roles:\n  - id: staff\n    inherit: [ciso]\n".write(
            to: folder.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)
        let result = try Subprocess.run(mamori, ["policy", "check", folder.path])
        #expect(result.status == 1)
        #expect(
            result.stderr.contains("broken.yaml:3:5: error: Unknown key 'inherit' in a role. Did you mean 'inherits'?"))
        #expect(result.stderr.contains("error: The role 'staff' is declared twice"))
        #expect(result.stderr.contains("nothing was loaded"))
    }

    @Test("test runs the town's cases and says how many passed")
    func test() throws {
        let result = try Subprocess.run(mamori, ["policy", "test", townPolicy])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.hasSuffix(" passed, 0 failed\n"))
        #expect(!result.stdout.contains("Rules no case exercised"))
        let json = try Subprocess.run(mamori, ["policy", "test", townPolicy, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["failed"] as? [Any] != nil && (object["failed"] as? [Any])?.isEmpty == true)
        #expect(object["unexercised_rules"] as? [String] == [], "snake_case, as every JSON Mamori prints")
        #expect((object["cases"] as? Int ?? 0) > 0 && object["cases"] as? Int == object["passed"] as? Int)
    }

    @Test("explain gives the decision, its rules and reasons; exit 1 unless allowed")
    func explain() throws {
        let base = [
            "policy", "explain", townPolicy, "--role", "staff", "--kind", "staff", "--organisation", "planning",
            "--zone", "mynumber", "--action", "asset.read", "--resource", "point.participants",
        ]
        let allowed = try Subprocess.run(mamori, base + ["--factors", "password,totp"])
        #expect(allowed.status == 0)
        #expect(allowed.stdout.hasPrefix("allow\n  deciding rules: mynumber-staff-own-records\n"))
        let stepUp = try Subprocess.run(mamori, base + ["--factors", "password", "--json"])
        #expect(stepUp.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stepUp.stdout.utf8)) as? [String: Any])
        #expect(object["effect"] as? String == "step-up")
        // The socket's decision shape: snake_case, as `authorize` replies and `mamori check --json` prints.
        #expect(object["missing_factors"] as? [String] == ["totp"])
        #expect(object["allowed"] as? Bool == false)
        #expect(Set(object.keys) == ["effect", "allowed", "rules", "reasons", "missing_factors", "policy_revision"])
        let badFactor = try Subprocess.run(mamori, base + ["--factors", "sms"])
        #expect(badFactor.status == 64)
    }

    @Test("graph draws every inheritance edge in DOT and Mermaid")
    func graph() throws {
        let dot = try Subprocess.run(mamori, ["policy", "graph", townPolicy])
        #expect(dot.stdout.hasPrefix("digraph roles {"))
        #expect(dot.stdout.contains("\"ciso\" -> \"chief-security-manager\";"))
        #expect(dot.stdout.contains("style=dashed"))
        let mermaid = try Subprocess.run(mamori, ["policy", "graph", townPolicy, "--format", "mermaid"])
        #expect(mermaid.stdout.hasPrefix("flowchart BT\n"))
        #expect(mermaid.stdout.contains("-->"))
        #expect(try Subprocess.run(mamori, ["policy", "graph", townPolicy, "--format", "svg"]).status == 64)
    }
}
