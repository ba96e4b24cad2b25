public import Foundation
import Logging
public import MamoriCore
public import MamoriStore
import PostgresNIO

/// The audit trail, and what `status` reports: with the rest, a full ``MamoriStorage``.
extension PostgresStore: AuditTrail, MamoriStorage {
    typealias EntryRow = (
        Int64, Int64, Int64?, String, String, String, String, String, String, String, String, ByteBuffer, ByteBuffer
    )

    /// The audit columns in the order ``storedEntry(_:)`` reads them.
    static let auditColumns =
        "seq, time, actor_uid, actor, event, target, outcome, detail, terminal, zone, policy_revision, prev_hash, hash"

    static func storedEntry(_ row: EntryRow) -> AuditChain.StoredEntry {
        AuditChain.StoredEntry(
            sequence: row.0, timeMillis: row.1, actorUID: row.2.map { Int($0) }, actor: row.3, event: row.4,
            target: row.5, outcome: row.6, detailJSON: row.7, terminal: row.8, zone: row.9, policyRevision: row.10,
            previousHash: Array(row.11.readableBytesView), hash: Array(row.12.readableBytesView))
    }

    private func entries(_ query: PostgresQuery) async throws -> [AuditChain.StoredEntry] {
        try await read { client in
            var entries: [AuditChain.StoredEntry] = []
            for try await row in try await client.query(query, logger: logger).decode(EntryRow.self) {
                entries.append(Self.storedEntry(row))
            }
            return entries
        }
    }

    /// Up to `limit` entries after `after`, oldest first, exactly as stored (the detail as hashed).
    public func auditPage(after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry] {
        try await entries(
            "SELECT \(unescaped: Self.auditColumns) FROM audit WHERE seq > \(after) ORDER BY seq LIMIT \(Int64(limit))")
    }

    /// Up to `limit` entries after `after`, oldest first, written at or after `since` and before
    /// `until` when given.
    public func auditEntries(after: Int64, limit: Int, since: Date?, until: Date?) async throws
        -> [AuditChain.StoredEntry]
    {
        let from = since.map(AuditEntry.milliseconds) ?? Int64.min
        let to = until.map(AuditEntry.milliseconds) ?? Int64.max
        return try await entries(
            """
            SELECT \(unescaped: Self.auditColumns) FROM audit
            WHERE seq > \(after) AND time >= \(from) AND time < \(to) ORDER BY seq LIMIT \(Int64(limit))
            """)
    }

    /// The last `count` entries, oldest first.
    public func lastAuditEntries(_ count: Int) async throws -> [AuditChain.StoredEntry] {
        try await entries(
            "SELECT \(unescaped: Self.auditColumns) FROM audit ORDER BY seq DESC LIMIT \(Int64(count))"
        ).reversed()
    }

    /// The newest entry's number (0 when the trail is empty).
    public func auditHead() async throws -> Int64 {
        try await read { client in
            var head: Int64 = 0
            for try await value in try await client.query("SELECT max(seq) FROM audit", logger: logger).decode(
                Int64?.self)
            {
                head = value ?? 0
            }
            return head
        }
    }

    /// The newest entry of `event` with outcome `success`, if any.
    public func latestAuditEntry(event: String) async throws -> AuditChain.StoredEntry? {
        try await entries(
            """
            SELECT \(unescaped: Self.auditColumns) FROM audit
            WHERE event = \(event) AND outcome = 'success' ORDER BY seq DESC LIMIT 1
            """
        ).first
    }

    /// Every checkpoint, in the order they were made.
    public func checkpoints() async throws -> [AuditCheckpoint] {
        try await read { client in
            var checkpoints: [AuditCheckpoint] = []
            for try await row in try await client.query(
                "SELECT audit_seq, head_hash, time, signature, previous FROM checkpoints ORDER BY id", logger: logger
            ).decode((Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer?).self) {
                checkpoints.append(Self.checkpoint(row))
            }
            return checkpoints
        }
    }

