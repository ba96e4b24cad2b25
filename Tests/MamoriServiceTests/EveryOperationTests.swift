import Foundation
import MamoriProtocol
import Testing

/// Every operation served once, so that `make test`'s schema check (scripts/check-replies) sees a
/// success reply of each: a declaration that no reply matches fails there, not in a client.
@Suite("every operation, in-process")
struct EveryOperationTests {
    @Test("each operation answers the operator with success")
    func everyOperation() async throws {
        let service = try await InProcessService()
        let seed = try await service.enrol("mori", password: "mori password", roles: ["staff"])
        let login = try await service.call([
            "op": "authenticate", "user": "mori", "password": "mori password",
            "code": .string(try service.code(seed, offset: 30)),
        ])
        let ticket = try #require(login.string("ticket"), "\(login)")
        let session = try #require(
            try await service.call(["op": "session.open", "ticket": .string(ticket), "service": "login"]).string(
                "session")
        )
        var served: Set<String> = [
            "user.add", "user.passwd", "totp.enroll.begin", "totp.enroll.confirm", "role.grant",
            "authenticate", "session.open",
        ]
        let requests: [[String: JSONValue]] = [
            ["op": "status"],
            ["op": "account", "user": "mori", "service": "login"],
            ["op": "authorize", "session": .string(session), "action": "mamori.status", "resource": "mamori:status"],
            [
                "op": "authorize", "user": "mori", "action": "asset.read", "resource": "point.participants",
                "zone": "mynumber", "factors": .array(["password", "totp"]),
            ],
            ["op": "user.show", "user": "mori"],
            ["op": "user.list"],
            ["op": "user.roles", "user": "mori"],
            ["op": "user.disable", "user": "mori"],
            ["op": "user.enable", "user": "mori"],
            ["op": "user.unlock", "user": "mori"],
            [
                "op": "password.change", "user": "mori", "old_password": "mori password",
                "new_password": "a new passphrase",
            ],
            ["op": "recovery.issue", "user": "mori", "count": 2],
            ["op": "role.list"],
            ["op": "policy.status"],
            ["op": "policy.reload"],
            ["op": "audit.public_key"],
            ["op": "audit.read", "last": 5, "purpose": "tail"],
            ["op": "audit.read", "after": 0, "limit": 3, "since": "2020-01-01T00:00:00+09:00"],
            ["op": "audit.trail", "after": 0, "limit": 10],
            ["op": "audit.trail", "after": 5, "limit": 10],
            ["op": "audit.verify"],
            ["op": "audit.prune", "before": "2000-01-01T00:00:00+09:00"],
            ["op": "review.record", "note": "FY2026 review"],
            ["op": "inspect"],
            ["op": "session.close", "session": .string(session)],
            ["op": "totp.reset", "user": "mori"],
            ["op": "role.revoke", "user": "mori", "role": "staff"],
            ["op": "user.remove", "user": "mori"],
        ]
        for request in requests {
            let reply = try await service.call(request)
            #expect(reply.ok, "\(request["op"] ?? .null): \(reply)")
            if case .string(let op)? = request["op"] { served.insert(op) }
        }
        #expect(served == Set(WireOperation.allCases.map(\.rawValue)))
        await service.stop()
    }
}
