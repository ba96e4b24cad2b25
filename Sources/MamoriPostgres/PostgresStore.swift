import Foundation
public import Logging
public import MamoriCore
import MamoriStore
public import PostgresNIO

/// Mamori's state on PostgreSQL, for the hub that a town's terminals share (docs/town.md, to
/// come). Built step by step towards a full ``MamoriStorage``: so far the audit chain (appends,
/// signed checkpoints, reading in pages) and the users.
///
/// Every mutation takes the audit entry that records it and appends it to the hash chain in the
/// same transaction, as the embedded store does. Appends are serialised by one advisory lock taken
/// first in every writing transaction, so that two hubs on one database still write one chain
/// without gaps: each entry's number is the newest given plus one, kept in `meta` and taken under
/// the lock (a PostgreSQL sequence would leave gaps on rollback, and a gap means deleted entries
/// to the verifier).
/// Times are milliseconds since 1970, as in the embedded store. Errors are ``StoreError``s; what
/// the server said goes to the log, never into the error.
public final class PostgresStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Signs a checkpoint of the chain head every `checkpointInterval` entries (nil: never).
    let signer: AuditSigner?
    let checkpointInterval: Int64

    /// The advisory lock every writing transaction takes first ("audit" in ASCII).
    static let chainLock: Int64 = 0x61_7564_6974

    /// A store on `client`, which the caller runs (`client.run()`) for as long as the store is used.
    /// Call ``PostgresSchema/migrate(_:logger:)`` first.
    ///
    /// - Parameter signer: the audit key; with it, every `checkpointInterval`-th entry gets a signed
    ///   checkpoint in the same transaction.
    public init(client: PostgresClient, signer: AuditSigner? = nil, checkpointInterval: Int = 100, logger: Logger) {
        self.client = client
        self.signer = signer
        self.checkpointInterval = Int64(max(1, checkpointInterval))
        self.logger = logger
    }

    // MARK: Transactions

    /// Runs `body` in a transaction that holds the chain lock, then appends `audit` in it: the
    /// change and its record commit together or not at all.
    func write<T: Sendable>(
        audit: AuditEntry?, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let logger = self.logger
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.chainLock))", logger: logger)
                let result = try await body(connection)
                if let audit { try await self.append(audit, connection) }
                return result
            }
        } catch let error as PostgresTransactionError {
            if let refusal = error.closureError as? StoreError { throw refusal }
            throw failure(error)
        } catch {
            throw failure(error)
        }
    }

    /// Runs a read; any failure becomes a ``StoreError`` with the server's words in the log only.
    func read<T: Sendable>(_ body: (PostgresClient) async throws -> T) async throws -> T {
        do {
            return try await body(client)
        } catch let error as StoreError {
            throw error
        } catch {
            throw failure(error)
        }
    }

    private func failure(_ error: any Error) -> StoreError {
        logger.error("a PostgreSQL request failed", metadata: ["error": "\(String(reflecting: error))"])
        return StoreError(.storage, "The database could not complete the request; nothing was changed.")
    }

    // MARK: The chain

    /// Appends `entry` after the newest one; the caller holds the chain lock. Its number is one
    /// past the newest ever given (kept in `meta`), its link the newest entry's hash or, with none
    /// left after pruning everything, the hash the anchoring checkpoint signed.
    func append(_ entry: AuditEntry, _ connection: PostgresConnection) async throws {
        var sequence: Int64 = 0
        for try await value in try await connection.query(
            "UPDATE meta SET value = value + 1 WHERE key = 'audit_sequence' RETURNING value", logger: logger
        ).decode(Int64.self) {
            sequence = value
        }
        guard sequence > 0 else { throw StoreError(.storage, "The database has no audit sequence; migrate it.") }
        var previous: [UInt8]?
        for try await hash in try await connection.query(
            "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1", logger: logger
        ).decode(ByteBuffer.self) {
            previous = Array(hash.readableBytesView)
        }
        if previous == nil { previous = try await newestCheckpoint(connection)?.headHash }
        let link = previous ?? AuditEntry.genesis
        let hash = AuditEntry.chainHash(previous: link, canonicalJSON: entry.canonicalJSON)
        try await connection.query(
            """
            INSERT INTO audit (seq, time, actor_uid, actor, event, target, outcome, detail, terminal, zone,
                policy_revision, prev_hash, hash)
            VALUES (\(sequence), \(AuditEntry.milliseconds(entry.time)), \(entry.actorUID.map(Int64.init)),
                \(entry.actor), \(entry.event), \(entry.target), \(entry.outcome), \(entry.canonicalDetail),
                \(entry.terminal), \(entry.zone), \(entry.policyRevision), \(ByteBuffer(bytes: link)),
                \(ByteBuffer(bytes: hash)))
            """, logger: logger)
        if let signer, sequence % checkpointInterval == 0 {
            try await sign(signer, sequence: sequence, headHash: hash, time: entry.time, connection)
        }
    }

    /// Signs and stores a checkpoint naming the newest one stored.
    func sign(
        _ signer: AuditSigner, sequence: Int64, headHash: [UInt8], time: Date, _ connection: PostgresConnection
    ) async throws {
        let newest = try await newestCheckpoint(connection)
        let checkpoint = signer.sign(
            sequence: sequence, headHash: headHash, time: time, previous: newest?.digest ?? AuditCheckpoint.genesis)
        try await connection.query(
            """
            INSERT INTO checkpoints (audit_seq, head_hash, time, signature, previous)
            VALUES (\(checkpoint.sequence), \(ByteBuffer(bytes: checkpoint.headHash)),
                \(AuditEntry.milliseconds(checkpoint.time)), \(ByteBuffer(bytes: checkpoint.signature)),
                \(checkpoint.previous.map { ByteBuffer(bytes: $0) }))
            """, logger: logger)
    }

    private func newestCheckpoint(_ connection: PostgresConnection) async throws -> AuditCheckpoint? {
        var newest: AuditCheckpoint?
        for try await row in try await connection.query(
            "SELECT audit_seq, head_hash, time, signature, previous FROM checkpoints ORDER BY id DESC LIMIT 1",
            logger: logger
        ).decode((Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer?).self) {
            newest = Self.checkpoint(row)
        }
        return newest
    }

    static func checkpoint(_ row: (Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer?)) -> AuditCheckpoint {
        AuditCheckpoint(
            sequence: row.0, headHash: Array(row.1.readableBytesView), time: date(row.2),
            previous: row.4.map { Array($0.readableBytesView) }, signature: Array(row.3.readableBytesView))
    }

    /// Appends one entry on its own (an act with nothing else to change, such as a denial).
    public func appendAudit(_ entry: AuditEntry) async throws {
        try await write(audit: entry) { _ in }
    }
}

extension PostgresStore: AuditPageReader {
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

    /// Up to `limit` entries after `after`, in order, exactly as stored (the detail as hashed).
    public func auditPage(after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry] {
        try await read { client in
            var entries: [AuditChain.StoredEntry] = []
            let rows = try await client.query(
                """
                SELECT seq, time, actor_uid, actor, event, target, outcome, detail, terminal, zone,
                    policy_revision, prev_hash, hash
                FROM audit WHERE seq > \(after) ORDER BY seq LIMIT \(Int64(limit))
                """, logger: logger)
            for try await row in rows.decode(
                (
                    Int64, Int64, Int64?, String, String, String, String, String, String, String, String, ByteBuffer,
                    ByteBuffer
                ).self)
            {
                entries.append(
                    AuditChain.StoredEntry(
                        sequence: row.0, timeMillis: row.1, actorUID: row.2.map { Int($0) }, actor: row.3,
                        event: row.4, target: row.5, outcome: row.6, detailJSON: row.7, terminal: row.8, zone: row.9,
                        policyRevision: row.10, previousHash: Array(row.11.readableBytesView),
                        hash: Array(row.12.readableBytesView)))
            }
            return entries
        }
    }
}

/// A time stored as milliseconds since 1970.
func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
