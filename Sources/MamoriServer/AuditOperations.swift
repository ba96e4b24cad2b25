import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriStore
import NIOConcurrencyHelpers

/// The audit trail and the self-inspection over the socket: `audit.read`, `audit.verify`,
/// `audit.prune`, `review.record` and `inspect`. Each is authorised by the policy and recorded
/// in the trail it reads (`audit.read` once per connection and purpose).
extension MamoriService {
    /// The resource every audit action names.
    static let auditResource = "mamori:audit"

    /// `audit.read`: the newest `last` entries, or up to `limit` entries after `after`.
    func readAudit(_ context: RequestContext) async throws -> AuditReadReply {
        let request = context.request
        let purpose = try request.optionalString(.purpose) ?? "read"
        try await requirePermission(
            context, action: purpose == "export" ? .auditExport : .auditRead,
            resource: Self.auditResource
        )
        let entries: [AuditChain.StoredEntry]
        var more = false
        if let last = try request.optionalInteger(.last) {
            entries = try await store.lastAuditEntries(last)
        } else {
            let after = try request.optionalInteger(.after) ?? 0
            let limit = try request.optionalInteger(.limit) ?? 500
            entries = try await store.auditEntries(
                after: Int64(after), limit: limit, since: try request.optionalTime(.since),
                until: try request.optionalTime(.untilTime)
            )
            more = entries.count == limit
        }
        let head = try await store.auditHead()
        // One read is one act: later pages and polls on the same connection are not recorded
        // again, or following the trail would fill it.
        if context.caller.connection.firstRead(purpose) {
            try await store.appendAudit(
                audit(
                    context, event: .auditRead, target: Self.auditResource, outcome: .success,
                    detail: ["purpose": purpose, "entries": "\(entries.count)"]
                ))
        }
        return AuditReadReply(
            entries: try JSONValue.list(encoding: entries.map(AuditRecord.init)), more: more, lastSequence: head)
    }

    /// `audit.trail`: the trail exactly as stored, for an export an auditor verifies offline
    /// (``AuditTrailExport``): up to `limit` entries after `after`, each with its link and its
    /// detail as the stored text; the first page (`after` 0) also carries every checkpoint and
    /// the verifying key. Checkpoints are read before the entries, so every one they name is
    /// among the entries that follow unless the trail was cut.
    func readTrail(_ context: RequestContext) async throws -> AuditTrailReply {
        try await requirePermission(context, action: .auditExport, resource: Self.auditResource)
        let after = try context.request.optionalInteger(.after) ?? 0
        let limit = try context.request.optionalInteger(.limit) ?? 500
        var reply = AuditTrailReply(entries: [], more: false)
        if after == 0 {
            reply.checkpoints = try JSONValue.list(
                encoding: try await store.checkpoints().map(AuditTrailExport.Checkpoint.init))
            reply.publicKey = Data(auditSigner.publicKey).base64EncodedString()
        }
        let entries = try await store.auditPage(after: Int64(after), limit: limit)
        if context.caller.connection.firstRead("trail") {
            try await store.appendAudit(
                audit(
                    context, event: .auditRead, target: Self.auditResource, outcome: .success,
                    // An export like audit.read's, so that filtering the trail for exports finds it.
                    detail: ["purpose": "export", "format": "trail", "entries": "\(entries.count)"]
                ))
        }
        reply.entries = try JSONValue.list(encoding: entries.map(AuditTrailExport.Entry.init))
        reply.more = entries.count == limit
        return reply
    }

    /// `audit.verify`: the whole chain with the daemon's own key.
    func verifyAudit(_ context: RequestContext) async throws -> [String: JSONValue] {
        try await requirePermission(context, action: .auditRead, resource: Self.auditResource)
        let report = try await checkChain(at: context.now)
        var summary = report.summary
        var detail = ["entries": "\(report.entryCount)", "problems": "\(report.problems.count)"]
        if let audits = hub?.audits {
            let terminals = try await terminalChains(audits)
            summary.terminals = terminals
            summary.holds = summary.holds && terminals.allSatisfy(\.summary.holds)
            detail["terminals"] = "\(terminals.count)"
            detail["terminals_broken"] = "\(terminals.filter { !$0.summary.holds }.count)"
        }
        try await store.appendAudit(
            audit(
                context, event: .auditVerify, target: Self.auditResource, outcome: summary.holds ? .success : .failure,
                detail: detail
            ))
        guard case .object(let fields) = try JSONValue(encoding: summary) else {
            throw WireError(.internal, "The verification could not be written.")
        }
        return fields
    }

