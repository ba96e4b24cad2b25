import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriProtocol
import MamoriStore
import MamoriTown

/// `terminal.audit` at the hub: a member terminal's next audit entries, checked and kept
/// (``TownAuditArchive``), answered with the hub's signed acknowledgement of the head it holds.
/// A batch that does not continue the hub's copy is refused, logged as critical and recorded in
/// the hub's chain: it means the terminal's trail was altered after the hub acknowledged it.
enum TerminalAuditReceipt {
    static func answer(_ request: WireRequest, from terminal: TerminalRecord, listener: TerminalListener) async
        -> [UInt8]
    {
        let id = request.id
        guard let archive = listener.feed else {
            return WireReply.failure(WireError(.unknownOperation, "This hub keeps no audit chains.", id: id))
        }
        let body: TerminalAuditRequest
        do {
            body = try JSONValue.object(request.fields.filter { $0.key != "op" && $0.key != "id" }).decode(
                TerminalAuditRequest.self)
        } catch {
            return WireReply.failure(
                WireError(
                    .badRequest, "terminal.audit takes \"public_key\", \"entries\" and \"checkpoints\" as exported.",
                    id: id))
        }
        if let malformed = AuditStream.wellFormed(entries: body.entries, checkpoints: body.checkpoints) {
            return WireReply.failure(WireError(.badRequest, malformed.description, id: id))
        }
        let entries = body.entries.compactMap(\.stored)
        let checkpoints = body.checkpoints.compactMap(\.checkpoint)
        guard let publicKey = Data(base64Encoded: body.publicKey).map(Array.init), publicKey.count == 32,
            entries.count == body.entries.count, checkpoints.count == body.checkpoints.count
        else {
            return WireReply.failure(
                WireError(.badRequest, "terminal.audit carries a 32-byte key, and hashes in hex.", id: id))
        }
        let context = listener.auditContext
        let clock = listener.clock
        do {
            let outcome = try await archive.receiveTerminalAudit(
                terminal: terminal, publicKey: publicKey, entries: entries, checkpoints: checkpoints,
                at: clock.now()
            ) { stream, outcome, detail in
                AuditEntry(
                    time: clock.now(), actorUID: nil, actor: "terminal:\(terminal.name)", event: .auditWitness,
                    target: terminal.name, outcome: outcome, detail: detail, terminal: context.terminal,
                    zone: context.zone, policyRevision: context.policyRevision())
            }
            switch outcome {
            case .held(let acknowledgement, let newest):
                return TerminalRequestHandler.encode(
                    TerminalAuditReply(acknowledgement, newestCheckpoint: newest), id: id)
            case .refused(let refusal, let first):
                if first {
                    listener.logger.critical(
                        "a terminal's audit chain does not continue the hub's copy",
                        metadata: ["terminal": "\(terminal.name)", "reason": "\(refusal)"])
                }
                return WireReply.failure(WireError(.invalid, refusal.description, id: id))
            }
        } catch let error as StoreError where error.code == .conflict {
            listener.logger.warning(
                "a terminal streams its audit chain with another key", metadata: ["terminal": "\(terminal.name)"])
            return WireReply.failure(WireError(.conflict, error.message, id: id))
        } catch {
            return WireReply.failure(WireError(.busy, "The hub cannot keep audit entries now.", id: id))
        }
    }
}
