public import Logging
public import PostgresNIO

/// The hub's schema on PostgreSQL: numbered migrations, applied in order in one transaction under
/// one advisory lock, so that two hubs starting together on one database apply each exactly once
/// and neither sees half a schema. A migration that has shipped is never edited: add a new one.
///
/// The tables mirror the embedded store's (MamoriSQLite), with the same units: times are
/// milliseconds since 1970 (`BIGINT`), so that an entry's hash, which covers its time in
/// milliseconds, reads the same from either store. `user` is a reserved word here, so the
/// columns that name a user are `user_name`.
public enum PostgresSchema {
    /// One step of the schema.
    struct Migration: Sendable {
        let version: Int
        let name: String
        let sql: [String]
    }

    /// The advisory lock every migrator takes first (an arbitrary constant: "mamori" in ASCII).
    static let lockKey: Int64 = 0x6D61_6D6F_7269

    static let migrations: [Migration] = [
        Migration(
            version: 1, name: "the store's tables",
            sql: [
                """
                CREATE TABLE users (
                    name TEXT PRIMARY KEY,
                    display_name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    organisation TEXT,
                    disabled BOOLEAN NOT NULL DEFAULT false,
                    created_at BIGINT NOT NULL,
                    last_login_at BIGINT,
                    must_change_password BOOLEAN NOT NULL DEFAULT false,
                    password_hash TEXT
                )
                """,
                """
                CREATE TABLE totp (
                    user_name TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
                    sealed_seed BYTEA NOT NULL,
                    algorithm TEXT NOT NULL,
                    digits INTEGER NOT NULL,
                    period INTEGER NOT NULL,
                    last_step BIGINT,
                    confirmed BOOLEAN NOT NULL DEFAULT false,
                    created_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE recovery_codes (
                    id BIGSERIAL PRIMARY KEY,
                    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
                    digest BYTEA NOT NULL,
                    used_at BIGINT
                )
                """,
                """
                CREATE TABLE assignments (
                    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
                    role TEXT NOT NULL,
                    granted_by TEXT NOT NULL,
                    granted_at BIGINT NOT NULL,
                    expires_at BIGINT,
                    PRIMARY KEY (user_name, role)
                )
                """,
                """
                CREATE TABLE failures (
                    user_name TEXT PRIMARY KEY,
                    count INTEGER NOT NULL,
                    first_failure_at BIGINT NOT NULL,
                    locked_until BIGINT,
                    in_flight INTEGER NOT NULL DEFAULT 0,
                    -- When the newest attempt was reserved: reservations a crashed hub left behind
                    -- are let go once this is older than any password check can take.
                    in_flight_at BIGINT
                )
                """,
                """
                CREATE TABLE sessions (
                    id TEXT PRIMARY KEY,
                    user_name TEXT NOT NULL,
                    zone TEXT NOT NULL,
                    terminal TEXT NOT NULL,
                    factors TEXT NOT NULL,
                    service TEXT NOT NULL,
                    tty TEXT,
                    remote_host TEXT,
                    opened_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    closed_at BIGINT,
                    last_active_at BIGINT
                )
                """,
                """
                CREATE TABLE audit (
                    seq BIGINT PRIMARY KEY,
                    time BIGINT NOT NULL,
                    actor_uid BIGINT,
                    actor TEXT NOT NULL,
                    event TEXT NOT NULL,
                    target TEXT NOT NULL,
                    outcome TEXT NOT NULL,
                    detail TEXT NOT NULL,
                    terminal TEXT NOT NULL,
                    zone TEXT NOT NULL,
                    policy_revision TEXT NOT NULL,
                    prev_hash BYTEA NOT NULL,
                    hash BYTEA NOT NULL
                )
                """,
                // Entries are only ever added (and pruned from the front): an UPDATE is refused
                // by the server itself, whoever sends it.
                """
                CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'the audit trail is append-only';
                END
                $$
                """,
                """
                CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
                    FOR EACH ROW EXECUTE FUNCTION audit_append_only()
                """,
                """
                CREATE TABLE checkpoints (
                    id BIGSERIAL PRIMARY KEY,
                    audit_seq BIGINT NOT NULL,
                    head_hash BYTEA NOT NULL,
                    time BIGINT NOT NULL,
                    signature BYTEA NOT NULL,
                    previous BYTEA
                )
                """,
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
                // audit_sequence: the newest number ever given, so that numbering never goes back,
                // even when every entry was pruned (or deleted, which the verifier then reports).
                "INSERT INTO meta (key, value) VALUES ('assignment_generation', 0), ('audit_sequence', 0)",
            ]
        ),
        Migration(
            version: 2, name: "the change feed",
            sql: [
                // Every change terminals must learn of (users, credentials, assignments, locks, the
                // policy), numbered under the chain lock: numbers commit in order, without gaps.
                """
                CREATE TABLE changes (
                    number BIGINT PRIMARY KEY,
                    time BIGINT NOT NULL,
                    kind TEXT NOT NULL,
                    subject TEXT NOT NULL
                )
                """,
                "INSERT INTO meta (key, value) VALUES ('change_sequence', 0)",
            ]
        ),
        Migration(
            version: 3, name: "the terminals",
            sql: [
                // A join token and a certificate are kept as SHA-256 digests: a copy of the
                // database can neither join a terminal nor make one's certificate.
                """
                CREATE TABLE terminals (
                    name TEXT PRIMARY KEY,
                    zone TEXT NOT NULL,
                    added_at BIGINT NOT NULL,
                    added_by TEXT NOT NULL,
                    token_digest BYTEA UNIQUE,
                    token_expires_at BIGINT,
                    joined_at BIGINT,
                    certificate_serial TEXT,
                    certificate_digest BYTEA UNIQUE,
                    certificate_expires_at BIGINT,
                    removed_at BIGINT
                )
                """
            ]
        ),
        Migration(
            version: 4, name: "the terminals' audit chains",
            sql: [
                // One stream for each time a terminal of a name joined; its audit key is fixed by
                // its first batch, and only a batch that continues the head is kept.
                """
                CREATE TABLE terminal_audit_streams (
                    id BIGSERIAL PRIMARY KEY,
                    terminal TEXT NOT NULL,
                    joined_at BIGINT NOT NULL,
                    audit_key BYTEA NOT NULL,
                    head_seq BIGINT NOT NULL DEFAULT 0,
                    head_hash BYTEA,
                    received_at BIGINT,
                    refused_at BIGINT,
                    refusal TEXT,
                    UNIQUE (terminal, joined_at)
                )
                """,
                // The entries exactly as the terminal stored them, so that their hashes still cover them.
                """
                CREATE TABLE terminal_audit (
                    stream BIGINT NOT NULL REFERENCES terminal_audit_streams(id),
                    seq BIGINT NOT NULL,
                    time BIGINT NOT NULL,
                    actor_uid BIGINT,
                    actor TEXT NOT NULL,
                    event TEXT NOT NULL,
                    target TEXT NOT NULL,
                    outcome TEXT NOT NULL,
                    detail TEXT NOT NULL,
                    terminal TEXT NOT NULL,
                    zone TEXT NOT NULL,
                    policy_revision TEXT NOT NULL,
                    prev_hash BYTEA NOT NULL,
                    hash BYTEA NOT NULL,
                    PRIMARY KEY (stream, seq)
                )
                """,
                """
                CREATE TRIGGER terminal_audit_no_update BEFORE UPDATE ON terminal_audit
                    FOR EACH ROW EXECUTE FUNCTION audit_append_only()
                """,
                """
                CREATE TABLE terminal_checkpoints (
                    id BIGSERIAL PRIMARY KEY,
                    stream BIGINT NOT NULL REFERENCES terminal_audit_streams(id),
                    audit_seq BIGINT NOT NULL,
                    head_hash BYTEA NOT NULL,
                    time BIGINT NOT NULL,
                    signature BYTEA NOT NULL,
                    previous BYTEA,
                    UNIQUE (stream, signature)
                )
                """,
            ]
        ),
        Migration(
            version: 5, name: "certificate renewal",
            sql: [
                // The certificate a renewal replaced, accepted until it expires or the next renewal.
                "ALTER TABLE terminals ADD COLUMN previous_certificate_digest BYTEA UNIQUE",
                "ALTER TABLE terminals ADD COLUMN previous_certificate_expires_at BIGINT",
                "ALTER TABLE terminals ADD COLUMN previous_certificate_serial TEXT",
                // The key the certificate in use was issued for, by a renewal (SHA-256 of its SPKI).
                "ALTER TABLE terminals ADD COLUMN certificate_key_digest BYTEA",
            ]
        ),
        Migration(
            version: 6, name: "logins through a network cut",
            sql: [
                // What each terminal did offline, as it reported it: kept once per (terminal, sequence).
                """
                CREATE TABLE terminal_offline_uses (
                    terminal TEXT NOT NULL,
                    sequence BIGINT NOT NULL,
                    user_name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    at BIGINT NOT NULL,
                    step BIGINT,
                    recovery_code BIGINT,
                    reason TEXT,
                    online_at BIGINT,
                    reported_at BIGINT NOT NULL,
                    refused TEXT,
                    PRIMARY KEY (terminal, sequence)
                )
                """,
                "CREATE INDEX terminal_offline_uses_step ON terminal_offline_uses (user_name, step) WHERE step IS NOT NULL",
                // What each terminal was given for each user at online logins: a reported use
                // outside it is refused (a terminal cannot spend steps or codes it never had).
                """
                CREATE TABLE offline_grants (
                    terminal TEXT NOT NULL,
                    user_name TEXT NOT NULL,
                    first_step BIGINT,
                    last_step BIGINT,
                    period INTEGER NOT NULL,
                    recovery_ids BIGINT[] NOT NULL,
                    granted_at BIGINT NOT NULL,
                    PRIMARY KEY (terminal, user_name)
                )
                """,
                // A step one user used offline on two terminals; each terminal is told once.
                """
                CREATE TABLE offline_conflicts (
                    user_name TEXT NOT NULL,
                    step BIGINT NOT NULL,
                    first_terminal TEXT NOT NULL,
                    second_terminal TEXT NOT NULL,
                    found_at BIGINT NOT NULL,
                    told_first BOOLEAN NOT NULL DEFAULT false,
                    told_second BOOLEAN NOT NULL DEFAULT false,
                    PRIMARY KEY (user_name, step, first_terminal, second_terminal)
                )
                """,
            ]
        ),
    ]

