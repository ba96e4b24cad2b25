public import Foundation
public import MamoriCore
public import MamoriStore
import PostgresNIO

/// Failures and lockout, TOTP enrolments, recovery codes. Every write runs in a transaction that
/// holds the chain lock, so the lockout's arithmetic (MamoriCore's `Lockout`) sees and changes one
/// state however many hubs take attempts at once: failures on every terminal add up to one lock.
extension PostgresStore: CredentialStore {
    /// Everything a login needs, read in one repeatable-read transaction: one snapshot.
    public func loginState(of name: String) async throws -> LoginState {
        let logger = self.logger
        return try await snapshot { connection in
            guard let user = try await Self.user(named: name, connection, logger: logger) else {
                return LoginState(user: nil, failures: nil, totp: nil, recoveryCodes: [], assignments: [])
            }
            return LoginState(
                user: user, failures: try await Self.failureState(of: name, connection, logger: logger),
                totp: try await Self.totp(of: name, connection, logger: logger),
                recoveryCodes: try await Self.recoveryCodes(of: name, connection, logger: logger),
                assignments: try await Self.assignments(of: name, connection, logger: logger))
        }
    }

    // MARK: Failures and lockout

    /// The failures row of `name`, without its attempts in flight; nil when there is none.
    public func failures(of name: String) async throws -> FailureRecord? {
        let logger = self.logger
        return try await connection { connection in
            try await Self.failureState(of: name, connection, logger: logger).map {
                FailureRecord(
                    user: name, count: $0.count, firstFailureAt: $0.firstFailureAt, lockedUntil: $0.lockedUntil)
            }
        }
    }

    /// Every account with failures counted or a lock set, by name; rows that hold only attempts in
    /// flight are left out.
    public func allFailures() async throws -> [FailureRecord] {
        try await read { client in
            var found: [FailureRecord] = []
            for try await row in try await client.query(
                """
                SELECT user_name, count, first_failure_at, locked_until FROM failures
                WHERE count > 0 OR locked_until IS NOT NULL ORDER BY user_name
                """, logger: logger
            ).decode((String, Int32, Int64, Int64?).self) {
                found.append(
                    FailureRecord(
                        user: row.0, count: Int(row.1), firstFailureAt: date(row.2), lockedUntil: row.3.map(date)))
            }
            return found
        }
    }

    static func failureState(of name: String, _ connection: PostgresConnection, logger: Logger) async throws
        -> FailureState?
    {
        try await failureRow(of: name, connection, logger: logger)?.state
    }

    /// The stored state and when its newest attempt was reserved.
    static func failureRow(of name: String, _ connection: PostgresConnection, logger: Logger) async throws
        -> (state: FailureState, reservedAt: Date?)?
    {
        var found: (state: FailureState, reservedAt: Date?)?
        for try await row in try await connection.query(
            """
            SELECT count, first_failure_at, locked_until, in_flight, in_flight_at FROM failures
            WHERE user_name = \(name)
            """, logger: logger
        ).decode((Int32, Int64, Int64?, Int32, Int64?).self) {
            found = (
                FailureState(
                    count: Int(row.0), firstFailureAt: date(row.1), lockedUntil: row.2.map(date), inFlight: Int(row.3)),
                row.4.map(date)
            )
        }
        return found
    }

    /// How long a reserved attempt may stay unsettled before it is let go: far longer than any
    /// password check (Argon2 runs for under a second, and a check queued past its caller's
    /// deadline is dropped), so only attempts a crashed or cut-off hub left behind are.
    static let reservationLifetime: TimeInterval = 600

