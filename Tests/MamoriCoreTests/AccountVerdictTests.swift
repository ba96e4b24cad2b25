import Foundation
import MamoriCore
import Testing

/// `account`'s verdict as a value: the facts in, the answer and its reasons out, with the town
/// policy's `login` rule deciding the last step.
@Suite("the account verdict")
struct AccountVerdictTests {
    static let engine = Result { PolicyEngine(policy: try PolicyLoader.load(directory: PolicyFixtures.townPolicy)) }

    static func facts(
        disabled: Bool = false, locked: Bool = false, hasAssignments: Bool = true, current: Bool = true,
        roles: [String] = ["staff"], mustChange: Bool = false
    ) -> AccountFacts {
        AccountFacts(
            disabled: disabled, locked: locked, hasAssignments: hasAssignments, hasCurrentAssignments: current,
            rolesInZone: roles, mustChangePassword: mustChange, zone: "mynumber")
    }

    /// The `login` question as mamorid asks it, on `resource`.
    static func login(_ resource: String) throws -> ([String]) -> Decision {
        let engine = try Self.engine.get()
        return { roles in
            engine.evaluate(
                AuthorizationRequest(
                    user: "sato", roles: roles, zone: "mynumber", action: "login", resource: resource))
        }
    }

    @Test("each refusal in its order, and the policy asked only when nothing else refused")
    func verdicts() throws {
        let terminal = try Self.login("mamori:terminals/kametsu-01")
        var asked = 0
        let counting: ([String]) -> Decision = { roles in
            asked += 1
            return terminal(roles)
        }
        #expect(
            Self.facts(disabled: true, locked: true).verdict(login: counting) == (.denied, ["The account is disabled."])
        )
        #expect(Self.facts(locked: true).verdict(login: counting).0 == .denied)
        #expect(Self.facts(current: false, roles: []).verdict(login: counting).0 == .expired)
        let noRole = Self.facts(roles: []).verdict(login: counting)
        #expect(noRole.0 == .denied && noRole.1 == ["The user holds no role that takes effect in the mynumber zone."])
        // Never assigned anything: no role here, not "expired".
        #expect(Self.facts(hasAssignments: false, current: false, roles: []).verdict(login: counting).0 == .denied)
        #expect(asked == 0, "the policy is not asked when the account refuses already")

        #expect(Self.facts().verdict(login: counting) == (.allowed, []))
        #expect(Self.facts(mustChange: true).verdict(login: counting).0 == .passwordChangeRequired)
        #expect(asked == 2)
    }

    @Test("the policy's refusal gives its own reasons")
    func policyRefuses() throws {
        let (result, reasons) = Self.facts().verdict(login: try Self.login("elsewhere"))
        #expect(result == .denied)
        #expect(!reasons.isEmpty, "the engine says why")
    }
}
