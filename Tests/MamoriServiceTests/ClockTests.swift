import Foundation
import MamoriProtocol
import MamoriSQLite
import MamoriServer
import MamoriStore
import Testing

/// Time-dependent rules run against a moved clock instead of edited timestamps: the service
/// in-process on a real SQLite file, with a ``ManualClock``.
@Suite("rules over time, with a fixed clock")
struct ClockTests {
    func openSession(_ service: InProcessService, code: String) async throws -> String {
        let authenticated = try await service.call([
            "op": "authenticate", "user": "mori", "password": "mori password", "code": .string(code),
        ])
        let ticket = try #require(authenticated.string("ticket"), "\(authenticated)")
        let opened = try await service.call(["op": "session.open", "ticket": .string(ticket), "service": "login"])
        return try #require(opened.string("session"), "\(opened)")
    }

    func use(_ service: InProcessService, _ session: String) async throws -> Reply {
        try await service.call([
            "op": "authorize", "session": .string(session), "action": "mamori.status", "resource": "mamori:status",
        ])
    }

    /// The policy's `session: idle-minutes` (15 in the town policy): a session not used for that
    /// long lapses, is closed and recorded; use, saved across a restart, and authenticating again
    /// (a screen unlock) keep it alive.
    @Test("an unused session lapses; a used one survives a restart; authenticating again revives one")
    func idleSessions() async throws {
        let service = try await InProcessService()
        let seed = try await service.enrol("mori", password: "mori password", roles: ["staff"])
        let codes = try await service.call(["op": "recovery.issue", "user": "mori", "count": 3]).strings("codes")
        try #require(codes.count == 3)
        let unused = try await openSession(service, code: try service.code(seed, offset: 30))
        let used = try await openSession(service, code: codes[0])
        let revived = try await openSession(service, code: codes[1])
        #expect(try await use(service, used).ok)
        #expect(try await use(service, revived).ok)

        service.clock.advance(by: 10 * 60)
        #expect(try await use(service, used).ok, "ten idle minutes are within the fifteen")
        let lastUse = service.clock.now()
        try await service.restart()
        // The last use was saved at the stop.
        let copy = try SQLiteStore(readOnlyPath: service.configuration.stateDirectory + "/mamori.sqlite")
        let saved = try #require(try await copy.session(used)?.lastActiveAt)
        #expect(abs(saved.timeIntervalSince(lastUse)) < 0.001)
        try await copy.close()

        service.clock.advance(by: 10 * 60)
        // unused: 20 minutes since it was opened; used: 10 since its saved use; revived: 20.
        let lapsed = try await use(service, unused)
        #expect(lapsed.errorCode == "not_found")
        #expect(lapsed.errorMessage?.contains("lapsed after 15 idle minutes") == true, "\(lapsed)")
        #expect(try await use(service, unused).errorCode == "not_found")
        #expect(try await use(service, used).ok)
        let unlocked = try await service.call([
            "op": "authenticate", "user": "mori", "password": "mori password", "code": .string(codes[2]),
        ])
        #expect(unlocked.ok, "\(unlocked)")
        #expect(try await use(service, revived).ok)

        let trail = try await service.call(["op": "audit.read", "after": 0, "limit": 1000, "purpose": "export"])
        guard case .array(let entries)? = trail.fields["entries"] else {
            Issue.record("no entries: \(trail)")
            return
        }
        let closes = entries.map(\.text).filter { $0.contains(#""event":"session.close""#) }
        #expect(closes.count == 1)
        #expect(closes.first?.contains(#""reason":"idle""#) == true && closes.first?.contains(unused) == true)
        #expect(closes.first?.contains(#""actor":"mamorid""#) == true)
        await service.stop()
    }

    /// The town policy's lockout: 10 failures within 15 minutes lock the account for 30.
    @Test("failures outside the window start a new count; a lock ends after its minutes, not before")
    func lockoutOverTime() async throws {
        let service = try await InProcessService()
        let seed = try await service.enrol("mori", password: "mori password", roles: ["staff"])
        func attempt(_ password: String) async throws -> Reply {
            try await service.call([
                "op": "authenticate", "user": "mori", "password": .string(password),
                "code": .string(try service.code(seed)),
            ])
        }
        func locked() async throws -> Bool {
            try await service.call(["op": "user.show", "user": "mori"]).fields["locked"] == .bool(true)
        }
        service.clock.advance(by: 60)
        for _ in 0..<9 { #expect(try await attempt("wrong").errorCode == "auth_failed") }
        #expect(try await locked() == false)
        // Sixteen minutes on, the nine are outside the window: nine more do not lock.
        service.clock.advance(by: 16 * 60)
        for _ in 0..<9 { #expect(try await attempt("wrong").errorCode == "auth_failed") }
        #expect(try await locked() == false)
        #expect(try await attempt("mori password").ok)

        // A success forgave the count: ten more within the window lock the account.
        service.clock.advance(by: 60)
        for _ in 0..<10 { #expect(try await attempt("wrong").errorCode == "auth_failed") }
        #expect(try await locked())
        service.clock.advance(by: 60)
        #expect(try await attempt("mori password").errorCode == "auth_failed", "locked: refused")
        service.clock.advance(by: 28 * 60)
        #expect(try await locked(), "29 minutes into a 30-minute lock")
        #expect(try await attempt("mori password").errorCode == "auth_failed")
        service.clock.advance(by: 2 * 60)
        #expect(try await locked() == false)
        let after = try await attempt("mori password")
        #expect(after.ok, "\(after)")
        await service.stop()
    }

    /// A removed user's session must not outlive the account, nor pass to a user of the same
    /// name added later.
    @Test("removing a user closes their sessions, also for a user of the same name added again")
    func removalClosesSessions() async throws {
        let service = try await InProcessService()
        let seed = try await service.enrol("mori", password: "mori password", roles: ["staff"])
        let session = try await openSession(service, code: try service.code(seed, offset: 30))
        #expect(try await use(service, session).ok)
        #expect(try await service.call(["op": "user.remove", "user": "mori"]).ok)
        #expect(try await use(service, session).errorCode == "not_found")
        let seed2 = try await service.enrol("mori", password: "mori password", roles: ["staff"])
        #expect(try await use(service, session).errorCode == "not_found", "the old session stays closed")
        // A ticket taken before the removal opens no session after it.
        let login = try await service.call([
            "op": "authenticate", "user": "mori", "password": "mori password",
            "code": .string(try service.code(seed2, offset: 30)),
        ])
        let ticket = try #require(login.string("ticket"), "\(login)")
        #expect(try await service.call(["op": "user.remove", "user": "mori"]).ok)
        let opened = try await service.call(["op": "session.open", "ticket": .string(ticket), "service": "login"])
        #expect(opened.errorCode == "not_found", "\(opened)")
        await service.stop()
    }

    /// `deadline`: a request read after its client stopped waiting (a frozen or overloaded
    /// daemon) does nothing, so it spends no one-time code and counts no failure.
    @Test("a request past its deadline does nothing: busy, no code spent, no failure counted")
    func pastDeadline() async throws {
        let service = try await InProcessService()
        _ = try await service.enrol("mori", password: "mori password", roles: ["staff"])
        let codes = try await service.call(["op": "recovery.issue", "user": "mori", "count": 1]).strings("codes")
        let code = try #require(codes.first)
        let now = Int(service.clock.now().timeIntervalSince1970 * 1000)
        func authenticate(_ password: String, deadline: Int) async throws -> Reply {
            try await service.call([
                "op": "authenticate", "user": "mori", "password": .string(password), "code": .string(code),
                "deadline": .number(Double(deadline)),
            ])
        }
        let late = try await authenticate("mori password", deadline: now - 1)
        #expect(late.errorCode == "busy" && late.errorMessage?.contains("deadline") == true, "\(late)")
        for _ in 0..<12 {
            #expect(try await authenticate("wrong", deadline: now - 1).errorCode == "busy")
        }
        let shown = try await service.call(["op": "user.show", "user": "mori"])
        #expect(shown.fields["locked"] == .bool(false), "twelve late guesses lock nothing: \(shown)")
        let trail = try await service.call(["op": "audit.read", "after": 0, "limit": 1000, "purpose": "export"])
        #expect(!JSONValue.object(trail.fields).text.contains("auth.failure"), "no late guess was recorded")
        // Exactly at the deadline is still in time; the code was not spent by the late request.
        let inTime = try await authenticate("mori password", deadline: now)
        #expect(inTime.ok, "\(inTime)")
        #expect(try await authenticate("mori password", deadline: now + 5000).errorCode == "auth_failed")
        await service.stop()
    }

    /// An assignment whose end has passed no longer grants: `account` says `expired` and
    /// `user.roles` marks it not current, once the clock is past its end (no edited timestamp).
    @Test("an assignment past its end: account expired, the role not current")
    func endedAssignment() async throws {
        let service = try await InProcessService()
        _ = try await service.enrol("endo", password: "endo password", roles: [])
        let end = service.clock.now().addingTimeInterval(3600).formatted(.iso8601)
        let granted = try await service.call(
            .roleGrant, RoleGrantRequest(user: "endo", role: "fiscal-year-staff", until: end))
        #expect(granted.ok, "\(granted)")
        let before = try AccountReply(reply: try await service.call(.account, AccountRequest(user: "endo")).fields)
        #expect(before.result != "expired", "\(before)")

        service.clock.advance(by: 2 * 3600)
        let after = try AccountReply(reply: try await service.call(.account, AccountRequest(user: "endo")).fields)
        #expect(after.result == "expired", "\(after)")
        let roles = try UserRolesReply(reply: try await service.call(.userRoles, UserRequest(user: "endo")).fields)
        #expect(roles.roles.map(\.current) == [false])
        await service.stop()
    }

    /// Pruning when every entry is past the retention: the prune's own entry is then the first of
    /// the trail, and must link to the anchor (the checkpoint signed at the last entry removed).
    @Test("pruning every entry leaves a trail that verifies from its anchor")
    func pruneEverything() async throws {
        let service = try await InProcessService()
        _ = try await service.enrol("mori", password: "mori password", roles: ["staff"])
        service.clock.advance(by: 20 * 366 * 86_400)
        let cutoff = service.clock.now().addingTimeInterval(-11 * 366 * 86_400).formatted(.iso8601)
        let pruned = try await service.call(.auditPrune, AuditPruneRequest(before: cutoff))
        let result = try AuditPruneReply(reply: pruned.fields)
        #expect(result.removed > 0, "\(pruned)")
        let verified = try await service.call(.auditVerify)
        #expect(verified.fields["holds"] == .bool(true), "\(verified)")
        await service.stop()
    }
}
