public import Foundation
internal import GRDB
public import MamoriCore
public import MamoriStore

/// Users, role assignments and sessions.
extension SQLiteStore: IdentityStore, AssignmentStore, SessionStore {
    // MARK: Users

    /// The user called `name` in one read, password hash included (keep it out of answers); nil when there
    /// is none.
    public func user(named name: String) async throws -> UserRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE name = ?", arguments: [name]).map(Self.user)
        }
    }

    /// Every user, by name, in one read.
    public func users() async throws -> [UserRecord] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY name").map(Self.user) }
    }

    /// Inserts `user` and appends `audit` in one write transaction; throws `conflict` when the name is
    /// taken. `lastLoginAt` is not stored: a new account has never logged in.
    public func addUser(_ user: UserRecord, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            guard try Row.fetchOne(db, sql: "SELECT 1 FROM users WHERE name = ?", arguments: [user.name]) == nil else {
                throw StoreError(.conflict, "The user '\(user.name)' already exists.")
            }
            try db.execute(
                sql: """
                    INSERT INTO users (name, display_name, kind, organisation, disabled, created_at, must_change_password,
                        password_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    user.name, user.displayName, user.kind.rawValue, user.organisation, user.disabled,
                    millis(user.createdAt), user.mustChangePassword, user.passwordHash,
                ]
            )
        }
    }

    /// Changes a user's row with `sql` (which must use `?` for the name last); not-found if none.
    private func updateUser(_ name: String, sql: String, arguments: StatementArguments, audit: AuditEntry) async throws
    {
        try await write(audit: audit) { db in
            try db.execute(sql: sql, arguments: arguments + [name])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "There is no user '\(name)'.") }
        }
    }

    /// Sets the disabled flag and appends `audit` in one write transaction; throws `notFound` for an
    /// unknown user. Open sessions are not closed.
    public func setDisabled(_ name: String, _ disabled: Bool, audit: AuditEntry) async throws {
        try await updateUser(
            name, sql: "UPDATE users SET disabled = ? WHERE name = ?", arguments: [disabled], audit: audit)
    }

    /// Deletes the user, with their failures and (by cascade) TOTP enrolment, recovery codes and
    /// assignments, closes their open sessions (which stay on record), changes the assignment
    /// generation and appends `audit`, in one write transaction. Throws `notFound` for an unknown user.
    public func removeUser(_ name: String, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "DELETE FROM users WHERE name = ?", arguments: [name])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "There is no user '\(name)'.") }
            try db.execute(sql: "DELETE FROM failures WHERE user = ?", arguments: [name])
            // A removed user's sessions end with them: none may outlive the account, nor pass to a
            // user of the same name added later.
            try db.execute(
                sql: "UPDATE sessions SET closed_at = ? WHERE user = ? AND closed_at IS NULL",
                arguments: [millis(audit.time), name])
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'assignment_generation'")
        }
    }

    /// Stores the password hash and the must-change flag and appends `audit` in one write transaction;
    /// throws `notFound` for an unknown user. `hash` is the Argon2id PHC string, never the password.
    public func setPassword(_ name: String, hash: String, mustChange: Bool, audit: AuditEntry) async throws {
        try await updateUser(
            name, sql: "UPDATE users SET password_hash = ?, must_change_password = ? WHERE name = ?",
            arguments: [hash, mustChange], audit: audit
        )
    }

    // MARK: Role assignments

    /// `name`'s assignments in one read, current or not, by role.
    public func assignments(of name: String) async throws -> [AssignmentRecord] {
        try await read { db in try Self.assignments(of: name, db) }
    }

    static func assignments(of name: String, _ db: Database) throws -> [AssignmentRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM assignments WHERE user = ? ORDER BY role", arguments: [name]).map(
            Self.assignment)
    }

    /// Every assignment in one read, current or not, by role then user.
    public func allAssignments() async throws -> [AssignmentRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM assignments ORDER BY role, user").map(Self.assignment)
        }
    }

    /// Grants a role, checking the grant rules inside the same write transaction, so that two
    /// grants at once cannot both pass a holder limit or a separation of duty.
    ///
    /// - Parameters:
    ///   - check: given the roles the user holds at the grant's time and the role's current
    ///     holders, the reasons the grant breaks a rule (empty: it may be made).
    ///   - denial: the audit entry recorded instead when `check` finds reasons.
    /// - Returns: the reasons; when not empty, nothing was granted and `denial` was recorded.
    public func grant(
        _ assignment: AssignmentRecord, audit: AuditEntry, denial: @escaping @Sendable ([String]) -> AuditEntry,
        check: @escaping @Sendable (_ held: [String], _ holders: Int) -> [String]
    ) async throws -> [String] {
        try await write(audit: nil) { db in
            guard try Row.fetchOne(db, sql: "SELECT 1 FROM users WHERE name = ?", arguments: [assignment.user]) != nil
            else {
                throw StoreError(.notFound, "There is no user '\(assignment.user)'.")
            }
            let now = millis(assignment.grantedAt)
            let held = try String.fetchAll(
                db,
                sql:
                    "SELECT role FROM assignments WHERE user = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY role",
                arguments: [assignment.user, now]
            )
            let holders =
                try Int.fetchOne(
                    db,
                    sql: "SELECT COUNT(*) FROM assignments WHERE role = ? AND (expires_at IS NULL OR expires_at > ?)",
                    arguments: [assignment.role, now]
                ) ?? 0
            let violations = check(held, holders)
            guard violations.isEmpty else {
                try self.append(denial(violations), db)
                return violations
            }
            try db.execute(
                sql:
                    "INSERT OR REPLACE INTO assignments (user, role, granted_by, granted_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    assignment.user, assignment.role, assignment.grantedBy, now, assignment.expiresAt.map(millis),
                ]
            )
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'assignment_generation'")
            try self.append(audit, db)
            return []
        }
    }

    /// Deletes the assignment, changes the assignment generation and appends `audit` in one write
    /// transaction; throws `notFound` when `name` does not hold `role` (an expired assignment counts).
    public func revoke(_ name: String, role: String, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "DELETE FROM assignments WHERE user = ? AND role = ?", arguments: [name, role])
            guard db.changesCount > 0 else {
                throw StoreError(.notFound, "'\(name)' does not hold the role '\(role)'.")
            }
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'assignment_generation'")
        }
    }

    /// The generation counter in one read: the `meta` row that grants, revokes and user removals
    /// increment (0 when missing).
    public func assignmentGeneration() async throws -> Int64 {
        try await read { db in
            try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'assignment_generation'") ?? 0
        }
    }

    // MARK: Sessions

    /// Inserts `session` and appends `audit` in one write transaction. Its `closedAt` and `lastActiveAt`
    /// are not stored: a new session is open. Throws `notFound` when the user no longer exists or is
    /// disabled (checked in the transaction); a duplicate id fails with `storage`.
    public func openSession(_ session: SessionRecord, audit: AuditEntry) async throws {
        try await insertSession(session, audit: audit, userHeldHere: true)
    }

    /// A member terminal's copy of a session its hub opened: the user is the hub's, not in this file.
    public func openSession(ofUserHeldElsewhere session: SessionRecord, audit: AuditEntry) async throws {
        try await insertSession(session, audit: audit, userHeldHere: false)
    }

    private func insertSession(_ session: SessionRecord, audit: AuditEntry, userHeldHere: Bool) async throws {
        try await write(audit: audit) { db in
            // Only for a user who still exists and is enabled, checked in this transaction: a ticket
            // outlives neither the account's removal nor its disabling.
            try db.execute(
                sql: """
                    INSERT INTO sessions (id, user, zone, terminal, factors, service, tty, remote_host, opened_at, expires_at)
                    SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
                    WHERE ? OR EXISTS (SELECT 1 FROM users WHERE name = ? AND disabled = 0)
                    """,
                arguments: [
                    session.id, session.user, session.zone, session.terminal,
                    session.factors.map(\.rawValue).sorted().joined(separator: ","), session.service, session.tty,
                    session.remoteHost, millis(session.openedAt), millis(session.expiresAt), !userHeldHere,
                    session.user,
                ]
            )
            guard db.changesCount > 0 else {
                throw StoreError(.notFound, "There is no enabled user '\(session.user)'; authenticate again.")
            }
        }
    }

    /// The session `id` in one read, open, closed or run out; nil when there is none. Factors this
    /// version does not know are left out.
    public func session(_ id: String) async throws -> SessionRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id]).map { row in
                SessionRecord(
                    id: row["id"], user: row["user"], zone: row["zone"], terminal: row["terminal"],
                    factors: Set(
                        (row["factors"] as String).split(separator: ",").compactMap { Factor(rawValue: String($0)) }),
                    service: row["service"], tty: row["tty"], remoteHost: row["remote_host"],
                    openedAt: date(row["opened_at"]),
                    expiresAt: date(row["expires_at"]), closedAt: (row["closed_at"] as Int64?).map(date),
                    lastActiveAt: (row["last_active_at"] as Int64?).map(date)
                )
            }
        }
    }

    /// Saves when open sessions were last used (at shutdown), so that a restart does not make
    /// them look idle. Bookkeeping, not an act: no audit entry.
    public func saveSessionActivity(_ activity: [String: Date]) async throws {
        guard !activity.isEmpty else { return }
        try await write(audit: nil) { db in
            for (id, time) in activity {
                try db.execute(
                    sql: "UPDATE sessions SET last_active_at = ? WHERE id = ? AND closed_at IS NULL",
                    arguments: [millis(time), id]
                )
            }
        }
    }

    /// Sets `closedAt` to `time` and appends `audit` in one write transaction; throws `notFound` when there
    /// is no such session or it is closed already. A session that ran out can still be closed.
    public func closeSession(_ id: String, at time: Date, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(
                sql: "UPDATE sessions SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
                arguments: [millis(time), id])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "There is no open session '\(id)'.") }
        }
    }
}

/// A member terminal's embedded store keeps copies of the sessions its hub opens.
extension SQLiteStore: ForeignSessionStore {
    /// Closes `user`'s open sessions, recorded by `audit`.
    public func closeSessions(ofUser user: String, at time: Date, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(
                sql: "UPDATE sessions SET closed_at = ? WHERE user = ? AND closed_at IS NULL",
                arguments: [millis(time), user])
        }
    }
}
