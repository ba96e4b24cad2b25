import Foundation
import MamoriProtocol

/// Every reply the tests receive, kept for the schema check: when `MAMORI_REPLY_LOG` names a
/// file, each request's `op` and its reply line are appended to it as one JSON line, and
/// `make test` then checks every reply against docs/protocol-v1.schema.json with an independent
/// validator (scripts/check-replies, Python's jsonschema). Each success reply is also decoded
/// with its operation's Swift type (``WireOperation/replyType``), and the record says whether that
/// worked, so the check also fails when a reply type no longer reads what the daemon sends.
public enum ReplyLog {
    private static let path = ProcessInfo.processInfo.environment["MAMORI_REPLY_LOG"]

    /// Records the reply `reply` (a line, without its newline) to the request line `request`.
    public static func record(request: some Collection<UInt8>, reply: some Collection<UInt8>) {
        guard let path else { return }
        let object = try? JSONSerialization.jsonObject(with: Data(request)) as? [String: Any]
        let op = object?["op"] as? String
        // The reply goes in as its text: the checker parses it, so a reply that is not JSON fails there.
        var record: [String: Any] = ["op": op ?? NSNull(), "reply": String(decoding: Array(reply), as: UTF8.self)]
        if let op, let type = WireOperation(rawValue: op)?.replyType, let fields = WireReply.parse(Array(reply)),
            fields["ok"] == .bool(true)
        {
            do {
                _ = try type.init(reply: fields)
                record["decoded"] = true
            } catch let error as DecodingError {
                // Where it failed, never a value: a test reply can carry a ticket, a seed or codes.
                record["decoded"] = "\(type): \(Self.path(of: error))"
            } catch {
                record["decoded"] = "\(type): not decodable"
            }
        }
        guard var line = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        line.append(10)
        // O_APPEND: each record is one write at the end, whichever test or process writes it.
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        _ = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    }

    private static func path(of error: DecodingError) -> String {
        let context: DecodingError.Context
        let what: String
        switch error {
        case .typeMismatch(_, let found): (context, what) = (found, "wrong type")
        case .valueNotFound(_, let found): (context, what) = (found, "null")
        case .keyNotFound(let key, let found): (context, what) = (found, "missing \(key.stringValue)")
        case .dataCorrupted(let found): (context, what) = (found, "unreadable")
        @unknown default: return "not decodable"
        }
        return what + " at /" + context.codingPath.map(\.stringValue).joined(separator: "/")
    }
}