    /// Verifies the whole chain with the daemon's key, keeps the result for `status`, and logs a
    /// broken chain as critical: at start, and for `audit.verify` and `inspect`.
    @discardableResult
    func checkChain(at time: Date? = nil) async throws -> AuditReport {
        let time = time ?? clock.now()
        var report = try await AuditVerifier.verify(
            store, publicKey: auditSigner.publicKey, witness: witness.current().checkpoint)
        if witness.current().checkpoint == nil, let signed = report.lastCheckpoint?.sequence {
            report = report.adding(.witnessMissing(signed: signed))
        }
        lastChainCheck.withLockedValue {
            $0 = ChainCheck(
                time: time, holds: report.holds, entries: report.entryCount, problems: report.problems.count)
        }
        if report.holds {
            logger.info("the audit chain holds", metadata: ["entries": "\(report.entryCount)"])
        } else {
            logger.critical(
                "the audit chain does not verify: BROKEN",
                metadata: [
                    "problems": "\(report.problems.count)", "first": "\(report.problems.first.map { "\($0)" } ?? "")",
                ]
            )
        }
        return report
    }

    /// At a hub: every member terminal's chain as the hub holds it, verified with the key its
    /// stream started with, against what the hub's own chain says of it (``TerminalStreamFacts``:
    /// where it starts, its newest witnessed checkpoint, its refusals) and the head the hub
    /// acknowledged. A stream the hub's chain names but the database no longer holds is broken too.
    func terminalChains(_ audits: any TownAuditArchive) async throws -> [AuditReport.TerminalChain] {
        let facts = TerminalStreamFacts.collect(try await audits.terminalAuditWitnesses())
        var chains: [AuditReport.TerminalChain] = []
        var seen = Set<Int64>()
        for stream in try await audits.terminalAuditStreams() {
            seen.insert(stream.id)
            let fact = facts[stream.id]
            var report = try await AuditVerifier.verify(
                audits.trail(of: stream), publicKey: fact?.publicKey ?? stream.publicKey,
                witness: fact?.newestCheckpoint)
            if (report.lastSequence ?? 0) < stream.head {
                report = report.adding(
                    .shorterThanAcknowledged(last: report.lastSequence ?? 0, acknowledged: stream.head))
            }
            var summary = report.summary
            var problems: [String] = []
            if let key = fact?.publicKey, key != stream.publicKey {
                problems.append("the stream's audit key in the database is not the one the hub's chain recorded")
            }
            if let first = fact?.first, let held = report.firstSequence, held != first {
                problems.append(
                    "the hub's copy starts at entry \(held), but the hub's chain recorded its start at entry \(first): "
                        + "entries were deleted from the hub's database (the hub never prunes a copy)")
            }
            if let first = fact?.first, report.entryCount == 0 {
                problems.append(
                    "the hub's chain recorded this stream's start at entry \(first), but the database holds none of "
                        + "its entries: they were deleted")
            }
            if (fact?.starts ?? 0) > 1 {
                problems.append(
                    "the hub's chain recorded \(fact?.starts ?? 0) starts of this stream, where there is one")
            }
            if let fact,
                fact.terminal != stream.terminal
                    || fact.joinedAt.map({ AuditEntry.milliseconds($0) != AuditEntry.milliseconds(stream.joinedAt) })
                        == true
            {
                problems.append(
                    "the database names this stream \(stream.terminal), but the hub's chain recorded it as \(fact.terminal)'s"
                )
            }
            if fact?.first == nil, report.entryCount > 0 {
                problems.append("the hub's chain recorded no start of this stream: its rows were put in the database")
            }
            for refusal in Set((fact?.refusals ?? []) + (stream.refusal.map { [$0] } ?? [])).sorted() {
                problems.append("a batch from the terminal was refused: \(refusal)")
            }
            summary.problems += problems
            summary.holds = summary.problems.isEmpty
            chains.append(
                AuditReport.TerminalChain(
                    terminal: stream.terminal, joined: stream.joinedAt.formatted(.iso8601),
                    received: stream.receivedAt?.formatted(.iso8601), summary: summary))
        }
        for fact in facts.values.sorted(by: { $0.stream < $1.stream }) where !seen.contains(fact.stream) {
            chains.append(
                AuditReport.TerminalChain(
                    terminal: fact.terminal, joined: fact.joinedAt?.formatted(.iso8601) ?? "?", received: nil,
                    summary: .missing([
                        "the hub's chain names this terminal's chain (stream \(fact.stream)), but the database no "
                            + "longer holds it: it was deleted"
                    ])))
        }
        for chain in chains where !chain.summary.holds {
            logger.critical(
                "a terminal's audit chain held by the hub does not verify: BROKEN",
                metadata: ["terminal": "\(chain.terminal)", "first": "\(chain.summary.problems.first ?? "")"])
        }
        return chains
    }

