public import Foundation
internal import GRDB
public import MamoriCore
public import MamoriStore

/// Failures and lockout, TOTP enrolments, recovery codes.
extension SQLiteStore: CredentialStore {
    /// One read transaction: the snapshot a login is judged on.
    public func loginState(of name: String) async throws -> LoginState {
        try await read { db in
            guard
                let user = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE name = ?", arguments: [name]).map(
                    Self.user)
            else {
                return LoginState(user: nil, failures: nil, totp: nil, recoveryCodes: [], assignments: [])
            }
            return LoginState(
                user: user, failures: try Self.failureState(of: name, db), totp: try Self.totp(of: name, db),
                recoveryCodes: try Self.recoveryCodes(of: name, db), assignments: try Self.assignments(of: name, db)
            )
        }
    }

    // MARK: Failures and lockout

    /// The failures row of `name` in one read, without its attempts in flight; nil when there is none.
    public func failures(of name: String) async throws -> FailureRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM failures WHERE user = ?", arguments: [name]).map(Self.failure)
        }
    }

    /// The stored failure state of `name`, as the core's lockout arithmetic takes it.
    static func failureState(of name: String, _ db: Database) throws -> FailureState? {
        try Row.fetchOne(db, sql: "SELECT * FROM failures WHERE user = ?", arguments: [name]).map { row in
            FailureState(
                count: row["count"], firstFailureAt: date(row["first_failure_at"]),
                lockedUntil: (row["locked_until"] as Int64?).map(date), inFlight: row["in_flight"]
            )
        }
    }

    /// Stores what the lockout arithmetic made of the state: an empty or nil state is deleted.
    static func store(_ state: FailureState?, of name: String, _ db: Database) throws {
        guard let state, !state.isEmpty else {
            try db.execute(sql: "DELETE FROM failures WHERE user = ?", arguments: [name])
            return
        }
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO failures (user, count, first_failure_at, locked_until, in_flight)
                VALUES (?, ?, ?, ?, ?)
                """,
            arguments: [name, state.count, millis(state.firstFailureAt), state.lockedUntil.map(millis), state.inFlight]
        )
    }

    /// Reads the failure state, applies ``Lockout/reserve(_:user:at:threshold:window:)`` and stores the
    /// result in one write transaction, with no audit entry; a refusal changes nothing.
    public func reserveAttempt(
        _ name: String, at time: Date, threshold: Int, window: TimeInterval
    ) async throws -> AttemptReservation {
        try await write(audit: nil) { db in
            let stored = try Self.failureState(of: name, db)
            let (state, reservation) = Lockout.reserve(
                stored, user: name, at: time, threshold: threshold, window: window)
            if case .reserved = reservation { try Self.store(state, of: name, db) }
            return reservation
        }
    }

    /// Takes one attempt in flight off the user's failure state (``Lockout/release(_:)``) in one
    /// write transaction, with no audit entry.
    public func release(_ attempt: PasswordAttempt) async throws {
        try await write(audit: nil) { db in
            try Self.store(Lockout.release(try Self.failureState(of: attempt.user, db)), of: attempt.user, db)
        }
    }

    /// Applies ``Lockout/fail(_:attempt:at:threshold:window:lockFor:)`` to the stored state, stores the
    /// result and appends `audit`, in one write transaction; returns the new failures and lock.
    public func recordFailure(
        _ name: String, attempt: PasswordAttempt?, at time: Date, threshold: Int, window: TimeInterval,
        lockFor: TimeInterval, audit: AuditEntry
    ) async throws -> FailureRecord {
        try await write(audit: audit) { db in
            let state = Lockout.fail(
                try Self.failureState(of: name, db), attempt: attempt, at: time, threshold: threshold, window: window,
                lockFor: lockFor
            )
            try Self.store(state, of: name, db)
            return FailureRecord(
                user: name, count: state.count, firstFailureAt: state.firstFailureAt, lockedUntil: state.lockedUntil)
        }
    }

    /// Applies ``Lockout/succeed(_:attempt:)`` to the stored state in one write transaction, with no
    /// audit entry.
    public func recordSuccess(_ attempt: PasswordAttempt, at time: Date) async throws {
        try await write(audit: nil) { db in
            try Self.store(
                Lockout.succeed(try Self.failureState(of: attempt.user, db), attempt: attempt), of: attempt.user, db)
        }
    }

    /// Records a successful login: resets failures, stores the last login and, when given, the
    /// accepted TOTP step (only if later than the stored one, so a race cannot accept a step
    /// twice), a consumed recovery code, and a stronger password hash (only over the one the
    /// login verified). Returns false, changing nothing (the transaction is rolled back), when the
    /// account was locked, the step taken, the code used or the password replaced meanwhile.
    public func recordLogin(
        _ name: String, at time: Date, attempt: PasswordAttempt, acceptedStep: UInt64?, consumedRecoveryCode: Int64?,
        rehash: PasswordRehash?, audit: AuditEntry
    ) async throws -> Bool {
        let taken = StoreError(.takenMeanwhile, "The login's state changed before it was recorded.")
        do {
            return try await recordLogin(
                name, at: time, attempt: attempt, acceptedStep: acceptedStep,
                consumedRecoveryCode: consumedRecoveryCode,
                rehash: rehash, audit: audit, refusing: taken)
        } catch let error as StoreError where error.code == .takenMeanwhile {
            return false
        }
    }

    private func recordLogin(
        _ name: String, at time: Date, attempt: PasswordAttempt, acceptedStep: UInt64?, consumedRecoveryCode: Int64?,
        rehash: PasswordRehash?, audit: AuditEntry, refusing taken: StoreError
    ) async throws -> Bool {
        try await write(audit: nil) { db in
            // Locked meanwhile by attempts that failed while this one was evaluated: fail closed.
            let failures = try Self.failureState(of: name, db)
            if failures?.isLocked(at: time) == true { throw taken }
            if let step = acceptedStep {
                try db.execute(
                    sql: "UPDATE totp SET last_step = ? WHERE user = ? AND (last_step IS NULL OR last_step < ?)",
                    arguments: [Int64(step), name, Int64(step)]
                )
                guard db.changesCount == 1 else { throw taken }
            }
            if let code = consumedRecoveryCode {
                try db.execute(
                    sql: "UPDATE recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL",
                    arguments: [millis(time), code])
                guard db.changesCount == 1 else { throw taken }
            }
            try db.execute(sql: "UPDATE users SET last_login_at = ? WHERE name = ?", arguments: [millis(time), name])
            if let rehash {
                // Only over the hash the login verified: a password set meanwhile stays, and the
                // login, judged on the old one, fails closed.
                try db.execute(
                    sql: "UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?",
                    arguments: [rehash.upgraded, name, rehash.verified])
                guard db.changesCount == 1 else { throw taken }
            }
            try Self.store(Lockout.succeed(failures, attempt: attempt), of: name, db)
            try self.append(audit, db)
            return true
        }
    }

    /// Applies ``Lockout/unlock(_:)`` to the stored state and appends `audit` in one write transaction;
    /// an account with nothing stored is no error.
    public func unlock(_ name: String, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try Self.store(Lockout.unlock(try Self.failureState(of: name, db)), of: name, db)
        }
    }

    // MARK: TOTP and recovery codes

    /// `name`'s enrolment in one read, confirmed or not, its seed still sealed; nil when there is none
    /// or its stored parameters are not ones this version accepts.
    public func totp(of name: String) async throws -> TOTPRecord? {
        try await read { db in try Self.totp(of: name, db) }
    }

    static func totp(of name: String, _ db: Database) throws -> TOTPRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM totp WHERE user = ?", arguments: [name]).flatMap { row in
            // A step below zero comes from no clock: the row is not trusted, and with no enrolment
            // a login that needs a code fails (never one whose replay check was lost).
            let lastStep = row["last_step"] as Int64?
            guard let algorithm = OTPAlgorithm(rawValue: row["algorithm"]),
                let parameters = try? OTPParameters(algorithm: algorithm, digits: row["digits"], period: row["period"]),
                (lastStep ?? 0) >= 0
            else { return nil }
            return TOTPRecord(
                user: row["user"], sealedSeed: [UInt8](row["sealed_seed"] as Data), parameters: parameters,
                lastAcceptedStep: lastStep.map { UInt64($0) }, confirmed: row["confirmed"],
                createdAt: date(row["created_at"])
            )
        }
    }

    /// Stores a new, unconfirmed enrolment, replacing any earlier one.
    public func beginTOTP(_ record: TOTPRecord, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            guard try Row.fetchOne(db, sql: "SELECT 1 FROM users WHERE name = ?", arguments: [record.user]) != nil
            else {
                throw StoreError(.notFound, "There is no user '\(record.user)'.")
            }
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO totp (user, sealed_seed, algorithm, digits, period, last_step, confirmed, created_at)
                    VALUES (?, ?, ?, ?, ?, NULL, 0, ?)
                    """,
                arguments: [
                    record.user, Data(record.sealedSeed), record.parameters.algorithm.rawValue,
                    record.parameters.digits,
                    record.parameters.period, millis(record.createdAt),
                ]
            )
        }
    }

    /// Confirms an enrolment with the step of the first code, which is then used up.
    public func confirmTOTP(_ name: String, step: UInt64, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(
                sql: "UPDATE totp SET confirmed = 1, last_step = ? WHERE user = ?", arguments: [Int64(step), name])
            guard db.changesCount > 0 else {
                throw StoreError(.notFound, "'\(name)' has no TOTP enrolment to confirm.")
            }
        }
    }

    /// Deletes `name`'s enrolment, confirmed or not, and appends `audit` in one write transaction; no
    /// error when there is none. The recovery codes are kept.
    public func resetTOTP(_ name: String, audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "DELETE FROM totp WHERE user = ?", arguments: [name])
        }
    }

    /// Every recovery code of `name` in one read, used or not, in the order they were stored (digests only).
    public func recoveryCodes(of name: String) async throws -> [RecoveryCodeRecord] {
        try await read { db in try Self.recoveryCodes(of: name, db) }
    }

    static func recoveryCodes(of name: String, _ db: Database) throws -> [RecoveryCodeRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM recovery_codes WHERE user = ? ORDER BY id", arguments: [name]).map {
            RecoveryCodeRecord(
                id: $0["id"],
                code: StoredRecoveryCode(
                    digest: [UInt8]($0["digest"] as Data), usedAt: ($0["used_at"] as Int64?).map(date))
            )
        }
    }

    /// Replaces a user's recovery codes with a new set (digests only).
    public func replaceRecoveryCodes(_ name: String, with codes: [StoredRecoveryCode], audit: AuditEntry) async throws {
        try await write(audit: audit) { db in
            try db.execute(sql: "DELETE FROM recovery_codes WHERE user = ?", arguments: [name])
            for code in codes {
                try db.execute(
                    sql: "INSERT INTO recovery_codes (user, digest) VALUES (?, ?)",
                    arguments: [name, Data(code.digest)])
            }
        }
    }

    // MARK: For listings and the self-inspection

    /// Every enrolment in one read, by user name: true when confirmed, false when pending; users with
    /// none are absent.
    public func totpConfirmation() async throws -> [String: Bool] {
        try await read { db in
            Dictionary(
                try Row.fetchAll(db, sql: "SELECT user, confirmed FROM totp").map {
                    ($0["user"] as String, $0["confirmed"] as Bool)
                },
                uniquingKeysWith: { first, _ in first }
            )
        }
    }

    /// Every account with failures counted or a lock set (past or not), by name, in one read; rows that
    /// hold only attempts in flight are left out.
    public func allFailures() async throws -> [FailureRecord] {
        try await read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM failures WHERE count > 0 OR locked_until IS NOT NULL ORDER BY user"
            )
            .map(Self.failure)
        }
    }
}
