public import Foundation
public import MamoriCore

/// A terminal of the town as the hub knows it: added by an administrator, joined once with its
/// one-time token, removed when it leaves service. The row stays after removal, for the record.
public struct TerminalRecord: Sendable, Hashable {
    /// Where a terminal is in its life.
    public enum State: String, Sendable, CaseIterable {
        /// Added; its join token has not been used and has not expired.
        case awaitingJoin = "awaiting-join"
        /// Added; its join token expired unused. Remove it and add it again for a new one.
        case tokenExpired = "token-expired"
        /// Holds a certificate the hub issued, and the hub serves it.
        case joined
        /// Removed: its certificate is refused, its connections closed.
        case removed
    }

    /// The terminal's name, unique in the town (`counter-3`, `kokuho-1`); its certificate's subject.
    public var name: String
    /// The policy zone the terminal is in.
    public var zone: String
    /// When it was added.
    public var addedAt: Date
    /// Who added it (the administrator's label in the audit trail).
    public var addedBy: String
    /// When its join token stops being accepted (nil once joined or removed).
    public var tokenExpiresAt: Date?
    /// When it joined; nil until then.
    public var joinedAt: Date?
    /// Its certificate's serial number in hex; nil until joined.
    public var certificateSerial: String?
    /// When its certificate expires; nil until joined.
    public var certificateExpiresAt: Date?
    /// When it was removed; nil while in service.
    public var removedAt: Date?

    /// Creates a record.
    public init(
        name: String, zone: String, addedAt: Date, addedBy: String, tokenExpiresAt: Date? = nil,
        joinedAt: Date? = nil, certificateSerial: String? = nil, certificateExpiresAt: Date? = nil,
        removedAt: Date? = nil
    ) {
        self.name = name
        self.zone = zone
        self.addedAt = addedAt
        self.addedBy = addedBy
        self.tokenExpiresAt = tokenExpiresAt
        self.joinedAt = joinedAt
        self.certificateSerial = certificateSerial
        self.certificateExpiresAt = certificateExpiresAt
        self.removedAt = removedAt
    }

    /// Its state at `now`.
    public func state(at now: Date) -> State {
        if removedAt != nil { return .removed }
        if joinedAt != nil { return .joined }
        if let expiry = tokenExpiresAt, expiry > now { return .awaitingJoin }
        return .tokenExpired
    }
}

/// What became of a terminal's renewal (``TerminalRegistry/renewTerminal(named:serial:keyDigest:now:dueWithin:issue:audit:)``).
public enum TerminalRenewal: Sendable {
    /// Renewed: the terminal's record after, and its new certificate.
    case renewed(TerminalRecord, IssuedTerminalCertificate)
    /// The certificate in use has more than the window left; it expires then.
    case notDue(expiresAt: Date)
    /// The certificate presented was replaced by a renewal, and this is no retry of it: someone
    /// else holds a key of this terminal.
    case replaced
    /// The terminal is not in service.
    case notInService
}

/// The certificate a hub issues to a joining terminal, as the registry keeps it: enough to know
/// the certificate again at every connection, and to list it. The certificate itself is not kept.
public struct IssuedTerminalCertificate: Sendable, Hashable {
    /// The serial number in hex.
    public var serial: String
    /// SHA-256 of the certificate's DER: how the hub knows a presented certificate is this one.
    public var digest: [UInt8]
    /// When the certificate expires.
    public var expiresAt: Date
    /// The certificate, PEM, for the joining terminal.
    public var pem: String

    /// Creates a record of an issued certificate.
    public init(serial: String, digest: [UInt8], expiresAt: Date, pem: String) {
        self.serial = serial
        self.digest = digest
        self.expiresAt = expiresAt
        self.pem = pem
    }
}

/// The hub's register of terminals (a store that keeps one makes its daemon a hub). Tokens are kept
/// as SHA-256 digests, never as themselves: a copy of the database cannot join a terminal.
public protocol TerminalRegistry: Sendable {
    /// Adds a terminal awaiting its join, with the digest of its one-time token; `audit` records it in
    /// the same transaction. A name in service (awaiting its join or joined) is a `conflict`; a
    /// removed name may be added again, and its old certificate stays refused.
    func addTerminal(_ terminal: TerminalRecord, tokenDigest: [UInt8], audit: AuditEntry) async throws

    /// Uses a join token: finds the terminal awaiting its join under `tokenDigest` whose token has not
    /// expired at `now`, asks `issue` for its certificate, and records the certificate and the entry
    /// `audit` makes, all in one transaction, so that a token joins at most one terminal once. Returns
    /// nil, changing nothing, for a token that is unknown, used, expired or whose terminal was removed.
    func joinTerminal(
        tokenDigest: [UInt8], now: Date,
        issue: @escaping @Sendable (TerminalRecord) async throws -> IssuedTerminalCertificate,
        audit: @escaping @Sendable (TerminalRecord) -> AuditEntry
    ) async throws -> (TerminalRecord, IssuedTerminalCertificate)?

    /// Renews the certificate of the joined terminal `name`, asked over a connection made with the
    /// certificate of serial `serial`, for the key whose SubjectPublicKeyInfo has SHA-256
    /// `keyDigest`: asks `issue` for the new one and records it and the entry `audit` makes (given
    /// the record as it was before), in one transaction under the chain lock.
    ///
    /// - With the certificate in use: only within `dueWithin` of its expiry. The one it replaces
    ///   stays accepted until it expires, so that a terminal that never received the reply can
    ///   still connect.
    /// - With the certificate the last renewal replaced, for the same key as that renewal: the
    ///   retry of a renewal whose reply was lost; issued again, the replaced one kept.
    /// - Anything else changes nothing.
    func renewTerminal(
        named name: String, serial: String, keyDigest: [UInt8], now: Date, dueWithin: TimeInterval,
        issue: @escaping @Sendable (TerminalRecord) async throws -> IssuedTerminalCertificate,
        audit: @escaping @Sendable (TerminalRecord, IssuedTerminalCertificate) -> AuditEntry
    ) async throws -> TerminalRenewal

    /// The joined terminal whose certificate (or the one its last renewal replaced) has this DER
    /// digest; nil for a certificate the register does not hold, or holds for a removed terminal.
    func joinedTerminal(certificateDigest: [UInt8]) async throws -> TerminalRecord?

    /// Every terminal, removed ones included, by name.
    func terminals() async throws -> [TerminalRecord]

    /// Removes a terminal in service (`not-found` otherwise): its token and certificate stop being
    /// accepted at once. `audit` records it in the same transaction, and it is a change terminals and
    /// hubs learn of.
    func removeTerminal(named name: String, at time: Date, audit: AuditEntry) async throws
}
