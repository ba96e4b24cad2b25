public import Foundation
import Logging
public import MamoriCore
public import MamoriStore
import PostgresNIO

/// The member terminals' audit chains, kept by the hub (docs/town.md, "The audit trail of a town").
extension PostgresStore: TownAuditArchive {
    /// Checks and keeps a batch of `terminal`'s chain, holding the stream's row (not the chain
    /// lock, which every login takes: that is taken only to append the hub's own entries), and
    /// acknowledges the head with the hub's key. A batch that repeats entries the hub holds
    /// already (a reply lost on the way) is kept from where it is new, if the entry at the hub's
    /// head is the one held; any other overlap is refused.
    public func receiveTerminalAudit(
        terminal: TerminalRecord, publicKey: [UInt8], entries: [AuditChain.StoredEntry],
        checkpoints: [AuditCheckpoint], at time: Date,
        record: @escaping @Sendable (TerminalAuditStream, AuditOutcome, [String: String]) -> AuditEntry
    ) async throws -> TerminalAuditOutcome {
        guard let signer else { throw StoreError(.storage, "Acknowledging a terminal's chain needs the audit key.") }
        guard let joinedAt = terminal.joinedAt else {
            throw StoreError(.notFound, "The terminal '\(terminal.name)' has not joined.")
        }
        let acknowledge = { @Sendable (stream: TerminalAuditStream, hash: [UInt8]?, newest: [UInt8]?) in
            TerminalAuditOutcome.held(
                signer.acknowledge(terminal: terminal.name, sequence: stream.head, headHash: hash ?? [], time: time),
                newestCheckpoint: newest)
        }
        if entries.isEmpty && checkpoints.isEmpty {
            // How far the hub holds the chain: a read, no lock.
            guard let (stream, hash) = try await self.stream(of: terminal.name, joinedAt: joinedAt, nil) else {
                return .held(
                    signer.acknowledge(terminal: terminal.name, sequence: 0, headHash: [], time: time),
                    newestCheckpoint: nil)
            }
            guard constantTimeEquals(stream.publicKey, publicKey) else { throw Self.otherKey(terminal) }
            return acknowledge(stream, hash, try await newestCheckpointDigest(stream.id, nil))
        }
        let logger = self.logger
        return try await write(audit: nil, lockingChain: false) { connection in
            // The stream of this joining of the terminal, made by its first batch and held for this
            // transaction: a second hub's batch of the same terminal waits here.
            try await connection.query(
                """
                INSERT INTO terminal_audit_streams (terminal, joined_at, audit_key)
                VALUES (\(terminal.name), \(AuditEntry.milliseconds(joinedAt)), \(ByteBuffer(bytes: publicKey)))
                ON CONFLICT (terminal, joined_at) DO NOTHING
                """, logger: logger)
            guard var (stream, headHash) = try await self.stream(of: terminal.name, joinedAt: joinedAt, connection)
            else { throw StoreError(.storage, "The audit stream of '\(terminal.name)' could not be made.") }
            guard constantTimeEquals(stream.publicKey, publicKey) else { throw Self.otherKey(terminal) }
            let refuse = { (refused: AuditStream.Refusal) async throws -> TerminalAuditOutcome in
                // Recorded once: a refused stream stays refused, and a terminal that keeps
                // sending must not fill the hub's chain.
                guard stream.refusal == nil else { return .refused(refused, first: false) }
                try await connection.query(
                    """
                    UPDATE terminal_audit_streams SET refusal = \(refused.description),
                        refused_at = \(AuditEntry.milliseconds(time))
                    WHERE id = \(stream.id)
                    """, logger: logger)
                try await self.lockChain(connection)
                try await self.append(
                    record(stream, .failure, TerminalStreamFacts.refusal(stream, refused)), connection)
                return .refused(refused, first: true)
            }
            var batch = entries[...]
            if let headHash, let first = batch.first, first.sequence <= stream.head {
                // A repeat: what the hub holds must be what the terminal sends again.
                if let atHead = batch.first(where: { $0.sequence == stream.head }) {
                    guard constantTimeEquals(atHead.hash, headHash) else {
                        return try await refuse(
                            AuditStream.Refusal(
                                "Entry \(stream.head) is not the one the hub acknowledged: the terminal's trail was "
                                    + "altered, cut or replaced after the hub acknowledged it."))
                    }
                }
                batch = batch.drop { $0.sequence <= stream.head }
            }
            let kept = Array(batch)
            if headHash != nil, let first = kept.first, first.sequence > stream.head &+ 1 {
                // A gap: the terminal sends from the head again (or cannot: it says so itself).
                return acknowledge(stream, headHash, try await self.newestCheckpointDigest(stream.id, connection))
            }
            let head = headHash.map { (sequence: stream.head, hash: $0) }
            if let refused = AuditStream.check(kept, continuing: head) { return try await refuse(refused) }
            // The hashes the checkpoints may name: the batch's, the entry just before a first
            // batch (a pruned trail's anchor), and what the hub holds.
            var hashes = Dictionary(uniqueKeysWithValues: kept.map { ($0.sequence, $0.hash) })
            if head == nil, let first = kept.first { hashes[first.sequence - 1] = first.previousHash }
            let asked = Array(Set(checkpoints.map(\.sequence)).subtracting(hashes.keys))
            for (sequence, hash) in try await self.storedHashes(stream.id, asked, connection) {
                hashes[sequence] = hash
            }
            let firstHeld = try await self.firstHeld(stream.id, connection) ?? kept.first?.sequence
            if let refused = AuditStream.check(
                checkpoints: checkpoints, publicKey: publicKey, firstHeld: firstHeld, hash: { hashes[$0] })
            {
                return try await refuse(refused)
            }
            for entry in kept { try await Self.insert(entry, stream: stream.id, connection, logger: logger) }
            var added: [AuditCheckpoint] = []
            for checkpoint in checkpoints {
                let inserted = try await connection.query(
                    """
                    INSERT INTO terminal_checkpoints (stream, audit_seq, head_hash, time, signature, previous)
                    VALUES (\(stream.id), \(checkpoint.sequence), \(ByteBuffer(bytes: checkpoint.headHash)),
                        \(AuditEntry.milliseconds(checkpoint.time)), \(ByteBuffer(bytes: checkpoint.signature)),
                        \(checkpoint.previous.map { ByteBuffer(bytes: $0) }))
                    ON CONFLICT (stream, signature) DO NOTHING
                    RETURNING id
                    """, logger: logger)
                if try await Self.count(inserted) > 0 { added.append(checkpoint) }
            }
            let started = head == nil ? kept.first?.sequence : nil
            if let last = kept.last {
                stream.head = last.sequence
                stream.receivedAt = time
                headHash = last.hash
                try await connection.query(
                    """
                    UPDATE terminal_audit_streams SET head_seq = \(last.sequence),
                        head_hash = \(ByteBuffer(bytes: last.hash)), received_at = \(AuditEntry.milliseconds(time))
                    WHERE id = \(stream.id)
                    """, logger: logger)
            }
            // What an SQL writer must not change unseen goes into the hub's own chain: where the
            // stream starts and with which key, and its newest signed head.
            let newest = added.max { $0.sequence < $1.sequence }
            if started != nil || newest != nil { try await self.lockChain(connection) }
            if let started {
                try await self.append(
                    record(stream, .success, TerminalStreamFacts.start(stream, first: started)), connection)
            }
            if let newest {
                try await self.append(
                    record(stream, .success, TerminalStreamFacts.checkpoint(stream, newest)), connection)
            }
            return acknowledge(stream, headHash, try await self.newestCheckpointDigest(stream.id, connection))
        }
    }

