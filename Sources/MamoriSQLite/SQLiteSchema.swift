import Foundation
internal import GRDB
import MamoriCore
import MamoriStore

extension SQLiteStore {
    /// The schema. A migration that has shipped is never edited: add a new one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE users (
                        name TEXT PRIMARY KEY NOT NULL,
                        display_name TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        organisation TEXT,
                        disabled INTEGER NOT NULL DEFAULT 0,
                        created_at INTEGER NOT NULL,
                        last_login_at INTEGER,
                        must_change_password INTEGER NOT NULL DEFAULT 0,
                        password_hash TEXT
                    );
                    CREATE TABLE totp (
                        user TEXT PRIMARY KEY NOT NULL REFERENCES users(name) ON DELETE CASCADE,
                        sealed_seed BLOB NOT NULL,
                        algorithm TEXT NOT NULL,
                        digits INTEGER NOT NULL,
                        period INTEGER NOT NULL,
                        last_step INTEGER,
                        confirmed INTEGER NOT NULL DEFAULT 0,
                        created_at INTEGER NOT NULL
                    );
                    CREATE TABLE recovery_codes (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
                        digest BLOB NOT NULL,
                        used_at INTEGER
                    );
                    CREATE TABLE assignments (
                        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
                        role TEXT NOT NULL,
                        granted_by TEXT NOT NULL,
                        granted_at INTEGER NOT NULL,
                        expires_at INTEGER,
                        PRIMARY KEY (user, role)
                    );
                    CREATE TABLE failures (
                        user TEXT PRIMARY KEY NOT NULL,
                        count INTEGER NOT NULL,
                        first_failure_at INTEGER NOT NULL,
                        locked_until INTEGER
                    );
                    CREATE TABLE sessions (
                        id TEXT PRIMARY KEY NOT NULL,
                        user TEXT NOT NULL,
                        zone TEXT NOT NULL,
                        terminal TEXT NOT NULL,
                        factors TEXT NOT NULL,
                        service TEXT NOT NULL,
                        tty TEXT,
                        remote_host TEXT,
                        opened_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        closed_at INTEGER
                    );
                    CREATE TABLE audit (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        time INTEGER NOT NULL,
                        actor_uid INTEGER,
                        actor TEXT NOT NULL,
                        event TEXT NOT NULL,
                        target TEXT NOT NULL,
                        outcome TEXT NOT NULL,
                        detail TEXT NOT NULL,
                        terminal TEXT NOT NULL,
                        zone TEXT NOT NULL,
                        policy_revision TEXT NOT NULL,
                        prev_hash BLOB NOT NULL,
                        hash BLOB NOT NULL
                    );
                    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
                        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
                    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
                    INSERT INTO meta (key, value) VALUES ('assignment_generation', 0);
                    """)
        }
        migrator.registerMigration("v2-checkpoints") { db in
            try db.execute(
                sql: """
                    CREATE TABLE checkpoints (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        audit_seq INTEGER NOT NULL,
                        head_hash BLOB NOT NULL,
                        time INTEGER NOT NULL,
                        signature BLOB NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v3-session-activity") { db in
            try db.execute(sql: "ALTER TABLE sessions ADD COLUMN last_active_at INTEGER")
        }
        migrator.registerMigration("v4-attempts-in-flight") { db in
            // Password attempts reserved before Argon2 runs, so that parallel guesses are counted
            // against the lockout before any of them is evaluated.
            try db.execute(sql: "ALTER TABLE failures ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v5-checkpoint-chain") { db in
            // Each checkpoint names the digest of the one made before it (NULL: the first format).
            try db.execute(sql: "ALTER TABLE checkpoints ADD COLUMN previous BLOB")
        }
        return migrator
    }
}
