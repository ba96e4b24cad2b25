import Foundation

/// An audit entry as it leaves Mamori: in `audit export`, `audit tail` and the daemon's
/// `audit.read` replies. One definition, so that the offline export and the daemon's agree.
public struct AuditRecord: Codable, Sendable, Hashable {
    /// The entry's sequence number in the trail.
    public let seq: Int64
    /// ISO 8601 with milliseconds, UTC.
    public let time: String
    /// The caller's Unix uid; null for the daemon's own acts.
    public let actorUID: Int?
    /// Who acted: the caller's login name, or the daemon itself.
    public let actor: String
    /// What happened, as a dotted name such as `role.grant`.
    public let event: String
    /// What it happened to: a user, role, session or resource.
    public let target: String
    /// `success`, `failure` or `denied`.
    public let outcome: String
    /// Details as text pairs, e.g. which factor failed. Never a secret.
    public let detail: [String: String]
    /// The terminal the act happened on.
    public let terminal: String
    /// The zone of that terminal.
    public let zone: String
    /// The revision of the policy in force (`sha256:…`).
    public let policyRevision: String
    /// The entry's chain hash, hex.
    public let hash: String

    /// The record of a stored entry, its detail parsed (an unreadable one reads as empty).
    /// For reading, not verifying: a trail export (``AuditTrailExport``) keeps the detail as hashed.
    public init(_ stored: AuditChain.StoredEntry) {
        let entry = stored.entry
        seq = stored.sequence
        time = Self.timeFormat.format(entry.time)
        actorUID = entry.actorUID
        actor = entry.actor
        event = entry.event
        target = entry.target
        outcome = entry.outcome
        detail = entry.detail
        terminal = entry.terminal
        zone = entry.zone
        policyRevision = entry.policyRevision
        hash = stored.hash.map { String(format: "%02x", $0) }.joined()
    }

    static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The column names, in export order (CSV header, JSON keys).
    public static let columns = [
        "seq", "time", "actor_uid", "actor", "event", "target", "outcome", "detail", "terminal", "zone",
        "policy_revision", "hash",
    ]

    enum CodingKeys: String, CodingKey {
        case seq, time, actor, event, target, outcome, detail, terminal, zone, hash
        case actorUID = "actor_uid"
        case policyRevision = "policy_revision"
    }

    /// Writes `actor_uid` as null when absent (the daemon's own acts), so every record has every key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(seq, forKey: .seq)
        try container.encode(time, forKey: .time)
        try container.encode(actorUID, forKey: .actorUID)
        try container.encode(actor, forKey: .actor)
        try container.encode(event, forKey: .event)
        try container.encode(target, forKey: .target)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(detail, forKey: .detail)
        try container.encode(terminal, forKey: .terminal)
        try container.encode(zone, forKey: .zone)
        try container.encode(policyRevision, forKey: .policyRevision)
        try container.encode(hash, forKey: .hash)
    }

    /// The detail as compact JSON with sorted keys.
    public var detailJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(detail)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// One JSON line, keys sorted.
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// One CSV row in ``columns`` order (RFC 4180 quoting, spreadsheet formulas defused).
    public var csvRow: String {
        [
            "\(seq)", time, actorUID.map(String.init) ?? "", actor, event, target, outcome, detailJSON, terminal, zone,
            policyRevision, hash,
        ].map(Self.csvField).joined(separator: ",")
    }

    /// RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled. A leading
    /// =, +, - or @ is prefixed with ' so that a spreadsheet never runs it as a formula.
    public static func csvField(_ value: String) -> String {
        var text = value
        if let first = text.first, "=+-@".contains(first) { text = "'" + text }
        guard text.contains(where: { ",\"\n\r".contains($0) }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// One line for a person reading `audit tail`: time, event, outcome, actor → target, details.
    public var summaryLine: String {
        let details = detail.keys.sorted().map { "\($0)=\(detail[$0] ?? "")" }.joined(separator: " ")
        let uid = actorUID.map { " (uid \($0))" } ?? ""
        return "#\(seq) \(time) \(event) \(outcome) \(actor)\(uid) → \(target)"
            + (details.isEmpty ? "" : "  \(details)")
    }
}
