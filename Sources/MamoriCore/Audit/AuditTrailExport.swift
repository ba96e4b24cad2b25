public import Foundation

/// The audit trail as one file an auditor verifies without the daemon or its database: JSON
/// lines, written by `mamori audit export --format trail` (through mamorid) and by
/// `mamorid export-audit` (from a copy of the database), read by `mamori audit verify --export`
/// and by `contrib/mamori-audit-verify.py`.
///
/// The first line is the ``Header``; then every ``Checkpoint``, oldest first; then every
/// ``Entry`` in sequence order, each exactly as stored (its detail as the stored text, its link
/// and hash), so that the verifier hashes what the store hashed. Each line is one JSON object
/// with a `type` of `header`, `checkpoint` or `entry`, keys sorted.
///
/// The export proves nothing by itself about who made it: whoever edits the file can re-sign it
/// with a key of their own and put that key in the header. The verifying key an auditor obtained
/// separately (`mamori audit public-key`) is what makes the checkpoints evidence.
public enum AuditTrailExport {
    /// The header's `format`, for version 1 of this layout.
    public static let format = "mamori-audit-trail-v1"

    /// The first line: what the file is and, when the exporter knew it, the verifying key.
    public struct Header: Codable, Sendable, Hashable {
        /// Always `header`: what kind of line this is.
        public var type = "header"
        /// ``AuditTrailExport/format``; a reader refuses a file with any other.
        public var format = AuditTrailExport.format
        /// The Ed25519 verifying key, base64; absent in an export made from a database copy alone.
        public var publicKey: String?
        /// When the export was made, ISO 8601.
        public var exported: String

        /// A header naming `publicKey` (nil when the exporter has none) and the time of export.
        /// The key is for reference only: verifiers never trust it, since whoever edits the file can replace it.
        public init(publicKey: [UInt8]?, exported: Date) {
            self.publicKey = publicKey.map { Data($0).base64EncodedString() }
            self.exported = exported.formatted(.iso8601)
        }

        enum CodingKeys: String, CodingKey {
            case type, format, exported
            case publicKey = "public_key"
        }
    }

    /// A signed checkpoint, with the witness file's field names.
    public struct Checkpoint: Codable, Sendable, Hashable {
        /// Always `checkpoint`.
        public var type = "checkpoint"
        /// The sequence number of the entry the checkpoint signed.
        public var sequence: Int64
        /// Hex.
        public var headHash: String
        /// When it was signed, in Unix milliseconds (`time_ms`).
        public var timeMillis: Int64
        /// Hex; absent for checkpoints of the first format.
        public var previous: String?
        /// Base64.
        public var signature: String

        /// The line for a stored checkpoint.
        public init(_ checkpoint: AuditCheckpoint) {
            sequence = checkpoint.sequence
            headHash = AuditWitness.hex(checkpoint.headHash)
            timeMillis = AuditEntry.milliseconds(checkpoint.time)
            previous = checkpoint.previous.map(AuditWitness.hex)
            signature = Data(checkpoint.signature).base64EncodedString()
        }

        /// The checkpoint, or nil when a hash or the signature is not well formed.
        public var checkpoint: AuditCheckpoint? {
            guard let head = AuditWitness.unhex(headHash), let signature = Data(base64Encoded: signature) else {
                return nil
            }
            var link: [UInt8]?
            if let previous {
                guard let bytes = AuditWitness.unhex(previous) else { return nil }
                link = bytes
            }
            return AuditCheckpoint(
                sequence: sequence, headHash: head, time: Date(timeIntervalSince1970: Double(timeMillis) / 1000),
                previous: link,
                signature: Array(signature)
            )
        }

        enum CodingKeys: String, CodingKey {
            case type, sequence, previous, signature
            case headHash = "head_hash"
            case timeMillis = "time_ms"
        }
    }

    /// An entry as stored: the columns the hash covers, the link and the hash.
    public struct Entry: Codable, Sendable, Hashable {
        /// Always `entry`.
        public var type = "entry"
        /// The entry's sequence number.
        public var seq: Int64
        /// When it was written, in Unix milliseconds (`time_ms`), as hashed.
        public var timeMillis: Int64
        /// The caller's Unix uid; null for the daemon's own acts.
        public var actorUID: Int?
        /// Who acted: the caller's login name, or the daemon itself.
        public var actor: String
        /// What happened, as a dotted name such as `auth.failure`.
        public var event: String
        /// What it happened to: a user, role, session or resource.
        public var target: String
        /// `success`, `failure` or `denied`.
        public var outcome: String
        /// The stored detail text (canonical JSON of an object), not parsed: hashed as it is.
        public var detail: String
        /// The terminal the act happened on.
        public var terminal: String
        /// The zone of that terminal.
        public var zone: String
        /// The revision of the policy in force (`sha256:…`).
        public var policyRevision: String
        /// Hex.
        public var previousHash: String
        /// Hex.
        public var hash: String