    /// Stores what the lockout arithmetic made of the state: an empty or nil state is deleted.
    static func store(
        _ state: FailureState?, of name: String, reservedAt: Date? = nil, _ connection: PostgresConnection,
        logger: Logger
    ) async throws {
        guard let state, !state.isEmpty else {
            try await connection.query("DELETE FROM failures WHERE user_name = \(name)", logger: logger)
            return
        }
        try await connection.query(
            """
            INSERT INTO failures (user_name, count, first_failure_at, locked_until, in_flight, in_flight_at)
            VALUES (\(name), \(Int32(state.count)), \(AuditEntry.milliseconds(state.firstFailureAt)),
                \(state.lockedUntil.map(AuditEntry.milliseconds)), \(Int32(state.inFlight)),
                \(reservedAt.map(AuditEntry.milliseconds)))
            ON CONFLICT (user_name) DO UPDATE SET count = EXCLUDED.count,
                first_failure_at = EXCLUDED.first_failure_at, locked_until = EXCLUDED.locked_until,
                in_flight = EXCLUDED.in_flight,
                in_flight_at = COALESCE(EXCLUDED.in_flight_at, failures.in_flight_at)
            """, logger: logger)
    }

    /// Reserves an attempt (``Lockout/reserve(_:user:at:threshold:window:)``) before Argon2 runs;
    /// no audit entry; a refusal changes nothing.
    public func reserveAttempt(_ name: String, at time: Date, threshold: Int, window: TimeInterval) async throws
        -> AttemptReservation
    {
        let logger = self.logger
        return try await write(audit: nil) { connection in
            let row = try await Self.failureRow(of: name, connection, logger: logger)
            var stored = row?.state
            // Attempts reserved so long ago are not in flight any more: the hub that held them is gone.
            if let reservedAt = row?.reservedAt, time.timeIntervalSince(reservedAt) > Self.reservationLifetime {
                stored?.inFlight = 0
            }
            let (state, reservation) = Lockout.reserve(
                stored, user: name, at: time, threshold: threshold, window: window)
            if case .reserved = reservation {
                try await Self.store(state, of: name, reservedAt: time, connection, logger: logger)
            }
            return reservation
        }
    }

    /// Gives back an attempt that was not evaluated (``Lockout/release(_:)``); no audit entry.
    public func release(_ attempt: PasswordAttempt) async throws {
        let logger = self.logger
        try await write(audit: nil) { connection in
            let stored = try await Self.failureState(of: attempt.user, connection, logger: logger)
            try await Self.store(Lockout.release(stored), of: attempt.user, connection, logger: logger)
        }
    }

    /// Counts a failure (``Lockout/fail(_:attempt:at:threshold:window:lockFor:)``) and appends
    /// `audit`; returns the new failures and lock.
    public func recordFailure(
        _ name: String, attempt: PasswordAttempt?, at time: Date, threshold: Int, window: TimeInterval,
        lockFor: TimeInterval, audit: AuditEntry
    ) async throws -> FailureRecord {
        let logger = self.logger
        return try await write(audit: audit) { connection in
            let state = Lockout.fail(
                try await Self.failureState(of: name, connection, logger: logger), attempt: attempt, at: time,
                threshold: threshold, window: window, lockFor: lockFor)
            try await Self.store(state, of: name, connection, logger: logger)
            return FailureRecord(
                user: name, count: state.count, firstFailureAt: state.firstFailureAt, lockedUntil: state.lockedUntil)
        }
    }

    /// Settles a successful attempt that records nothing else (``Lockout/succeed(_:attempt:)``).
    public func recordSuccess(_ attempt: PasswordAttempt, at time: Date) async throws {
        let logger = self.logger
        try await write(audit: nil) { connection in
            let stored = try await Self.failureState(of: attempt.user, connection, logger: logger)
            try await Self.store(
                Lockout.succeed(stored, attempt: attempt), of: attempt.user, connection, logger: logger)
        }
    }

    /// Records a successful login: the failures settled, the last login, and when given the
    /// accepted TOTP step (only if later than the stored one: a step is accepted once, on any
    /// terminal), a consumed recovery code and a stronger hash (only over the one verified).
    /// Returns false, changing nothing (the transaction is rolled back), when the account was
    /// locked, the step taken, the code used or the password replaced meanwhile.
    public func recordLogin(
        _ name: String, at time: Date, attempt: PasswordAttempt, acceptedStep: UInt64?, consumedRecoveryCode: Int64?,
        rehash: PasswordRehash?, audit: AuditEntry
    ) async throws -> Bool {
        let logger = self.logger
        let taken = StoreError(.takenMeanwhile, "The login's state changed before it was recorded.")
        do {
            return try await write(audit: nil) { connection in
                try await self.recordLogin(
                    name, at: time, attempt: attempt, acceptedStep: acceptedStep,
                    consumedRecoveryCode: consumedRecoveryCode, rehash: rehash, audit: audit, refusing: taken,
                    connection, logger: logger)
            }
        } catch let error as StoreError where error.code == .takenMeanwhile {
            return false
        }
    }

