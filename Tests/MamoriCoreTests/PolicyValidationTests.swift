import Foundation
import MamoriCore
import Testing

@Suite("Policy loading and validation")
struct PolicyValidationTests {
    /// Loads the fixture with one file replaced or added, expecting failure; returns the lines.
    func problems(replacing name: String? = nil, with text: String? = nil, adding extra: [(String, String)] = [])
        throws -> [String]
    {
        let error = try #require(throws: PolicyLoadError.self) {
            try PolicyLoader.load(files: PolicyFixtures.files(replacing: name, with: text, adding: extra))
        }
        return error.diagnostics.map(\.description)
    }

    @Test("the fixture and the town's policy are valid")
    func valid() throws {
        let policy = try PolicyLoader.load(files: PolicyFixtures.files())
        #expect(policy.rules.count == 7)
        #expect(policy.axes[0].levels == ["1", "2", "3C", "3B", "3A"])
        #expect(policy.warnings.isEmpty)
        let town = try PolicyLoader.load(directory: PolicyFixtures.townPolicy)
        #expect(Set(town.zones.map(\.id)) == ["mynumber", "lgwan", "internet"])
        #expect(town.zones.first { $0.id == "mynumber" }?.loginFactors == [.password, .totp])
        #expect(town.warnings.isEmpty, "\(town.warnings)")
    }

    @Test("invalid YAML is reported at its line and column")
    func syntax() throws {
        let lines = try problems(replacing: "zones.yaml", with: "zones:\n  - {id: a, login-factors: [password]\n")
        #expect(lines.count == 1)
        #expect(lines[0].hasPrefix("zones.yaml:3:1: error: This is not valid YAML"))
    }

    @Test("an unknown key names its place and the likely meant key")
    func unknownKey() throws {
        let text = PolicyFixtures.roles.replacingOccurrences(
            of: "inherits: [staff], zones", with: "inherit: [staff], zones")
        let lines = try problems(replacing: "roles.yaml", with: text)
        #expect(
            lines == [
                "roles.yaml:3:17: error: Unknown key 'inherit' in a role. Did you mean 'inherits'? Allowed: id, title, inherits, privileged, max-holders, zones."
            ])
    }

    @Test("an unknown top-level section is refused")
    func unknownSection() throws {
        let lines = try problems(adding: [("extra.yaml", "rulez: []\n")])
        #expect(lines.count == 1)
        #expect(
            lines[0].hasPrefix("extra.yaml:1:1: error: Unknown key 'rulez' in a policy file. Did you mean 'rules'?"))
    }

    @Test("a repeated key is refused")
    func repeatedKey() throws {
        let lines = try problems(adding: [("extra.yaml", "actions:\n  - {id: x, title: a, title: b}\n")])
        #expect(lines.count == 1)
        #expect(lines[0].hasPrefix("extra.yaml:2:"))
    }

    @Test("an id declared twice, across files, names both places")
    func duplicateId() throws {
        let lines = try problems(adding: [("more.yaml", "roles:\n  - id: staff\n")])
        // Files are read in name order, so the later one is the duplicate.
        #expect(lines == ["roles.yaml:2:10: error: The role 'staff' is declared twice; the first is at more.yaml:2:9."])
    }

    @Test("dangling references are errors with a hint")
    func danglingReferences() throws {
        let text = PolicyFixtures.assets.replacingOccurrences(
            of: "zone: lgwan, owner: schools", with: "zone: lgwam, owner: school")
        let lines = try problems(replacing: "assets.yaml", with: text)
        #expect(
            lines == [
                "assets.yaml:4:23: error: Unknown zone 'lgwam'. Did you mean 'lgwan'?",
                "assets.yaml:4:37: error: Unknown organisation 'school'. Did you mean 'schools'?",
            ])
        let rules = PolicyFixtures.rules.replacingOccurrences(of: "roles: [clerk]", with: "roles: [clerks]")
            .replacingOccurrences(of: "actions: [export]", with: "actions: [exports]")
            .replacingOccurrences(of: "assets: [notices]", with: "assets: [notice]")
        let ruleLines = try problems(replacing: "rules.yaml", with: rules)
        #expect(
            ruleLines == [
                "rules.yaml:5:13: error: Unknown role 'clerks'. Did you mean 'clerk'?",
                "rules.yaml:12:15: error: Unknown action 'exports'. Did you mean 'export'?",
                "rules.yaml:24:26: error: Unknown asset 'notice'. Did you mean 'notices'?",
            ])
    }

    @Test("a level not on its axis lists the axis's levels; a missing level is named")
    func levels() throws {
        let text = PolicyFixtures.assets.replacingOccurrences(of: "confidentiality: 3A", with: "confidentiality: 4")
            .replacingOccurrences(of: "{confidentiality: 2, integrity: 2}", with: "{confidentiality: 2}")
        let lines = try problems(replacing: "assets.yaml", with: text)
        #expect(
            lines == [
                "assets.yaml:2:88: error: The level '4' is not on the axis 'confidentiality' (levels: 1, 2, 3C, 3B, 3A).",
                "assets.yaml:3:10: error: The asset 'ledger' has no level on the axis 'integrity'.",
                // With no asset at 3A left, the ">= 3B" rule selects nothing: warned, as it should be.
                "rules.yaml:14:9: warning: The rule 'top-secret-needs-totp' can never match: its 'where' selects no asset in the register.",
            ])
        let badTest = PolicyFixtures.rules.replacingOccurrences(of: "\">= 3B\"", with: "\">= 3D\"")
        #expect(
            try problems(replacing: "rules.yaml", with: badTest).first?.contains(
                "The level '3D' is not on the axis 'confidentiality'") == true)
    }

    @Test("an inheritance cycle is reported once, with its members")
    func cycle() throws {
        let text = PolicyFixtures.roles.replacingOccurrences(
            of: "- {id: staff}", with: "- {id: staff, inherits: [manager]}")
        let lines = try problems(replacing: "roles.yaml", with: text)
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.contains("Roles inherit in a cycle: clerk, manager, staff") == true)
        #expect(lines.first?.hasPrefix("roles.yaml:2:") == true)
    }

    @Test("a role whose inheritance already breaks separation of duty is an error")
    func separationBrokenByInheritance() throws {
        let text = PolicyFixtures.roles.replacingOccurrences(
            of: "- {id: auditor}", with: "- {id: auditor}\n  - {id: super, inherits: [manager, auditor]}")
        let lines = try problems(replacing: "roles.yaml", with: text)
        #expect(
            lines == [
                "roles.yaml:6:10: error: The role 'super' includes auditor and clerk through inheritance, which the constraint 'independent' forbids holding together."
            ])
    }

    @Test(
        "values out of their vocabulary are errors",
        arguments: [
            (
                "effect: permit\n    description: clerks", "effect: allow\n    description: clerks",
                "The effect must be 'permit' or 'forbid'"
            ),
            ("hours: \"08:30-17:15\"", "hours: \"8:30 to 17\"", "hours must be a local time window"),
            ("days: weekdays", "days: [monday]", "Days are mon, tue"),
            ("user-kind: [staff]", "user-kind: [intern]", "User kinds are staff"),
            ("factors: [password, totp], same", "factors: [password, sms], same", "Unknown factor 'sms'"),
            (
                "actions: [\"mamori.*\"]", "actions: [\"nothing.*\"]",
                "The action pattern 'nothing.*' matches no declared action."
            ),
            (
                "unless: {factors: [password, totp]}", "when: {factors: [password, totp]}",
                "A forbid rule cannot require factors in 'when'"
            ),
            ("where: {zone: lgwan, confidentiality", "where: {zone: lgwan, secrecy", "Unknown 'where' key 'secrecy'"),
        ])
    func vocabulary(original: String, replacement: String, message: String) throws {
        let text = PolicyFixtures.rules.replacingOccurrences(of: original, with: replacement)
        #expect(text != PolicyFixtures.rules, "the fixture must contain the text to replace")
        let lines = try problems(replacing: "rules.yaml", with: text)
        #expect(lines.contains { $0.hasPrefix("rules.yaml:") && $0.contains(message) }, "\(lines)")
    }

    @Test("settings are checked: unknown time zones, weak Argon2, settings in two files")
    func settings() throws {
        let bad = "settings:\n  time-zone: Mars/Olympus\n  password: {memory-kib: 4, iterations: 1, parallelism: 1}\n"
        let lines = try problems(adding: [("settings.yaml", bad), ("z-more.yaml", "settings: {}\n")])
        #expect(lines.contains { $0.hasPrefix("settings.yaml:2:14: error: Unknown time zone 'Mars/Olympus'") })
        #expect(lines.contains { $0.hasPrefix("settings.yaml:3:") && $0.contains("memory-kib") })
        #expect(lines.contains { $0.contains("Settings are given in more than one file") })
    }

    @Test("a rule that can never match is a warning, and the policy still loads")
    func neverMatches() throws {
        let extra = """
            rules:
              - id: nothing-selected
                effect: permit
                roles: [staff]
                actions: [read]
                resources: {where: {confidentiality: "> 3A"}}
              - id: wrong-zone
                effect: permit
                roles: [clerk]
                actions: [read]
                when: {zone: lgwan}
            """
        let policy = try PolicyLoader.load(files: PolicyFixtures.files(adding: [("extra.yaml", extra)]))
        #expect(
            policy.warnings.map(\.description) == [
                "extra.yaml:2:9: warning: The rule 'nothing-selected' can never match: its 'where' selects no asset in the register.",
                "extra.yaml:7:9: warning: The rule 'wrong-zone' can never match: none of its roles is usable in its zones.",
            ])
    }

    @Test("every problem is reported at once, in file order")
    func allAtOnce() throws {
        let lines = try problems(adding: [
            ("a.yaml", "roles:\n  - {id: staff}\n"), ("z.yaml", "actions:\n  - {id: read}\n  - {idd: x}\n"),
        ])
        #expect(lines.count == 4, "\(lines)")
        #expect(lines == lines.sorted())
    }

    @Test("the revision is a digest of the files: it changes when a file does")
    func revision() throws {
        let first = try PolicyLoader.load(files: PolicyFixtures.files())
        let same = try PolicyLoader.load(files: PolicyFixtures.files())
        let changed = try PolicyLoader.load(files: PolicyFixtures.files(adding: [("extra.yaml", "# a comment\n")]))
        #expect(first.revision == same.revision)
        #expect(first.revision != changed.revision)
        #expect(first.revision.hasPrefix("sha256:") && first.revision.count == 71)
    }

    @Test("whatever a file holds, loading never crashes")
    func neverCrashes() throws {
        let town = try String(
            contentsOf: PolicyFixtures.townPolicy.appendingPathComponent("rules.yaml"), encoding: .utf8)
        var generator = SystemRandomNumberGenerator()
        var inputs = [
            "", "---\n...\n", "[1, 2", "rules: !!binary aGVsbG8=", "rules:\n  - &a {id: x}\n  - *a\n", "zones: 12",
            String(repeating: "[", count: 500), "\u{0}\u{1}",
            "rules: [" + String(repeating: "{id: a},", count: 2000) + "]",
            "assets:\n  - {id: x, classification: [1, 2]}\n",
            "roles:\n  - {id: a, max-holders: 99999999999999999999}\n",
        ]
        let characters = Array(town)
        for _ in 0..<150 {
            var mutated = characters
            for _ in 0..<3 {
                let index = Int.random(in: 0..<mutated.count, using: &generator)
                mutated[index] =
                    ["-", ":", "{", "[", " ", "\n", "'", "*", "&", "é"].randomElement(using: &generator) ?? " "
            }
            inputs.append(String(mutated))
        }
        for input in inputs {
            do {
                _ = try PolicyLoader.load(files: PolicyFixtures.files(adding: [("fuzz.yaml", input)]))
            } catch {
                #expect(!error.diagnostics.isEmpty)
                for diagnostic in error.diagnostics {
                    #expect(diagnostic.location.line >= 1 && diagnostic.location.column >= 1)
                }
            }
        }
    }
}