        /// The line for a stored entry, every column copied as stored so that its hash still covers it.
        public init(_ stored: AuditChain.StoredEntry) {
            seq = stored.sequence
            timeMillis = stored.timeMillis
            actorUID = stored.actorUID
            actor = stored.actor
            event = stored.event
            target = stored.target
            outcome = stored.outcome
            detail = stored.detailJSON
            terminal = stored.terminal
            zone = stored.zone
            policyRevision = stored.policyRevision
            previousHash = AuditWitness.hex(stored.previousHash)
            hash = AuditWitness.hex(stored.hash)
        }

        /// The stored entry, or nil when a hash is not hex.
        public var stored: AuditChain.StoredEntry? {
            guard let previous = AuditWitness.unhex(previousHash), let hash = AuditWitness.unhex(hash) else {
                return nil
            }
            return AuditChain.StoredEntry(
                sequence: seq, timeMillis: timeMillis, actorUID: actorUID, actor: actor, event: event, target: target,
                outcome: outcome, detailJSON: detail, terminal: terminal, zone: zone, policyRevision: policyRevision,
                previousHash: previous, hash: hash
            )
        }

        enum CodingKeys: String, CodingKey {
            case type, seq, actor, event, target, outcome, detail, terminal, zone, hash
            case timeMillis = "time_ms"
            case actorUID = "actor_uid"
            case policyRevision = "policy_revision"
            case previousHash = "prev_hash"
        }

