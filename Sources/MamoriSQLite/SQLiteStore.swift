public import Foundation
internal import GRDB
public import MamoriCore
import MamoriStore

/// Mamori's state in one SQLite file (WAL mode), through GRDB: the embedded store, one
/// conformance to ``MamoriStorage``.
///
/// This value owns every write transaction. Every mutation takes the audit entry that records it
/// and appends that entry to the hash chain in the same transaction: the change and its record
/// land together or not at all. Timestamps are stored as Unix milliseconds.
public final class SQLiteStore: Sendable {
    let pool: DatabasePool
    /// Signs a checkpoint of the chain head every `checkpointInterval` entries (nil: never).
    let signer: AuditSigner?
    let checkpointInterval: Int64
    /// Called after the commit of every transaction that made a checkpoint (the witness).
    let onCheckpoint: (@Sendable (AuditCheckpoint) -> Void)?
    /// Opened with ``init(readOnlyPath:)``: nothing to fold in at close.
    let readOnly: Bool

    /// Opens (creating if needed) the database at `path` and runs the migrations.
    ///
    /// - Parameter signer: the daemon's audit key; with it, every `checkpointInterval`-th entry
    ///   gets a signed checkpoint in the same transaction.
    ///   - onCheckpoint: called with each new checkpoint once its transaction has committed, on
    ///     the store's writer (keep it short): where the daemon keeps its witness.
    public init(
        path: String, signer: AuditSigner? = nil, checkpointInterval: Int = 100,
        onCheckpoint: (@Sendable (AuditCheckpoint) -> Void)? = nil
    ) throws {
        self.signer = signer
        self.onCheckpoint = onCheckpoint
        readOnly = false
        self.checkpointInterval = Int64(max(1, checkpointInterval))
        var configuration = Configuration()
        // Statement arguments may hold hashes; keep them out of GRDB's error descriptions.
        configuration.publicStatementArguments = false
        configuration.busyMode = .timeout(5)
        // FULL: a commit is on disk when it returns, so an acknowledged consumed code, TOTP step,
        // failure count or audit entry survives a power loss (WAL's usual NORMAL may lose the
        // last commits).
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
            // Attempts in flight belong to the process that reserved them: none survive a restart.
            try pool.write { db in
                try db.execute(sql: "UPDATE failures SET in_flight = 0 WHERE in_flight != 0")
                try db.execute(sql: "DELETE FROM failures WHERE count = 0 AND locked_until IS NULL")
            }
        } catch {
            throw StoreError(.storage, "The database at \(path) cannot be opened: \(Self.describe(error)).")
        }
    }

    /// Opens a copy of a database read-only (an auditor's copy): no migration, no write.
    public init(readOnlyPath path: String) throws {
        signer = nil
        onCheckpoint = nil
        readOnly = true
        checkpointInterval = 1
        var configuration = Configuration()
        configuration.readonly = true
        configuration.publicStatementArguments = false
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw StoreError(.storage, "The database at \(path) cannot be opened: \(Self.describe(error)).")
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "SQLite error \(error.resultCode.rawValue)" }
        return "\(error)"
    }

    // MARK: Writing

    /// Runs `body` and appends `audit` in one write transaction.
    func write<T: Sendable>(audit: AuditEntry?, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write { [self] db in
                let result = try body(db)
                if let audit { try self.append(audit, db) }
                return result
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storage, "The database refused the change: \(Self.describe(error)).")
        }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw StoreError(.storage, "The database could not be read: \(Self.describe(error)).")
        }
    }

    func append(_ entry: AuditEntry, _ db: Database) throws {
        // The newest entry's hash; with none left after pruning everything, the hash the anchoring
        // checkpoint signed (numbering goes on: AUTOINCREMENT never reuses a number).
        let previous = try [UInt8](
            Data.fetchOne(db, sql: "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
                ?? Data.fetchOne(db, sql: "SELECT head_hash FROM checkpoints ORDER BY id DESC LIMIT 1")
                ?? Data(AuditEntry.genesis))
        let canonical = entry.canonicalJSON
        let hash = AuditEntry.chainHash(previous: previous, canonicalJSON: canonical)
        try db.execute(
            sql: """
                INSERT INTO audit (time, actor_uid, actor, event, target, outcome, detail, terminal, zone,
                    policy_revision, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                millis(entry.time), entry.actorUID, entry.actor, entry.event, entry.target, entry.outcome,
                entry.canonicalDetail, entry.terminal, entry.zone, entry.policyRevision,
                Data(previous), Data(hash),
            ]
        )
        if let signer, db.lastInsertedRowID % checkpointInterval == 0 {
            try sign(signer, sequence: db.lastInsertedRowID, headHash: hash, time: entry.time, db)
        }
    }

    /// Signs and stores a checkpoint naming the newest one stored, and hands it to the witness
    /// once the transaction commits.
    func sign(_ signer: AuditSigner, sequence: Int64, headHash: [UInt8], time: Date, _ db: Database) throws {
        let newest = try Row.fetchOne(db, sql: "SELECT * FROM checkpoints ORDER BY id DESC LIMIT 1").map(
            Self.checkpoint)
        let checkpoint = signer.sign(
            sequence: sequence, headHash: headHash, time: time, previous: newest?.digest ?? AuditCheckpoint.genesis)
        try db.execute(
            sql: "INSERT INTO checkpoints (audit_seq, head_hash, time, signature, previous) VALUES (?, ?, ?, ?, ?)",
            arguments: [
                checkpoint.sequence, Data(checkpoint.headHash), millis(checkpoint.time), Data(checkpoint.signature),
                checkpoint.previous.map { Data($0) },
            ]
        )
        if let onCheckpoint { db.afterNextTransaction { _ in onCheckpoint(checkpoint) } }
    }

    static func checkpoint(_ row: Row) -> AuditCheckpoint {
        AuditCheckpoint(
            sequence: row["audit_seq"], headHash: [UInt8](row["head_hash"] as Data), time: date(row["time"]),
            previous: (row["previous"] as Data?).map { [UInt8]($0) }, signature: [UInt8](row["signature"] as Data)
        )
    }

    /// Signs the current head of the chain (at shutdown), unless it is signed already.
    public func writeCheckpoint(at time: Date) async throws {
        guard let signer else { return }
        try await write(audit: nil) { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") else {
                return
            }
            let sequence: Int64 = row["seq"]
            let signed = try Int64.fetchOne(db, sql: "SELECT MAX(audit_seq) FROM checkpoints") ?? 0
            guard sequence > signed else { return }
            try self.sign(signer, sequence: sequence, headHash: [UInt8](row["hash"] as Data), time: time, db)
        }
    }

    /// Closes the database after folding the write-ahead log into the file (a TRUNCATE
    /// checkpoint), so that a copy of the file alone is complete. Call once, at shutdown; the
    /// store is unusable after. A read-only copy is only closed. Throws when the log could not
    /// be folded in; the data is safe in the `-wal` file either way, and SQLite reads it on the
    /// next open.
    public func close() async throws {
        defer { try? pool.close() }
        guard !readOnly else { return }
        do {
            _ = try await pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        } catch {
            throw StoreError(
                .storage, "The write-ahead log could not be folded into the database: \(Self.describe(error)).")
        }
    }

    /// Every checkpoint, oldest first.
    public func checkpoints() async throws -> [AuditCheckpoint] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM checkpoints ORDER BY id").map(Self.checkpoint)
        }
    }

    /// Appends many entries in one transaction, chained and checkpointed as usual: for building
    /// long trails in benchmarks, which one transaction each would take minutes to write.
    public func appendForBenchmark(_ entries: [AuditEntry]) async throws {
        try await write(audit: nil) { db in
            for entry in entries { try self.append(entry, db) }
        }
    }

    /// Appends an entry on its own (a decision, a failed request).
    public func appendAudit(_ entry: AuditEntry) async throws {
        try await write(audit: entry) { _ in () }
    }

    // MARK: Row mapping

    static func user(_ row: Row) -> UserRecord {
        UserRecord(
            name: row["name"], displayName: row["display_name"], kind: UserKind(rawValue: row["kind"]) ?? .staff,
            organisation: row["organisation"], disabled: row["disabled"], createdAt: date(row["created_at"]),
            lastLoginAt: (row["last_login_at"] as Int64?).map(date), mustChangePassword: row["must_change_password"],
            passwordHash: row["password_hash"]
        )
    }

    static func failure(_ row: Row) -> FailureRecord {
        FailureRecord(
            user: row["user"], count: row["count"], firstFailureAt: date(row["first_failure_at"]),
            lockedUntil: (row["locked_until"] as Int64?).map(date)
        )
    }

    static func assignment(_ row: Row) -> AssignmentRecord {
        AssignmentRecord(
            user: row["user"], role: row["role"], grantedBy: row["granted_by"], grantedAt: date(row["granted_at"]),
            expiresAt: (row["expires_at"] as Int64?).map(date)
        )
    }
}

func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
