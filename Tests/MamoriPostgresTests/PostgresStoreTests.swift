import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriStore
import MamoriTestSupport
import PostgresNIO
import Synchronization
import Testing

/// The hub's store on a real PostgreSQL server: users, and the audit chain that records every
/// change, checked by the same verifier auditors run.
@Suite(
    "the PostgreSQL store", .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"))
struct PostgresStoreTests {
    static let signer = try! AuditSigner(rawKey: SystemRandomBytes().bytes(32))

    static func entry(_ event: AuditEvent, _ target: String, at time: Date = Date()) -> AuditEntry {
        AuditEntry(
            time: time, actorUID: 0, actor: "root", event: event, target: target, outcome: .success,
            detail: ["note": "ü \"quoted\""], terminal: "hub", zone: "mynumber", policyRevision: "sha256:test")
    }

    static func user(_ name: String) -> UserRecord {
        UserRecord(
            name: name, displayName: "名前 \(name)", kind: .fiscalYearStaff,
            organisation: name == "sato" ? nil : "planning",
            createdAt: Date(timeIntervalSince1970: 1_790_000_000.123))
    }

    @Test("users round trip; a taken or unknown name changes nothing; every change is one verified entry")
    func users() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let store = PostgresStore(client: client, signer: Self.signer, checkpointInterval: 2, logger: logger)
            try await store.addUser(Self.user("tanaka"), audit: Self.entry(.userAdd, "tanaka"))
            try await store.addUser(Self.user("sato"), audit: Self.entry(.userAdd, "sato"))
            await #expect(throws: StoreError.self) {
                try await store.addUser(Self.user("sato"), audit: Self.entry(.userAdd, "sato"))
            }
            await #expect(throws: StoreError.self) {
                try await store.setDisabled("nobody", true, audit: Self.entry(.userDisable, "nobody"))
            }
            try await store.setDisabled("sato", true, audit: Self.entry(.userDisable, "sato"))
            try await store.setPassword(
                "tanaka", hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", mustChange: true,
                audit: Self.entry(.userPasswd, "tanaka"))

            let sato = try #require(try await store.user(named: "sato"))
            #expect(sato.disabled && sato.organisation == nil && sato.kind == .fiscalYearStaff)
            #expect(sato.displayName == "名前 sato" && sato.createdAt == Self.user("sato").createdAt)
            let tanaka = try #require(try await store.user(named: "tanaka"))
            #expect(tanaka.mustChangePassword && tanaka.passwordHash?.hasPrefix("$argon2id$") == true)
            #expect(try await store.users().map(\.name) == ["sato", "tanaka"])
            #expect(try await store.user(named: "nobody") == nil)

            try await store.removeUser("tanaka", audit: Self.entry(.userRemove, "tanaka"))
            #expect(try await store.users().map(\.name) == ["sato"])

            // Five changes, five entries: the refused ones wrote nothing.
            let report = try await AuditVerifier.verify(store, publicKey: Self.signer.publicKey)
            #expect(report.problems.isEmpty, "\(report.problems)")
            #expect(report.entryCount == 5 && report.lastSequence == 5)
            #expect(report.checkpointCount == 2 && report.signaturesChecked)
            let page = try await store.auditPage(after: 0, limit: 10)
            #expect(page.map(\.event) == ["user.add", "user.add", "user.disable", "user.passwd", "user.remove"])
        }
    }

    /// The chain lock's bound for the tests of two hubs at once. They test what the lock orders,
    /// not how long it is waited for (boundedLockWait does): in a full `make test`, the holder's
    /// task can wait seconds for one of this process's two cooperative threads, which other suites'
    /// blocking waits hold, and the default 10 s was seen to run out.
    static let patientLock: Duration = .seconds(120)

    @Test("two hubs writing at once make one chain, numbered without gaps")
    func concurrentHubs() async throws {
        try await TestServer.withDatabase { client, database, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            try await TestServer.withClient(database: database, logger: logger) { other in
                let first = PostgresStore(
                    client: client, signer: Self.signer, checkpointInterval: 10, lockTimeout: Self.patientLock,
                    logger: logger)
                let second = PostgresStore(
                    client: other, signer: Self.signer, checkpointInterval: 10, lockTimeout: Self.patientLock,
                    logger: logger)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (store, prefix) in [(first, "a"), (second, "b")] {
                        group.addTask {
                            for index in 0..<30 {
                                let name = "\(prefix)\(index)"
                                try await store.addUser(Self.user(name), audit: Self.entry(.userAdd, name))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let report = try await AuditVerifier.verify(second, publicKey: Self.signer.publicKey)
                #expect(report.problems.isEmpty, "\(report.problems)")
                #expect(report.entryCount == 60 && report.firstSequence == 1 && report.lastSequence == 60)
                #expect(report.checkpointCount == 6)
            }
        }
    }

    @Test("an entry deleted, or edited with the guard switched off, is found by the verifier")
    func tampering() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let store = PostgresStore(client: client, signer: Self.signer, checkpointInterval: 100, logger: logger)
            for name in ["a", "b", "c", "d", "e"] {
                try await store.addUser(Self.user(name), audit: Self.entry(.userAdd, name))
            }
            #expect(try await AuditVerifier.verify(store, publicKey: Self.signer.publicKey).problems.isEmpty)

            // Whoever can switch the trigger off (the database's owner) can edit; the chain shows it.
            try await client.query("ALTER TABLE audit DISABLE TRIGGER audit_no_update", logger: logger)
            try await client.query("UPDATE audit SET target = 'someone else' WHERE seq = 2", logger: logger)
            let edited = try await AuditVerifier.verify(store, publicKey: Self.signer.publicKey)
            #expect(!edited.problems.isEmpty)

            try await client.query("DELETE FROM audit WHERE seq = 4", logger: logger)
            let cut = try await AuditVerifier.verify(store, publicKey: Self.signer.publicKey)
            #expect(cut.problems.map(\.description).contains { $0.contains("entry 4 is missing") }, "\(cut.problems)")
        }
    }

    /// Two hubs on one database, as two terminals' logins reach them: failures on both count
    /// towards one lockout, and one TOTP step is accepted once, whichever hub sees it first.
    @Test("failures on two hubs add up to one lock; a step accepted on one is refused on the other")
    func acrossHubs() async throws {
        try await TestServer.withDatabase { client, database, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            try await TestServer.withClient(database: database, logger: logger) { other in
                let hubs = [
                    PostgresStore(client: client, lockTimeout: Self.patientLock, logger: logger),
                    PostgresStore(client: other, lockTimeout: Self.patientLock, logger: logger),
                ]
                try await hubs[0].addUser(Self.user("sato"), audit: Self.entry(.userAdd, "sato"))
                let now = Date(timeIntervalSince1970: 1_790_000_000)
                // Ten failures, five through each hub, at once: the town policy's threshold.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for hub in hubs {
                        group.addTask {
                            for _ in 0..<5 {
                                guard
                                    case .reserved(let attempt) = try await hub.reserveAttempt(
                                        "sato", at: now, threshold: 10, window: 900)
                                else { continue }
                                _ = try await hub.recordFailure(
                                    "sato", attempt: attempt, at: now, threshold: 10, window: 900, lockFor: 1800,
                                    audit: Self.entry(.authFailure, "sato"))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let failures = try #require(try await hubs[1].failures(of: "sato"))
                #expect(failures.count == 10 && failures.lockedUntil == now.addingTimeInterval(1800))
                #expect(
                    try await hubs[0].reserveAttempt("sato", at: now, threshold: 10, window: 900)
                        == .refused(locked: true))

                // One step, offered to both hubs at once: exactly one accepts it.
                try await hubs[0].unlock("sato", audit: Self.entry(.userUnlock, "sato"))
                try await hubs[0].beginTOTP(
                    TOTPRecord(user: "sato", sealedSeed: [1, 2, 3], parameters: .default, createdAt: now),
                    audit: Self.entry(.totpEnrollBegin, "sato"))
                try await hubs[1].confirmTOTP("sato", step: 100, audit: Self.entry(.totpEnrollConfirm, "sato"))
                let accepted = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for hub in hubs {
                        group.addTask {
                            guard
                                case .reserved(let attempt) = try await hub.reserveAttempt(
                                    "sato", at: now, threshold: 10, window: 900)
                            else { return false }
                            return try await hub.recordLogin(
                                "sato", at: now, attempt: attempt, acceptedStep: 101, consumedRecoveryCode: nil,
                                rehash: nil, audit: Self.entry(.authSuccess, "sato"))
                        }
                    }
                    var results: [Bool] = []
                    for try await result in group { results.append(result) }
                    return results
                }
                #expect(accepted.sorted { !$0 && $1 } == [false, true], "\(accepted)")
                #expect(try await hubs[1].totp(of: "sato")?.lastAcceptedStep == 101)
                #expect(try await AuditVerifier.verify(hubs[0], publicKey: nil).problems.isEmpty)
            }
        }
    }

    /// A hub that crashed between reserving attempts and settling them leaves them counted; they
    /// are let go once older than any check can take, or the account would stay refused for good.
    @Test("attempts a crashed hub left reserved are let go after their lifetime, not before")
    func abandonedReservations() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let store = PostgresStore(client: client, logger: logger)
            try await store.addUser(Self.user("sato"), audit: Self.entry(.userAdd, "sato"))
            let now = Date(timeIntervalSince1970: 1_790_000_000)
            for _ in 0..<10 {
                let reservation = try await store.reserveAttempt("sato", at: now, threshold: 10, window: 900)
                guard case .reserved = reservation else {
                    Issue.record("refused early: \(reservation)")
                    return
                }
            }
            #expect(
                try await store.reserveAttempt("sato", at: now.addingTimeInterval(60), threshold: 10, window: 900)
                    == .refused(locked: false), "ten unsettled attempts fill the threshold")
            let later = now.addingTimeInterval(11 * 60)
            let reservation = try await store.reserveAttempt("sato", at: later, threshold: 10, window: 900)
            guard case .reserved = reservation else {
                Issue.record("still refused after the reservations' lifetime: \(reservation)")
                return
            }
        }
    }

    /// The change feed: every change terminals must learn of, numbered in commit order without
    /// gaps however many hubs write, with a NOTIFY that a listening hub hears at commit.
    @Test("changes are numbered in commit order across hubs, only state changes count, and LISTEN hears them")
    func changeFeed() async throws {
        try await TestServer.withDatabase { client, database, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            try await TestServer.withClient(database: database, logger: logger) { other in
                let hubs = [
                    PostgresStore(client: client, lockTimeout: Self.patientLock, logger: logger),
                    PostgresStore(client: other, lockTimeout: Self.patientLock, logger: logger),
                ]
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (hub, prefix) in zip(hubs, ["a", "b"]) {
                        group.addTask {
                            for index in 0..<20 {
                                let name = "\(prefix)\(index)"
                                try await hub.addUser(Self.user(name), audit: Self.entry(.userAdd, name))
                                // Not a change: terminals hold no copy of the trail's reads.
                                try await hub.appendAudit(Self.entry(.auditRead, "mamori:audit"))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let changes = try await hubs[0].changes(after: 0, limit: 1000)
                #expect(changes.map(\.number) == Array(1...40), "contiguous, from 1")
                #expect(Set(changes.map(\.kind)) == ["user.add"])
                // The order of the numbers is the order of the commits: the audit chain's order.
                let added = try await hubs[1].auditEntries(after: 0, limit: 1000, since: nil, until: nil)
                    .filter { $0.event == "user.add" }.map(\.target)
                #expect(changes.map(\.subject) == added)
                #expect(try await hubs[1].changes(after: 38, limit: 10).map(\.number) == [39, 40])

                // A hub listening hears the next change's number when it commits.
                let heard = try await client.withConnection { connection in
                    try await connection.listen(on: PostgresStore.changeChannel) { notifications in
                        try await hubs[1].setDisabled("a3", true, audit: Self.entry(.userDisable, "a3"))
                        for try await notification in notifications { return notification.payload }
                        return ""
                    }
                }
                #expect(heard == "41")
                #expect(try await hubs[0].changes(after: 40, limit: 10).map(\.kind) == ["user.disable"])
            }
        }
    }

    /// A hub stalled inside a transaction holds the chain lock; the others must fail after
    /// `lockTimeout`, not queue behind it for ever, and write again once it is gone.
    @Test("a write waits at most lockTimeout for a chain lock another hub holds, and changes nothing")
    func boundedLockWait() async throws {
        try await TestServer.withDatabase { client, database, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let store = PostgresStore(client: client, lockTimeout: .milliseconds(300), logger: logger)
            try await TestServer.withClient(database: database, logger: logger) { stalled in
                let (locked, holding) = AsyncStream<Void>.makeStream()
                let (released, release) = AsyncStream<Void>.makeStream()
                async let held: Void = stalled.withTransaction(logger: logger) { connection in
                    try await connection.query(
                        "SELECT pg_advisory_xact_lock(\(0x61_7564_6974 as Int64))", logger: logger)
                    holding.yield()
                    for await _ in released { break }
                }
                for await _ in locked { break }
                // Without a bound the write would wait for this: it fails the test, never hangs it.
                let backstop = Task {
                    try? await Task.sleep(for: .seconds(10))
                    release.yield()
                }
                defer { backstop.cancel() }
                let started = ContinuousClock.now
                await #expect(throws: StoreError.self) {
                    try await store.addUser(Self.user("sato"), audit: Self.entry(.userAdd, "sato"))
                }
                #expect(ContinuousClock.now - started < .seconds(10), "the wait was bounded")
                release.yield()
                try await held
            }
            #expect(try await store.user(named: "sato") == nil, "the refused write changed nothing")
            try await store.addUser(Self.user("sato"), audit: Self.entry(.userAdd, "sato"))
            #expect(try await store.auditHead() == 1)
        }
    }

    /// A stored step below zero (an edited row) would crash a conversion, or, read as "never
    /// used", lose the replay check: the enrolment is not trusted at all.
    @Test("an enrolment whose stored step is negative is read as none")
    func negativeStep() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let store = PostgresStore(client: client, logger: logger)
            try await store.addUser(Self.user("sato"), audit: Self.entry(.userAdd, "sato"))
            try await store.beginTOTP(
                TOTPRecord(user: "sato", sealedSeed: [1, 2, 3], parameters: .default, createdAt: Date()),
                audit: Self.entry(.totpEnrollBegin, "sato"))
            try await store.confirmTOTP("sato", step: 100, audit: Self.entry(.totpEnrollConfirm, "sato"))
            #expect(try await store.totp(of: "sato")?.lastAcceptedStep == 100)
            try await client.query("UPDATE totp SET last_step = -5 WHERE user_name = 'sato'", logger: logger)
            #expect(try await store.totp(of: "sato") == nil)
            #expect(try await store.loginState(of: "sato").totp == nil)
        }
    }

    /// A failing statement is logged by its SQLSTATE and the server's message, never with the
    /// query and its bound values (which can be hashes, sealed seeds or code digests).
    @Test("a failed statement logs its SQLSTATE, never the query or its values")
    func failuresLogNoValues() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let lines = LogCapture()
            let store = PostgresStore(client: client, logger: Logger(label: "test") { _ in lines })
            let digest = Array("secret-digest-0123456789".utf8)
            // No user "ghost": the insert breaks the foreign key, and the whole change is refused.
            await #expect(throws: StoreError.self) {
                try await store.replaceRecoveryCodes(
                    "ghost", with: [StoredRecoveryCode(digest: digest)], audit: Self.entry(.recoveryIssue, "ghost"))
            }
            let logged = lines.text
            #expect(logged.contains("SQLSTATE 23503"), "\(logged)")
            #expect(!logged.contains("INSERT") && !logged.contains("recovery_codes (") && !logged.contains("secret"))
            #expect(try await store.auditHead() == 0, "the refused change wrote no entry")
        }
    }
}

/// A log handler that keeps every line, with its metadata, for a test to read.
final class LogCapture: LogHandler, @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let fields = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        lines.withLock { $0.append("\(event.message) \(fields)") }
    }
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}
