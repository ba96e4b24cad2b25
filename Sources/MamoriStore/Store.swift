public import Foundation
public import MamoriCore
internal import GRDB

/// Mamori's state in one SQLite file (WAL mode), through GRDB.
///
/// This value owns every write transaction. Every mutation takes the audit entry that records it
/// and appends that entry to the hash chain in the same transaction: the change and its record
/// land together or not at all. Timestamps are stored as Unix milliseconds.
public final class Store: Sendable {
    private let pool: DatabasePool
    /// Signs a checkpoint of the chain head every `checkpointInterval` entries (nil: never).
    private let signer: AuditSigner?
    private let checkpointInterval: Int64
    /// Called after the commit of every transaction that made a checkpoint (the witness).
    private let onCheckpoint: (@Sendable (AuditCheckpoint) -> Void)?

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

    /// The schema. A migration that has shipped is never edited: add a new one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
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
            try db.execute(sql: """
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

    // MARK: Writing

    /// Runs `body` and appends `audit` in one write transaction.
    private func write<T: Sendable>(audit: AuditEntry?, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
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

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw StoreError(.storage, "The database could not be read: \(Self.describe(error)).")
        }
    }

    private func append(_ entry: AuditEntry, _ db: Database) throws {
        let previous = try [UInt8](Data.fetchOne(db, sql: "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1") ?? Data(AuditEntry.genesis))
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
    private func sign(_ signer: AuditSigner, sequence: Int64, headHash: [UInt8], time: Date, _ db: Database) throws {
        let newest = try Row.fetchOne(db, sql: "SELECT * FROM checkpoints ORDER BY id DESC LIMIT 1").map(Self.checkpoint)
        let checkpoint = signer.sign(sequence: sequence, headHash: headHash, time: time, previous: newest?.digest ?? AuditCheckpoint.genesis)
        try db.execute(
            sql: "INSERT INTO checkpoints (audit_seq, head_hash, time, signature, previous) VALUES (?, ?, ?, ?, ?)",
            arguments: [
                checkpoint.sequence, Data(checkpoint.headHash), millis(checkpoint.time), Data(checkpoint.signature),
                checkpoint.previous.map { Data($0) },
            ]
        )
        if let onCheckpoint { db.afterNextTransaction { _ in onCheckpoint(checkpoint) } }
    }

    private static func checkpoint(_ row: Row) -> AuditCheckpoint {
        AuditCheckpoint(
            sequence: row["audit_seq"], headHash: [UInt8](row["head_hash"] as Data), time: date(row["time"]),
            previous: (row["previous"] as Data?).map { [UInt8]($0) }, signature: [UInt8](row["signature"] as Data)
        )
    }

    /// Signs the current head of the chain (at shutdown), unless it is signed already.
    public func writeCheckpoint(at time: Date) async throws {
        guard let signer else { return }
        try await write(audit: nil) { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") else { return }
            let sequence: Int64 = row["seq"]
            let signed = try Int64.fetchOne(db, sql: "SELECT MAX(audit_seq) FROM checkpoints") ?? 0
            guard sequence > signed else { return }
            try self.sign(signer, sequence: sequence, headHash: [UInt8](row["hash"] as Data), time: time, db)
        }
    }

    /// Closes the database after folding the write-ahead log into the file (a TRUNCATE
    /// checkpoint), so that a copy of the file alone is complete. Call once, at shutdown; the
    /// store is unusable after. Throws when the log could not be folded in; the data is safe in
    /// the `-wal` file either way, and SQLite reads it on the next open.
    public func close() throws {
        defer { try? pool.close() }
        do {
            _ = try pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        } catch {
            throw StoreError(.storage, "The write-ahead log could not be folded into the database: \(Self.describe(error)).")
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

    // MARK: Users

    public func user(named name: String) async throws -> UserRecord? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM users WHERE name = ?", arguments: [name]).map(Self.user) }
    }

    public func users() async throws -> [UserRecord] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY name").map(Self.user) }
    }

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
    private func updateUser(_ name: String, sql: String, arguments: StatementArguments, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: sql, arguments: arguments + [name])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "There is no user '\(name)'.") }
        }
    }

    public func setDisabled(_ name: String, _ disabled: Bool, audit: AuditEntry) async throws {
        try await updateUser(name, sql: "UPDATE users SET disabled = ? WHERE name = ?", arguments: [disabled], audit: audit)
    }

    public func removeUser(_ name: String, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "DELETE FROM users WHERE name = ?", arguments: [name])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "There is no user '\(name)'.") }
            try db.execute(sql: "DELETE FROM failures WHERE user = ?", arguments: [name])
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'assignment_generation'")
        }
    }

    public func setPassword(_ name: String, hash: String, mustChange: Bool, audit: AuditEntry) async throws {
        try await updateUser(
            name, sql: "UPDATE users SET password_hash = ?, must_change_password = ? WHERE name = ?",
            arguments: [hash, mustChange], audit: audit
        )
    }

    /// Records a successful login: resets failures, stores the last login and, when given, the
    /// accepted TOTP step (only if later than the stored one, so a race cannot accept a step
    /// twice), a consumed recovery code, and a stronger password hash. Returns false, changing
    /// nothing, when the step was taken meanwhile or the recovery code was used meanwhile.
    public func recordLogin(
        _ name: String, at time: Date, attempt: PasswordAttempt, acceptedStep: UInt64?, consumedRecoveryCode: Int64?,
        rehash: String?, audit: AuditEntry
    ) async throws -> Bool {
        try await write(audit: nil) { db in
            // Locked meanwhile by attempts that failed while this one was evaluated: fail closed.
            let locked = try Int64.fetchOne(db, sql: "SELECT locked_until FROM failures WHERE user = ?", arguments: [name])
            if let locked, locked > millis(time) { return false }
            if let step = acceptedStep {
                try db.execute(
                    sql: "UPDATE totp SET last_step = ? WHERE user = ? AND (last_step IS NULL OR last_step < ?)",
                    arguments: [Int64(step), name, Int64(step)]
                )
                guard db.changesCount == 1 else { return false }
            }
            if let code = consumedRecoveryCode {
                try db.execute(sql: "UPDATE recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL", arguments: [millis(time), code])
                guard db.changesCount == 1 else { return false }
            }
            try db.execute(sql: "UPDATE users SET last_login_at = ? WHERE name = ?", arguments: [millis(time), name])
            if let rehash { try db.execute(sql: "UPDATE users SET password_hash = ? WHERE name = ?", arguments: [rehash, name]) }
            try Self.settle(attempt, db)
            try self.append(audit, db)
            return true
        }
    }

    // MARK: Failures and lockout

    public func failures(of name: String) async throws -> FailureRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM failures WHERE user = ?", arguments: [name]).map(Self.failure)
        }
    }

    /// Reserves one password attempt before its Argon2 run: refused, changing nothing, when the
    /// account is locked or when the failures within the window plus the attempts already in
    /// flight reach the threshold. Every reserved attempt must be settled, by
    /// ``recordFailure(_:attempt:at:threshold:window:lockFor:audit:)``, ``recordLogin(_:at:attempt:acceptedStep:consumedRecoveryCode:rehash:audit:)``
    /// or ``release(_:)``; a restart releases every reservation.
    public func reserveAttempt(
        _ name: String, at time: Date, threshold: Int, window: TimeInterval
    ) async throws -> AttemptReservation {
        try await write(audit: nil) { db in
            let row = try Row.fetchOne(db, sql: "SELECT * FROM failures WHERE user = ?", arguments: [name])
            let now = millis(time)
            if let row, let until = row["locked_until"] as Int64?, until > now { return .refused(locked: true) }
            var count = 0
            var first = now
            if let row, time.timeIntervalSince(date(row["first_failure_at"])) < window {
                count = row["count"]
                first = row["first_failure_at"]
            }
            let inFlight: Int = row?["in_flight"] ?? 0
            guard count + inFlight < threshold else { return .refused(locked: false) }
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO failures (user, count, first_failure_at, locked_until, in_flight)
                    VALUES (?, ?, ?, NULL, ?)
                    """,
                arguments: [name, count, first, inFlight + 1]
            )
            return .reserved(PasswordAttempt(
                user: name, threshold: threshold, window: window, failuresBefore: count, windowStart: date(first)
            ))
        }
    }

    /// Gives back a reserved attempt that was not evaluated (the request failed for another
    /// reason), counting nothing.
    public func release(_ attempt: PasswordAttempt) async throws {
        try await write(audit: nil) { db in
            try db.execute(
                sql: "UPDATE failures SET in_flight = MAX(0, in_flight - 1) WHERE user = ?", arguments: [attempt.user]
            )
            try db.execute(sql: "DELETE FROM failures WHERE user = ? AND count = 0 AND in_flight = 0 AND locked_until IS NULL", arguments: [attempt.user])
        }
    }

    /// Counts a failed attempt (settling its reservation, when it had one); locks the account
    /// when the attempt's threshold of failures falls within its window. Failures outside the
    /// window start a new count. Persisted, so a restart forgets nothing.
    public func recordFailure(
        _ name: String, attempt: PasswordAttempt?, at time: Date, threshold: Int, window: TimeInterval,
        lockFor: TimeInterval, audit: AuditEntry
    ) async throws -> FailureRecord {
        try await write(audit: audit) { db in
            let existing = try Row.fetchOne(db, sql: "SELECT * FROM failures WHERE user = ?", arguments: [name])
            var count = 1
            var first = time
            if let existing, (existing["count"] as Int) > 0, time.timeIntervalSince(date(existing["first_failure_at"])) < window {
                count = (existing["count"] as Int) + 1
                first = date(existing["first_failure_at"])
            }
            let inFlight = max(0, (existing?["in_flight"] as Int? ?? 0) - (attempt == nil ? 0 : 1))
            // A lock already in force stays; reaching the threshold sets one.
            let standing = (existing?["locked_until"] as Int64?).map(date).flatMap { $0 > time ? $0 : nil }
            let lockedUntil = count >= threshold ? time.addingTimeInterval(lockFor) : standing
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO failures (user, count, first_failure_at, locked_until, in_flight)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [name, count, millis(first), lockedUntil.map(millis), inFlight]
            )
            return FailureRecord(user: name, count: count, firstFailureAt: first, lockedUntil: lockedUntil)
        }
    }

    /// Settles a successful attempt: its reservation is released, and only the failures counted
    /// before it was reserved are forgiven, so that guesses failing while it ran still count.
    private static func settle(_ attempt: PasswordAttempt, _ db: Database) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM failures WHERE user = ?", arguments: [attempt.user]) else { return }
        var count: Int = row["count"]
        if millis(attempt.windowStart) == (row["first_failure_at"] as Int64) { count = max(0, count - attempt.failuresBefore) }
        let inFlight = max(0, (row["in_flight"] as Int) - 1)
        if count == 0 && inFlight == 0 {
            try db.execute(sql: "DELETE FROM failures WHERE user = ?", arguments: [attempt.user])
        } else {
            try db.execute(
                sql: "UPDATE failures SET count = ?, in_flight = ? WHERE user = ?", arguments: [count, inFlight, attempt.user]
            )
        }
    }

    /// Settles a successful attempt that records nothing else (a password change).
    public func recordSuccess(_ attempt: PasswordAttempt, at time: Date) async throws {
        try await write(audit: nil) { db in try Self.settle(attempt, db) }
    }

    /// Forgives every failure and lifts the lock; attempts still in flight stay reserved.
    public func unlock(_ name: String, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "UPDATE failures SET count = 0, locked_until = NULL WHERE user = ?", arguments: [name])
            try db.execute(sql: "DELETE FROM failures WHERE user = ? AND in_flight = 0", arguments: [name])
        }
    }

    // MARK: TOTP and recovery codes

    public func totp(of name: String) async throws -> TOTPRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM totp WHERE user = ?", arguments: [name]).flatMap { row in
                guard let algorithm = OTPAlgorithm(rawValue: row["algorithm"]),
                    let parameters = try? OTPParameters(algorithm: algorithm, digits: row["digits"], period: row["period"])
                else { return nil }
                return TOTPRecord(
                    user: row["user"], sealedSeed: [UInt8](row["sealed_seed"] as Data), parameters: parameters,
                    lastAcceptedStep: (row["last_step"] as Int64?).map { UInt64($0) }, confirmed: row["confirmed"],
                    createdAt: date(row["created_at"])
                )
            }
        }
    }

    /// Stores a new, unconfirmed enrolment, replacing any earlier one.
    public func beginTOTP(_ record: TOTPRecord, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            guard try Row.fetchOne(db, sql: "SELECT 1 FROM users WHERE name = ?", arguments: [record.user]) != nil else {
                throw StoreError(.notFound, "There is no user '\(record.user)'.")
            }
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO totp (user, sealed_seed, algorithm, digits, period, last_step, confirmed, created_at)
                    VALUES (?, ?, ?, ?, ?, NULL, 0, ?)
                    """,
                arguments: [
                    record.user, Data(record.sealedSeed), record.parameters.algorithm.rawValue, record.parameters.digits,
                    record.parameters.period, millis(record.createdAt),
                ]
            )
        }
    }

    /// Confirms an enrolment with the step of the first code, which is then used up.
    public func confirmTOTP(_ name: String, step: UInt64, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "UPDATE totp SET confirmed = 1, last_step = ? WHERE user = ?", arguments: [Int64(step), name])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "'\(name)' has no TOTP enrolment to confirm.") }
        }
    }

    public func resetTOTP(_ name: String, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "DELETE FROM totp WHERE user = ?", arguments: [name])
        }
    }

    public func recoveryCodes(of name: String) async throws -> [RecoveryCodeRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM recovery_codes WHERE user = ? ORDER BY id", arguments: [name]).map {
                RecoveryCodeRecord(
                    id: $0["id"],
                    code: StoredRecoveryCode(digest: [UInt8]($0["digest"] as Data), usedAt: ($0["used_at"] as Int64?).map(date))
                )
            }
        }
    }

    /// Replaces a user's recovery codes with a new set (digests only).
    public func replaceRecoveryCodes(_ name: String, with codes: [StoredRecoveryCode], audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "DELETE FROM recovery_codes WHERE user = ?", arguments: [name])
            for code in codes {
                try db.execute(sql: "INSERT INTO recovery_codes (user, digest) VALUES (?, ?)", arguments: [name, Data(code.digest)])
            }
        }
    }

    // MARK: Role assignments

    public func assignments(of name: String) async throws -> [AssignmentRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM assignments WHERE user = ? ORDER BY role", arguments: [name]).map(Self.assignment)
        }
    }

    public func allAssignments() async throws -> [AssignmentRecord] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM assignments ORDER BY role, user").map(Self.assignment) }
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
            guard try Row.fetchOne(db, sql: "SELECT 1 FROM users WHERE name = ?", arguments: [assignment.user]) != nil else {
                throw StoreError(.notFound, "There is no user '\(assignment.user)'.")
            }
            let now = millis(assignment.grantedAt)
            let held = try String.fetchAll(
                db, sql: "SELECT role FROM assignments WHERE user = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY role",
                arguments: [assignment.user, now]
            )
            let holders = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM assignments WHERE role = ? AND (expires_at IS NULL OR expires_at > ?)",
                arguments: [assignment.role, now]
            ) ?? 0
            let violations = check(held, holders)
            guard violations.isEmpty else {
                try self.append(denial(violations), db)
                return violations
            }
            try db.execute(
                sql: "INSERT OR REPLACE INTO assignments (user, role, granted_by, granted_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [assignment.user, assignment.role, assignment.grantedBy, now, assignment.expiresAt.map(millis)]
            )
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'assignment_generation'")
            try self.append(audit, db)
            return []
        }
    }

    public func revoke(_ name: String, role: String, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "DELETE FROM assignments WHERE user = ? AND role = ?", arguments: [name, role])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "'\(name)' does not hold the role '\(role)'.") }
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'assignment_generation'")
        }
    }

    /// The assignment generation (a counter bumped by every grant, revoke and user removal,
    /// which decisions carry), read synchronously at start-up.
    public func currentAssignmentGeneration() throws -> Int64 {
        do {
            return try pool.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'assignment_generation'") ?? 0 }
        } catch {
            throw StoreError(.storage, "The database could not be read: \(Self.describe(error)).")
        }
    }


    // MARK: Sessions

    public func openSession(_ session: SessionRecord, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(
                sql: """
                    INSERT INTO sessions (id, user, zone, terminal, factors, service, tty, remote_host, opened_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    session.id, session.user, session.zone, session.terminal,
                    session.factors.map(\.rawValue).sorted().joined(separator: ","), session.service, session.tty,
                    session.remoteHost, millis(session.openedAt), millis(session.expiresAt),
                ]
            )
        }
    }

    public func session(_ id: String) async throws -> SessionRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id]).map { row in
                SessionRecord(
                    id: row["id"], user: row["user"], zone: row["zone"], terminal: row["terminal"],
                    factors: Set((row["factors"] as String).split(separator: ",").compactMap { Factor(rawValue: String($0)) }),
                    service: row["service"], tty: row["tty"], remoteHost: row["remote_host"], openedAt: date(row["opened_at"]),
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
                    sql: "UPDATE sessions SET last_active_at = ? WHERE id = ? AND closed_at IS NULL", arguments: [millis(time), id]
                )
            }
        }
    }

    public func closeSession(_ id: String, at time: Date, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "UPDATE sessions SET closed_at = ? WHERE id = ? AND closed_at IS NULL", arguments: [millis(time), id])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "There is no open session '\(id)'.") }
        }
    }

    // MARK: Counts and the audit trail

    /// How commits reach the disk, as SQLite reports them on a connection of the store: for
    /// `status`, so that an operator sees `synchronous` is `full`.
    public func durability() async throws -> (synchronous: String, journalMode: String) {
        try await read { db in
            let level = try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
            let names = [0: "off", 1: "normal", 2: "full", 3: "extra"]
            return (names[level] ?? "\(level)", try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "unknown")
        }
    }

    /// Row counts for `status`.
    public func counts(at time: Date) async throws -> [String: Int] {
        try await read { db in
            [
                "users": try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM users") ?? 0,
                "open_sessions": try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM sessions WHERE closed_at IS NULL AND expires_at > ?", arguments: [millis(time)]
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
    public func auditEntries(after: Int64, limit: Int, since: Date? = nil, until: Date? = nil) async throws -> [AuditChain.StoredEntry] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT \(Self.auditColumns) FROM audit WHERE seq > ? AND time >= ? AND time < ? ORDER BY seq LIMIT ?",
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
            try Row.fetchAll(db, sql: "SELECT \(Self.auditColumns) FROM audit ORDER BY seq DESC LIMIT ?", arguments: [count])
                .map(Self.storedEntry).reversed()
        }
    }

    /// Checks the whole trail page by page (see ``AuditVerifier``), never holding all of it.
    public func verifyAudit(publicKey: [UInt8]?, witness: AuditCheckpoint? = nil) async throws -> AuditReport {
        var verifier = AuditVerifier(checkpoints: try await checkpoints(), publicKey: publicKey, witness: witness)
        var after: Int64 = 0
        while true {
            let page = try await auditEntries(after: after, limit: 5_000)
            guard let last = page.last else { break }
            for entry in page { verifier.add(entry) }
            after = last.sequence
        }
        return verifier.finish()
    }

    /// The newest entry of `event` with outcome `success`, if any.
    public func latestAuditEntry(event: String) async throws -> AuditChain.StoredEntry? {
        try await read { db in
            try Row.fetchOne(
                db, sql: "SELECT \(Self.auditColumns) FROM audit WHERE event = ? AND outcome = 'success' ORDER BY seq DESC LIMIT 1",
                arguments: [event]
            ).map(Self.storedEntry)
        }
    }

    /// What ``pruneAudit(before:audit:)`` removed.
    public struct PruneResult: Sendable {
        /// The last removed entry; the signed checkpoint at it anchors what remains.
        public let prunedThrough: Int64
        public let removed: Int
    }

    /// Removes the oldest entries, all written before `cutoff`, in one transaction: signs a
    /// checkpoint at the last entry removed (the anchor the first remaining entry links to),
    /// deletes the entries and the checkpoints older than the anchor, and appends the entry
    /// `audit` makes of the result. Entries are removed as a prefix of the chain, stopping at the
    /// first written at or after `cutoff`, so that an entry with an earlier clock reading later in
    /// the chain is kept, never a gap made. Needs the signing key.
    public func pruneAudit(before cutoff: Date, audit: @escaping @Sendable (PruneResult) -> AuditEntry) async throws -> PruneResult {
        guard let signer else { throw StoreError(.storage, "Pruning needs the audit signing key.") }
        return try await write(audit: nil) { db in
            let keptFrom = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM audit WHERE time >= ?", arguments: [millis(cutoff)])
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit") ?? 0
            let through = keptFrom.map { $0 - 1 } ?? last
            let first = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM audit") ?? 1
            guard through >= first else {
                let result = PruneResult(prunedThrough: first - 1, removed: 0)
                try self.append(audit(result), db)
                return result
            }
            guard let row = try Row.fetchOne(db, sql: "SELECT hash, time FROM audit WHERE seq = ?", arguments: [through]) else {
                throw StoreError(.storage, "The audit trail has no entry \(through) to anchor the pruning at.")
            }
            try db.execute(sql: "DELETE FROM checkpoints WHERE audit_seq = ?", arguments: [through])
            try self.sign(signer, sequence: through, headHash: [UInt8](row["hash"] as Data), time: date(row["time"]), db)
            try db.execute(sql: "DELETE FROM audit WHERE seq <= ?", arguments: [through])
            let removed = db.changesCount
            try db.execute(sql: "DELETE FROM checkpoints WHERE audit_seq < ?", arguments: [through])
            let result = PruneResult(prunedThrough: through, removed: removed)
            try self.append(audit(result), db)
            return result
        }
    }

    /// The audit columns in table order, as ``storedEntry(_:)`` reads them.
    static let auditColumns = "seq, time, actor_uid, actor, event, target, outcome, detail, terminal, zone, policy_revision, prev_hash, hash"

    private static func storedEntry(_ row: Row) -> AuditChain.StoredEntry {
        // By column index (the order of CREATE TABLE audit): name lookups cost more than hashing
        // when a long trail is verified.
        AuditChain.StoredEntry(
            sequence: row[0], timeMillis: row[1], actorUID: row[2], actor: row[3], event: row[4], target: row[5],
            outcome: row[6], detailJSON: row[7], terminal: row[8], zone: row[9], policyRevision: row[10],
            previousHash: [UInt8](row[11] as Data), hash: [UInt8](row[12] as Data)
        )
    }

    // MARK: For the self-inspection

    /// Every user's TOTP state: true when confirmed, false when enrolment is pending.
    public func totpConfirmation() async throws -> [String: Bool] {
        try await read { db in
            Dictionary(
                try Row.fetchAll(db, sql: "SELECT user, confirmed FROM totp").map { ($0["user"] as String, $0["confirmed"] as Bool) },
                uniquingKeysWith: { first, _ in first }
            )
        }
    }

    /// Every account with failures on record, locked or not.
    public func allFailures() async throws -> [FailureRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM failures WHERE count > 0 OR locked_until IS NOT NULL ORDER BY user")
                .map(Self.failure)
        }
    }

    // MARK: Row mapping

    private static func user(_ row: Row) -> UserRecord {
        UserRecord(
            name: row["name"], displayName: row["display_name"], kind: UserKind(rawValue: row["kind"]) ?? .staff,
            organisation: row["organisation"], disabled: row["disabled"], createdAt: date(row["created_at"]),
            lastLoginAt: (row["last_login_at"] as Int64?).map(date), mustChangePassword: row["must_change_password"],
            passwordHash: row["password_hash"]
        )
    }

    private static func failure(_ row: Row) -> FailureRecord {
        FailureRecord(
            user: row["user"], count: row["count"], firstFailureAt: date(row["first_failure_at"]),
            lockedUntil: (row["locked_until"] as Int64?).map(date)
        )
    }

    private static func assignment(_ row: Row) -> AssignmentRecord {
        AssignmentRecord(
            user: row["user"], role: row["role"], grantedBy: row["granted_by"], grantedAt: date(row["granted_at"]),
            expiresAt: (row["expires_at"] as Int64?).map(date)
        )
    }
}

func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
