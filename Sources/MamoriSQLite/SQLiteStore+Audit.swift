public import Foundation
internal import GRDB
public import MamoriCore
public import MamoriStore

/// The audit trail and what `status` reports.
extension SQLiteStore: AuditTrail, MamoriStorage {
    // MARK: Counts and the audit trail

    /// How commits reach the disk, as SQLite reports them on a connection of the store: for
    /// `status`, so that an operator sees `synchronous` is `full`.
    public func durability() async throws -> [String: String] {
        try await read { db in
            let level = try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
            let names = [0: "off", 1: "normal", 2: "full", 3: "extra"]
            return [
                "synchronous": names[level] ?? "\(level)",
                "journal_mode": try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "unknown",
            ]
        }
    }

    /// Row counts for `status`.
    public func counts(at time: Date) async throws -> [String: Int] {
        try await read { db in
            [
                "users": try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM users") ?? 0,
                "open_sessions": try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM sessions WHERE closed_at IS NULL AND expires_at > ?",
                    arguments: [millis(time)]
                ) ?? 0,
                "locked_users": try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM failures WHERE locked_until > ?", arguments: [millis(time)]
                ) ?? 0,
                "audit_entries": try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit") ?? 0,
            ]
        }
    }

    /// Up to `limit` entries after sequence number `after`, oldest first, written at or after
    /// `since` and before `until` when given (for `audit tail` and `audit export`).
    public func auditEntries(after: Int64, limit: Int, since: Date?, until: Date?) async throws -> [AuditChain
        .StoredEntry]
    {
        try await read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT \(Self.auditColumns) FROM audit WHERE seq > ? AND time >= ? AND time < ? ORDER BY seq LIMIT ?",
                arguments: [after, since.map(millis) ?? Int64.min, until.map(millis) ?? Int64.max, limit]
            ).map(Self.storedEntry)
        }
    }

    /// The sequence number of the newest entry (0 when the trail is empty).
    public func auditHead() async throws -> Int64 {
        try await read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit") ?? 0 }
    }

    /// The last `count` entries, oldest first.
    public func lastAuditEntries(_ count: Int) async throws -> [AuditChain.StoredEntry] {
        try await read { db in
            try Row.fetchAll(
                db, sql: "SELECT \(Self.auditColumns) FROM audit ORDER BY seq DESC LIMIT ?", arguments: [count]
            )
            .map(Self.storedEntry).reversed()
        }
    }

    /// Up to `limit` entries after sequence number `after`, oldest first, in one read:
    /// ``auditEntries(after:limit:since:until:)`` with no time bounds.
    public func auditPage(after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry] {
        try await auditEntries(after: after, limit: limit, since: nil, until: nil)
    }

    /// The newest entry of `event` with outcome `success`, if any.
    public func latestAuditEntry(event: String) async throws -> AuditChain.StoredEntry? {
        try await read { db in
            try Row.fetchOne(
                db,
                sql:
                    "SELECT \(Self.auditColumns) FROM audit WHERE event = ? AND outcome = 'success' ORDER BY seq DESC LIMIT 1",
                arguments: [event]
            ).map(Self.storedEntry)
        }
    }

    /// Removes the oldest entries, all written before `cutoff`, in one transaction: signs a
    /// checkpoint at the last entry removed (the anchor the first remaining entry links to),
    /// deletes the entries and the checkpoints older than the anchor, and appends the entry
    /// `audit` makes of the result. Entries are removed as a prefix of the chain, stopping at the
    /// first written at or after `cutoff`, so that an entry with an earlier clock reading later in
    /// the chain is kept, never a gap made. Needs the signing key.
    public func pruneAudit(before cutoff: Date, audit: @escaping @Sendable (AuditPruneResult) -> AuditEntry)
        async throws -> AuditPruneResult
    {
        guard let signer else { throw StoreError(.storage, "Pruning needs the audit signing key.") }
        return try await write(audit: nil) { db in
            let keptFrom = try Int64.fetchOne(
                db, sql: "SELECT MIN(seq) FROM audit WHERE time >= ?", arguments: [millis(cutoff)])
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit") ?? 0
            let first = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM audit")
            guard let through = AuditPruning.anchor(first: first, last: last, firstKept: keptFrom) else {
                let result = AuditPruneResult(prunedThrough: (first ?? 1) - 1, removed: 0)
                try self.append(audit(result), db)
                return result
            }
            guard
                let row = try Row.fetchOne(db, sql: "SELECT hash, time FROM audit WHERE seq = ?", arguments: [through])
            else {
                throw StoreError(.storage, "The audit trail has no entry \(through) to anchor the pruning at.")
            }
            try db.execute(sql: "DELETE FROM checkpoints WHERE audit_seq = ?", arguments: [through])
            try self.sign(
                signer, sequence: through, headHash: [UInt8](row["hash"] as Data), time: date(row["time"]), db)
            try db.execute(sql: "DELETE FROM audit WHERE seq <= ?", arguments: [through])
            let removed = db.changesCount
            try db.execute(sql: "DELETE FROM checkpoints WHERE audit_seq < ?", arguments: [through])
            let result = AuditPruneResult(prunedThrough: through, removed: removed)
            try self.append(audit(result), db)
            return result
        }
    }

    /// The audit columns in table order, as ``storedEntry(_:)`` reads them.
    static let auditColumns =
        "seq, time, actor_uid, actor, event, target, outcome, detail, terminal, zone, policy_revision, prev_hash, hash"

    private static func storedEntry(_ row: Row) -> AuditChain.StoredEntry {
        // By column index (the order of CREATE TABLE audit): name lookups cost more than hashing
        // when a long trail is verified.
        AuditChain.StoredEntry(
            sequence: row[0], timeMillis: row[1], actorUID: row[2], actor: row[3], event: row[4], target: row[5],
            outcome: row[6], detailJSON: row[7], terminal: row[8], zone: row[9], policyRevision: row[10],
            previousHash: [UInt8](row[11] as Data), hash: [UInt8](row[12] as Data)
        )
    }
}
