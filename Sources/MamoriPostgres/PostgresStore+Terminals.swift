public import Foundation
import Logging
public import MamoriCore
public import MamoriStore
import PostgresNIO

/// The town's terminals: added with a one-time join token, joined with a certificate, removed.
extension PostgresStore: TerminalRegistry {
    static let terminalColumns = """
        name, zone, added_at, added_by, token_expires_at, joined_at, certificate_serial,
        certificate_expires_at, removed_at
        """

    typealias TerminalRow = (String, String, Int64, String, Int64?, Int64?, String?, Int64?, Int64?)

    static func terminal(_ row: TerminalRow) -> TerminalRecord {
        TerminalRecord(
            name: row.0, zone: row.1, addedAt: date(row.2), addedBy: row.3, tokenExpiresAt: row.4.map(date),
            joinedAt: row.5.map(date), certificateSerial: row.6, certificateExpiresAt: row.7.map(date),
            removedAt: row.8.map(date))
    }

    /// Adds `terminal` awaiting its join, replacing a removed terminal of that name (whose
    /// certificate digest goes with it, so it stays refused); `conflict` for a name in service.
    public func addTerminal(_ terminal: TerminalRecord, tokenDigest: [UInt8], audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let added = try await connection.query(
                """
                INSERT INTO terminals (name, zone, added_at, added_by, token_digest, token_expires_at)
                VALUES (\(terminal.name), \(terminal.zone), \(AuditEntry.milliseconds(terminal.addedAt)),
                    \(terminal.addedBy), \(ByteBuffer(bytes: tokenDigest)),
                    \(terminal.tokenExpiresAt.map(AuditEntry.milliseconds)))
                ON CONFLICT (name) DO UPDATE SET
                    zone = excluded.zone, added_at = excluded.added_at, added_by = excluded.added_by,
                    token_digest = excluded.token_digest, token_expires_at = excluded.token_expires_at,
                    joined_at = NULL, certificate_serial = NULL, certificate_digest = NULL,
                    certificate_expires_at = NULL, removed_at = NULL, previous_certificate_digest = NULL,
                    previous_certificate_expires_at = NULL, previous_certificate_serial = NULL,
                    certificate_key_digest = NULL
                WHERE terminals.removed_at IS NOT NULL
                RETURNING name
                """, logger: logger)
            guard try await Self.count(added) == 1 else {
                throw StoreError(
                    .conflict, "The terminal '\(terminal.name)' is in service; remove it first to issue a new token.")
            }
        }
    }

    /// Uses a join token (``TerminalRegistry/joinTerminal(tokenDigest:now:issue:audit:)``); an unknown
    /// token is turned away by a read without the chain lock.
    public func joinTerminal(
        tokenDigest: [UInt8], now: Date,
        issue: @escaping @Sendable (TerminalRecord) async throws -> IssuedTerminalCertificate,
        audit: @escaping @Sendable (TerminalRecord) -> AuditEntry
    ) async throws -> (TerminalRecord, IssuedTerminalCertificate)? {
        let logger = self.logger
        // Looked up first without the chain lock: a flood of wrong tokens takes no lock that
        // logins need. The locked transaction below looks again.
        let known = try await read { client in
            try await Self.count(
                try await client.query(
                    """
                    SELECT name FROM terminals
                    WHERE token_digest = \(ByteBuffer(bytes: tokenDigest)) AND removed_at IS NULL
                        AND joined_at IS NULL AND token_expires_at > \(AuditEntry.milliseconds(now))
                    """, logger: logger))
        }
        guard known > 0 else { return nil }
        return try await write(audit: nil) { connection in
            var found: TerminalRecord?
            // The token is a digest of 256 random bits: looking it up by index tells a guesser nothing.
            for try await row in try await connection.query(
                """
                SELECT \(unescaped: Self.terminalColumns) FROM terminals
                WHERE token_digest = \(ByteBuffer(bytes: tokenDigest)) AND removed_at IS NULL
                    AND joined_at IS NULL AND token_expires_at > \(AuditEntry.milliseconds(now))
                FOR UPDATE
                """, logger: logger
            ).decode(TerminalRow.self) {
                found = Self.terminal(row)
            }
            guard var terminal = found else { return nil }
            let certificate = try await issue(terminal)
            try await connection.query(
                """
                UPDATE terminals SET token_digest = NULL, token_expires_at = NULL,
                    joined_at = \(AuditEntry.milliseconds(now)), certificate_serial = \(certificate.serial),
                    certificate_digest = \(ByteBuffer(bytes: certificate.digest)),
                    certificate_expires_at = \(AuditEntry.milliseconds(certificate.expiresAt))
                WHERE name = \(terminal.name)
                """, logger: logger)
            terminal.tokenExpiresAt = nil
            terminal.joinedAt = now
            terminal.certificateSerial = certificate.serial
            terminal.certificateExpiresAt = certificate.expiresAt
            try await self.append(audit(terminal), connection)
            return (terminal, certificate)
        }
    }

    /// The joined terminal in service whose certificate has this DER digest.
    public func joinedTerminal(certificateDigest: [UInt8]) async throws -> TerminalRecord? {
        try await read { client in
            var found: TerminalRecord?
            for try await row in try await client.query(
                """
                SELECT \(unescaped: Self.terminalColumns) FROM terminals
                WHERE removed_at IS NULL AND (certificate_digest = \(ByteBuffer(bytes: certificateDigest))
                    OR (previous_certificate_digest = \(ByteBuffer(bytes: certificateDigest))
                        AND previous_certificate_expires_at > \(AuditEntry.milliseconds(Date()))))
                """, logger: logger
            ).decode(TerminalRow.self) {
                found = Self.terminal(row)
            }
            return found
        }
    }

    /// Every terminal, removed ones included, by name.
    public func terminals() async throws -> [TerminalRecord] {
        try await read { client in
            var terminals: [TerminalRecord] = []
            for try await row in try await client.query(
                "SELECT \(unescaped: Self.terminalColumns) FROM terminals ORDER BY name", logger: logger
            ).decode(TerminalRow.self) {
                terminals.append(Self.terminal(row))
            }
            return terminals
        }
    }

    /// Renews a joined terminal's certificate
    /// (``TerminalRegistry/renewTerminal(named:serial:keyDigest:now:dueWithin:issue:audit:)``).
    public func renewTerminal(
        named name: String, serial: String, keyDigest: [UInt8], now: Date, dueWithin: TimeInterval,
        issue: @escaping @Sendable (TerminalRecord) async throws -> IssuedTerminalCertificate,
        audit: @escaping @Sendable (TerminalRecord, IssuedTerminalCertificate) -> AuditEntry
    ) async throws -> TerminalRenewal {
        let logger = self.logger
        // The chain lock first, as every other writer of the register takes it: no deadlock with
        // a removal.
        return try await write(audit: nil) { connection in
            var found: (TerminalRecord, String?, ByteBuffer?)?
            for try await row in try await connection.query(
                """
                SELECT \(unescaped: Self.terminalColumns), previous_certificate_serial, certificate_key_digest
                FROM terminals WHERE name = \(name) AND removed_at IS NULL
                FOR UPDATE
                """, logger: logger
            ).decode(
                (String, String, Int64, String, Int64?, Int64?, String?, Int64?, Int64?, String?, ByteBuffer?).self)
            {
                found = (
                    Self.terminal((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8)), row.9, row.10
                )
            }
            guard let (current, previousSerial, currentKey) = found, current.joinedAt != nil else {
                return .notInService
            }
            let retry: Bool
            if current.certificateSerial == serial {
                let expires = current.certificateExpiresAt ?? now
                guard expires.timeIntervalSince(now) <= dueWithin else { return .notDue(expiresAt: expires) }
                retry = false
            } else if let previousSerial, previousSerial == serial, let currentKey,
                constantTimeEquals(Array(currentKey.readableBytesView), keyDigest)
            {
                retry = true
            } else {
                return .replaced
            }
            let certificate = try await issue(current)
            // A retry keeps the certificate the terminal still holds as the replaced one.
            try await connection.query(
                """
                UPDATE terminals SET
                    previous_certificate_digest = CASE WHEN \(retry) THEN previous_certificate_digest
                        ELSE certificate_digest END,
                    previous_certificate_expires_at = CASE WHEN \(retry) THEN previous_certificate_expires_at
                        ELSE certificate_expires_at END,
                    previous_certificate_serial = CASE WHEN \(retry) THEN previous_certificate_serial
                        ELSE certificate_serial END,
                    certificate_serial = \(certificate.serial),
                    certificate_digest = \(ByteBuffer(bytes: certificate.digest)),
                    certificate_expires_at = \(AuditEntry.milliseconds(certificate.expiresAt)),
                    certificate_key_digest = \(ByteBuffer(bytes: keyDigest))
                WHERE name = \(name)
                """, logger: logger)
            var renewed = current
            renewed.certificateSerial = certificate.serial
            renewed.certificateExpiresAt = certificate.expiresAt
            var asked = current
            asked.certificateSerial = serial
            try await self.append(audit(asked, certificate), connection)
            return .renewed(renewed, certificate)
        }
    }

    /// Removes a terminal in service, and records the removal as a change.
    public func removeTerminal(named name: String, at time: Date, audit: AuditEntry) async throws {
        let logger = self.logger
        try await write(audit: audit) { connection in
            let removed = try await connection.query(
                """
                UPDATE terminals SET removed_at = \(AuditEntry.milliseconds(time)), token_digest = NULL,
                    token_expires_at = NULL, previous_certificate_digest = NULL, previous_certificate_expires_at = NULL,
                    previous_certificate_serial = NULL
                WHERE name = \(name) AND removed_at IS NULL RETURNING name
                """, logger: logger)
            guard try await Self.count(removed) == 1 else {
                throw StoreError(.notFound, "There is no terminal '\(name)' in service.")
            }
        }
    }
}
