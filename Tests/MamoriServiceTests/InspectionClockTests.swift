import Foundation
import MamoriProtocol
import Testing

/// The self-inspection's checks that depend on time passing, with the clock moved instead of the
/// database's timestamps edited: an account never used for months, an assignment that ended.
@Suite("the self-inspection over time")
struct InspectionClockTests {
    /// Each finding's status and items, by check, from an `inspect` reply.
    func findings(_ service: InProcessService) async throws -> [String: (status: String, items: [String])] {
        let reply = try await service.call(["op": "inspect"])
        guard case .object(let report)? = reply.fields["report"], case .array(let list)? = report["findings"] else {
            throw InspectionError(reply: "\(reply)")
        }
        var checks: [String: (String, [String])] = [:]
        for case .object(let finding) in list {
            guard case .string(let check)? = finding["check"], case .string(let status)? = finding["status"],
                case .array(let items)? = finding["items"]
            else { continue }
            checks[check] = (status, items.compactMap { if case .string(let text) = $0 { text } else { nil } })
        }
        return checks
    }

    struct InspectionError: Error { let reply: String }

    @Test("an account unused for 200 days fails idle-accounts; an ended assignment warns; both pass once fixed")
    func idleAndEnded() async throws {
        let service = try await InProcessService()
        #expect(try await service.call(["op": "user.add", "user": "yamada", "organisation": "planning"]).ok)
        #expect(try await service.call(["op": "user.add", "user": "sato", "organisation": "planning"]).ok)
        let until = service.clock.now().addingTimeInterval(3_600).formatted(.iso8601)
        let grant = try await service.call([
            "op": "role.grant", "user": "sato", "role": "csirt", "until": .string(until),
        ])
        #expect(grant.ok, "\(grant)")

        let fresh = try await findings(service)
        #expect(fresh["idle-accounts"]?.status == "pass")
        #expect(fresh["expired-assignments"]?.status == "pass")

        service.clock.advance(by: 200 * 86_400)
        let later = try await findings(service)
        #expect(later["idle-accounts"]?.status == "fail")
        #expect(
            later["idle-accounts"]?.items.contains { $0.hasPrefix("yamada: never logged in, created 200 days ago") }
                == true, "\(later["idle-accounts"]?.items ?? [])")
        #expect(later["expired-assignments"]?.status == "warn")
        #expect(later["expired-assignments"]?.items.first?.hasPrefix("sato: csirt ended ") == true)

        for user in ["yamada", "sato"] {
            #expect(try await service.call(["op": "user.disable", "user": .string(user)]).ok)
        }
        #expect(try await service.call(["op": "role.revoke", "user": "sato", "role": "csirt"]).ok)
        let fixed = try await findings(service)
        #expect(fixed["idle-accounts"]?.status == "pass", "\(fixed["idle-accounts"]?.items ?? [])")
        #expect(fixed["expired-assignments"]?.status == "pass")
        await service.stop()
    }
}
