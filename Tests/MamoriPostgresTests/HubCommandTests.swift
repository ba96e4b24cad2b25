import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriStore
import MamoriTestSupport
import PostgresNIO
import Testing

/// The `mamori-hub` command against a real server: `migrate` and `changes`, and what an operator
/// sees when the database is newer than the build or cannot be reached.
@Suite("mamori-hub's database tools", .enabled(if: TestServer.address != nil, "run through make test"))
struct HubCommandTests {
    static func hub(_ arguments: [String]) throws -> ProcessResult {
        try Subprocess.run(Subprocess.product("mamori-hub"), arguments)
    }

    @Test("migrate applies once, then says up to date; changes prints the feed; a newer schema is refused")
    func migrateAndChanges() async throws {
        try await TestServer.withDatabase { client, database, logger in
            let socket = try #require(TestServer.address)
            let target = ["--socket", socket, "--database", database]
            let first = try Self.hub(["migrate"] + target)
            #expect(
                first.status == 0
                    && first.stdout == "Applied migrations 1, 2, 3, 4, 5, 6; the schema is at version 6.\n")
            let again = try Self.hub(["migrate"] + target)
            #expect(again.status == 0 && again.stdout == "The schema is up to date (version 6).\n", "\(again)")

            let store = PostgresStore(client: client, logger: logger)
            let user = UserRecord(name: "sato", displayName: "sato", kind: .staff, organisation: nil, createdAt: Date())
            try await store.addUser(
                user,
                audit: AuditEntry(
                    time: Date(), actorUID: 0, actor: "root", event: .userAdd, target: "sato", outcome: .success,
                    terminal: "hub", zone: "mynumber", policyRevision: "r"))
            let changes = try Self.hub(["changes"] + target)
            #expect(
                changes.status == 0 && changes.stdout.hasPrefix("1  ") && changes.stdout.hasSuffix("  user.add  sato\n")
            )
            #expect(try Self.hub(["changes", "--since", "1"] + target).stdout == "")

            try await client.query("INSERT INTO schema_migrations (version, name) VALUES (99, 'later')", logger: logger)
            let newer = try Self.hub(["migrate"] + target)
            #expect(
                newer.status == 2
                    && newer.stderr.contains(
                        "schema version 99; this build knows up to \(PostgresSchema.latestVersion)")
            )
        }
    }

    @Test("a database that cannot be reached is one sentence and exit status 3 after --wait; none named is usage")
    func unreachable() throws {
        let missing = try Self.hub(["migrate", "--socket", "/nonexistent/.s.PGSQL.5432", "--wait", "2"])
        #expect(missing.status == 3 && missing.stderr == "mamori-hub: the database could not be reached or migrated.\n")
        #expect(try Self.hub(["migrate"]).status == 64)
    }
}
