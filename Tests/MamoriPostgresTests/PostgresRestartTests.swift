import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriStore
import MamoriTestSupport
import PostgresNIO
import Testing

/// The store through a crash of its server (`pg_ctl restart -m immediate`, on a spare server of
/// its own so that the other suites are not disturbed): what was acknowledged is kept, and the
/// store serves again once the server is back, without being opened anew; and a hub whose server
/// is gone still stops when asked.
@Suite(
    "the PostgreSQL store through a server crash", .serialized,
    .enabled(if: TestServer.spare != nil && TestServer.spareRestart != nil, "run through make test"))
struct PostgresRestartTests {
    @Test("acknowledged writes survive a crash; the same store writes again after it; the chain holds")
    func survivesCrash() async throws {
        let signer = try AuditSigner(rawKey: SystemRandomBytes().bytes(32))
        func entry(_ name: String) -> AuditEntry {
            AuditEntry(
                time: Date(), actorUID: 0, actor: "root", event: .userAdd, target: name, outcome: .success,
                terminal: "hub", zone: "mynumber", policyRevision: "r")
        }
        func user(_ name: String) -> UserRecord {
            UserRecord(name: name, displayName: name, kind: .staff, organisation: nil, createdAt: Date())
        }
        try await TestServer.withDatabase(on: TestServer.spare) { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let store = PostgresStore(client: client, signer: signer, checkpointInterval: 5, logger: logger)
            for index in 0..<12 { try await store.addUser(user("before\(index)"), audit: entry("before\(index)")) }

            let restart = try Subprocess.run("/bin/sh", ["-c", try #require(TestServer.spareRestart)])
            #expect(restart.status == 0, "\(restart.stderr)")

            // The pool's connections died with the server; new ones are made for the next requests.
            var reconnected = false
            for _ in 0..<60 where !reconnected {
                do {
                    try await store.addUser(user("after"), audit: entry("after"))
                    reconnected = true
                } catch {
                    try await Task.sleep(for: .milliseconds(500))
                }
            }
            #expect(reconnected, "the store did not write again within 30 s of the restart")
            let names = try await store.users().map(\.name)
            #expect(names.count == 13 && names.contains("before11") && names.contains("after"), "\(names)")
            let report = try await AuditVerifier.verify(store, publicKey: signer.publicKey)
            #expect(report.problems.isEmpty && report.entryCount == 13, "\(report.problems)")
        }
    }

    @Test("a hub whose database server is gone stops on SIGTERM, and logs that the chain's head went unsigned")
    func stopsWithoutItsServer() async throws {
        let stop = try #require(TestServer.spareStop)
        let start = try #require(TestServer.spareStart)
        try await TestServer.withDatabase(on: TestServer.spare) { _, database, _ in
            let hub = try TownJoinTests.Hub(database: database, on: TestServer.spare)
            defer { hub.harness.stop() }
            let stopped = try Subprocess.run("/bin/sh", ["-c", stop])
            #expect(stopped.status == 0, "\(stopped.stderr)")
            defer {
                let started = try? Subprocess.run("/bin/sh", ["-c", start])
                #expect(started?.status == 0, "the spare server did not start again")
            }
            // Its last writes wait 10 s for the store; then it goes. 60 s is for a loaded machine.
            let exited = hub.harness.stop(within: 60)
            #expect(
                exited != nil, "the hub did not stop within 60 s of SIGTERM without its database:\n\(hub.harness.log)")
            #expect(hub.harness.log.contains("the store did not answer at shutdown"), "\(hub.harness.log)")
            #expect(hub.harness.log.contains("mamorid stopped"))
        }
    }
}
