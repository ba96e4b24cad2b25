import Foundation

/// The JSON Schema (draft 2020-12) of the socket protocol, generated from ``WireOperation`` and the
/// field declarations: `docs/protocol-v1.schema.json` is this text (`mamori schema` prints it,
/// and a test keeps the file equal to it). A client in any language can be written from it.
///
/// `$defs` holds `OP.request` and `OP.reply` for every operation and `error.reply` for every
/// failure; the schema itself describes one request line.
public enum ProtocolSchema {
    /// The schema as JSON text: pretty-printed, keys sorted, ending with a newline.
    public static var text: String {
        let compact = Data(JSONValue.object(document).text.utf8)
        guard let object = try? JSONSerialization.jsonObject(with: compact),
            let pretty = try? JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        else { return JSONValue.object(document).text + "\n" }
        return String(decoding: pretty, as: UTF8.self) + "\n"
    }

    /// The schema as a value.
    public static var document: [String: JSONValue] {
        var definitions: [String: JSONValue] = ["error.reply": errorReply]
        for operation in WireOperation.allCases {
            definitions["\(operation.rawValue).request"] = request(operation)
            definitions["\(operation.rawValue).reply"] = reply(operation)
        }
        return [
            "$schema": .string("https://json-schema.org/draft/2020-12/schema"),
            "$id": .string("urn:mamori:protocol:\(WireLimits.protocolVersion)"),
            "title": .string("The mamorid socket protocol, version \(WireLimits.protocolVersion)"),
            "description": .string(
                "One JSON object per line (UTF-8, at most \(WireLimits.maximumLineLength) bytes). This schema is a request "
                    + "line; $defs has each operation's request and reply and the error reply. String limits are in "
                    + "UTF-8 bytes on the socket; maxLength, counted in characters, is the nearest JSON Schema has. "
                    + "See docs/protocol.md."
            ),
            "oneOf": .array(WireOperation.allCases.map { reference("\($0.rawValue).request") }),
            "$defs": .object(definitions),
        ]
    }

    private static func reference(_ name: String) -> JSONValue { .object(["$ref": .string("#/$defs/\(name)")]) }

    private static let id = WireField("id", .stringOrNumber, "Any string or number; the reply echoes it.").optional

    private static func request(_ operation: WireOperation) -> JSONValue {
        let op = WireField("op", .oneOf([operation.rawValue]), "The operation.")
        var fields = [op, id] + operation.requestFields
        if !operation.requestFields.contains(where: { $0.name == WireField.session.name }) {
            fields.append(WireField.session.optional)
        }
        fields.append(WireField.deadline.optional)
        return object(fields)
    }

    private static func reply(_ operation: WireOperation) -> JSONValue {
        object([id] + operation.replyFields, ok: true)
    }

    private static var errorReply: JSONValue {
        object(
            [
                id,
                WireField(
                    "error",
                    .object([
                        WireField("code", .oneOf(ErrorCode.allCases.map(\.rawValue)), "What clients act on."),
                        WireField("message", .string(), "A whole sentence for people; never a secret."),
                    ]),
                    "Why."
                ),
            ],
            ok: false
        )
    }

    /// An object of exactly these fields; a reply (`ok` given) also carries `"ok"` as that constant.
    private static func object(_ fields: [WireField], ok: Bool? = nil) -> JSONValue {
        var properties: [String: JSONValue] = [:]
        var required = fields.filter(\.required).map(\.name)
        for field in fields {
            var shape = schema(field.type)
            shape["description"] = .string(field.secret ? field.summary + " A secret: never logged." : field.summary)
            properties[field.name] = .object(shape)
        }
        if let ok {
            properties["ok"] = .object([
                "const": .bool(ok), "description": .string(ok ? "The request was served." : "The request was refused."),
            ])
            required.append("ok")
        }
        return .object([
            "type": .string("object"),
            "properties": .object(properties),
            "required": .array(required.sorted().map { .string($0) }),
            "additionalProperties": .bool(false),
        ])
    }

    /// An ISO 8601 time with an offset (`Z` or `±hh:mm`), fractional seconds allowed.
    static let timePattern =
        #"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"#

    private static func schema(_ type: WireType) -> [String: JSONValue] {
        switch type {
        case .string(let maxBytes, let pattern):
            var shape: [String: JSONValue] = ["type": .string("string")]
            if let maxBytes { shape["maxLength"] = .number(Double(maxBytes)) }
            if let pattern { shape["pattern"] = .string(pattern) }
            return shape
        case .time:
            return ["type": .string("string"), "format": .string("date-time"), "pattern": .string(timePattern)]
        case .oneOf(let values):
            return ["type": .string("string"), "enum": .array(values.map { .string($0) })]
        case .integer(let range):
            var shape: [String: JSONValue] = ["type": .string("integer")]
            if let range {
                shape["minimum"] = .number(Double(range.lowerBound))
                shape["maximum"] = .number(Double(range.upperBound))
            }
            return shape
        case .boolean:
            return ["type": .string("boolean")]
        case .list(let element, let maxItems):
            var shape: [String: JSONValue] = ["type": .string("array"), "items": .object(schema(element))]
            if let maxItems { shape["maxItems"] = .number(Double(maxItems)) }
            return shape
        case .object(let fields):
            guard case .object(let shape) = object(fields) else { return [:] }
            return shape
        case .map(let value):
            return ["type": .string("object"), "additionalProperties": .object(schema(value))]
        case .nullable(let inner):
            return ["anyOf": .array([.object(schema(inner)), .object(["type": .string("null")])])]
        case .stringOrNumber:
            return ["type": .array([.string("string"), .string("number")])]
        }
    }
}
