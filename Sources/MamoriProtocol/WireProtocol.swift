public import Foundation

/// The socket protocol's fixed numbers. See docs/protocol.md.
public enum WireLimits {
    /// The version of the protocol this build speaks, reported by `status`.
    public static let protocolVersion = 1
    /// The longest request line, in bytes, newline excluded.
    public static let maximumLineLength = 64 * 1024
}

/// The codes an error reply can carry. Clients act on the code; the message is for people.
public enum ErrorCode: String, Sendable, CaseIterable {
    /// The line is not a JSON object, or a field is missing or of the wrong type.
    case badRequest = "bad_request"
    /// The line is longer than ``WireLimits/maximumLineLength``.
    case lineTooLong = "line_too_long"
    /// No such operation.
    case unknownOperation = "unknown_op"
    /// The policy does not allow the caller to do this.
    case denied
    /// The policy would allow it in a session with more factors.
    case stepUpRequired = "step_up_required"
    /// Authentication failed. Deliberately says nothing about which factor or whether the user exists.
    case authenticationFailed = "auth_failed"
    /// The daemon, or the caller's share of it (connections, requests, Argon2 runs), is full;
    /// try again shortly.
    case busy
    /// The caller was denied too often within the interval and is cut off until it ends.
    case rateLimited = "rate_limited"
    /// The user, session or role does not exist.
    case notFound = "not_found"
    /// The thing already exists, or the request conflicts with the current state.
    case conflict
    /// The request is well-formed but breaks a rule: a constraint, a holder limit, a weak password.
    case invalid
    /// The daemon could not do its work (storage failure); nothing was changed.
    case `internal`
}

/// One request line, parsed: the operation, the caller's correlation id, and the fields.
public struct WireRequest: Sendable {
    /// The operation, e.g. `authenticate`.
    public let op: String
    /// Echoed in the reply as given (string or number), if present.
    public let id: JSONValue?
    /// Every field of the object, `op` and `id` included.
    public let fields: [String: JSONValue]

    /// Fields whose values are secrets: never logged, never echoed. Read off the catalogue, so a
    /// new secret field is redacted by being declared one.
    public static let secretFields: Set<String> = Set(
        WireOperation.allCases.flatMap(\.requestFields).filter(\.secret).map(\.name)
    )

    /// Parses one line (without its newline).
    public init(line: some Collection<UInt8>) throws(WireError) {
        guard let value = JSONValue.parse(line) else {
            throw WireError(.badRequest, "The line is not valid JSON.")
        }
        guard case .object(let fields) = value else {
            throw WireError(.badRequest, "A request is one JSON object per line.")
        }
        let id = fields["id"]
        switch id {
        case nil, .string?, .number?: break
        default: throw WireError(.badRequest, "The id must be a string or a number.", id: nil)
        }
        guard case .string(let op)? = fields["op"] else {
            throw WireError(.badRequest, "The request has no \"op\" string.", id: id)
        }
        self.op = op
        self.id = id
        self.fields = fields
    }

    /// A request built in code (clients, tests): `op` and, when given, `id` are written into
    /// `fields`, replacing any there.
    public init(op: String, id: JSONValue? = nil, fields: [String: JSONValue] = [:]) {
        self.op = op
        self.id = id
        var all = fields
        all["op"] = .string(op)
        if let id { all["id"] = id }
        self.fields = all
    }

    /// A required field of string shape (``WireType/string(maxBytes:pattern:)`` or ``WireType/oneOf(_:)``),
    /// checked against its declaration.
    public func string(_ field: WireField) throws(WireError) -> String {
        guard let value = try optionalString(field) else {
            throw WireError(.badRequest, "The field \"\(field.name)\" is required.", id: id)
        }
        return value
    }

    /// An optional field of string shape, checked against its declaration: the byte limit, or
    /// membership of the listed values. (A `pattern` is for the schema's readers; the daemon
    /// checks such rules where it can name what is wrong, e.g. a user name.)
    public func optionalString(_ field: WireField) throws(WireError) -> String? {
        switch fields[field.name] {
        case nil, .null?: return nil
        case .string(let value)?:
            try check(value, against: field.type, field: field.name)
            return value
        default: throw WireError(.badRequest, "The field \"\(field.name)\" must be a string.", id: id)
        }
    }

    /// An optional time field (``WireType/time``): ISO 8601 with an offset.
    public func optionalTime(_ field: WireField) throws(WireError) -> Date? {
        guard let text = try optionalString(field) else { return nil }
        return try parseTime(text, field: field.name)
    }

    /// A required time field (``WireType/time``), with the text as sent (for the audit trail).
    public func time(_ field: WireField) throws(WireError) -> (text: String, time: Date) {
        let text = try string(field)
        return (text, try parseTime(text, field: field.name))
    }

    private func parseTime(_ text: String, field name: String) throws(WireError) -> Date {
        guard let time = try? Date(text, strategy: .iso8601) else {
            throw WireError(
                .badRequest,
                "The field \"\(name)\" must be an ISO 8601 time with an offset, such as 2026-04-01T00:00:00+09:00.",
                id: id
            )
        }
        return time
    }

    /// An optional boolean field.
    public func optionalBool(_ field: WireField) throws(WireError) -> Bool? {
        switch fields[field.name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw WireError(.badRequest, "The field \"\(field.name)\" must be true or false.", id: id)
        }
    }

