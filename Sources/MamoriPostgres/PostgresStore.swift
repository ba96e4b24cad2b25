import Foundation
public import Logging
public import MamoriCore
import MamoriStore
public import PostgresNIO
import Synchronization

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
    /// Called with each new checkpoint once its transaction has committed (the daemon's witness).
    let onCheckpoint: (@Sendable (AuditCheckpoint) -> Void)?

    /// The checkpoints the current writing transaction made, handed to ``onCheckpoint`` after commit.
    final class MadeCheckpoints: Sendable {
        let made = Mutex<[AuditCheckpoint]>([])
    }
    @TaskLocal static var madeCheckpoints: MadeCheckpoints?

    /// The longest a writing transaction waits for the chain lock (or any row lock) before it
    /// fails with `storage`, rather than queueing behind a stalled hub for ever, as PostgreSQL's
    /// `lock_timeout` setting ("10000ms").
    let lockTimeout: String

    /// The advisory lock every writing transaction takes first ("audit" in ASCII).
    static let chainLock: Int64 = 0x61_7564_6974

    /// A store on `client`, which the caller runs (`client.run()`) for as long as the store is used.
    /// Call ``PostgresSchema/migrate(_:logger:)`` first.
    ///
    /// - Parameters:
    ///   - signer: the audit key; with it, every `checkpointInterval`-th entry gets a signed
    ///     checkpoint in the same transaction.
    ///   - onCheckpoint: called with each new checkpoint once its transaction has committed: where
    ///     the daemon keeps its witness.
    ///   - lockTimeout: the longest a write waits for the chain lock before failing with `storage`.
    public init(
        client: PostgresClient, signer: AuditSigner? = nil, checkpointInterval: Int = 100,
        onCheckpoint: (@Sendable (AuditCheckpoint) -> Void)? = nil, lockTimeout: Duration = .seconds(10),
        logger: Logger
    ) {
        let (seconds, attoseconds) = lockTimeout.components
        self.lockTimeout = "\(max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000))ms"
        self.client = client
        self.signer = signer
        self.checkpointInterval = Int64(max(1, checkpointInterval))
        self.onCheckpoint = onCheckpoint
        self.logger = logger
    }

    // MARK: Transactions

    /// Runs `body` in a transaction that holds the chain lock, then appends `audit` in it: the
    /// change and its record commit together or not at all. With `lockingChain` false the body
    /// runs without the chain lock, and takes it (``lockChain(_:)``) only before it appends.
    func write<T: Sendable>(
        audit: AuditEntry?, lockingChain: Bool = true,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let logger = self.logger
        let made = MadeCheckpoints()
        do {
            let result = try await Self.$madeCheckpoints.withValue(made) {
                try await client.withTransaction(logger: logger) { connection in
                    // Read committed (whatever the server's default), so that what the body reads
                    // is read after the lock is held; and a bounded wait for the lock, so that a
                    // hub stalled inside a transaction cannot hold every login on every hub.
                    try await connection.query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", logger: logger)
                    if lockingChain {
                        try await self.lockChain(connection)
                    } else {
                        for try await _ in try await connection.query(
                            "SELECT set_config('lock_timeout', \(lockTimeout), true)", logger: logger)
                        {}
                    }
                    let result = try await body(connection)
                    if let audit {
                        if !lockingChain { try await self.lockChain(connection) }
                        try await self.append(audit, connection)
                    }
                    return result
                }
            }
            if let onCheckpoint {
                for checkpoint in made.made.withLock({ $0 }) { onCheckpoint(checkpoint) }
            }
            return result
        } catch let error as PostgresTransactionError {
            if let refusal = error.closureError as? StoreError { throw refusal }
            throw failure(error)
        } catch {
            throw failure(error)
        }
    }

    /// Takes the chain lock for the rest of the transaction, waiting at most `lockTimeout`.
    func lockChain(_ connection: PostgresConnection) async throws {
        // One round trip: the subquery sets the timeout before the lock is asked for. Its row is
        // read, so that a lock timeout is reported here as itself (55P03), not later as "current
        // transaction is aborted" (25P02).
        for try await _ in try await connection.query(
            """
            SELECT pg_advisory_xact_lock(\(Self.chainLock))
            FROM (SELECT set_config('lock_timeout', \(lockTimeout), true)) AS timeout
            """, logger: logger)
        {}
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

    /// Runs reads on one connection of the pool.
    func connection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await read { client in try await client.withConnection { try await body($0) } }
    }

    /// Runs reads in one repeatable-read, read-only transaction: they all see one snapshot.
    func snapshot<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await read { client in
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
                return try await body(connection)
            }
        }
    }

    private func failure(_ error: any Error) -> StoreError {
        logger.error("a PostgreSQL request failed", metadata: ["error": "\(Self.safeDescription(error))"])
        return StoreError(.storage, "The database could not complete the request; nothing was changed.")
    }

    /// What went wrong, fit for a log line. Never `String(reflecting:)` of postgres-nio's errors:
    /// that holds the query with its bound values (password hashes, sealed seeds, code digests),
    /// and a decoding error the cell's raw data. The server's SQLSTATE and message name no value.
    static func safeDescription(_ error: any Error) -> String {
        switch error {
        case let error as PSQLError:
            let state = error.serverInfo?[.sqlState] ?? "-"
            let message = error.serverInfo?[.message] ?? "-"
            return "PSQLError \(error.code), SQLSTATE \(state): \(message)"
        case let error as PostgresDecodingError:
            return "cannot decode column \(error.columnName) as \(error.targetType)"
        case let error as PostgresTransactionError:
            let parts = [
                ("begin", error.beginError), ("body", error.closureError), ("commit", error.commitError),
                ("rollback", error.rollbackError),
            ]
            return parts.compactMap { name, inner in inner.map { "\(name): \(safeDescription($0))" } }
                .joined(separator: "; ")
        default:
            return "\(type(of: error))"
        }
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
        try await recordChange(entry, connection)
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
        Self.madeCheckpoints?.made.withLock { $0.append(checkpoint) }
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

/// A time stored as milliseconds since 1970.
func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
