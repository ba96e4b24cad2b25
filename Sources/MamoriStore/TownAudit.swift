public import Foundation
public import MamoriCore

/// One member terminal's audit chain as its hub holds it: one stream for each time a terminal of
/// that name joined, so that a name removed and added again starts a chain of its own.
public struct TerminalAuditStream: Sendable, Hashable {
    /// The stream's number in the hub's store.
    public var id: Int64
    /// The terminal's name in the register.
    public var terminal: String
    /// When that terminal joined: which of the name's terminals this is.
    public var joinedAt: Date
    /// The terminal's audit verifying key (Ed25519, raw), fixed by its first batch.
    public var publicKey: [UInt8]
    /// The last entry held (0 for none yet).
    public var head: Int64
    /// When the last batch was kept.
    public var receivedAt: Date?
    /// Why a batch was refused, when one was: the terminal's trail did not continue the copy.
    /// Kept for good (only the first refusal), even if later batches continue the copy again.
    public var refusal: String?
    /// When it was refused.
    public var refusedAt: Date?

    /// A stream from its parts.
    public init(
        id: Int64, terminal: String, joinedAt: Date, publicKey: [UInt8], head: Int64, receivedAt: Date?,
        refusal: String? = nil, refusedAt: Date? = nil
    ) {
        self.refusal = refusal
        self.refusedAt = refusedAt
        self.id = id
        self.terminal = terminal
        self.joinedAt = joinedAt
        self.publicKey = publicKey
        self.head = head
        self.receivedAt = receivedAt
    }
}

/// What became of a batch a terminal streamed (``TownAuditArchive/receiveTerminalAudit(terminal:publicKey:entries:checkpoints:at:record:)``).
public enum TerminalAuditOutcome: Sendable {
    /// Kept, or nothing was new: the hub's acknowledgement of the head it holds, and the
    /// ``AuditCheckpoint/digest`` of the newest checkpoint it holds of the stream (the terminal
    /// sends those signed after it).
    case held(AuditAcknowledgement, newestCheckpoint: [UInt8]?)
    /// Refused. `first` is true the first time for the stream: only that one is recorded.
    case refused(AuditStream.Refusal, first: Bool)
}

/// What a hub's store keeps of its terminals' audit chains (docs/town.md, "The audit trail of a
/// town"): each batch checked (``AuditStream``) and kept with its checkpoints, and the facts an
/// SQL writer must not be able to change without being seen written into the hub's own chain as
/// `audit.witness` entries: each stream's start (its first entry and key), each newest
/// checkpoint kept, each refusal.
public protocol TownAuditArchive: Sendable {
    /// Keeps a batch of `terminal`'s chain, or refuses it, in one transaction with the hub's own
    /// entries about it, which `record` makes from a detail (``TerminalStreamFacts``). With no
    /// entries and no checkpoints it only says how far the hub holds the chain. A batch that starts
    /// after the head (the hub's copy lost entries, or the terminal pruned some before sending) is
    /// answered with the head, so that the terminal sends from there.
    ///
    /// - Throws: `conflict` when `publicKey` is not the key the stream was started with.
    func receiveTerminalAudit(
        terminal: TerminalRecord, publicKey: [UInt8], entries: [AuditChain.StoredEntry],
        checkpoints: [AuditCheckpoint], at time: Date,
        record: @escaping @Sendable (TerminalAuditStream, AuditOutcome, [String: String]) -> AuditEntry
    ) async throws -> TerminalAuditOutcome

    /// Every stream, oldest first.
    func terminalAuditStreams() async throws -> [TerminalAuditStream]

    /// Up to `limit` entries of `stream` after `after`, in order, exactly as received.
    func terminalAuditPage(stream: Int64, after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry]

    /// The checkpoints `stream` carried, in the order the terminal signed them.
    func terminalCheckpoints(stream: Int64) async throws -> [AuditCheckpoint]

    /// The hub's own `audit.witness` entries, oldest first: what ``TerminalStreamFacts`` reads.
    func terminalAuditWitnesses() async throws -> [AuditChain.StoredEntry]
}