    private func recordLogin(
        _ name: String, at time: Date, attempt: PasswordAttempt, acceptedStep: UInt64?, consumedRecoveryCode: Int64?,
        rehash: PasswordRehash?, audit: AuditEntry, refusing taken: StoreError, _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> Bool {
        let failures = try await Self.failureState(of: name, connection, logger: logger)
        if failures?.isLocked(at: time) == true { throw taken }
        if let step = acceptedStep {
            let accepted = try await connection.query(
                """
                UPDATE totp SET last_step = \(Int64(step))
                WHERE user_name = \(name) AND (last_step IS NULL OR last_step < \(Int64(step))) RETURNING user_name
                """, logger: logger)
            guard try await Self.count(accepted) == 1 else { throw taken }
        }
        if let code = consumedRecoveryCode {
            let used = try await connection.query(
                """
                UPDATE recovery_codes SET used_at = \(AuditEntry.milliseconds(time))
                WHERE id = \(code) AND user_name = \(name) AND used_at IS NULL RETURNING id
                """, logger: logger)
            guard try await Self.count(used) == 1 else { throw taken }
        }
        if let rehash {
            // Only over the hash the login verified: a password set meanwhile, on any hub,
            // stays, and the login, judged on the old one, fails closed.
            let upgraded = try await connection.query(
                """
                UPDATE users SET password_hash = \(rehash.upgraded)
                WHERE name = \(name) AND password_hash = \(rehash.verified) RETURNING name
                """, logger: logger)
            guard try await Self.count(upgraded) == 1 else { throw taken }
        }
        try await connection.query(
            "UPDATE users SET last_login_at = \(AuditEntry.milliseconds(time)) WHERE name = \(name)", logger: logger)
        try await Self.store(Lockout.succeed(failures, attempt: attempt), of: name, connection, logger: logger)
        try await self.append(audit, connection)
        return true
    }

    /// Forgives every failure and lifts the lock (``Lockout/unlock(_:)``), and appends `audit`.
    public func unlock(_ name: String, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let stored = try await Self.failureState(of: name, connection, logger: logger)
            try await Self.store(Lockout.unlock(stored), of: name, connection, logger: logger)
        }
    }

    // MARK: TOTP and recovery codes

    /// `name`'s enrolment, confirmed or not, its seed still sealed; nil when there is none or its
    /// stored parameters are not ones this version accepts.
    public func totp(of name: String) async throws -> TOTPRecord? {
        let logger = self.logger
        return try await connection { try await Self.totp(of: name, $0, logger: logger) }
    }

    static func totp(of name: String, _ connection: PostgresConnection, logger: Logger) async throws -> TOTPRecord? {
        var record: TOTPRecord?
        for try await row in try await connection.query(
            """
            SELECT sealed_seed, algorithm, digits, period, last_step, confirmed, created_at
            FROM totp WHERE user_name = \(name)
            """, logger: logger
        ).decode((ByteBuffer, String, Int32, Int32, Int64?, Bool, Int64).self) {
            // A step below zero comes from no clock: the row is not trusted (no enrolment, so a
            // login that needs a code fails, never one whose replay check was lost).
            guard let algorithm = OTPAlgorithm(rawValue: row.1),
                let parameters = try? OTPParameters(algorithm: algorithm, digits: Int(row.2), period: Int(row.3)),
                (row.4 ?? 0) >= 0
            else { continue }
            record = TOTPRecord(
                user: name, sealedSeed: Array(row.0.readableBytesView), parameters: parameters,
                lastAcceptedStep: row.4.map { UInt64($0) }, confirmed: row.5, createdAt: date(row.6))
        }
        return record
    }