    /// The newest version this build knows.
    public static var latestVersion: Int { migrations.map(\.version).max() ?? 0 }

    /// Brings the database up to ``latestVersion``; returns the versions this call applied (none
    /// when another hub, or an earlier start, did). Throws when the database is newer than this
    /// build: a hub must not write a schema it does not know.
    @discardableResult
    public static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        do {
            return try await migrateInTransaction(client, logger: logger)
        } catch let error as PostgresTransactionError {
            // The transaction was rolled back; say why in this module's words when it was ours.
            if let refusal = error.closureError as? SchemaError, error.rollbackError == nil { throw refusal }
            throw error
        }
    }

    private static func migrateInTransaction(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withTransaction(logger: logger) { connection in
            // Held to the end of the transaction: a second migrator waits here, then finds the work done.
            for try await _ in try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger) {}
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var present = Set<Int>()
            for try await version in try await connection.query(
                "SELECT version FROM schema_migrations", logger: logger
            ).decode(Int.self) {
                present.insert(version)
            }
            if let newest = present.max(), newest > latestVersion {
                throw SchemaError(
                    "The database has schema version \(newest); this build knows up to \(latestVersion). Upgrade it.")
            }
            var applied: [Int] = []
            for migration in migrations where !present.contains(migration.version) {
                for statement in migration.sql {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                applied.append(migration.version)
            }
            if !applied.isEmpty { logger.notice("schema migrated", metadata: ["applied": "\(applied)"]) }
            return applied
        }
    }
}

/// The database's schema cannot be used by this build.
public struct SchemaError: Error, CustomStringConvertible {
    /// A sentence for the operator.
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