    private static func otherKey(_ terminal: TerminalRecord) -> StoreError {
        StoreError(
            .conflict, "The terminal '\(terminal.name)' streams with an audit key other than the one it started with.")
    }

    /// The stream of `terminal` joined at `joinedAt` and its head's hash; locked for the
    /// transaction when read on its `connection`.
    private func stream(of terminal: String, joinedAt: Date, _ connection: PostgresConnection?) async throws
        -> (TerminalAuditStream, [UInt8]?)?
    {
        let query: PostgresQuery = """
            SELECT \(unescaped: Self.streamColumns), head_hash FROM terminal_audit_streams
            WHERE terminal = \(terminal) AND joined_at = \(AuditEntry.milliseconds(joinedAt))
            \(unescaped: connection == nil ? "" : "FOR UPDATE")
            """
        let read = { (rows: PostgresRowSequence) async throws -> (TerminalAuditStream, [UInt8]?)? in
            var found: (TerminalAuditStream, [UInt8]?)?
            for try await row in rows.decode(
                (Int64, String, Int64, ByteBuffer, Int64, Int64?, String?, Int64?, ByteBuffer?).self)
            {
                found = (
                    Self.stream((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7)),
                    row.8.map { Array($0.readableBytesView) }
                )
            }
            return found
        }
        if let connection { return try await read(try await connection.query(query, logger: logger)) }
        return try await self.read { client in try await read(try await client.query(query, logger: logger)) }
    }

    /// The digest of the newest checkpoint `stream` holds, in the terminal's signing order.
    private func newestCheckpointDigest(_ stream: Int64, _ connection: PostgresConnection?) async throws -> [UInt8]? {
        let query: PostgresQuery = """
            SELECT audit_seq, head_hash, time, signature, previous FROM terminal_checkpoints
            WHERE stream = \(stream) ORDER BY id DESC LIMIT 1
            """
        let decode = { (rows: PostgresRowSequence) async throws -> [UInt8]? in
            var newest: [UInt8]?
            for try await row in rows.decode((Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer?).self) {
                newest = Self.checkpoint(row).digest
            }
            return newest
        }
        if let connection { return try await decode(try await connection.query(query, logger: logger)) }
        return try await read { client in try await decode(try await client.query(query, logger: logger)) }
    }