    /// Signs the head of the chain (at shutdown) unless it is signed already; nothing without a key.
    public func writeCheckpoint(at time: Date) async throws {
        guard let signer else { return }
        let logger = self.logger
        try await write(audit: nil) { connection in
            var head: (Int64, ByteBuffer)?
            for try await row in try await connection.query(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", logger: logger
            ).decode((Int64, ByteBuffer).self) {
                head = row
            }
            guard let head else { return }
            var signed: Int64 = 0
            for try await value in try await connection.query(
                "SELECT max(audit_seq) FROM checkpoints", logger: logger
            ).decode(Int64?.self) {
                signed = value ?? 0
            }
            guard head.0 > signed else { return }
            try await self.sign(
                signer, sequence: head.0, headHash: Array(head.1.readableBytesView), time: time, connection)
        }
    }

    /// Removes the oldest entries written before `cutoff` as a prefix of the chain
    /// (``AuditPruning/anchor(first:last:firstKept:)``), anchoring what remains with a checkpoint
    /// signed at the last removed, and appends the entry `audit` makes of the result, in one
    /// transaction. Needs the signing key.
    public func pruneAudit(before cutoff: Date, audit: @escaping @Sendable (AuditPruneResult) -> AuditEntry)
        async throws -> AuditPruneResult
    {
        guard let signer else { throw StoreError(.storage, "Pruning needs the audit signing key.") }
        let logger = self.logger
        return try await write(audit: nil) { connection in
            var first: Int64?
            var last: Int64 = 0
            var firstKept: Int64?
            for try await (low, high, kept) in try await connection.query(
                """
                SELECT min(seq), max(seq),
                    (SELECT min(seq) FROM audit WHERE time >= \(AuditEntry.milliseconds(cutoff)))
                FROM audit
                """, logger: logger
            ).decode((Int64?, Int64?, Int64?).self) {
                (first, last, firstKept) = (low, high ?? 0, kept)
            }
            guard let through = AuditPruning.anchor(first: first, last: last, firstKept: firstKept) else {
                let result = AuditPruneResult(prunedThrough: (first ?? 1) - 1, removed: 0)
                try await self.append(audit(result), connection)
                return result
            }
            var anchor: (ByteBuffer, Int64)?
            for try await row in try await connection.query(
                "SELECT hash, time FROM audit WHERE seq = \(through)", logger: logger
            ).decode((ByteBuffer, Int64).self) {
                anchor = row
            }
            guard let anchor else {
                throw StoreError(.storage, "The audit trail has no entry \(through) to anchor the pruning at.")
            }
            try await connection.query("DELETE FROM checkpoints WHERE audit_seq = \(through)", logger: logger)
            try await self.sign(
                signer, sequence: through, headHash: Array(anchor.0.readableBytesView), time: date(anchor.1),
                connection)
            let removed = try await Self.count(
                try await connection.query("DELETE FROM audit WHERE seq <= \(through) RETURNING seq", logger: logger))
            try await connection.query("DELETE FROM checkpoints WHERE audit_seq < \(through)", logger: logger)
            let result = AuditPruneResult(prunedThrough: through, removed: removed)
            try await self.append(audit(result), connection)
            return result
        }
    }

    /// Row counts for `status`.
    public func counts(at time: Date) async throws -> [String: Int] {
        let now = AuditEntry.milliseconds(time)
        return try await read { client in
            var counts: [String: Int] = [:]
            for try await row in try await client.query(
                """
                SELECT (SELECT count(*) FROM users),
                    (SELECT count(*) FROM sessions WHERE closed_at IS NULL AND expires_at > \(now)),
                    (SELECT count(*) FROM failures WHERE locked_until > \(now)),
                    (SELECT count(*) FROM audit)
                """, logger: logger
            ).decode((Int64, Int64, Int64, Int64).self) {
                counts = [
                    "users": Int(row.0), "open_sessions": Int(row.1), "locked_users": Int(row.2),
                    "audit_entries": Int(row.3),
                ]
            }
            return counts
        }
    }

    /// How commits reach the disk, as the server reports it: `synchronous_commit` and `fsync`.
    public func durability() async throws -> [String: String] {
        try await read { client in
            var settings: [String: String] = [:]
            for try await (name, value) in try await client.query(
                "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync')", logger: logger
            ).decode((String, String).self) {
                settings[name] = value
            }
            return settings
        }
    }

    /// Nothing to finish: every write committed in its own transaction. The client belongs to the
    /// caller, who stops it.
    public func close() async throws {}
}
