import Foundation
import Logging
import MamoriPostgres
import MamoriTestSupport
import PostgresNIO
import Testing

/// The hub's schema on a real PostgreSQL server: the private one `make test` starts
/// (scripts/with-postgres), named by `MAMORI_TEST_POSTGRES` (host:port). Each test works in a
/// database of its own, dropped at the end.
@Suite(
    "the PostgreSQL schema", .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"))
struct PostgresSchemaTests {
    @Test("an empty database gets every migration once; a second run applies nothing")
    func migratesOnce() async throws {
        try await TestServer.withDatabase { client, _, logger in
            #expect(try await PostgresSchema.migrate(client, logger: logger) == [1, 2, 3, 4, 5, 6])
            #expect(try await PostgresSchema.migrate(client, logger: logger) == [])
            var tables: Set<String> = []
            for try await name in try await client.query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", logger: logger
            ).decode(String.self) {
                tables.insert(name)
            }
            #expect(
                tables == [
                    "users", "totp", "recovery_codes", "assignments", "failures", "sessions", "audit", "checkpoints",
                    "meta", "schema_migrations", "changes", "terminals", "terminal_audit_streams", "terminal_audit",
                    "terminal_checkpoints", "terminal_offline_uses", "offline_conflicts", "offline_grants",
                ])
        }
    }

    @Test("two hubs migrating one database together: one applies, the other waits and finds it done")
    func concurrentMigrators() async throws {
        try await TestServer.withDatabase { client, database, logger in
            try await TestServer.withClient(database: database, logger: logger) { second in
                async let first = PostgresSchema.migrate(client, logger: logger)
                async let other = PostgresSchema.migrate(second, logger: logger)
                let results = try await [first, other]
                #expect(results.sorted { $0.count < $1.count } == [[], [1, 2, 3, 4, 5, 6]])
            }
            let rows = try await client.query("SELECT count(*) FROM schema_migrations", logger: logger)
            for try await count in rows.decode(Int.self) { #expect(count == PostgresSchema.latestVersion) }
        }
    }

    @Test("the server itself refuses to change an audit entry")
    func auditIsAppendOnly() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            let hash = ByteBuffer(repeating: 7, count: 32)
            try await client.query(
                """
                INSERT INTO audit (seq, time, actor, event, target, outcome, detail, terminal, zone,
                    policy_revision, prev_hash, hash)
                VALUES (1, 0, 'root', 'role.grant', 'sato', 'success', '{}', 't', 'mynumber', 'r', \(hash), \(hash))
                """, logger: logger)
            await #expect(throws: PSQLError.self) {
                try await client.query("UPDATE audit SET target = 'tanaka' WHERE seq = 1", logger: logger)
            }
            for try await target in try await client.query("SELECT target FROM audit", logger: logger).decode(
                String.self)
            {
                #expect(target == "sato")
            }
        }
    }

    @Test("a database newer than this build is refused, not written")
    func newerSchemaRefused() async throws {
        try await TestServer.withDatabase { client, _, logger in
            try await PostgresSchema.migrate(client, logger: logger)
            try await client.query(
                "INSERT INTO schema_migrations (version, name) VALUES (999, 'later')", logger: logger)
            do {
                try await PostgresSchema.migrate(client, logger: logger)
                Issue.record("a newer schema was migrated")
            } catch let error as SchemaError {
                #expect(error.description.contains("version 999"))
            } catch {
                Issue.record("\(String(reflecting: error))")
            }
        }
    }
}
