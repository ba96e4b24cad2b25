public import Foundation
import Logging
public import MamoriCore
public import MamoriStore
import PostgresNIO

/// What the hub keeps of its terminals' logins through a network cut (docs/town.md).
extension PostgresStore: OfflineUseArchive {
    /// Records what a terminal was given, widening what it was given before (``OfflineUseArchive``).
    public func recordOfflineGrant(terminal: String, user: String, grant: OfflineGrantRecord, at time: Date)
        async throws
    {
        let logger = self.logger
        let first = grant.steps.map { Int64(clamping: $0.lowerBound) }
        let last = grant.steps.map { Int64(clamping: $0.upperBound) }
        _ = try await connection { connection in
            try await connection.query(
                """
                INSERT INTO offline_grants (terminal, user_name, first_step, last_step, period, recovery_ids, granted_at)
                VALUES (\(terminal), \(user), \(first), \(last), \(grant.period), \(grant.recovery),
                    \(AuditEntry.milliseconds(time)))
                ON CONFLICT (terminal, user_name) DO UPDATE SET
                    -- Widened while the period is the same (an older credential may still be in use);
                    -- replaced when it changed: steps of two periods are not one range.
                    first_step = CASE WHEN offline_grants.period = EXCLUDED.period
                        THEN LEAST(offline_grants.first_step, EXCLUDED.first_step) ELSE EXCLUDED.first_step END,
                    last_step = CASE WHEN offline_grants.period = EXCLUDED.period
                        THEN GREATEST(offline_grants.last_step, EXCLUDED.last_step) ELSE EXCLUDED.last_step END,
                    period = EXCLUDED.period,
                    recovery_ids = ARRAY(SELECT DISTINCT unnest(offline_grants.recovery_ids || EXCLUDED.recovery_ids)),
                    granted_at = EXCLUDED.granted_at
                """, logger: logger)
        }
    }

    /// Why the hub refuses `use` from a terminal that was given `grant` (nil: it is possible),
    /// judged at `time` with `window` steps of TOTP clock drift either side, for a user whose TOTP
    /// period is now `period` (nil: no enrolment).
    static func refusal(
        of use: OfflineUse, grant: OfflineGrantRecord?, period current: Int?, at time: Date, window: Int
    )
        -> String?
    {
        guard let grant else { return "not-granted" }
        // A report from the future: a minute of clock difference between terminal and hub at most.
        if use.at.timeIntervalSince(time) > 60 { return "future" }
        guard use.kind == "login" else { return nil }
        if let step = use.step {
            guard let steps = grant.steps, steps.contains(step), grant.period > 0 else { return "step-not-granted" }
            // Steps of another period are other moments: spending them would move the TOTP anywhere.
            guard grant.period == current else { return "period-changed" }
            let period = Double(grant.period)
            let allowance = Double(window + 1) * period
            // Not a step still to come (one step of clock difference at most: a report that moves
            // the user's TOTP further would lock the user's codes out), and the step of the time
            // the login says it happened.
            if Double(step) * period > time.timeIntervalSince1970 + period { return "step-to-come" }
            if abs(Double(step) * period - use.at.timeIntervalSince1970) > allowance { return "step-not-at-time" }
        }
        if let code = use.recoveryCode, !grant.recovery.contains(code) { return "recovery-not-granted" }
        return nil
    }

