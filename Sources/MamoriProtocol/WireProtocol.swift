import Foundation

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

    /// Fields whose values are secrets: never logged, never echoed.
    public static let secretFields: Set<String> = ["password", "code", "old_password", "new_password", "ticket"]

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

    public init(op: String, id: JSONValue? = nil, fields: [String: JSONValue] = [:]) {
        self.op = op
        self.id = id
        var all = fields
        all["op"] = .string(op)
        if let id { all["id"] = id }
        self.fields = all
    }

    /// A required string field, at most `maximumLength` bytes.
    public func string(_ name: String, maximumLength: Int = 256) throws(WireError) -> String {
        guard let value = try optionalString(name, maximumLength: maximumLength) else {
            throw WireError(.badRequest, "The field \"\(name)\" is required.", id: id)
        }
        return value
    }

    /// An optional string field, at most `maximumLength` bytes.
    public func optionalString(_ name: String, maximumLength: Int = 256) throws(WireError) -> String? {
        switch fields[name] {
        case nil, .null?: return nil
        case .string(let value)?:
            guard value.utf8.count <= maximumLength else {
                throw WireError(.badRequest, "The field \"\(name)\" is longer than \(maximumLength) bytes.", id: id)
            }
            return value
        default: throw WireError(.badRequest, "The field \"\(name)\" must be a string.", id: id)
        }
    }

    /// An optional boolean field.
    public func optionalBool(_ name: String) throws(WireError) -> Bool? {
        switch fields[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw WireError(.badRequest, "The field \"\(name)\" must be true or false.", id: id)
        }
    }

    /// An optional whole-number field.
    public func optionalInteger(_ name: String) throws(WireError) -> Int? {
        switch fields[name] {
        case nil, .null?: return nil
        case .number(let value)? where value.rounded() == value && abs(value) < 1e15: return Int(value)
        default: throw WireError(.badRequest, "The field \"\(name)\" must be a whole number.", id: id)
        }
    }

    /// An optional list of strings.
    public func optionalStrings(_ name: String, maximumCount: Int = 64) throws(WireError) -> [String]? {
        switch fields[name] {
        case nil, .null?: return nil
        case .array(let values)?:
            guard values.count <= maximumCount else {
                throw WireError(.badRequest, "The field \"\(name)\" has more than \(maximumCount) items.", id: id)
            }
            var strings: [String] = []
            for value in values {
                guard case .string(let text) = value, text.utf8.count <= 256 else {
                    throw WireError(.badRequest, "The field \"\(name)\" must be a list of strings.", id: id)
                }
                strings.append(text)
            }
            return strings
        default: throw WireError(.badRequest, "The field \"\(name)\" must be a list of strings.", id: id)
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
    public let code: ErrorCode
    public let message: String
    /// The request's id, when it was read before the failure.
    public let id: JSONValue?

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