    /// Every enrolment by user name: true when confirmed, false when pending.
    public func totpConfirmation() async throws -> [String: Bool] {
        try await read { client in
            var found: [String: Bool] = [:]
            for try await (user, confirmed) in try await client.query(
                "SELECT user_name, confirmed FROM totp", logger: logger
            ).decode((String, Bool).self) {
                found[user] = confirmed
            }
            return found
        }
    }

    /// Stores a new, unconfirmed enrolment, replacing any earlier one; `notFound` for an unknown user.
    public func beginTOTP(_ record: TOTPRecord, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let stored = try await connection.query(
                """
                INSERT INTO totp (user_name, sealed_seed, algorithm, digits, period, last_step, confirmed, created_at)
                SELECT \(record.user), \(ByteBuffer(bytes: record.sealedSeed)), \(record.parameters.algorithm.rawValue),
                    \(Int32(record.parameters.digits)), \(Int32(record.parameters.period)), NULL, false,
                    \(AuditEntry.milliseconds(record.createdAt))
                WHERE EXISTS (SELECT 1 FROM users WHERE name = \(record.user))
                ON CONFLICT (user_name) DO UPDATE SET sealed_seed = EXCLUDED.sealed_seed,
                    algorithm = EXCLUDED.algorithm, digits = EXCLUDED.digits, period = EXCLUDED.period,
                    last_step = NULL, confirmed = false, created_at = EXCLUDED.created_at
                RETURNING user_name
                """, logger: logger)
            guard try await Self.count(stored) == 1 else {
                throw StoreError(.notFound, "There is no user '\(record.user)'.")
            }
        }
    }

    /// Confirms an enrolment with the step of its first code, which is then used up.
    public func confirmTOTP(_ name: String, step: UInt64, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let confirmed = try await connection.query(
                """
                UPDATE totp SET confirmed = true, last_step = \(Int64(step)) WHERE user_name = \(name)
                RETURNING user_name
                """, logger: logger)
            guard try await Self.count(confirmed) == 1 else {
                throw StoreError(.notFound, "'\(name)' has no TOTP enrolment to confirm.")
            }
        }
    }

    /// Deletes `name`'s enrolment and appends `audit`; no error when there is none. Recovery codes stay.
    public func resetTOTP(_ name: String, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let removed = try await connection.query(
                "DELETE FROM totp WHERE user_name = \(name) RETURNING user_name", logger: logger)
            _ = try await Self.count(removed)
        }
    }

    /// Every recovery code of `name`, used or not, in the order they were stored (digests only).
    public func recoveryCodes(of name: String) async throws -> [RecoveryCodeRecord] {
        let logger = self.logger
        return try await connection { try await Self.recoveryCodes(of: name, $0, logger: logger) }
    }

    static func recoveryCodes(of name: String, _ connection: PostgresConnection, logger: Logger) async throws
        -> [RecoveryCodeRecord]
    {
        var codes: [RecoveryCodeRecord] = []
        for try await row in try await connection.query(
            "SELECT id, digest, used_at FROM recovery_codes WHERE user_name = \(name) ORDER BY id", logger: logger
        ).decode((Int64, ByteBuffer, Int64?).self) {
            codes.append(
                RecoveryCodeRecord(
                    id: row.0, code: StoredRecoveryCode(digest: Array(row.1.readableBytesView), usedAt: row.2.map(date))
                ))
        }
        return codes
    }

    /// Replaces a user's recovery codes with a new set (digests only), and appends `audit`.
    public func replaceRecoveryCodes(_ name: String, with codes: [StoredRecoveryCode], audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            try await connection.query("DELETE FROM recovery_codes WHERE user_name = \(name)", logger: logger)
            for code in codes {
                try await connection.query(
                    "INSERT INTO recovery_codes (user_name, digest) VALUES (\(name), \(ByteBuffer(bytes: code.digest)))",
                    logger: logger)
            }
        }
    }
}