    /// The hashes of `stream`'s entries numbered `sequences` that the hub holds.
    private func storedHashes(_ stream: Int64, _ sequences: [Int64], _ connection: PostgresConnection) async throws
        -> [Int64: [UInt8]]
    {
        guard !sequences.isEmpty else { return [:] }
        var hashes: [Int64: [UInt8]] = [:]
        for try await (sequence, hash) in try await connection.query(
            "SELECT seq, hash FROM terminal_audit WHERE stream = \(stream) AND seq = ANY(\(sequences))",
            logger: logger
        ).decode((Int64, ByteBuffer).self) {
            hashes[sequence] = Array(hash.readableBytesView)
        }
        return hashes
    }

    /// The first entry of `stream` the hub holds.
    private func firstHeld(_ stream: Int64, _ connection: PostgresConnection) async throws -> Int64? {
        var first: Int64?
        for try await value in try await connection.query(
            "SELECT min(seq) FROM terminal_audit WHERE stream = \(stream)", logger: logger
        ).decode(Int64?.self) {
            first = value
        }
        return first
    }

    private static func insert(
        _ entry: AuditChain.StoredEntry, stream: Int64, _ connection: PostgresConnection, logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO terminal_audit (stream, seq, time, actor_uid, actor, event, target, outcome, detail,
                terminal, zone, policy_revision, prev_hash, hash)
            VALUES (\(stream), \(entry.sequence), \(entry.timeMillis), \(entry.actorUID.map(Int64.init)),
                \(entry.actor), \(entry.event), \(entry.target), \(entry.outcome), \(entry.detailJSON),
                \(entry.terminal), \(entry.zone), \(entry.policyRevision), \(ByteBuffer(bytes: entry.previousHash)),
                \(ByteBuffer(bytes: entry.hash)))
            """, logger: logger)
    }

    static let streamColumns = "id, terminal, joined_at, audit_key, head_seq, received_at, refusal, refused_at"

    typealias StreamRow = (Int64, String, Int64, ByteBuffer, Int64, Int64?, String?, Int64?)

    private static func stream(_ row: StreamRow) -> TerminalAuditStream {
        TerminalAuditStream(
            id: row.0, terminal: row.1, joinedAt: date(row.2), publicKey: Array(row.3.readableBytesView), head: row.4,
            receivedAt: row.5.map(date), refusal: row.6, refusedAt: row.7.map(date))
    }

    /// Every stream, oldest first.
    public func terminalAuditStreams() async throws -> [TerminalAuditStream] {
        try await read { client in
            var streams: [TerminalAuditStream] = []
            for try await row in try await client.query(
                """
                SELECT \(unescaped: Self.streamColumns) FROM terminal_audit_streams ORDER BY id
                """, logger: logger
            ).decode(StreamRow.self) {
                streams.append(Self.stream(row))
            }
            return streams
        }
    }

    /// Up to `limit` entries of `stream` after `after`, exactly as received.
    public func terminalAuditPage(stream: Int64, after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry] {
        try await read { client in
            var entries: [AuditChain.StoredEntry] = []
            for try await row in try await client.query(
                """
                SELECT \(unescaped: Self.auditColumns) FROM terminal_audit
                WHERE stream = \(stream) AND seq > \(after) ORDER BY seq LIMIT \(Int64(limit))
                """, logger: logger
            ).decode(EntryRow.self) {
                entries.append(Self.storedEntry(row))
            }
            return entries
        }
    }

    /// The checkpoints `stream` carried, in the order they were signed.
    public func terminalCheckpoints(stream: Int64) async throws -> [AuditCheckpoint] {
        try await read { client in
            var checkpoints: [AuditCheckpoint] = []
            for try await row in try await client.query(
                """
                SELECT audit_seq, head_hash, time, signature, previous FROM terminal_checkpoints
                WHERE stream = \(stream) ORDER BY id
                """, logger: logger
            ).decode((Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer?).self) {
                checkpoints.append(Self.checkpoint(row))
            }
            return checkpoints
        }
    }

    /// The hub's own `audit.witness` entries, oldest first.
    public func terminalAuditWitnesses() async throws -> [AuditChain.StoredEntry] {
        try await read { client in
            var entries: [AuditChain.StoredEntry] = []
            for try await row in try await client.query(
                """
                SELECT \(unescaped: Self.auditColumns) FROM audit
                WHERE event = \(AuditEvent.auditWitness.rawValue) ORDER BY seq
                """, logger: logger
            ).decode(EntryRow.self) {
                entries.append(Self.storedEntry(row))
            }
            return entries
        }
    }
}