    /// Keeps what a terminal reported, in one transaction under the chain lock (``OfflineUseArchive``).
    public func receiveOfflineUses(
        terminal: String, uses: [OfflineUse], at time: Date, window: Int,
        record: @escaping @Sendable (OfflineConflict?, [String: String]) -> AuditEntry
    ) async throws -> (kept: Int, refused: Int, conflicts: [OfflineConflict]) {
        let logger = self.logger
        // Under the chain lock: two terminals reporting the same step at once see each other's rows.
        return try await write(audit: nil) { connection in
            var kept: [OfflineUse] = []
            var refused = 0
            var grants: [String: OfflineGrantRecord?] = [:]
            var periods: [String: Int?] = [:]
            for use in uses {
                if grants[use.user] == nil {
                    grants[use.user] = .some(
                        try await Self.grant(of: use.user, to: terminal, connection, logger: logger))
                }
                if periods[use.user] == nil {
                    periods[use.user] = .some(try await Self.period(of: use.user, connection, logger: logger))
                }
                let refusal = Self.refusal(
                    of: use, grant: grants[use.user] ?? nil, period: periods[use.user] ?? nil, at: time, window: window)
                let inserted = try await connection.query(
                    """
                    INSERT INTO terminal_offline_uses
                        (terminal, sequence, user_name, kind, at, step, recovery_code, reason, online_at, reported_at,
                         refused)
                    VALUES (\(terminal), \(use.sequence), \(use.user), \(use.kind), \(AuditEntry.milliseconds(use.at)),
                        \(use.step.map { Int64(clamping: $0) }), \(use.recoveryCode), \(use.reason),
                        \(use.onlineAt.map(AuditEntry.milliseconds)), \(AuditEntry.milliseconds(time)), \(refusal))
                    ON CONFLICT (terminal, sequence) DO NOTHING RETURNING sequence
                    """, logger: logger)
                guard try await Self.count(inserted) == 1 else { continue }
                kept.append(use)
                if refusal != nil {
                    refused += 1
                    continue
                }
                guard use.kind == "login" else { continue }
                if let step = use.step {
                    // Used here, so never accepted again anywhere.
                    try await connection.query(
                        """
                        UPDATE totp SET last_step = \(Int64(clamping: step))
                        WHERE user_name = \(use.user) AND (last_step IS NULL OR last_step < \(Int64(clamping: step)))
                        """, logger: logger)
                    var others: [String] = []
                    for try await other in try await connection.query(
                        """
                        SELECT DISTINCT terminal FROM terminal_offline_uses
                        WHERE user_name = \(use.user) AND step = \(Int64(clamping: step)) AND kind = 'login'
                            AND refused IS NULL AND terminal <> \(terminal)
                        ORDER BY terminal
                        """, logger: logger
                    ).decode(String.self) {
                        others.append(other)
                    }
                    for other in others {
                        let pair = [terminal, other].sorted()
                        let found = try await connection.query(
                            """
                            INSERT INTO offline_conflicts (user_name, step, first_terminal, second_terminal, found_at)
                            VALUES (\(use.user), \(Int64(clamping: step)), \(pair[0]), \(pair[1]),
                                \(AuditEntry.milliseconds(time)))
                            ON CONFLICT DO NOTHING RETURNING step
                            """, logger: logger)
                        if try await Self.count(found) == 1 {
                            let conflict = OfflineConflict(user: use.user, step: step, terminals: pair)
                            try await self.append(
                                record(
                                    conflict,
                                    ["user": use.user, "step": "\(step)", "terminals": pair.joined(separator: ",")]),
                                connection)
                        }
                    }
                }
                if let code = use.recoveryCode {
                    try await connection.query(
                        """
                        UPDATE recovery_codes SET used_at = \(AuditEntry.milliseconds(use.at))
                        WHERE id = \(code) AND user_name = \(use.user) AND used_at IS NULL
                        """, logger: logger)
                }
            }
            if !kept.isEmpty {
                let count = { (kind: String) in kept.filter { $0.kind == kind }.count }
                try await self.append(
                    record(
                        nil,
                        [
                            "logins": "\(count("login"))", "failures": "\(count("failure"))",
                            "locks": "\(count("lock"))",
                            "users": Set(kept.map(\.user)).sorted().prefix(100).joined(separator: ","),
                            "refused": "\(refused)",
                        ]), connection)
            }
            var untold: [OfflineConflict] = []
            for try await (user, step, first, second) in try await connection.query(
                """
                SELECT user_name, step, first_terminal, second_terminal FROM offline_conflicts
                WHERE (first_terminal = \(terminal) AND NOT told_first)
                    OR (second_terminal = \(terminal) AND NOT told_second)
                ORDER BY found_at, user_name, step
                """, logger: logger
            ).decode((String, Int64, String, String).self) {
                untold.append(OfflineConflict(user: user, step: UInt64(max(0, step)), terminals: [first, second]))
            }
            try await connection.query(
                """
                UPDATE offline_conflicts SET told_first = told_first OR first_terminal = \(terminal),
                    told_second = told_second OR second_terminal = \(terminal)
                WHERE first_terminal = \(terminal) OR second_terminal = \(terminal)
                """, logger: logger)
            return (kept.count, refused, untold)
        }
    }

    /// The period of `user`'s TOTP enrolment, if any.
    static func period(of user: String, _ connection: PostgresConnection, logger: Logger) async throws -> Int? {
        for try await period in try await connection.query(
            "SELECT period FROM totp WHERE user_name = \(user)", logger: logger
        ).decode(Int.self) {
            return period
        }
        return nil
    }

