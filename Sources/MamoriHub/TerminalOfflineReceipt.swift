import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriProtocol
import MamoriStore
import MamoriTown

/// `terminal.offline` at the hub: what a member terminal did through a network cut, kept
/// (``OfflineUseArchive``): the steps and recovery codes it used are spent town-wide, a step used
/// on two terminals is a conflict in the hub's chain and the change feed, and the reply tells the
/// terminal of the conflicts that concern it.
enum TerminalOfflineReceipt {
    static func answer(_ request: WireRequest, from terminal: TerminalRecord, listener: TerminalListener) async
        -> [UInt8]
    {
        let id = request.id
        guard let archive = listener.feed else {
            return WireReply.failure(WireError(.unknownOperation, "This hub keeps no offline use.", id: id))
        }
        let body: TerminalOfflineRequest
        do {
            body = try JSONValue.object(request.fields.filter { $0.key != "op" && $0.key != "id" }).decode(
                TerminalOfflineRequest.self)
        } catch {
            return WireReply.failure(
                WireError(.badRequest, "terminal.offline takes \"uses\": [{sequence, user, kind, at, …}].", id: id))
        }
        let kinds: Set<String> = ["login", "failure", "lock"]
        // Times a terminal could have: from 1970 to 9999, as its audit entries.
        let times = Int64(0)...Int64(253_402_300_799_000)
        guard body.uses.count <= TerminalOfflineRequest.maximumUses,
            body.uses.allSatisfy({
                kinds.contains($0.kind) && times.contains($0.at) && $0.onlineAt.map(times.contains) != false
                    && !$0.user.isEmpty && $0.user.utf8.count <= 64 && ($0.reason?.utf8.count ?? 0) <= 64
                    && ($0.step ?? 0) <= UInt64(Int64.max)
            })
        else {
            return WireReply.failure(
                WireError(
                    .badRequest,
                    "terminal.offline carries at most \(TerminalOfflineRequest.maximumUses) uses, each a login, "
                        + "failure or lock of a named user at a time between 1970 and 9999.", id: id))
        }
        let context = listener.auditContext
        let clock = listener.clock
        let uses = body.uses.map { line in
            OfflineUse(
                sequence: line.sequence, user: line.user, kind: line.kind,
                at: Date(timeIntervalSince1970: Double(line.at) / 1000), step: line.step,
                recoveryCode: line.recoveryCode, reason: line.reason,
                onlineAt: line.onlineAt.map { Date(timeIntervalSince1970: Double($0) / 1000) })
        }
        do {
            let (kept, refused, conflicts) = try await archive.receiveOfflineUses(
                terminal: terminal.name, uses: uses, at: clock.now(), window: context.totpWindow()
            ) { conflict, detail in
                AuditEntry(
                    time: clock.now(), actorUID: nil, actor: "terminal:\(terminal.name)",
                    event: conflict == nil ? .terminalOffline : .offlineConflict,
                    target: conflict?.user ?? terminal.name, outcome: conflict == nil ? .success : .failure,
                    detail: detail, terminal: context.terminal, zone: context.zone,
                    policyRevision: context.policyRevision())
            }
            if refused > 0 {
                // The terminal reported what the hub never made possible: altered, or another's key.
                listener.logger.critical(
                    "a terminal reported offline uses the hub never granted; they were refused",
                    metadata: ["terminal": "\(terminal.name)", "refused": "\(refused)"])
            }
            for conflict in conflicts {
                listener.logger.critical(
                    "one TOTP step was used offline on two terminals",
                    metadata: [
                        "user": "\(conflict.user)", "step": "\(conflict.step)",
                        "terminals": "\(conflict.terminals.joined(separator: ","))",
                    ])
            }
            return TerminalRequestHandler.encode(
                TerminalOfflineReply(
                    kept: kept,
                    conflicts: conflicts.map {
                        OfflineConflictLine(user: $0.user, step: $0.step, terminals: $0.terminals)
                    }), id: id)
        } catch {
            return WireReply.failure(WireError(.busy, "The hub cannot keep offline use now.", id: id))
        }
    }
}
