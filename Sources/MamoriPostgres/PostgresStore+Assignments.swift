public import Foundation
import Logging
public import MamoriCore
public import MamoriStore
import PostgresNIO

/// Role assignments and sessions.
extension PostgresStore: AssignmentStore, SessionStore {
    // MARK: Role assignments

    typealias AssignmentRow = (String, String, String, Int64, Int64?)

    static func assignment(_ row: AssignmentRow) -> AssignmentRecord {
        AssignmentRecord(
            user: row.0, role: row.1, grantedBy: row.2, grantedAt: date(row.3), expiresAt: row.4.map(date))
    }

    /// `name`'s assignments, current or not, by role.
    public func assignments(of name: String) async throws -> [AssignmentRecord] {
        let logger = self.logger
        return try await connection { try await Self.assignments(of: name, $0, logger: logger) }
    }

    static func assignments(of name: String, _ connection: PostgresConnection, logger: Logger) async throws
        -> [AssignmentRecord]
    {
        var found: [AssignmentRecord] = []
        for try await row in try await connection.query(
            """
            SELECT user_name, role, granted_by, granted_at, expires_at FROM assignments
            WHERE user_name = \(name) ORDER BY role
            """, logger: logger
        ).decode(AssignmentRow.self) {
            found.append(assignment(row))
        }
        return found
    }

    /// Every assignment, current or not, by role then user.
    public func allAssignments() async throws -> [AssignmentRecord] {
        try await read { client in
            var found: [AssignmentRecord] = []
            for try await row in try await client.query(
                "SELECT user_name, role, granted_by, granted_at, expires_at FROM assignments ORDER BY role, user_name",
                logger: logger
            ).decode(AssignmentRow.self) {
                found.append(Self.assignment(row))
            }
            return found
        }
    }

    /// Grants a role, running `check` on the roles the user holds and the role's holder count
    /// inside the same transaction (which holds the chain lock, so grants are serialised: two at
    /// once cannot both pass a holder limit or a separation of duty). Returns `check`'s reasons;
    /// when not empty, nothing was granted and `denial` was recorded. Throws `notFound` for an
    /// unknown user.
    public func grant(
        _ assignment: AssignmentRecord, audit: AuditEntry, denial: @escaping @Sendable ([String]) -> AuditEntry,
        check: @escaping @Sendable (_ held: [String], _ holders: Int) -> [String]
    ) async throws -> [String] {
        let logger = self.logger
        return try await write(audit: nil) { connection in
            let user = try await connection.query(
                "SELECT name FROM users WHERE name = \(assignment.user) FOR UPDATE", logger: logger)
            guard try await Self.count(user) == 1 else {
                throw StoreError(.notFound, "There is no user '\(assignment.user)'.")
            }
            let now = AuditEntry.milliseconds(assignment.grantedAt)
            var held: [String] = []
            for try await role in try await connection.query(
                """
                SELECT role FROM assignments
                WHERE user_name = \(assignment.user) AND (expires_at IS NULL OR expires_at > \(now)) ORDER BY role
                """, logger: logger
            ).decode(String.self) {
                held.append(role)
            }
            var holders = 0
            for try await count in try await connection.query(
                """
                SELECT count(*) FROM assignments
                WHERE role = \(assignment.role) AND (expires_at IS NULL OR expires_at > \(now))
                """, logger: logger
            ).decode(Int64.self) {
                holders = Int(count)
            }
            let violations = check(held, holders)
            guard violations.isEmpty else {
                try await self.append(denial(violations), connection)
                return violations
            }
            try await connection.query(
                """
                INSERT INTO assignments (user_name, role, granted_by, granted_at, expires_at)
                VALUES (\(assignment.user), \(assignment.role), \(assignment.grantedBy), \(now),
                    \(assignment.expiresAt.map(AuditEntry.milliseconds)))
                ON CONFLICT (user_name, role) DO UPDATE SET granted_by = EXCLUDED.granted_by,
                    granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at
                """, logger: logger)
            try await Self.bumpGeneration(connection, logger: logger)
            try await self.append(audit, connection)
            return []
        }
    }

