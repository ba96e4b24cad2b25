import Logging
public import MamoriCore
public import MamoriStore
import PostgresNIO

/// Users.
extension PostgresStore: IdentityStore {
    /// The columns ``user(_:)`` reads, in its order.
    static let userColumns =
        "name, display_name, kind, organisation, disabled, created_at, last_login_at, must_change_password, password_hash"

    typealias UserRow = (String, String, String, String?, Bool, Int64, Int64?, Bool, String?)

    static func user(_ row: UserRow) -> UserRecord {
        UserRecord(
            name: row.0, displayName: row.1, kind: UserKind(rawValue: row.2) ?? .staff, organisation: row.3,
            disabled: row.4, createdAt: date(row.5), lastLoginAt: row.6.map(date), mustChangePassword: row.7,
            passwordHash: row.8)
    }

    /// The user called `name`, password hash included (keep it out of answers); nil when there is none.
    public func user(named name: String) async throws -> UserRecord? {
        let logger = self.logger
        return try await connection { try await Self.user(named: name, $0, logger: logger) }
    }

    static func user(named name: String, _ connection: PostgresConnection, logger: Logger) async throws
        -> UserRecord?
    {
        var found: UserRecord?
        for try await row in try await connection.query(
            "SELECT \(unescaped: userColumns) FROM users WHERE name = \(name)", logger: logger
        ).decode(UserRow.self) {
            found = user(row)
        }
        return found
    }

    /// Every user, by name.
    public func users() async throws -> [UserRecord] {
        try await read { client in
            var users: [UserRecord] = []
            for try await row in try await client.query(
                "SELECT \(unescaped: Self.userColumns) FROM users ORDER BY name", logger: logger
            ).decode(UserRow.self) {
                users.append(Self.user(row))
            }
            return users
        }
    }

    /// Inserts `user` and appends `audit` in one transaction; throws `conflict` when the name is
    /// taken. `lastLoginAt` is not stored: a new account has never logged in.
    public func addUser(_ user: UserRecord, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO users (name, display_name, kind, organisation, disabled, created_at,
                    must_change_password, password_hash)
                VALUES (\(user.name), \(user.displayName), \(user.kind.rawValue), \(user.organisation),
                    \(user.disabled), \(AuditEntry.milliseconds(user.createdAt)), \(user.mustChangePassword),
                    \(user.passwordHash))
                ON CONFLICT (name) DO NOTHING RETURNING name
                """, logger: logger)
            guard try await Self.count(inserted) == 1 else {
                throw StoreError(.conflict, "The user '\(user.name)' already exists.")
            }
        }
    }

    /// Sets the disabled flag and appends `audit` in one transaction; throws `notFound` for an unknown user.
    public func setDisabled(_ name: String, _ disabled: Bool, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let changed = try await connection.query(
                "UPDATE users SET disabled = \(disabled) WHERE name = \(name) RETURNING name", logger: logger)
            guard try await Self.count(changed) == 1 else { throw StoreError(.notFound, "There is no user '\(name)'.") }
        }
    }

    /// Deletes the user, with their failures and (by cascade) TOTP enrolment, recovery codes and
    /// assignments, closes their open sessions, changes the assignment generation and appends
    /// `audit`, in one transaction. Throws `notFound` for an unknown user.
    public func removeUser(_ name: String, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let removed = try await connection.query(
                "DELETE FROM users WHERE name = \(name) RETURNING name", logger: logger)
            guard try await Self.count(removed) == 1 else { throw StoreError(.notFound, "There is no user '\(name)'.") }
            try await connection.query("DELETE FROM failures WHERE user_name = \(name)", logger: logger)
            try await connection.query(
                """
                UPDATE sessions SET closed_at = \(AuditEntry.milliseconds(audit.time))
                WHERE user_name = \(name) AND closed_at IS NULL
                """, logger: logger)
            try await connection.query(
                "UPDATE meta SET value = value + 1 WHERE key = 'assignment_generation'", logger: logger)
        }
    }

    /// Stores the password hash (the Argon2id PHC string, never the password) and the must-change
    /// flag, and appends `audit`, in one transaction; throws `notFound` for an unknown user.
    public func setPassword(_ name: String, hash: String, mustChange: Bool, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let changed = try await connection.query(
                """
                UPDATE users SET password_hash = \(hash), must_change_password = \(mustChange)
                WHERE name = \(name) RETURNING name
                """, logger: logger)
            guard try await Self.count(changed) == 1 else { throw StoreError(.notFound, "There is no user '\(name)'.") }
        }
    }

    /// How many rows a statement returned (its RETURNING rows).
    static func count(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }
}