    /// `audit.prune`: removes entries written before `before`, only past the policy's retention.
    func pruneAudit(_ context: RequestContext) async throws -> AuditPruneReply {
        try await requirePermission(context, action: .auditPrune, resource: Self.auditResource)
        let (text, cutoff) = try context.request.time(.before)
        let settings = context.engine.policy.settings
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = settings.timeZone
        let horizon =
            calendar.date(byAdding: .year, value: -settings.auditRetentionYears, to: context.now) ?? context.now
        guard cutoff <= horizon else {
            try await store.appendAudit(
                audit(
                    context, event: .auditPrune, target: Self.auditResource, outcome: .denied,
                    detail: ["before": text, "reason": "within retention"]
                ))
            let day = Date.ISO8601FormatStyle(timeZone: settings.timeZone).year().month().day()
            throw WireError(
                .invalid,
                "The policy keeps the audit trail for \(settings.auditRetentionYears) years: only entries written before "
                    + "\(horizon.formatted(day)) may be pruned, and \(text) is later."
            )
        }
        let result = try await store.pruneAudit(before: cutoff) { result in
            self.audit(
                context, event: .auditPrune, target: Self.auditResource, outcome: .success,
                detail: ["before": text, "pruned_through": "\(result.prunedThrough)", "removed": "\(result.removed)"]
            )
        }
        logger.notice(
            "audit trail pruned", metadata: ["through": "\(result.prunedThrough)", "removed": "\(result.removed)"])
        return AuditPruneReply(removed: result.removed, prunedThrough: result.prunedThrough)
    }

    /// `review.record`: a security manager states that the access review (who holds which role)
    /// was done; `inspect` checks its date against the policy's interval.
    func recordReview(_ context: RequestContext) async throws -> ReviewRecordReply {
        try await requirePermission(context, action: .reviewRecord, resource: "mamori:reviews")
        let note = try context.request.optionalString(.note) ?? ""
        let assignments = try await store.allAssignments().filter { $0.isCurrent(at: context.now) }
        var detail = ["assignments": "\(assignments.count)"]
        if !note.isEmpty { detail["note"] = note }
        try await store.appendAudit(
            audit(
                context, event: .accessReview, target: "mamori:assignments", outcome: .success, detail: detail
            ))
        return ReviewRecordReply(recorded: context.now.formatted(.iso8601), assignments: assignments.count)
    }

    /// `inspect`: the self-inspection report.
    func inspect(_ context: RequestContext) async throws -> InspectReply {
        try await requirePermission(context, action: .inspect, resource: Self.auditResource)
        // Verified through checkChain, so that `status` shows this verification too.
        let chain = try await checkChain(at: context.now)
        var inspection = SelfInspection(
            store: store, engine: context.engine, configuration: configuration, chain: chain, now: context.now,
            inspector: context.caller.label
        )
        if let hub, let audits = hub.audits {
            inspection.terminalChains = try await terminalChains(audits)
            inspection.terminals = try await hub.registry.terminals()
        }
        if let hub, let uses = hub.offlineUses {
            inspection.offline = SelfInspection.OfflineFacts(
                summaries: try await uses.offlineUseSummary(since: .distantPast),
                logins: try await uses.offlineLogins(since: .distantPast),
                conflicts: try await uses.offlineConflicts(since: .distantPast),
                refused: try await uses.refusedOfflineUses(since: .distantPast))
            if inspection.terminals.isEmpty { inspection.terminals = try await hub.registry.terminals() }
        }
        let report = try await inspection.run()
        try await store.appendAudit(
            audit(
                context, event: .inspect, target: Self.auditResource, outcome: .success,
                detail: Dictionary(
                    uniqueKeysWithValues: InspectionReport.Status.allCases.map { ($0.rawValue, "\(report.count($0))") }
                )
                .merging(["result": report.overall.rawValue]) { first, _ in first }
            ))
        return InspectReply(report: try JSONValue(encoding: report))
    }
}
