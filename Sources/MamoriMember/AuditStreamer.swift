import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore
import MamoriTown
import NIOConcurrencyHelpers

/// Sends this terminal's audit chain to its hub, entry by entry as stored, on a connection of its
/// own (docs/town.md, "The audit trail of a town"). Every second it compares its head with the
/// head the hub acknowledged and sends what is missing, in batches that fit one request line.
///
/// A refusal (the hub's copy is not continued by this trail: it was altered, cut or replaced
/// after the hub held it) is logged as critical; the streamer tries again, slowly, and the hub
/// records the refusal once.
final class AuditStreamer: Sendable {
    /// How often the head is compared while the hub keeps up.
    static let interval = 1.0
    /// The longest pause after failures.
    static let maximumPause = 60.0
    /// A batch's entries stay within this many bytes of JSON; with its checkpoints, well inside one
    /// request line.
    static let batchBytes = 32 * 1024
    /// Checkpoints sent with one batch (about 300 bytes each).
    static let checkpointsPerBatch = 50
    /// Entries read from the store at a time.
    static let pageSize = 500

    private let trail: any AuditTrail
    private let publicKey: [UInt8]
    private let pool: HubConnectionPool
    private let logger: Logger

    /// What the hub said last, on the current connection.
    private struct Held {
        /// The last entry it holds.
        var sequence: Int64
        /// The digest of the newest checkpoint it holds.
        var checkpoint: [UInt8]?
    }

    private struct State {
        /// What the hub holds, as it said on this connection (nil: ask again).
        var held: Held?
        /// The highest head the hub ever acknowledged: one lower later means its copy lost entries.
        var highest: Int64?
        /// Why the last attempt failed.
        var error: String?
    }

    private let state = NIOLockedValueBox(State())

    init(trail: any AuditTrail, publicKey: [UInt8], pool: HubConnectionPool, logger: Logger) {
        self.trail = trail
        self.publicKey = publicKey
        self.pool = pool
        self.logger = logger
    }

    /// The newest head the hub acknowledged, and the last failure, for `status`.
    var status: (acknowledged: Int64?, error: String?) {
        state.withLockedValue { ($0.highest, $0.error) }
    }

    /// Streams until cancelled.
    func run() async {
        var pause = Self.interval
        while !Task.isCancelled {
            do {
                try await catchUp()
                pause = Self.interval
                state.withLockedValue { $0.error = nil }
            } catch is CancellationError {
                return
            } catch {
                let text = "\(error)"
                let repeated = state.withLockedValue { state in
                    defer {
                        state.held = nil
                        state.error = text
                    }
                    return state.error == text
                }
                if !repeated {
                    let refused = (error as? HubClientError).map {
                        $0.code == ErrorCode.invalid.rawValue || $0.code == ErrorCode.conflict.rawValue
                    }
                    if error is StreamFailure || refused == true {
                        logger.critical(
                            "this terminal's audit chain cannot be kept by the hub", metadata: ["reason": "\(text)"])
                    } else {
                        logger.warning("the audit chain cannot be sent to the hub now", metadata: ["error": "\(text)"])
                    }
                }
                pause = min(pause * 2, Self.maximumPause)
            }
            try? await Task.sleep(for: .milliseconds(Int(pause * 1000)))
        }
    }

    /// Sends every entry after the hub's head, and every checkpoint signed after the newest the
    /// hub holds.
    func catchUp() async throws {
        let head = try await trail.auditHead()
        var held: Held
        if let known = state.withLockedValue({ $0.held }) {
            held = known
        } else {
            held = try await send([], [])
        }
        if held.sequence > head {
            throw StreamFailure(
                description: "The hub acknowledged entry \(held.sequence) of this terminal's chain, but the chain here "
                    + "ends at \(head): entries were cut off this terminal's trail.")
        }
        while true {
            var entries: [AuditTrailExport.Entry] = []
            if held.sequence < head {
                let page = try await trail.auditPage(after: held.sequence, limit: Self.pageSize)
                // A hub that holds nothing yet takes a trail pruned before the join from where it
                // starts, anchored at the pruning's checkpoint.
                let fresh = held.sequence == 0 && held.checkpoint == nil
                if let first = page.first, first.sequence > held.sequence + 1, !fresh {
                    throw StreamFailure(
                        description:
                            "Entries \(held.sequence + 1)–\(first.sequence - 1) were pruned here before the hub "
                            + "held them: the hub's copy cannot go on.")
                }
                var bytes = 0
                for stored in page {
                    let entry = AuditTrailExport.Entry(stored)
                    let size = try JSONEncoder().encode(entry).count + 1
                    if !entries.isEmpty, bytes + size > Self.batchBytes { break }
                    entries.append(entry)
                    bytes += size
                }
            }
            // The checkpoints signed after the newest the hub holds, in signing order, up to the
            // last entry the hub will hold after this batch.
            let reach = entries.last?.seq ?? held.sequence
            let all = try await trail.checkpoints()
            let after = held.checkpoint.flatMap { digest in all.lastIndex { $0.digest == digest } }.map { $0 + 1 } ?? 0
            let pending = all[after...].prefix { $0.sequence <= reach }.prefix(Self.checkpointsPerBatch)
            guard !entries.isEmpty || !pending.isEmpty else { return }
            held = try await send(entries, pending.map(AuditTrailExport.Checkpoint.init))
        }
    }

    /// One `terminal.audit` request; returns what the hub holds after it.
    private func send(_ entries: [AuditTrailExport.Entry], _ checkpoints: [AuditTrailExport.Checkpoint])
        async throws -> Held
    {
        let request = TerminalAuditRequest(publicKey: publicKey, entries: entries, checkpoints: checkpoints)
        let reply = try await pool.withClient(for: nil, waiting: .seconds(5)) { client in
            try await client.call(HubOperation.audit.rawValue, request, reading: TerminalAuditReply.self)
        }
        let held = Held(sequence: reply.acknowledged, checkpoint: reply.checkpoint.flatMap(AuditWitness.unhex))
        let highest = state.withLockedValue { state in
            defer {
                state.held = held
                state.highest = max(state.highest ?? 0, held.sequence)
            }
            return state.highest
        }
        if let highest, held.sequence < highest {
            // This terminal sends them again from there; the hub's own chain still shows the cut.
            logger.critical(
                "the hub holds less of this terminal's audit chain than it acknowledged before: entries were removed from the hub's copy; sending them again",
                metadata: ["acknowledged": "\(highest)", "now": "\(held.sequence)"])
        }
        if !entries.isEmpty {
            logger.debug(
                "audit entries acknowledged by the hub",
                metadata: ["through": "\(reply.acknowledged)", "signature": "\(reply.signature)"])
        }
        return held
    }

    struct StreamFailure: Error, CustomStringConvertible {
        let description: String
    }
}