    /// Deletes the assignment, changes the generation and appends `audit` in one transaction;
    /// throws `notFound` when `name` does not hold `role` (an expired assignment counts).
    public func revoke(_ name: String, role: String, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let removed = try await connection.query(
                "DELETE FROM assignments WHERE user_name = \(name) AND role = \(role) RETURNING role", logger: logger)
            guard try await Self.count(removed) == 1 else {
                throw StoreError(.notFound, "'\(name)' does not hold the role '\(role)'.")
            }
            try await Self.bumpGeneration(connection, logger: logger)
        }
    }

    /// The counter that grants, revokes and user removals change.
    public func assignmentGeneration() async throws -> Int64 {
        try await read { client in
            var generation: Int64 = 0
            for try await value in try await client.query(
                "SELECT value FROM meta WHERE key = 'assignment_generation'", logger: logger
            ).decode(Int64.self) {
                generation = value
            }
            return generation
        }
    }

    static func bumpGeneration(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "UPDATE meta SET value = value + 1 WHERE key = 'assignment_generation'", logger: logger)
    }

    // MARK: Sessions

    /// Inserts `session` and appends `audit` in one transaction, only for a user who exists and is
    /// enabled then (a ticket outlives neither the account's removal nor its disabling): else
    /// `notFound`.
    public func openSession(_ session: SessionRecord, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let opened = try await connection.query(
                """
                INSERT INTO sessions (id, user_name, zone, terminal, factors, service, tty, remote_host, opened_at,
                    expires_at)
                SELECT \(session.id), \(session.user), \(session.zone), \(session.terminal),
                    \(session.factors.map(\.rawValue).sorted().joined(separator: ",")), \(session.service),
                    \(session.tty), \(session.remoteHost), \(AuditEntry.milliseconds(session.openedAt)),
                    \(AuditEntry.milliseconds(session.expiresAt))
                WHERE EXISTS (SELECT 1 FROM users WHERE name = \(session.user) AND NOT disabled)
                RETURNING id
                """, logger: logger)
            guard try await Self.count(opened) == 1 else {
                throw StoreError(.notFound, "There is no enabled user '\(session.user)'; authenticate again.")
            }
        }
    }

    typealias SessionRow = (
        String, String, String, String, String, String, String?, String?, Int64, Int64, Int64?, Int64?
    )

    /// The session `id`, open, closed or run out; nil when there is none. Factors this version
    /// does not know are left out.
    public func session(_ id: String) async throws -> SessionRecord? {
        try await read { client in
            var found: SessionRecord?
            for try await row in try await client.query(
                """
                SELECT id, user_name, zone, terminal, factors, service, tty, remote_host, opened_at, expires_at,
                    closed_at, last_active_at
                FROM sessions WHERE id = \(id)
                """, logger: logger
            ).decode(SessionRow.self) {
                found = SessionRecord(
                    id: row.0, user: row.1, zone: row.2, terminal: row.3,
                    factors: Set(row.4.split(separator: ",").compactMap { Factor(rawValue: String($0)) }),
                    service: row.5, tty: row.6, remoteHost: row.7, openedAt: date(row.8), expiresAt: date(row.9),
                    closedAt: row.10.map(date), lastActiveAt: row.11.map(date))
            }
            return found
        }
    }

    /// Saves when open sessions were last used (at shutdown). Bookkeeping: no audit entry.
    public func saveSessionActivity(_ activity: [String: Date]) async throws {
        guard !activity.isEmpty else { return }
        let logger = self.logger
        try await write(audit: nil) { connection in
            for (id, time) in activity {
                try await connection.query(
                    """
                    UPDATE sessions SET last_active_at = \(AuditEntry.milliseconds(time))
                    WHERE id = \(id) AND closed_at IS NULL
                    """, logger: logger)
            }
        }
    }

    /// Closes the session at `time` and appends `audit` in one transaction; throws `notFound` when
    /// there is no such open session. A session that ran out can still be closed.
    public func closeSession(_ id: String, at time: Date, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let closed = try await connection.query(
                """
                UPDATE sessions SET closed_at = \(AuditEntry.milliseconds(time))
                WHERE id = \(id) AND closed_at IS NULL RETURNING id
                """, logger: logger)
            guard try await Self.count(closed) == 1 else {
                throw StoreError(.notFound, "There is no open session '\(id)'.")
            }
        }
    }
}
