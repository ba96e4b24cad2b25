import Crypto
import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriStore
import MamoriTestSupport
import PostgresNIO
import Synchronization
import Testing

/// The hub's register of terminals on a real server: a token joins one terminal once, before it
/// expires; a removal takes the certificate out of service at once.
@Suite(
    "the terminal register", .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"))
struct TerminalRegistryTests {
    static let key = SymmetricKey(size: .bits256)

    static func certificate(_ tag: UInt8, expires: Date) -> IssuedTerminalCertificate {
        IssuedTerminalCertificate(
            serial: "0\(tag)", digest: Array(repeating: tag, count: 32), expiresAt: expires, pem: "PEM \(tag)")
    }

    @Test("a token joins once, never after expiry or removal; a removed name is added again with a fresh certificate")
    func lifecycle() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let store = PostgresStore(client: client, logger: logger)
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            let token = JoinToken(caPin: Array(repeating: 7, count: 32))
            let terminal = TerminalRecord(
                name: "kametsu-01", zone: "mynumber", addedAt: now, addedBy: "root", tokenExpiresAt: now + 3600)
            try await store.addTerminal(
                terminal, tokenDigest: token.secretDigest(key: Self.key),
                audit: PostgresStoreTests.entry(.terminalAdd, "kametsu-01", at: now))
            // A name in service cannot be added again.
            await #expect(throws: StoreError.self) {
                try await store.addTerminal(
                    terminal, tokenDigest: JoinToken(caPin: token.caPin).secretDigest(key: Self.key),
                    audit: PostgresStoreTests.entry(.terminalAdd, "kametsu-01", at: now))
            }
            #expect(try await store.terminals().map { $0.state(at: now) } == [.awaitingJoin])
            #expect(try await store.terminals().map { $0.state(at: now + 3601) } == [.tokenExpired])

            let issued = Mutex(0)
            func join(_ digest: [UInt8], at time: Date, tag: UInt8 = 1) async throws -> TerminalRecord? {
                try await store.joinTerminal(
                    tokenDigest: digest, now: time,
                    issue: { _ in
                        issued.withLock { $0 += 1 }
                        return Self.certificate(tag, expires: time + 86_400)
                    },
                    audit: { PostgresStoreTests.entry(.terminalJoin, $0.name, at: time) })?.0
            }
            // An unknown token, and the right one after its expiry, issue nothing.
            #expect(try await join(JoinToken(caPin: token.caPin).secretDigest(key: Self.key), at: now) == nil)
            #expect(try await join(token.secretDigest(key: Self.key), at: now + 3601) == nil)
            #expect(issued.withLock { $0 } == 0)

            let joined = try #require(try await join(token.secretDigest(key: Self.key), at: now + 60))
            #expect(joined.name == "kametsu-01" && joined.certificateSerial == "01" && joined.state(at: now) == .joined)
            #expect(try await join(token.secretDigest(key: Self.key), at: now + 61) == nil, "a token joins once")
            #expect(issued.withLock { $0 } == 1)
            #expect(
                try await store.joinedTerminal(certificateDigest: Array(repeating: 1, count: 32))?.name == "kametsu-01")
            #expect(try await store.joinedTerminal(certificateDigest: Array(repeating: 2, count: 32)) == nil)

            try await store.removeTerminal(
                named: "kametsu-01", at: now + 120, audit: PostgresStoreTests.entry(.terminalRemove, "kametsu-01"))
            #expect(try await store.joinedTerminal(certificateDigest: Array(repeating: 1, count: 32)) == nil)
            await #expect(throws: StoreError.self) {
                try await store.removeTerminal(
                    named: "kametsu-01", at: now + 121, audit: PostgresStoreTests.entry(.terminalRemove, "kametsu-01"))
            }
            // The removal is on the change feed, for every hub to close the terminal's connections.
            #expect(try await store.changes(after: 0, limit: 10).map(\.kind) == ["terminal.remove"])

            // Added again: a new token, and the old certificate stays refused.
            let second = JoinToken(caPin: token.caPin)
            try await store.addTerminal(
                terminal, tokenDigest: second.secretDigest(key: Self.key),
                audit: PostgresStoreTests.entry(.terminalAdd, "kametsu-01", at: now + 200))
            #expect(try await store.joinedTerminal(certificateDigest: Array(repeating: 1, count: 32)) == nil)
            #expect(
                try await join(token.secretDigest(key: Self.key), at: now + 201) == nil, "the first token stays spent")
            #expect(
                try await join(second.secretDigest(key: Self.key), at: now + 202, tag: 3)?.certificateSerial == "03")

            // Every act is in the chain, which holds.
            let events = try await store.auditPage(after: 0, limit: 100).map(\.event)
            #expect(events == ["terminal.add", "terminal.join", "terminal.remove", "terminal.add", "terminal.join"])
            let report = try await AuditVerifier.verify(store, publicKey: nil)
            #expect(report.problems.isEmpty && report.entryCount == 5, "\(report.problems)")
        }
    }
}