/// What the hub's own chain says of one stream: the facts its `audit.witness` entries hold. The
/// hub's chain is hashed, checkpointed and witnessed outside the database, so these hold even when
/// the stream's rows were edited.
public struct TerminalStreamFacts: Sendable, Hashable {
    /// The stream's number.
    public var stream: Int64
    /// The terminal's name.
    public var terminal: String
    /// When it joined (which of the name's terminals); nil when no start was recorded.
    public var joinedAt: Date?
    /// The first entry the hub kept.
    public var first: Int64?
    /// The audit key the stream started with.
    public var publicKey: [UInt8]?
    /// The newest checkpoint witnessed.
    public var newestCheckpoint: AuditCheckpoint?
    /// Each refusal's reason.
    public var refusals: [String] = []
    /// How many starts the hub's chain recorded (more than one: rows were put in the database).
    public var starts = 0

    /// The details of the hub's entries.
    public enum Kind: String, Sendable {
        /// A stream's first batch kept: `first`, `key`, `joined_at`.
        case start
        /// A checkpoint kept: the checkpoint (``AuditCheckpoint/detail``).
        case checkpoint
        /// A batch refused: `reason`, `held`.
        case refusal
    }

    /// The detail of a stream's start.
    public static func start(_ stream: TerminalAuditStream, first: Int64) -> [String: String] {
        [
            "kind": Kind.start.rawValue, "stream": "\(stream.id)", "first": "\(first)",
            "joined_at": "\(AuditEntry.milliseconds(stream.joinedAt))",
            "key": Data(stream.publicKey).base64EncodedString(),
        ]
    }

    /// The detail of a checkpoint kept.
    public static func checkpoint(_ stream: TerminalAuditStream, _ checkpoint: AuditCheckpoint) -> [String: String] {
        checkpoint.detail.merging(["kind": Kind.checkpoint.rawValue, "stream": "\(stream.id)"]) { $1 }
    }

    /// The detail of a refusal.
    public static func refusal(_ stream: TerminalAuditStream, _ refusal: AuditStream.Refusal) -> [String: String] {
        [
            "kind": Kind.refusal.rawValue, "stream": "\(stream.id)", "reason": refusal.description,
            "held": "\(stream.head)",
        ]
    }

    /// The facts of every stream the entries name, by stream number.
    public static func collect(_ entries: [AuditChain.StoredEntry]) -> [Int64: TerminalStreamFacts] {
        var facts: [Int64: TerminalStreamFacts] = [:]
        for stored in entries {
            let entry = stored.entry
            guard let stream = entry.detail["stream"].flatMap({ Int64($0) }),
                let kind = entry.detail["kind"].flatMap(Kind.init(rawValue:))
            else { continue }
            var fact = facts[stream] ?? TerminalStreamFacts(stream: stream, terminal: entry.target)
            switch kind {
            case .start:
                fact.starts += 1
                fact.first = entry.detail["first"].flatMap { Int64($0) }
                fact.publicKey = entry.detail["key"].flatMap { Data(base64Encoded: $0) }.map { Array($0) }
                fact.joinedAt = entry.detail["joined_at"].flatMap { Int64($0) }.map {
                    Date(timeIntervalSince1970: Double($0) / 1000)
                }
            case .checkpoint:
                if let checkpoint = AuditCheckpoint(detail: entry.detail),
                    checkpoint.sequence >= (fact.newestCheckpoint?.sequence ?? 0)
                {
                    fact.newestCheckpoint = checkpoint
                }
            case .refusal:
                fact.refusals.append(entry.detail["reason"] ?? "refused")
            }
            facts[stream] = fact
        }
        return facts
    }
}

extension TownAuditArchive {
    /// One stream as a trail to verify (``AuditVerifier/verify(_:publicKey:witness:pageSize:)``).
    public func trail(of stream: TerminalAuditStream) -> some AuditPageReader {
        TerminalTrail(archive: self, stream: stream.id)
    }
}

private struct TerminalTrail<Archive: TownAuditArchive>: AuditPageReader {
    let archive: Archive
    let stream: Int64

    func checkpoints() async throws -> [AuditCheckpoint] { try await archive.terminalCheckpoints(stream: stream) }

    func auditPage(after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry] {
        try await archive.terminalAuditPage(stream: stream, after: after, limit: limit)
    }
}
