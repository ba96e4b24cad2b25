import Foundation
import MamoriCore
import Testing

@Suite("Policy engine decisions")
struct PolicyEngineTests {
    let engine: PolicyEngine
    /// Wednesday 2026-04-01 10:00 in Tokyo.
    let officeHours = ISO8601DateFormatter().date(from: "2026-04-01T10:00:00+09:00")
    init() throws { engine = try PolicyFixtures.engine() }

    func clerk(
        _ action: String, _ resource: String, roles: [String] = ["clerk"], zone: String? = "mynumber",
        factors: Set<Factor> = [.password, .totp], organisation: String? = "planning", kind: UserKind? = .staff,
        time: Date? = nil
    ) -> Decision {
        engine.evaluate(
            AuthorizationRequest(
                user: "tanaka", roles: roles, kind: kind, organisation: organisation, zone: zone, factors: factors,
                time: time ?? officeHours, action: action, resource: resource
            ))
    }

    @Test("a permit allows and names itself; the decision carries the policy revision")
    func permit() {
        let decision = clerk("read", "ledger")
        #expect(decision.effect == .allow)
        #expect(decision.decidingRules == ["clerks-read"])
        #expect(decision.reasons == ["Permitted by rule 'clerks-read': clerks read their own organisation's records."])
        #expect(decision.policyRevision == engine.revision)
    }

