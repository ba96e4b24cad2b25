import Foundation
import MamoriCore

/// A small valid policy, one file per section, that tests extend or break.
enum PolicyFixtures {
    static let zones = """
        zones:
          - {id: mynumber, login-factors: [password, totp]}
          - {id: lgwan, login-factors: [password]}
        classification:
          - axis: confidentiality
            levels: [1, 2, 3C, 3B, 3A]
          - {axis: integrity, levels: [1, 2]}
        organisations:
          - {id: planning}
          - {id: schools}
        """

    static let assets = """
        assets:
          - {id: residents, zone: mynumber, owner: planning, classification: {confidentiality: 3A, integrity: 2}, tags: [personal]}
          - {id: ledger, zone: mynumber, owner: planning, classification: {confidentiality: 2, integrity: 2}}
          - {id: specs, zone: lgwan, owner: schools, classification: {confidentiality: 3C, integrity: 1}}
          - {id: notices, zone: lgwan, owner: planning, classification: {confidentiality: 1, integrity: 1}}
        """

    static let roles = """
        roles:
          - {id: staff}
          - {id: clerk, inherits: [staff], zones: [mynumber]}
          - {id: manager, inherits: [clerk], privileged: true, max-holders: 2}
          - {id: auditor}
        actions:
          - {id: read}
          - {id: write}
          - {id: export}
          - {id: mamori.role.grant, administrative: true}
        constraints:
          - {id: independent, separation-of-duty: [auditor, clerk], reason: audits are independent}
        """

    static let rules = """
        rules:
          - id: clerks-read
            effect: permit
            description: clerks read their own organisation's records
            roles: [clerk]
            actions: [read, write]
            resources: {where: {zone: mynumber}}
            when: {zone: mynumber, factors: [password, totp], same-organisation: true}
          - id: no-export
            effect: forbid
            roles: ["*"]
            actions: [export]
            resources: {where: {zone: mynumber}}
          - id: top-secret-needs-totp
            effect: forbid
            roles: ["*"]
            actions: [read, write]
            resources: {where: {confidentiality: ">= 3B"}}
            unless: {factors: [password, totp]}
          - id: anyone-reads-notices
            effect: permit
            roles: ["*"]
            actions: [read]
            resources: {assets: [notices]}
          - id: staff-read-lgwan-office-hours
            effect: permit
            roles: [staff]
            actions: [read]
            resources: {where: {zone: lgwan, confidentiality: "<= 3C"}}
            when: {hours: "08:30-17:15", days: weekdays, user-kind: [staff]}
          - id: night-batch
            effect: permit
            roles: [manager]
            actions: [write]
            resources: {patterns: ["ledg?r", "batch:*"]}
            when: {hours: "22:00-02:00"}
          - id: managers-grant
            effect: permit
            roles: [manager]
            actions: ["mamori.*"]
            resources: {patterns: ["mamori:roles/*"]}
        """

    static func files(replacing name: String? = nil, with text: String? = nil, adding extra: [(String, String)] = [])
        -> [(name: String, text: String)]
    {
        var files = [("zones.yaml", zones), ("assets.yaml", assets), ("roles.yaml", roles), ("rules.yaml", rules)]
        if let name, let text, let index = files.firstIndex(where: { $0.0 == name }) { files[index].1 = text }
        return (files + extra).map { (name: $0.0, text: $0.1) }
    }

    static func engine() throws -> PolicyEngine {
        PolicyEngine(policy: try PolicyLoader.load(files: files()))
    }

    /// The repository's `policies/` folder.
    static var townPolicy: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("policies")
    }
}