    /// What `terminal` was given for `user`, if anything.
    static func grant(of user: String, to terminal: String, _ connection: PostgresConnection, logger: Logger)
        async throws -> OfflineGrantRecord?
    {
        for try await (first, last, period, recovery) in try await connection.query(
            """
            SELECT first_step, last_step, period, recovery_ids FROM offline_grants
            WHERE terminal = \(terminal) AND user_name = \(user)
            """, logger: logger
        ).decode((Int64?, Int64?, Int, [Int64]).self) {
            var steps: ClosedRange<UInt64>?
            if let first, let last, first >= 0, last >= first { steps = UInt64(first)...UInt64(last) }
            return OfflineGrantRecord(steps: steps, period: period, recovery: recovery)
        }
        return nil
    }

    /// The uses refused since `since`.
    public func refusedOfflineUses(since: Date) async throws -> [(terminal: String, use: OfflineUse, reason: String)] {
        let logger = self.logger
        return try await connection { connection in
            var refused: [(terminal: String, use: OfflineUse, reason: String)] = []
            for try await (terminal, sequence, user, kind, at, step, code, reason) in try await connection.query(
                """
                SELECT terminal, sequence, user_name, kind, at, step, recovery_code, refused FROM terminal_offline_uses
                WHERE refused IS NOT NULL AND reported_at >= \(AuditEntry.milliseconds(since))
                ORDER BY reported_at, terminal, sequence LIMIT 1000
                """, logger: logger
            ).decode((String, Int64, String, String, Int64, Int64?, Int64?, String).self) {
                refused.append(
                    (
                        terminal,
                        OfflineUse(
                            sequence: sequence, user: user, kind: kind, at: date(at),
                            step: step.map { UInt64(max(0, $0)) }, recoveryCode: code),
                        reason
                    ))
            }
            return refused
        }
    }

    /// Offline use since `since`, by terminal and user.
    public func offlineUseSummary(since: Date) async throws -> [OfflineUseSummary] {
        let logger = self.logger
        return try await connection { connection in
            var summaries: [OfflineUseSummary] = []
            for try await (terminal, user, logins, failures, locks, first, last) in try await connection.query(
                """
                SELECT terminal, user_name,
                    count(*) FILTER (WHERE kind = 'login'), count(*) FILTER (WHERE kind = 'failure'),
                    count(*) FILTER (WHERE kind = 'lock'),
                    min(at) FILTER (WHERE kind = 'login'), max(at) FILTER (WHERE kind = 'login')
                FROM terminal_offline_uses WHERE at >= \(AuditEntry.milliseconds(since)) AND refused IS NULL
                GROUP BY terminal, user_name ORDER BY terminal, user_name
                """, logger: logger
            ).decode((String, String, Int64, Int64, Int64, Int64?, Int64?).self) {
                summaries.append(
                    OfflineUseSummary(
                        terminal: terminal, user: user, logins: Int(logins), failures: Int(failures), locks: Int(locks),
                        firstLogin: first.map(date), lastLogin: last.map(date)))
            }
            return summaries
        }
    }

    /// Every offline login since `since`, oldest first.
    public func offlineLogins(since: Date) async throws -> [(terminal: String, use: OfflineUse)] {
        let logger = self.logger
        return try await connection { connection in
            var logins: [(terminal: String, use: OfflineUse)] = []
            for try await (terminal, sequence, user, at, step, code, online) in try await connection.query(
                """
                SELECT terminal, sequence, user_name, at, step, recovery_code, online_at FROM terminal_offline_uses
                WHERE kind = 'login' AND refused IS NULL AND at >= \(AuditEntry.milliseconds(since)) ORDER BY at, terminal, sequence
                """, logger: logger
            ).decode((String, Int64, String, Int64, Int64?, Int64?, Int64?).self) {
                logins.append(
                    (
                        terminal,
                        OfflineUse(
                            sequence: sequence, user: user, kind: "login", at: date(at),
                            step: step.map { UInt64(max(0, $0)) }, recoveryCode: code, onlineAt: online.map(date))
                    ))
            }
            return logins
        }
    }

    /// Every double use found since `since`.
    public func offlineConflicts(since: Date) async throws -> [OfflineConflict] {
        let logger = self.logger
        return try await connection { connection in
            var conflicts: [OfflineConflict] = []
            for try await (user, step, first, second) in try await connection.query(
                """
                SELECT user_name, step, first_terminal, second_terminal FROM offline_conflicts
                WHERE found_at >= \(AuditEntry.milliseconds(since)) ORDER BY found_at, user_name, step
                """, logger: logger
            ).decode((String, Int64, String, String).self) {
                conflicts.append(OfflineConflict(user: user, step: UInt64(max(0, step)), terminals: [first, second]))
            }
            return conflicts
        }
    }
}