    @Test("nothing permits: default deny, with a reason")
    func defaultDeny() {
        let decision = clerk("read", "ledger", organisation: "schools")
        #expect(decision.effect == .deny)
        #expect(decision.decidingRules.isEmpty)
        #expect(
            decision.reasons == ["No rule permits this action on this resource for these roles; denied by default."])
    }

    @Test("forbid beats permit")
    func forbidOverrides() {
        let engineWithPermit = try? PolicyEngine(
            policy: PolicyLoader.load(
                files: PolicyFixtures.files(adding: [
                    (
                        "extra.yaml",
                        "rules:\n  - {id: clerks-export, effect: permit, roles: [clerk], actions: [export]}\n"
                    )
                ])))
        let decision = engineWithPermit?.evaluate(
            AuthorizationRequest(
                user: "t", roles: ["clerk"], zone: "mynumber", action: "export", resource: "ledger"))
        #expect(decision?.effect == .deny)
        #expect(decision?.decidingRules == ["no-export"])
        #expect(decision?.matchedRules.sorted() == ["clerks-export", "no-export"])
    }

    @Test("a permit lacking only a factor answers step-up, naming the factor")
    func stepUp() {
        let decision = clerk("read", "ledger", factors: [.password])
        #expect(decision.effect == .stepUp)
        #expect(decision.missingFactors == [.totp])
        #expect(decision.decidingRules == ["clerks-read"])
        #expect(
            decision.reasons.first?.hasPrefix("Step up: rule 'clerks-read' permits this only in a session with totp")
                == true)
    }

    @Test("a forbid lifted by factors also answers step-up; a permit failing on other grounds does not")
    func forbidUnlessFactors() {
        let decision = clerk("read", "residents", factors: [.password])
        #expect(decision.effect == .stepUp)
        #expect(decision.missingFactors == [.totp])
        #expect(Set(decision.decidingRules) == ["clerks-read", "top-secret-needs-totp"])
        let withTotp = clerk("read", "residents")
        #expect(withTotp.effect == .allow)
        let otherOrganisation = clerk("read", "residents", factors: [.password], organisation: "schools")
        #expect(otherOrganisation.effect == .deny)
    }

    @Test("a rule that cannot be evaluated denies and names the error")
    func failClosed() {
        let noOrganisation = clerk("read", "ledger", organisation: nil)
        #expect(noOrganisation.effect == .deny)
        #expect(noOrganisation.decidingRules == ["clerks-read"])
        #expect(
            noOrganisation.reasons == [
                "Rule 'clerks-read' cannot be evaluated (the user has no organisation); denied to fail closed."
            ])
        let noZone = clerk("read", "ledger", roles: ["manager"], zone: nil)
        #expect(noZone.effect == .deny)
        let noTime = engine.evaluate(
            AuthorizationRequest(
                user: "t", roles: ["staff"], kind: .staff, zone: "lgwan", action: "read", resource: "specs"))
        #expect(noTime.effect == .deny)
        #expect(noTime.reasons.first?.contains("the request carries no time") == true)
    }

    @Test("inherited roles count, within the zones where each role takes effect")
    func inheritanceAndZones() {
        #expect(clerk("read", "ledger", roles: ["manager"]).effect == .allow)
        // clerk (and so manager's clerk part) takes effect only in the My Number zone.
        #expect(clerk("read", "ledger", roles: ["manager"], zone: "lgwan").effect == .deny)
        #expect(clerk("read", "ledger", roles: ["staff"]).effect == .deny)
    }

    @Test("unknown actions deny; unknown roles are ignored with a note")
    func unknowns() {
        let action = clerk("shred", "ledger")
        #expect(action.effect == .deny)
        #expect(action.reasons == ["The action 'shred' is not in the policy; denied."])
        let role = clerk("read", "ledger", roles: ["clerk", "wizard"])
        #expect(role.effect == .allow)
        #expect(role.reasons.contains("The role 'wizard' is not in the policy and was ignored."))
    }

    @Test("patterns match with * and ?, and listed assets match by id")
    func patterns() {
        let night = ISO8601DateFormatter().date(from: "2026-04-01T23:30:00+09:00")
        #expect(clerk("write", "ledger", roles: ["manager"], time: night).decidingRules.contains("night-batch"))
        #expect(clerk("write", "batch:nightly/1", roles: ["manager"], time: night).effect == .allow)
        #expect(clerk("write", "batchx", roles: ["manager"], time: night).effect == .deny)
        #expect(clerk("mamori.role.grant", "mamori:roles/clerk", roles: ["manager"]).effect == .allow)
        #expect(clerk("read", "notices", roles: []).decidingRules == ["anyone-reads-notices"])
    }

    @Test("classification selectors compare on the axis's own order (3C < 3B < 3A)")
    func levelSelectors() {
        let staff = { (resource: String) in
            self.clerk("read", resource, roles: ["staff"], zone: "lgwan", factors: [.password])
        }
        #expect(staff("specs").effect == .allow)  // 3C ≤ 3C, and below 3B needs no TOTP
        let top = clerk("read", "residents", roles: [], factors: [.password])
        #expect(top.effect == .deny)  // 3A ≥ 3B: the forbid needs TOTP, and no permit applies
        #expect(top.missingFactors.isEmpty)
    }

    @Test("time windows: office hours on weekdays; windows across midnight")
    func timeWindows() {
        let date = { (text: String) in ISO8601DateFormatter().date(from: text) }
        let read = { (time: Date?) in self.clerk("read", "specs", roles: ["staff"], zone: "lgwan", time: time).effect }
        #expect(read(date("2026-04-01T08:30:00+09:00")) == .allow)
        #expect(read(date("2026-04-01T17:15:00+09:00")) == .deny)
        #expect(read(date("2026-04-01T08:29:00+09:00")) == .deny)
        #expect(read(date("2026-04-04T10:00:00+09:00")) == .deny)  // Saturday
        #expect(read(date("2026-04-01T01:00:00Z")) == .allow)  // 10:00 in Tokyo
        let write = { (time: String) in self.clerk("write", "batch:x", roles: ["manager"], time: date(time)).effect }
        #expect(write("2026-04-01T22:00:00+09:00") == .allow)
        #expect(write("2026-04-02T01:59:00+09:00") == .allow)
        #expect(write("2026-04-02T02:00:00+09:00") == .deny)
        #expect(write("2026-04-01T21:59:00+09:00") == .deny)
    }

    @Test("user kinds: a rule for staff does not apply to a contractor")
    func userKinds() {
        #expect(clerk("read", "specs", roles: ["staff"], zone: "lgwan", kind: .contractor).effect == .deny)
    }

    @Test("the town policy's own test cases pass and exercise every rule")
    func townPolicyTests() throws {
        let engine = PolicyEngine(policy: try PolicyLoader.load(directory: PolicyFixtures.townPolicy))
        let cases = try PolicyTestRunner.loadCases(directory: PolicyFixtures.townPolicy.appendingPathComponent("tests"))
        #expect(cases.count >= 30)
        let report = PolicyTestRunner.run(cases, on: engine)
        #expect(report.failed.map(\.testCase.name).isEmpty, "\(report.failed.map(\.failures))")
        #expect(report.unexercisedRules.isEmpty)
    }

    @Test("a failing expectation is reported with what differs")
    func testRunnerFails() throws {
        let cases = try PolicyTestRunner.loadCases(files: [
            (
                "t.yaml",
                """
                cases:
                  - name: wrong on purpose
                    request: {user: t, roles: [clerk], kind: staff, organisation: planning, zone: mynumber, factors: [password], action: read, resource: ledger}
                    expect: allow
                    rules: [anyone-reads-notices]
                    missing: [recovery-code]
                """
            )
        ])
        let report = PolicyTestRunner.run(cases, on: engine)
        #expect(report.failed.count == 1)
        #expect(
            report.failed.first?.failures == [
                "expected allow, got step-up",
                "expected deciding rules [anyone-reads-notices], got [clerks-read]",
                "expected missing factors [recovery-code], got [totp]",
            ])
        #expect(report.unexercisedRules.contains("no-export"))
    }
}