    /// An optional whole-number field (``WireType/integer(_:)``), within its declared range.
    public func optionalInteger(_ field: WireField) throws(WireError) -> Int? {
        let range: ClosedRange<Int>?
        if case .integer(let declared) = field.type { range = declared } else { range = nil }
        switch fields[field.name] {
        case nil, .null?: return nil
        case .number(let value)? where value.rounded() == value && abs(value) < 1e15:
            let integer = Int(value)
            if let range, !range.contains(integer) {
                throw WireError(
                    .badRequest,
                    "The field \"\(field.name)\" must be a whole number from \(range.lowerBound) to \(range.upperBound).",
                    id: id
                )
            }
            return integer
        default: throw WireError(.badRequest, "The field \"\(field.name)\" must be a whole number.", id: id)
        }
    }

    /// An optional list of strings (``WireType/list(_:maxItems:)``), each checked against the
    /// element's declaration.
    public func optionalStrings(_ field: WireField) throws(WireError) -> [String]? {
        guard case .list(let element, let maxItems) = field.type else {
            throw WireError(.internal, "The field \"\(field.name)\" is not declared as a list.", id: id)
        }
        switch fields[field.name] {
        case nil, .null?: return nil
        case .array(let values)?:
            if let maxItems, values.count > maxItems {
                throw WireError(.badRequest, "The field \"\(field.name)\" has more than \(maxItems) items.", id: id)
            }
            var strings: [String] = []
            for value in values {
                guard case .string(let text) = value else {
                    throw WireError(.badRequest, "The field \"\(field.name)\" must be a list of strings.", id: id)
                }
                try check(text, against: element, field: field.name)
                strings.append(text)
            }
            return strings
        default: throw WireError(.badRequest, "The field \"\(field.name)\" must be a list of strings.", id: id)
        }
    }

    private func check(_ value: String, against type: WireType, field name: String) throws(WireError) {
        switch type {
        case .string(let maxBytes, _):
            if let maxBytes, value.utf8.count > maxBytes {
                throw WireError(.badRequest, "The field \"\(name)\" is longer than \(maxBytes) bytes.", id: id)
            }
        case .time:
            // Long enough for any ISO 8601 time; the parse says whether it is one.
            if value.utf8.count > 64 {
                throw WireError(.badRequest, "The field \"\(name)\" is longer than 64 bytes.", id: id)
            }
        case .oneOf(let allowed):
            guard allowed.contains(value) else {
                throw WireError(
                    .badRequest, "The field \"\(name)\" must be one of \(allowed.joined(separator: ", ")).", id: id)
            }
        default:
            throw WireError(.internal, "The field \"\(name)\" is not declared as a string.", id: id)
        }
    }

    /// The request for logs: the operation and its fields, with secrets replaced.
    public var safeDescription: String {
        let parts = fields.keys.sorted().filter { $0 != "op" }.map { key -> String in
            if Self.secretFields.contains(key) { return "\(key)=<redacted>" }
            switch fields[key] {
            case .string(let value)?: return "\(key)=\(value.prefix(64))"
            case .number(let value)?: return "\(key)=\(value)"
            case .bool(let value)?: return "\(key)=\(value)"
            default: return "\(key)=…"
            }
        }
        return ([op] + parts).joined(separator: " ")
    }
}

/// A failure to report on the socket: a code and a safe, whole-sentence message.
public struct WireError: Error, Sendable {
    /// What clients act on.
    public let code: ErrorCode
    /// A whole sentence for people; it is sent and logged, so it never holds a secret.
    public let message: String
    /// The request's id, when it was read before the failure.
    public let id: JSONValue?

    /// A failure with its code and message; pass `id` once the request's id is known, so that the
    /// reply carries it.
    public init(_ code: ErrorCode, _ message: String, id: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.id = id
    }
}

/// Encodes replies: one JSON object per line, keys sorted so that output is stable.
public enum WireReply {
    /// `{"ok": true, …fields, "id": …}` and a newline.
    public static func success(_ fields: [String: JSONValue], id: JSONValue?) -> [UInt8] {
        var object = fields
        object["ok"] = .bool(true)
        if let id { object["id"] = id }
        return encode(object)
    }

    /// `{"ok": false, "error": {"code", "message"}, "id": …}` and a newline.
    public static func failure(_ error: WireError, id: JSONValue? = nil) -> [UInt8] {
        var object: [String: JSONValue] = [
            "ok": .bool(false),
            "error": .object(["code": .string(error.code.rawValue), "message": .string(error.message)]),
        ]
        if let id = id ?? error.id { object["id"] = id }
        return encode(object)
    }

    static func encode(_ object: [String: JSONValue]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        JSONValue.object(object).write(to: &output)
        output.append(10)
        return output
    }

    /// Encodes a request object as one line (for clients).
    public static func encodeRequest(_ fields: [String: JSONValue]) -> [UInt8] {
        encode(fields)
    }

    /// Parses a reply line (for clients and tests).
    public static func parse(_ line: some Collection<UInt8>) -> [String: JSONValue]? {
        guard case .object(let fields)? = JSONValue.parse(line) else { return nil }
        return fields
    }
}
