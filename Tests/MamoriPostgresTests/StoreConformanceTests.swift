import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriSQLite
import MamoriStore
import MamoriTestSupport
import Synchronization
import Testing

/// What every store promises the service, run on the embedded SQLite store and on PostgreSQL
/// alike: assignments with their in-transaction grant check and generation, sessions bound to an
/// enabled user, and one audit entry for each change that lands (none for one refused).
@Suite("the store conformance, on SQLite and on PostgreSQL")
struct StoreConformanceTests {
    typealias Store = MamoriStorage

    static let signer = try! AuditSigner(rawKey: SystemRandomBytes().bytes(32))
    static let start = Date(timeIntervalSince1970: 1_790_000_000)

    static func entry(_ event: AuditEvent, _ target: String, outcome: AuditOutcome = .success) -> AuditEntry {
        AuditEntry(
            time: start, actorUID: 0, actor: "root", event: event, target: target, outcome: outcome,
            terminal: "t", zone: "mynumber", policyRevision: "r")
    }

    @Test("on SQLite")
    func sqlite() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conformance-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let witnessed = Witnessed()
        let store = try SQLiteStore(
            path: folder.appendingPathComponent("m.sqlite").path, signer: Self.signer, checkpointInterval: 4,
            onCheckpoint: witnessed.add)
        try await Self.conforms(store, witnessed: witnessed)
        try await store.close()
    }

    @Test("on PostgreSQL", .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"))
    func postgres() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let witnessed = Witnessed()
            let store = PostgresStore(
                client: client, signer: Self.signer, checkpointInterval: 4, onCheckpoint: witnessed.add, logger: logger)
            try await Self.conforms(store, witnessed: witnessed)
        }
    }

    /// The checkpoints a store handed to its witness, after their transactions committed.
    final class Witnessed: Sendable {
        private let sequences = Mutex<[Int64]>([])
        var all: [Int64] { sequences.withLock { $0 } }
        func add(_ checkpoint: AuditCheckpoint) { sequences.withLock { $0.append(checkpoint.sequence) } }
    }

    static func conforms(_ store: some Store, witnessed: Witnessed) async throws {
        var written = 0
        func user(_ name: String) -> UserRecord {
            UserRecord(name: name, displayName: name, kind: .staff, organisation: nil, createdAt: start)
        }
        for name in ["sato", "tanaka"] {
            try await store.addUser(user(name), audit: entry(.userAdd, name))
            written += 1
        }

        // Grants: the check sees the held roles and the holders, inside the transaction.
        let generation = try await store.assignmentGeneration()
        let grant = AssignmentRecord(user: "sato", role: "staff", grantedBy: "root", grantedAt: start, expiresAt: nil)
        let noReasons = try await store.grant(
            grant, audit: entry(.roleGrant, "sato"), denial: { _ in entry(.roleGrant, "sato", outcome: .denied) },
            check: { held, holders in held.isEmpty && holders == 0 ? [] : ["saw \(held) and \(holders)"] })
        #expect(noReasons == [])
        written += 1
        let seen = try await store.grant(
            AssignmentRecord(user: "tanaka", role: "staff", grantedBy: "root", grantedAt: start, expiresAt: nil),
            audit: entry(.roleGrant, "tanaka"), denial: { _ in entry(.roleGrant, "tanaka", outcome: .denied) },
            check: { held, holders in ["held \(held), holders \(holders)"] })
        #expect(seen == ["held [], holders 1"], "a refused grant reports the check's reasons")
        written += 1  // the denial
        #expect(try await store.assignments(of: "tanaka").isEmpty, "a refused grant grants nothing")
        #expect(try await store.assignmentGeneration() == generation + 1)
        await #expect(throws: StoreError.self) {
            _ = try await store.grant(
                AssignmentRecord(user: "nobody", role: "staff", grantedBy: "root", grantedAt: start, expiresAt: nil),
                audit: entry(.roleGrant, "nobody"), denial: { _ in entry(.roleGrant, "nobody") }, check: { _, _ in [] })
        }
        // Granting again replaces the assignment (a new end).
        let until = start.addingTimeInterval(86_400)
        _ = try await store.grant(
            AssignmentRecord(user: "sato", role: "staff", grantedBy: "admin", grantedAt: start, expiresAt: until),
            audit: entry(.roleGrant, "sato"), denial: { _ in entry(.roleGrant, "sato") }, check: { _, _ in [] })
        written += 1
        let held = try await store.assignments(of: "sato")
        #expect(held.count == 1 && held.first?.grantedBy == "admin" && held.first?.expiresAt == until)
        #expect(try await store.allAssignments().map(\.user) == ["sato"])
        await #expect(throws: StoreError.self) {
            try await store.revoke("tanaka", role: "staff", audit: entry(.roleRevoke, "tanaka"))
        }

        // Sessions: only for an enabled user; closed once.
        func session(_ id: String, _ user: String) -> SessionRecord {
            SessionRecord(
                id: id, user: user, zone: "mynumber", terminal: "t", factors: [.password, .totp], service: "login",
                tty: "tty1", remoteHost: nil, openedAt: start, expiresAt: start.addingTimeInterval(3600))
        }
        await #expect(throws: StoreError.self) {
            try await store.openSession(session("s0", "nobody"), audit: entry(.sessionOpen, "s0"))
        }
        try await store.setDisabled("tanaka", true, audit: entry(.userDisable, "tanaka"))
        written += 1
        await #expect(throws: StoreError.self) {
            try await store.openSession(session("s1", "tanaka"), audit: entry(.sessionOpen, "s1"))
        }
        try await store.openSession(session("s2", "sato"), audit: entry(.sessionOpen, "s2"))
        try await store.openSession(session("s3", "sato"), audit: entry(.sessionOpen, "s3"))
        written += 2
        let opened = try #require(try await store.session("s2"))
        #expect(opened.factors == [.password, .totp] && opened.tty == "tty1" && opened.remoteHost == nil)
        #expect(opened.closedAt == nil && opened.expiresAt == start.addingTimeInterval(3600))
        try await store.saveSessionActivity(["s2": start.addingTimeInterval(60)])
        #expect(try await store.session("s2")?.lastActiveAt == start.addingTimeInterval(60))
        try await store.closeSession("s2", at: start.addingTimeInterval(120), audit: entry(.sessionClose, "s2"))
        written += 1
        #expect(try await store.session("s2")?.closedAt == start.addingTimeInterval(120))
        await #expect(throws: StoreError.self) {
            try await store.closeSession("s2", at: start, audit: entry(.sessionClose, "s2"))
        }

        // A login judged on a password that was replaced meanwhile records nothing, not even its
        // step (the whole transaction goes); judged on the current one, it records all.
        try await store.beginTOTP(
            TOTPRecord(user: "tanaka", sealedSeed: [1, 2, 3], parameters: .default, createdAt: start),
            audit: entry(.totpEnrollBegin, "tanaka"))
        try await store.confirmTOTP("tanaka", step: 100, audit: entry(.totpEnrollConfirm, "tanaka"))
        try await store.setPassword("tanaka", hash: "hash-b", mustChange: false, audit: entry(.userPasswd, "tanaka"))
        written += 3
        func login(verified: String) async throws -> Bool {
            guard
                case .reserved(let attempt) = try await store.reserveAttempt(
                    "tanaka", at: start, threshold: 10, window: 900)
            else { return false }
            return try await store.recordLogin(
                "tanaka", at: start, attempt: attempt, acceptedStep: 101, consumedRecoveryCode: nil,
                rehash: PasswordRehash(verified: verified, upgraded: "hash-c"), audit: entry(.authSuccess, "tanaka"))
        }
        #expect(try await login(verified: "hash-a") == false)
        #expect(try await store.totp(of: "tanaka")?.lastAcceptedStep == 100, "the step is not spent")
        #expect(try await store.user(named: "tanaka")?.passwordHash == "hash-b", "the new password stays")
        #expect(try await login(verified: "hash-b") == true)
        written += 1
        #expect(try await store.totp(of: "tanaka")?.lastAcceptedStep == 101)
        #expect(try await store.user(named: "tanaka")?.passwordHash == "hash-c")

        // Removing a user closes their open sessions, ends their assignments, changes the generation.
        let before = try await store.assignmentGeneration()
        try await store.removeUser("sato", audit: entry(.userRemove, "sato"))
        written += 1
        #expect(try await store.session("s3")?.closedAt == start)
        #expect(try await store.assignments(of: "sato").isEmpty)
        #expect(try await store.assignmentGeneration() == before + 1)
        await #expect(throws: StoreError.self) {
            try await store.revoke("sato", role: "staff", audit: entry(.roleRevoke, "sato"))
        }

        // One entry for each change that landed; the chain holds; every 4th entry was signed,
        // and each checkpoint reached the witness once its transaction had committed.
        let report = try await AuditVerifier.verify(store, publicKey: signer.publicKey)
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.entryCount == written)
        #expect(try await store.checkpoints().map(\.sequence) == Array(stride(from: 4, through: Int64(written), by: 4)))
        #expect(witnessed.all == (try await store.checkpoints().map(\.sequence)))

        // Pruning every entry (all written before the cutoff): the prune's own entry links to the
        // anchor signed at the last one removed, and the trail verifies from there.
        let pruned = try await store.pruneAudit(before: start.addingTimeInterval(1)) { result in
            AuditEntry(
                time: start.addingTimeInterval(2), actorUID: 0, actor: "root", event: .auditPrune, target: "audit",
                outcome: .success, detail: ["pruned_through": "\(result.prunedThrough)"], terminal: "t",
                zone: "mynumber", policyRevision: "r")
        }
        #expect(pruned == AuditPruneResult(prunedThrough: Int64(written), removed: written))
        let after = try await AuditVerifier.verify(store, publicKey: signer.publicKey)
        #expect(after.problems.isEmpty, "\(after.problems)")
        #expect(after.prunedThrough == Int64(written) && after.entryCount == 1)
        #expect(try await store.auditHead() == Int64(written) + 1, "numbering goes on after the anchor")
        #expect(witnessed.all.last == Int64(written), "the anchor reached the witness")
    }
}