@Suite("Grant checks")
struct GrantCheckTests {
    let engine: PolicyEngine
    init() throws { engine = try PolicyFixtures.engine() }

    @Test("separation of duty is checked over inherited roles")
    func separation() {
        #expect(engine.checkGrant(role: "clerk", to: ["staff"], holders: 0).isEmpty)
        let direct = engine.checkGrant(role: "clerk", to: ["auditor"], holders: 0)
        #expect(
            direct == [
                .separationOfDuty(
                    constraint: "independent", roles: ["auditor", "clerk"], reason: "audits are independent")
            ])
        // manager inherits clerk: an auditor cannot become a manager either.
        let inherited = engine.checkGrant(role: "manager", to: ["auditor"], holders: 0)
        #expect(
            inherited == [
                .separationOfDuty(
                    constraint: "independent", roles: ["auditor", "clerk"], reason: "audits are independent")
            ])
        #expect(engine.checkGrant(role: "auditor", to: ["manager"], holders: 0).count == 1)
        #expect(
            inherited.first?.description
                == "Separation of duty 'independent': one person may not hold auditor and clerk together (audits are independent)."
        )
    }

    @Test("holder limits count current holders; a holder re-granted is not counted twice")
    func holderLimit() {
        #expect(engine.checkGrant(role: "manager", to: [], holders: 1).isEmpty)
        #expect(
            engine.checkGrant(role: "manager", to: [], holders: 2) == [
                .holderLimit(role: "manager", limit: 2, holders: 2)
            ])
        #expect(engine.checkGrant(role: "manager", to: ["manager"], holders: 2).isEmpty)
        #expect(engine.checkGrant(role: "staff", to: [], holders: 10_000).isEmpty)
    }

    @Test("an unknown role cannot be granted")
    func unknown() {
        #expect(engine.checkGrant(role: "wizard", to: [], holders: 0) == [.unknownRole("wizard")])
    }

    @Test("closures list a role and everything it inherits")
    func closure() {
        #expect(engine.closure(of: "manager") == ["clerk", "manager", "staff"])
        #expect(engine.closure(of: "wizard").isEmpty)
    }
}
