import Foundation
import MamoriPostgres
import MamoriProtocol
import MamoriTestSupport
import Testing

/// Every operation served once, so that `make test`'s schema check (scripts/check-replies) sees a
/// success reply of each: a declaration that no reply matches fails there, not in a client.
@Suite("every operation, in-process")
struct EveryOperationTests {
    @Test("each operation answers the operator with success")
    func everyOperation() async throws {
        let service = try await InProcessService()
        try await Self.serveEach(service)
        // Not a hub: the terminal operations are refused, and say why.
        for (operation, body) in Self.terminalRequests {
            let reply = try await service.call(operation, body)
            #expect(reply.errorCode == "invalid" && reply.errorMessage?.contains("not a hub") == true, "\(reply)")
        }
        await service.stop()
    }

    /// The same service on PostgreSQL, as the hub will keep it: every operation, and the chain it
    /// wrote verified at the end.
    @Test(
        "each operation answers with success on the PostgreSQL store too",
        .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"))
    func everyOperationOnPostgres() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let service = try await InProcessService(backing: .postgres(client))
            try await Self.serveEach(service, hub: true)
            let verified = try await service.call(.auditVerify)
            #expect(verified.fields["holds"] == .bool(true), "\(verified)")
            await service.stop()
        }
    }

    /// A hub's own operations, in an order that succeeds.
    static let terminalRequests: [(WireOperation, any WireRequestBody)] = [
        (.terminalAdd, TerminalAddRequest(terminal: "kametsu-09", zone: "mynumber", expiresHours: 2)),
        (.terminalList, EmptyRequest()),
        (.terminalRemove, TerminalRequest(terminal: "kametsu-09")),
    ]

    /// Serves every operation once; with `hub`, the terminal operations too.
    static func serveEach(_ service: InProcessService, hub: Bool = false) async throws {
        let seed = try await service.enrol("mori", password: "mori password", roles: ["staff"])
        let login = try await service.call(
            .authenticate,
            AuthenticateRequest(user: "mori", password: "mori password", code: try service.code(seed, offset: 30)))
        let ticket = try AuthenticateReply(reply: login.fields).ticket
        let opened = try await service.call(.sessionOpen, SessionOpenRequest(ticket: ticket, service: "login"))
        let session = try SessionOpenReply(reply: opened.fields).session
        var served: Set<WireOperation> = [
            .userAdd, .userPasswd, .totpEnrollBegin, .totpEnrollConfirm, .roleGrant, .authenticate, .sessionOpen,
        ]
        // Each request built from its operation's Swift type; each reply read with its own.
        let mori = UserRequest(user: "mori")
        var requests: [(WireOperation, any WireRequestBody, session: String?)] = [
            (.status, EmptyRequest(), nil),
            (.account, AccountRequest(user: "mori", service: "login"), nil),
            (.authorize, AuthorizeRequest(action: "mamori.status", resource: "mamori:status"), session),
            (
                .authorize,
                AuthorizeRequest(
                    action: "asset.read", resource: "point.participants", user: "mori", zone: "mynumber",
                    factors: ["password", "totp"]), nil
            ),
            (.userShow, mori, nil), (.userList, EmptyRequest(), nil), (.userRoles, mori, nil),
            (.userDisable, mori, nil), (.userEnable, mori, nil), (.userUnlock, mori, nil),
            (
                .passwordChange,
                PasswordChangeRequest(user: "mori", oldPassword: "mori password", newPassword: "a new passphrase"), nil
            ),
            (.recoveryIssue, RecoveryIssueRequest(user: "mori", count: 2), nil),
            (.roleList, EmptyRequest(), nil), (.policyStatus, EmptyRequest(), nil),
            (.policyReload, EmptyRequest(), nil),
            (.auditPublicKey, EmptyRequest(), nil),
            (.auditRead, AuditReadRequest(purpose: "tail", last: 5), nil),
            (.auditRead, AuditReadRequest(after: 0, limit: 3, since: "2020-01-01T00:00:00+09:00"), nil),
            (.auditTrail, AuditTrailRequest(after: 0, limit: 10), nil),
            (.auditTrail, AuditTrailRequest(after: 5, limit: 10), nil),
            (.auditVerify, EmptyRequest(), nil),
            (.auditPrune, AuditPruneRequest(before: "2000-01-01T00:00:00+09:00"), nil),
            (.reviewRecord, ReviewRecordRequest(note: "FY2026 review"), nil),
            (.inspect, EmptyRequest(), nil),
            (.sessionClose, SessionCloseRequest(session: session), nil),
            (.totpReset, mori, nil),
            (.roleRevoke, RoleRevokeRequest(user: "mori", role: "staff"), nil),
            (.userRemove, mori, nil),
        ]
        if hub { requests += terminalRequests.map { ($0.0, $0.1, nil) } }
        for (operation, body, session) in requests {
            #expect(type(of: body) == operation.requestType, "\(operation.rawValue)")
            let reply = try await service.call(operation, body, session: session)
            #expect(reply.ok, "\(operation.rawValue): \(reply)")
            if let replyType = operation.replyType {
                #expect(throws: Never.self, "\(operation.rawValue)") { _ = try replyType.init(reply: reply.fields) }
            }
            served.insert(operation)
        }
        let terminalOperations = Set(terminalRequests.map(\.0))
        #expect(served == Set(WireOperation.allCases).subtracting(hub ? [] : terminalOperations))
    }
}
