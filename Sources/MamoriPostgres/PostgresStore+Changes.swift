public import Foundation
import Logging
import MamoriCore
import MamoriStore
import PostgresNIO

/// One change a terminal must learn of: a user, a credential, an assignment, a lock or the policy.
public struct StoreChange: Sendable, Hashable {
    /// Its place in the feed: numbers commit in order, without gaps.
    public let number: Int64
    /// When it was made.
    public let time: Date
    /// What changed: the audit event that recorded it (`role.revoke`, `user.disable`, …).
    public let kind: String
    /// Whom or what it concerns: the audit entry's target (a user, the policy).
    public let subject: String
}

/// The change feed: what the hub pushes to terminals so that a revocation on one is visible on
/// all. Each change is written in the transaction that makes it, numbered under the chain lock (so
/// numbers commit in the order they are given, and a reader that has seen N has seen every number
/// below), and rings `NOTIFY` on ``changeChannel`` with its number, delivered at commit.
extension PostgresStore {
    /// The channel a hub `LISTEN`s on for new changes; the payload is the change's number.
    public static let changeChannel = "mamori_changes"

    /// The audit events that change what terminals hold: users and their credentials, role
    /// assignments, locks, the policy; and a terminal's removal, on which every hub closes its connections.
    static let changeEvents: Set<String> = Set(
        [
            AuditEvent.userAdd, .userDisable, .userEnable, .userRemove, .userPasswd, .userUnlock, .passwordChange,
            .totpEnrollConfirm, .totpReset, .recoveryIssue, .roleGrant, .roleRevoke, .authLockout, .policyReload,
            .terminalRemove, .offlineConflict,
        ].map(\.rawValue))

    /// Records `entry` as a change when it is one; the caller holds the chain lock.
    func recordChange(_ entry: AuditEntry, _ connection: PostgresConnection) async throws {
        // A lock and a double use offline are failures that change what terminals must know.
        guard
            entry.outcome == AuditOutcome.success.rawValue || entry.event == AuditEvent.authLockout.rawValue
                || entry.event == AuditEvent.offlineConflict.rawValue,
            Self.changeEvents.contains(entry.event)
        else { return }
        var number: Int64 = 0
        for try await value in try await connection.query(
            "UPDATE meta SET value = value + 1 WHERE key = 'change_sequence' RETURNING value", logger: logger
        ).decode(Int64.self) {
            number = value
        }
        guard number > 0 else { throw StoreError(.storage, "The database has no change sequence; migrate it.") }
        try await connection.query(
            """
            INSERT INTO changes (number, time, kind, subject)
            VALUES (\(number), \(AuditEntry.milliseconds(entry.time)), \(entry.event), \(entry.target))
            """, logger: logger)
        // Its one row is read: a result left unread would hold the connection's next statement.
        for try await _ in try await connection.query(
            "SELECT pg_notify(\(Self.changeChannel), \(String(number)))", logger: logger)
        {}
    }

    /// Up to `limit` changes after `after`, in order: what a terminal asks for with `since=N`.
    public func changes(after: Int64, limit: Int) async throws -> [StoreChange] {
        try await read { client in
            var changes: [StoreChange] = []
            for try await row in try await client.query(
                """
                SELECT number, time, kind, subject FROM changes WHERE number > \(after)
                ORDER BY number LIMIT \(Int64(max(0, limit)))
                """, logger: logger
            ).decode((Int64, Int64, String, String).self) {
                changes.append(StoreChange(number: row.0, time: date(row.1), kind: row.2, subject: row.3))
            }
            return changes
        }
    }
}

extension PostgresStore {
    /// The newest change number given (0 before any).
    public func latestChangeNumber() async throws -> Int64 {
        try await read { client in
            var newest: Int64 = 0
            for try await value in try await client.query(
                "SELECT value FROM meta WHERE key = 'change_sequence'", logger: logger
            ).decode(Int64.self) {
                newest = value
            }
            return newest
        }
    }

    /// Calls `deliver` with each batch of changes committed after `after`, in order, until the
    /// task is cancelled. One connection LISTENs on ``changeChannel``; every notification, and
    /// every reconnection after a lost connection (a second later), reads what is new, so that a
    /// missed notification delays a change until the next one and loses nothing.
    public func watchChanges(after: Int64, deliver: @escaping @Sendable ([StoreChange]) async -> Void) async {
        var last = after
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.changeChannel) { notifications in
                        // Whatever committed before the LISTEN took hold.
                        last = try await self.deliverChanges(after: last, deliver)
                        for try await _ in notifications {
                            last = try await self.deliverChanges(after: last, deliver)
                        }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                logger.warning(
                    "the change feed's LISTEN connection failed; listening again",
                    metadata: ["error": "\(Self.safeDescription(error))"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func deliverChanges(after: Int64, _ deliver: @Sendable ([StoreChange]) async -> Void) async throws
        -> Int64
    {
        var last = after
        while true {
            let batch = try await changes(after: last, limit: 500)
            guard let newest = batch.last else { return last }
            await deliver(batch)
            last = newest.number
        }
    }
}

/// The feed's retention: changes older than the hub keeps them are deleted, and a terminal that
/// asks for changes after a number below what was deleted is told to read everything anew.
extension PostgresStore {
    /// Deletes the changes made before `cutoff`; returns how many. The newest number deleted is
    /// kept (`meta.changes_pruned_through`), so that ``changesPrunedThrough()`` tells a terminal
    /// that it is behind. Numbering goes on from the newest given, whatever was deleted.
    @discardableResult
    public func pruneChanges(before cutoff: Date) async throws -> Int {
        let logger = self.logger
        return try await write(audit: nil) { connection in
            var through: Int64?
            var removed = 0
            for try await number in try await connection.query(
                "DELETE FROM changes WHERE time < \(AuditEntry.milliseconds(cutoff)) RETURNING number", logger: logger
            ).decode(Int64.self) {
                through = max(through ?? 0, number)
                removed += 1
            }
            if let through {
                try await connection.query(
                    """
                    INSERT INTO meta (key, value) VALUES ('changes_pruned_through', \(through))
                    ON CONFLICT (key) DO UPDATE SET value = GREATEST(meta.value, EXCLUDED.value)
                    """, logger: logger)
            }
            return removed
        }
    }

    /// The newest change number deleted by ``pruneChanges(before:)`` (0 when none was): a terminal
    /// whose newest is below it has missed changes and must read everything anew.
    public func changesPrunedThrough() async throws -> Int64 {
        try await read { client in
            var through: Int64 = 0
            for try await value in try await client.query(
                "SELECT value FROM meta WHERE key = 'changes_pruned_through'", logger: logger
            ).decode(Int64.self) {
                through = value
            }
            return through
        }
    }
}
