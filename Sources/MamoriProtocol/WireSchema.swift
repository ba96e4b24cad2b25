/// The JSON shape of a value on the socket, as the protocol declares it.
///
/// Request fields are declared once (``WireField``'s catalogue): the daemon reads every request
/// field through its declaration, so a limit written there is the limit enforced, and the JSON
/// Schema in `docs/protocol-v1.schema.json` is generated from the same declarations
/// (``ProtocolSchema``). Replies are declared beside each ``WireOperation``; their Swift types
/// (``WireReplyBody``, one per operation) are what the daemon builds and the command reads, and
/// the test suite checks every reply the daemon tests receive against the generated schema and
/// decodes it with its type.
public indirect enum WireType: Sendable {
    /// A string of at most `maxBytes` UTF-8 bytes, matching `pattern` (an ECMA-262 regular
    /// expression, for the schema) when one is given.
    case string(maxBytes: Int? = nil, pattern: String? = nil)
    /// An ISO 8601 time with an offset, e.g. `2026-04-01T00:00:00+09:00`.
    case time
    /// One of these strings.
    case oneOf([String])
    /// A whole number in `range` (JSON has no integers: the daemon refuses fractions).
    case integer(ClosedRange<Int>? = nil)
    /// `true` or `false`.
    case boolean
    /// A list of at most `maxItems` values, each of `element`'s shape.
    case list(_ element: WireType, maxItems: Int? = nil)
    /// An object with these fields and no others.
    case object([WireField])
    /// An object with free keys whose values all have `value`'s shape.
    case map(_ value: WireType)
    /// `type`, or `null`.
    case nullable(WireType)
    /// A string or a number: the request `id` a reply echoes.
    case stringOrNumber
}

/// One field of a request or a reply: its name on the wire, its shape, whether it must be
/// present, and what it means.
public struct WireField: Sendable {
    /// The key in the JSON object.
    public let name: String
    /// What the value may be.
    public let type: WireType
    /// Whether the object must carry it. Request fields in the catalogue are required; an
    /// operation that takes one as optional lists ``optional``.
    public let required: Bool
    /// A passphrase, a one-time code, a ticket: never logged, never echoed (``WireRequest/safeDescription``).
    public let secret: Bool
    /// One sentence for the schema's `description`.
    public let summary: String

    /// A required field.
    public init(_ name: String, _ type: WireType, secret: Bool = false, _ summary: String) {
        self.init(name: name, type: type, required: true, secret: secret, summary: summary)
    }

    private init(name: String, type: WireType, required: Bool, secret: Bool, summary: String) {
        self.name = name
        self.type = type
        self.required = required
        self.secret = secret
        self.summary = summary
    }

    /// Whether `text` fits this string field's byte limit (true for a field without one): for
    /// readers that take the value without ``WireRequest/string(_:)``, such as `authorize`'s fast path.
    public func fits(_ text: String) -> Bool {
        guard case .string(let maxBytes?, _) = type else { return true }
        return text.utf8.count <= maxBytes
    }

    /// The same field, which the object may leave out.
    public var optional: WireField {
        WireField(name: name, type: type, required: false, secret: secret, summary: summary)
    }

    /// The same field, which the object must carry.
    public var mandatory: WireField {
        WireField(name: name, type: type, required: true, secret: secret, summary: summary)
    }
}
