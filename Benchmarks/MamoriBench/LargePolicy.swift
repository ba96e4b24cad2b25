import Foundation
import MamoriCore

/// Generates the large benchmark policy as YAML files: 1,000 roles in chains five deep, 10,000
/// assets, 10,000 rules, and a mix of requests. Deterministic (a fixed-seed generator), so every
/// run measures the same policy.
struct LargePolicy {
    static let roleCount = 1_000
    static let chainDepth = 5
    static let assetCount = 10_000
    static let ruleCount = 10_000
    static let actionCount = 20
    static let organisationCount = 20

    /// SplitMix64: small, fast, and the same sequence everywhere.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func role(_ index: Int) -> String { "role-\(String(format: "%04d", index))" }
    static func asset(_ index: Int) -> String { "asset-\(String(format: "%05d", index))" }
    static func action(_ index: Int) -> String { "act-\(String(format: "%02d", index))" }
    static func organisation(_ index: Int) -> String { "org-\(index)" }

    static let zones = ["mynumber", "lgwan", "internet"]
    static let tags = ["personal-data", "system", "finance", "public"]

    /// The policy's files, by name.
    static func files(ruleCount: Int = ruleCount) -> [(name: String, text: String)] {
        var random = SeededGenerator(state: 20_261_130)
        var base = """
            zones:
              - {id: mynumber, login-factors: [password, totp]}
              - {id: lgwan, login-factors: [password]}
              - {id: internet, login-factors: [password]}
            organisations:

            """
        for index in 0..<organisationCount { base += "  - {id: \(organisation(index))}\n" }
        base += "actions:\n"
        for index in 0..<actionCount { base += "  - {id: \(action(index))}\n" }
        base += "roles:\n"
        for index in 0..<roleCount {
            // Chains of five: each role inherits the one below it in its chain.
            let inherits = index % chainDepth == 0 ? "" : ", inherits: [\(role(index - 1))]"
            base += "  - {id: \(role(index))\(inherits)}\n"
        }
        var assets = "assets:\n"
        for index in 0..<assetCount {
            let zone = zones.randomElement(using: &random) ?? "lgwan"
            let owner = organisation(Int.random(in: 0..<organisationCount, using: &random))
            let tag = tags.randomElement(using: &random) ?? "public"
            assets +=
                "  - {id: \(asset(index)), zone: \(zone), owner: \(owner), tags: [\(tag)], classification: "
                + "{confidentiality: \(Int.random(in: 1...3, using: &random)), integrity: \(Int.random(in: 1...2, using: &random)), "
                + "availability: \(Int.random(in: 1...2, using: &random))}}\n"
        }
        var rules = "rules:\n"
        for index in 0..<ruleCount {
            let effect = Int.random(in: 0..<10, using: &random) == 0 ? "forbid" : "permit"
            let roles = (0..<Int.random(in: 1...2, using: &random)).map { _ in
                role(Int.random(in: 0..<roleCount, using: &random))
            }
            let actions = (0..<Int.random(in: 1...2, using: &random)).map { _ in
                action(Int.random(in: 0..<actionCount, using: &random))
            }
            rules += "  - id: rule-\(index)\n    effect: \(effect)\n"
            rules += "    roles: [\(Array(Set(roles)).sorted().joined(separator: ", "))]\n"
            rules += "    actions: [\(Array(Set(actions)).sorted().joined(separator: ", "))]\n"
            let shape = Int.random(in: 0..<10, using: &random)
            if shape < 6 {
                let listed = (0..<Int.random(in: 1...3, using: &random)).map { _ in
                    asset(Int.random(in: 0..<assetCount, using: &random))
                }
                rules += "    resources: {assets: [\(Array(Set(listed)).sorted().joined(separator: ", "))]}\n"
            } else if shape < 9 {
                let zone = zones.randomElement(using: &random) ?? "lgwan"
                rules +=
                    "    resources: {where: {zone: \(zone), confidentiality: \"<= \(Int.random(in: 1...3, using: &random))\"}}\n"
            } else {
                rules +=
                    "    resources: {patterns: [\"asset-\(String(format: "%03d", Int.random(in: 0..<100, using: &random)))*\"]}\n"
            }
            var conditions: [String] = []
            if Int.random(in: 0..<2, using: &random) == 0 {
                conditions.append("zone: \(zones.randomElement(using: &random) ?? "lgwan")")
            }
            if effect == "permit" && Int.random(in: 0..<2, using: &random) == 0 {
                conditions.append("factors: [password, totp]")
            }
            if Int.random(in: 0..<5, using: &random) == 0 { conditions.append("same-organisation: true") }
            if Int.random(in: 0..<10, using: &random) == 0 { conditions.append("hours: \"08:00-18:00\"") }
            if !conditions.isEmpty { rules += "    when: {\(conditions.joined(separator: ", "))}\n" }
        }
        return [("large/base.yaml", base), ("large/assets.yaml", assets), ("large/rules.yaml", rules)]
    }

    /// Requests for users holding one to three random roles, on random actions and assets.
    static func requests(count: Int, time: Date) -> [AuthorizationRequest] {
        var random = SeededGenerator(state: 42)
        return (0..<count).map { index in
            AuthorizationRequest(
                user: "user-\(index)",
                roles: (0..<Int.random(in: 1...3, using: &random)).map { _ in
                    role(Int.random(in: 0..<roleCount, using: &random))
                },
                kind: .staff, organisation: organisation(Int.random(in: 0..<organisationCount, using: &random)),
                zone: zones.randomElement(using: &random) ?? "lgwan",
                factors: Int.random(in: 0..<2, using: &random) == 0 ? [.password] : [.password, .totp],
                time: time, action: action(Int.random(in: 0..<actionCount, using: &random)),
                resource: asset(Int.random(in: 0..<assetCount, using: &random))
            )
        }
    }
}
