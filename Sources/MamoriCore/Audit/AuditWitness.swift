import Foundation

/// The newest signed checkpoint kept outside the database: a file beside the state folder,
/// replaced atomically at every checkpoint, and a line in the system log.
///
/// A trail cut off at its end together with its last checkpoints still verifies on its own; its
/// witness then names an entry the trail no longer reaches, and the verification says BROKEN.
/// What it cannot show: an attacker who can write the witness file too can put back an older
/// genuine witness (the system log's lines still show the later heads), and one who also holds the
/// signing key can sign a new, shorter history with matching checkpoints and witness; only a copy
/// of the heads held elsewhere (the system log shipped off the machine, a hub) reveals that.
public enum AuditWitness {
    static let format = "mamori-audit-witness-v1"

    /// The checkpoint as one JSON object (keys sorted), newline-terminated.
    public static func encode(_ checkpoint: AuditCheckpoint) -> [UInt8] {
        var object: [String: Any] = [
            "format": format, "sequence": checkpoint.sequence, "head_hash": hex(checkpoint.headHash),
            "time_ms": Int64((checkpoint.time.timeIntervalSince1970 * 1000).rounded()),
            "signature": Data(checkpoint.signature).base64EncodedString(),
        ]
        if let previous = checkpoint.previous { object["previous"] = hex(previous) }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Array(data) + [10]
    }

    /// Reads a witness written by ``encode(_:)``; nil when it is not one.
    public static func decode(_ bytes: [UInt8]) -> AuditCheckpoint? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            object["format"] as? String == format, let sequence = (object["sequence"] as? NSNumber)?.int64Value,
            let head = (object["head_hash"] as? String).flatMap(unhex),
            let time = (object["time_ms"] as? NSNumber)?.int64Value,
            let signature = (object["signature"] as? String).flatMap({ Data(base64Encoded: $0) })
        else { return nil }
        let previous = (object["previous"] as? String).flatMap(unhex)
        return AuditCheckpoint(
            sequence: sequence, headHash: head, time: Date(timeIntervalSince1970: Double(time) / 1000),
            previous: previous,
            signature: Array(signature)
        )
    }

    /// A failure to read or write the witness, as a sentence naming the file.
    public struct Failure: Error, CustomStringConvertible {
        /// One sentence naming the witness file and what could not be done with it.
        public let description: String
    }

    /// The witness at `path`: nil when there is no file yet; throws when it is there but unreadable.
    public static func read(_ path: String) throws(Failure) -> AuditCheckpoint? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path), let checkpoint = decode(Array(data)) else {
            throw Failure(description: "The audit witness \(path) cannot be read as a witness.")
        }
        return checkpoint
    }

    /// Replaces the witness at `path` atomically: a new file beside it, synced, renamed over the
    /// old one, and the folder synced, so that a crash leaves the old or the new witness whole.
    public static func write(_ checkpoint: AuditCheckpoint, to path: String) throws(Failure) {
        let temporary = path + ".new"
        let bytes = encode(checkpoint)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Failure(description: "The audit witness \(temporary) cannot be created.") }
        let written = bytes.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw Failure(description: "The audit witness \(path) cannot be written.")
        }
        let folder = open(
            (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
            O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folder >= 0 {
            fsync(folder)
            close(folder)
        }
    }

    /// The line for the system log: sequence, head hash, previous checkpoint and signature.
    public static func logLine(_ checkpoint: AuditCheckpoint) -> String {
        "mamori audit head seq=\(checkpoint.sequence) hash=\(hex(checkpoint.headHash)) "
            + "previous=\(checkpoint.previous.map(hex) ?? "-") signature=\(Data(checkpoint.signature).base64EncodedString())"
    }

    /// `bytes` as lowercase hex.
    public static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// The bytes a lowercase or uppercase hex string spells; nil when it is not hex.
    public static func unhex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            bytes.append(byte)
            index += 2
        }
        return bytes
    }
}
