import Foundation
import MamoriCore
import Testing

/// The policy's settings for logins through a network cut: who may (`settings.offline.roles`),
/// with what per zone (`offline-login`), for how long, and the local lock; validated like the rest.
@Suite("offline login policy")
struct OfflinePolicyTests {
    static let zones = PolicyFixtures.zones.replacingOccurrences(
        of: "  - {id: mynumber, login-factors: [password, totp]}",
        with: "  - {id: mynumber, login-factors: [password, totp], offline-login: tags}")

    static func settings(_ offline: String) -> (String, String) {
        ("settings.yaml", "settings:\n  offline: \(offline)\n")
    }

    func load(zones: String = Self.zones, offline: String) throws -> Policy {
        try PolicyLoader.load(
            files: PolicyFixtures.files(replacing: "zones.yaml", with: zones, adding: [Self.settings(offline)]))
    }

    func problems(zones: String = Self.zones, offline: String) throws -> [String] {
        let error = try #require(throws: PolicyLoadError.self) { try load(zones: zones, offline: offline) }
        return error.diagnostics.map(\.description)
    }

    @Test("nobody logs in offline when the policy says nothing; the zone's factors apply to the roles named")
    func decisions() throws {
        let silent = try PolicyLoader.load(files: PolicyFixtures.files())
        #expect(silent.settings.offline.roles.isEmpty)
        #expect(silent.zones.allSatisfy { $0.offlineLogin == .deny })
        #expect(PolicyEngine(policy: silent).offlineLogin(roles: ["staff"], zone: "mynumber") == .deny)

        let policy = try load(offline: "{roles: [staff], window-hours: 48, maximum-age-days: 3, failures: 4}")
        #expect(
            policy.settings.offline
                == OfflineSettings(roles: ["staff"], windowHours: 48, maximumAgeDays: 3, failures: 4))
        let engine = PolicyEngine(policy: policy)
        #expect(engine.offlineLogin(roles: ["staff"], zone: "mynumber") == .tags)
        // clerk inherits staff, and takes effect in mynumber.
        #expect(engine.offlineLogin(roles: ["clerk"], zone: "mynumber") == .tags)
        #expect(engine.offlineLogin(roles: ["auditor"], zone: "mynumber") == .deny)
        // lgwan says nothing: deny, whoever asks.
        #expect(engine.offlineLogin(roles: ["staff"], zone: "lgwan") == .deny)
        #expect(engine.offlineLogin(roles: ["staff"], zone: "nowhere") == .deny)

        // A role counts only in the zones it takes effect in, inherited or not: clerk (and so
        // manager, through it) takes effect in mynumber alone.
        let zoned = try load(
            zones: Self.zones.replacingOccurrences(
                of: "  - {id: lgwan, login-factors: [password]}",
                with: "  - {id: lgwan, login-factors: [password], offline-login: password-only}"),
            offline: "{roles: [clerk]}")
        let zonedEngine = PolicyEngine(policy: zoned)
        #expect(zonedEngine.offlineLogin(roles: ["clerk"], zone: "mynumber") == .tags)
        #expect(zonedEngine.offlineLogin(roles: ["clerk"], zone: "lgwan") == .deny)
        #expect(zonedEngine.offlineLogin(roles: ["staff"], zone: "mynumber") == .deny)
        // A privileged role inheriting an offline role counts only when named itself.
        #expect(zonedEngine.offlineLogin(roles: ["manager"], zone: "mynumber") == .deny)
        let named = PolicyEngine(policy: try load(offline: "{roles: [staff, manager]}"))
        #expect(named.offlineLogin(roles: ["manager"], zone: "mynumber") == .tags)
    }

    @Test("an unknown role, factor or key, or a value out of range, is an error at its line and column")
    func errors() throws {
        #expect(
            try problems(offline: "{roles: [staf]}") == [
                "settings.yaml:2:21: error: Unknown role 'staf'. Did you mean 'staff'?"
            ])
        let factor = try problems(
            zones: Self.zones.replacingOccurrences(
                of: "  - {id: lgwan, login-factors: [password]}",
                with: "  - {id: lgwan, login-factors: [password], offline-login: password}"),
            offline: "{roles: [staff]}")
        #expect(factor == ["zones.yaml:3:59: error: offline-login is tags, password-only or deny."], "\(factor)")
        let range = try problems(offline: "{roles: [staff], window-hours: 0}")
        #expect(range.count == 1 && range[0].hasPrefix("settings.yaml:2:"), "\(range)")
        #expect(range.first?.contains("window-hours") == true, "\(range)")
        let key = try problems(offline: "{roles: [staff], maximum-age: 3}")
        #expect(
            key == [
                "settings.yaml:2:29: error: Unknown key 'maximum-age' in offline settings. "
                    + "Allowed: roles, window-hours, maximum-age-days, failures."
            ])
    }

    @Test("what weakens the zone's logins is warned about: no TOTP code offline, a privileged role, more failures")
    func warnings() throws {
        let passwordOnly = try load(
            zones: PolicyFixtures.zones.replacingOccurrences(
                of: "  - {id: mynumber, login-factors: [password, totp]}",
                with: "  - {id: mynumber, login-factors: [password, totp], offline-login: password-only}"),
            offline: "{roles: [staff]}")
        #expect(
            passwordOnly.warnings.map(\.description).contains {
                $0.hasPrefix("zones.yaml:2:") && $0.contains("would skip the TOTP code")
            }, "\(passwordOnly.warnings)")
        let privileged = try load(offline: "{roles: [manager], failures: 20}")
        let texts = privileged.warnings.map(\.description)
        #expect(texts.contains { $0.contains("The privileged role 'manager' may log in offline") }, "\(texts)")
        // Not through inheritance: manager inherits staff, but counts only when named itself.
        #expect(try load(offline: "{roles: [staff]}").warnings.isEmpty)
        #expect(texts.contains { $0.contains("lock after more failures (20) than online ones (10)") }, "\(texts)")
        let nowhere = try load(zones: PolicyFixtures.zones, offline: "{roles: [staff]}")
        #expect(
            nowhere.warnings.map(\.description).contains { $0.contains("no zone has an offline-login") },
            "\(nowhere.warnings)")
    }
}
