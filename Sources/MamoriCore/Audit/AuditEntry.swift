internal import Crypto
public import Foundation

/// One entry of the audit trail. Nothing secret belongs in any field.
public struct AuditEntry: Sendable, Hashable {
    /// When it happened.
    public var time: Date
    /// The caller's Unix uid, when the act came over the socket.
    public var actorUID: Int?
    /// Who acted: the caller's login name, or the daemon itself.
    public var actor: String
    /// What happened, as a dotted name: `auth.success`, `auth.failure`, `role.grant`, `decision.deny`.
    public var event: String
    /// What it happened to: a user, role, session or resource.
    public var target: String
    /// `success`, `failure` or `denied`.
    public var outcome: String
    /// Details as text pairs, e.g. which factor failed. Never a secret.
    public var detail: [String: String]
    /// The terminal the act happened on (the daemon's `terminal` setting).
    public var terminal: String
    /// The zone of that terminal.
    public var zone: String
    /// The revision of the policy in force (`sha256:…`), so that a decision can be traced
    /// to the rules it was made on.
    public var policyRevision: String

    /// An entry with any event and outcome names; Mamori's own events use the ``AuditEvent``
    /// initialiser, so that their names cannot drift.
    public init(
        time: Date, actorUID: Int?, actor: String, event: String, target: String, outcome: String,
        detail: [String: String] = [:], terminal: String, zone: String, policyRevision: String
    ) {
        self.time = time
        self.actorUID = actorUID
        self.actor = actor
        self.event = event
        self.target = target
        self.outcome = outcome
        self.detail = detail
        self.terminal = terminal
        self.zone = zone
        self.policyRevision = policyRevision
    }

    /// An entry of one of Mamori's own events; the trail stores their names.
    public init(
        time: Date, actorUID: Int?, actor: String, event: AuditEvent, target: String, outcome: AuditOutcome,
        detail: [String: String] = [:], terminal: String, zone: String, policyRevision: String
    ) {
        self.init(
            time: time, actorUID: actorUID, actor: actor, event: event.rawValue, target: target,
            outcome: outcome.rawValue,
            detail: detail, terminal: terminal, zone: zone, policyRevision: policyRevision
        )
    }

    /// The canonical text the chain hashes: every field as one JSON object, keys sorted, no
    /// spaces, `time` in Unix milliseconds, `actor_uid` null for the daemon's own acts, `detail`
    /// as an object of strings. Exactly what Python's
    /// `json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes, so an
    /// auditor can recompute every hash with the standard library alone.
    public var canonicalJSON: String {
        Self.canonicalJSON(
            timeMillis: Self.milliseconds(time), actorUID: actorUID, actor: actor, event: event, target: target,
            outcome: outcome, detailJSON: canonicalDetail, terminal: terminal, zone: zone,
            policyRevision: policyRevision
        )
    }

    /// `detail` in canonical form (keys sorted by code point), as stored in the `detail` column.
    public var canonicalDetail: String {
        var output: [UInt8] = [UInt8(ascii: "{")]
        // UTF-8 byte order is code point order, which is how Python sorts str keys.
        for (index, key) in detail.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            Self.appendString(key, to: &output)
            output.append(UInt8(ascii: ":"))
            Self.appendString(detail[key] ?? "", to: &output)
        }
        output.append(UInt8(ascii: "}"))
        return String(decoding: output, as: UTF8.self)
    }

    /// The canonical text from stored fields, `detailJSON` spliced in as stored: a detail
    /// rewritten in any other form, even an equivalent one, no longer matches its hash.
    public static func canonicalJSON(
        timeMillis: Int64, actorUID: Int?, actor: String, event: String, target: String, outcome: String,
        detailJSON: String, terminal: String, zone: String, policyRevision: String
    ) -> String {
        // Written by hand: it runs once per entry when a trail of millions is verified, and
        // JSONSerialization there cost ten times what hashing does. Keys in sorted order.
        var output: [UInt8] = []
        output.reserveCapacity(256 + detailJSON.utf8.count)
        func key(_ name: StaticString, first: Bool = false) {
            if !first { output.append(UInt8(ascii: ",")) }
            output.append(UInt8(ascii: "\""))
            output.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            output.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        output.append(UInt8(ascii: "{"))
        key("actor", first: true)
        appendString(actor, to: &output)
        key("actor_uid")
        output.append(contentsOf: (actorUID.map(String.init) ?? "null").utf8)
        key("detail")
        output.append(contentsOf: detailJSON.utf8)
        key("event")
        appendString(event, to: &output)
        key("outcome")
        appendString(outcome, to: &output)
        key("policy_revision")
        appendString(policyRevision, to: &output)
        key("target")
        appendString(target, to: &output)
        key("terminal")
        appendString(terminal, to: &output)
        key("time")
        output.append(contentsOf: String(timeMillis).utf8)
        key("zone")
        appendString(zone, to: &output)
        output.append(UInt8(ascii: "}"))
        return String(decoding: output, as: UTF8.self)
    }

    /// A JSON string as Python's json module writes it with ensure_ascii=False: `"` and `\\`
    /// escaped, \b \f \n \r \t by name, other control characters as \u00xx, the rest as UTF-8.
    static func appendString(_ text: String, to output: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case ..<0x20:
                output.append(contentsOf: Array("\\u00".utf8))
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    /// Milliseconds since 1970, as stored and hashed.
    public static func milliseconds(_ time: Date) -> Int64 { Int64((time.timeIntervalSince1970 * 1000).rounded()) }

    /// The chain link: SHA-256 of the previous entry's hash followed by this entry's canonical JSON.
    public static func chainHash(previous: [UInt8], canonicalJSON: String) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: previous)
        hash.update(data: Array(canonicalJSON.utf8))
        return Array(hash.finalize())
    }

    /// The hash the first entry links to: 32 zero bytes.
    public static let genesis = [UInt8](repeating: 0, count: 32)
}