        /// Writes `actor_uid` as null when absent (the daemon's own acts), as the store holds it.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(type, forKey: .type)
            try container.encode(seq, forKey: .seq)
            try container.encode(timeMillis, forKey: .timeMillis)
            try container.encode(actorUID, forKey: .actorUID)
            try container.encode(actor, forKey: .actor)
            try container.encode(event, forKey: .event)
            try container.encode(target, forKey: .target)
            try container.encode(outcome, forKey: .outcome)
            try container.encode(detail, forKey: .detail)
            try container.encode(terminal, forKey: .terminal)
            try container.encode(zone, forKey: .zone)
            try container.encode(policyRevision, forKey: .policyRevision)
            try container.encode(previousHash, forKey: .previousHash)
            try container.encode(hash, forKey: .hash)
        }
    }

    /// One line of the file (no newline): compact JSON, keys sorted.
    public static func line(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Writes a whole export from `reader` through `write` (one line at a time, newline
    /// included): the header, the checkpoints, then the entries page by page.
    public static func write(
        _ reader: some AuditPageReader, publicKey: [UInt8]?, exported: Date, pageSize: Int = 5_000,
        to write: (String) throws -> Void
    ) async throws {
        try write(line(Header(publicKey: publicKey, exported: exported)) + "\n")
        for checkpoint in try await reader.checkpoints() { try write(line(Checkpoint(checkpoint)) + "\n") }
        var after: Int64 = 0
        while true {
            let page = try await reader.auditPage(after: after, limit: pageSize)
            guard let last = page.last else { return }
            for entry in page { try write(line(Entry(entry)) + "\n") }
            after = last.sequence
        }
    }

    /// A file that is not an export, or a line that cannot be read: names the file and line.
    public struct Failure: Error, CustomStringConvertible {
        /// One sentence naming the file and, where known, the line.
        public let description: String

        /// A failure described by one sentence; name the file (`path:line:`) so the reader can find it.
        public init(_ description: String) { self.description = description }
    }
}

/// An export file read as the verifier reads a store: the header and checkpoints at open, the
/// entries streamed from the file a page at a time, so that a long trail is never held whole.
public actor AuditTrailFile: AuditPageReader {
    /// The header's verifying key, if it names one.
    public nonisolated let publicKey: [UInt8]?
    private let path: String
    private let storedCheckpoints: [AuditCheckpoint]
    private var lines: LineReader
    /// Whether a page has been served: pages follow the file's order (see ``auditPage(after:limit:)``).
    private var served = false
    /// The first entry, read while looking for the end of the checkpoints.
    private var pending: AuditChain.StoredEntry?

    /// Opens the export at `path` and reads its header and checkpoints.
    /// - Throws: ``AuditTrailExport/Failure`` naming the file (and line) when it is missing, not
    ///   an export, or malformed.
    public init(path: String) throws(AuditTrailExport.Failure) {
        self.path = path
        var lines = try LineReader(path: path)
        guard let first = lines.next() else {
            throw AuditTrailExport.Failure("\(path) is empty: it is not an audit trail export.")
        }
        guard let header = try? JSONDecoder().decode(AuditTrailExport.Header.self, from: Data(first)),
            header.type == "header", header.format == AuditTrailExport.format
        else {
            throw AuditTrailExport.Failure(
                "\(path):1: not an audit trail export (its first line must be a \(AuditTrailExport.format) header).")
        }
        if let key = header.publicKey {
            guard let bytes = Data(base64Encoded: key) else {
                throw AuditTrailExport.Failure("\(path):1: the public key is not base64.")
            }
            publicKey = Array(bytes)
        } else {
            publicKey = nil
        }
        // Checkpoints come before entries: read them until the first entry, which is kept.
        var checkpoints: [AuditCheckpoint] = []
        var firstEntry: AuditChain.StoredEntry?
        while let line = lines.next() {
            switch try Self.parse(line, path: path, number: lines.number) {
            case .checkpoint(let checkpoint): checkpoints.append(checkpoint)
            case .entry(let entry): firstEntry = entry
            }
            if firstEntry != nil { break }
        }
        storedCheckpoints = checkpoints
        pending = firstEntry
        self.lines = lines
    }

    /// The checkpoints read at open, in the file's order.
    public func checkpoints() async throws -> [AuditCheckpoint] { storedCheckpoints }

    /// The next `limit` entries in the file's order. `after` 0 starts from the first entry; any
    /// other value continues where the previous page ended, which is how the verifier pages.
    /// Following the file rather than the numbers keeps an out-of-order file in that order, so
    /// that the verifier sees, and names, what was moved.
    public func auditPage(after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry] {
        // The work is synchronous and kept out of the async body: Swift 6.3's optimiser crashes
        // (signal 11 while splitting the coroutine) on this loop inside an async actor method.
        try readPage(after: after, limit: limit)
    }

    private func readPage(after: Int64, limit: Int) throws -> [AuditChain.StoredEntry] {
        if after == 0 && served { try rewind() }
        served = true
        var page: [AuditChain.StoredEntry] = []
        while page.count < limit, let entry = try nextEntry() { page.append(entry) }
        return page
    }

    private func nextEntry() throws -> AuditChain.StoredEntry? {
        if let entry = pending {
            pending = nil
            return entry
        }
        guard let line = lines.next() else { return nil }
        switch try Self.parse(line, path: path, number: lines.number) {
        case .entry(let entry): return entry
        case .checkpoint:
            throw AuditTrailExport.Failure("\(path):\(lines.number): a checkpoint after the entries (they come first).")
        }
    }

    private func rewind() throws {
        lines = try LineReader(path: path)
        _ = lines.next()
        pending = nil
        while let line = lines.next() {
            if case .entry(let entry) = try Self.parse(line, path: path, number: lines.number) {
                pending = entry
                return
            }
        }
    }

    private enum Item {
        case checkpoint(AuditCheckpoint)
        case entry(AuditChain.StoredEntry)
    }

    private struct Kind: Decodable { let type: String }

    private static func parse(_ line: [UInt8], path: String, number: Int) throws(AuditTrailExport.Failure) -> Item {
        let data = Data(line)
        let decoder = JSONDecoder()
        guard let kind = try? decoder.decode(Kind.self, from: data) else {
            throw AuditTrailExport.Failure("\(path):\(number): not a JSON object with a 'type'.")
        }
        switch kind.type {
        case "entry":
            guard let entry = try? decoder.decode(AuditTrailExport.Entry.self, from: data), let stored = entry.stored
            else {
                throw AuditTrailExport.Failure(
                    "\(path):\(number): an entry without every field, or with a hash that is not hex.")
            }
            // Sequence numbers start at 1; 0 is what a reader asks for to start from the beginning.
            guard stored.sequence >= 1 else {
                throw AuditTrailExport.Failure("\(path):\(number): an entry numbered below 1.")
            }
            return .entry(stored)
        case "checkpoint":
            guard let line = try? decoder.decode(AuditTrailExport.Checkpoint.self, from: data),
                let checkpoint = line.checkpoint
            else {
                throw AuditTrailExport.Failure(
                    "\(path):\(number): a checkpoint without every field, or with a malformed hash or signature.")
            }
            return .checkpoint(checkpoint)
        default:
            throw AuditTrailExport.Failure(
                "\(path):\(number): a line of type '\(kind.type)'; only checkpoint and entry lines follow the header.")
        }
    }
}

/// Lines of a file, read with a buffer (Foundation on Linux has no line reader for files).
/// Blank lines are skipped; ``number`` is the line number of the last line returned.
struct LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var finished = false
    private(set) var number = 0

    init(path: String) throws(AuditTrailExport.Failure) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw AuditTrailExport.Failure("There is no readable export at \(path).")
        }
        self.handle = handle
    }

    mutating func next() -> [UInt8]? {
        while true {
            if let end = buffer[start...].firstIndex(of: 10) {
                let line = Array(buffer[start..<end])
                start = end + 1
                number += 1
                if line.isEmpty { continue }
                return line
            }
            if finished {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                number += 1
                return line
            }
            buffer.removeSubrange(0..<start)
            start = 0
            let chunk = handle.readData(ofLength: 1 << 16)
            if chunk.isEmpty { finished = true } else { buffer.append(contentsOf: chunk) }
        }
    }
}
