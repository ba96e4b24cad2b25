import Foundation
import Logging
import MamoriCore
import MamoriProtocol
import MamoriTestSupport
import MamoriTown
import PostgresNIO
import Testing

/// The audit trail of a town: member terminals stream their chains to the hub, which verifies
/// every copy with the terminal's key. The attacks are run for real: rows of the hub's copy edited
/// and deleted in PostgreSQL, and a terminal's own SQLite trail cut after the hub held it.
@Suite(
    "the audit trail of a town", .serialized,
    .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"))
struct TownAuditTests {
    typealias Hub = TownJoinTests.Hub
    typealias Member = TownMemberTests

    /// The newest entry of the terminal's own chain (its count of entries: none was pruned), read
    /// from `status`, which writes no entry.
    static func localHead(_ terminal: DaemonHarness) throws -> Int64? {
        guard case .object(let counts)? = try Member.ask(terminal.socketPath, ["op": "status"])["counts"],
            case .number(let entries)? = counts["audit_entries"]
        else { return nil }
        return Int64(entries)
    }

    /// What the terminal's `status` says the hub acknowledged.
    static func acknowledged(_ terminal: DaemonHarness) throws -> Int64? {
        guard case .object(let hub)? = try Member.ask(terminal.socketPath, ["op": "status"])["hub"],
            case .number(let number)? = hub["audit_acknowledged"]
        else { return nil }
        return Int64(number)
    }

    /// Writes `count` entries on the terminal (each `audit.verify` is recorded), then waits until the
    /// hub acknowledged the terminal's head (its count of entries plus the `pruned` ones); returns it.
    static func streamed(_ terminal: DaemonHarness, writing count: Int, pruned: Int64 = 0) async throws -> Int64 {
        for _ in 0..<count {
            #expect(try Member.ask(terminal.socketPath, ["op": "audit.verify"])["holds"] == .bool(true))
        }
        var head: Int64 = 0
        let caughtUp = try await Member.until(15) {
            head = (try localHead(terminal) ?? 0) + pruned
            return try acknowledged(terminal) == head
        }
        #expect(caughtUp != nil, "the hub never acknowledged entry \(head):\n\(terminal.log)")
        return head
    }

    /// The hub's `audit.verify`, and its chain of `terminal` (the last stream of that name).
    static func verify(_ hub: Hub, _ terminal: String) throws -> (
        reply: [String: JSONValue], chain: [String: JSONValue]?
    ) {
        let reply = try TownForwardTests.administer(hub, ["op": "audit.verify"])
        guard case .array(let chains)? = reply["terminals"] else { return (reply, nil) }
        let chain = chains.last { chain in
            guard case .object(let fields) = chain else { return false }
            return fields["terminal"] == .string(terminal)
        }
        guard case .object(let fields)? = chain else { return (reply, nil) }
        return (reply, fields)
    }

    static func summary(_ chain: [String: JSONValue]?) -> [String: JSONValue] {
        guard case .object(let summary)? = chain?["summary"] else { return [:] }
        return summary
    }

    static func problems(_ chain: [String: JSONValue]?) -> [String] {
        guard case .array(let problems)? = summary(chain)["problems"] else { return [] }
        return problems.compactMap { if case .string(let text) = $0 { text } else { nil } }
    }

    @Test("a member's chain reaches the hub as it grows; rows of the hub's copy altered or cut in SQL are found")
    func tamperingAtTheHub() async throws {
        try await TestServer.withDatabase { client, database, logger in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let terminal = try Member.member(hub, "kametsu-21")
            defer { terminal.stop() }
            // More than one checkpoint's worth (every 100 entries), so that the hub's chain witnesses heads.
            let head = try await Self.streamed(terminal, writing: 120)
            let held = try Self.verify(hub, "kametsu-21")
            #expect(held.reply["holds"] == .bool(true), "\(held.reply)")
            #expect(Self.summary(held.chain)["last_sequence"] == .number(Double(head)), "\(held.reply)")
            #expect(Self.summary(held.chain)["checkpoints"] != .number(0), "\(held.reply)")
            // The hub's own chain witnessed the terminal's signed head.
            let witnessed = try TownForwardTests.administer(hub, ["op": "audit.read", "last": 200])
            #expect("\(witnessed)".contains("audit.witness"), "\(witnessed)")
            let cli = try Subprocess.run(
                Subprocess.product("mamori"), ["audit", "verify", "--socket", hub.harness.socketPath])
            #expect(cli.status == 0 && cli.stdout.contains("Terminal kametsu-21 (joined "), "\(cli)")

            // Someone with the database's owner role alters one of the terminal's entries in the hub's copy.
            let sql = { (statements: [String]) in
                for statement in statements {
                    try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            }
            try await sql([
                "ALTER TABLE terminal_audit DISABLE TRIGGER terminal_audit_no_update",
                "CREATE TABLE kept AS SELECT actor FROM terminal_audit WHERE seq = 7",
                "UPDATE terminal_audit SET actor = 'nobody' WHERE seq = 7",
            ])
            let altered = try Self.verify(hub, "kametsu-21")
            #expect(altered.reply["holds"] == .bool(false), "\(altered.reply)")
            #expect(
                Self.problems(altered.chain).contains { $0.contains("entry 7 was altered") }, "\(altered.reply)")
            let broken = try Subprocess.run(
                Subprocess.product("mamori"), ["audit", "verify", "--socket", hub.harness.socketPath])
            #expect(broken.status != 0 && broken.stdout.contains("Terminal kametsu-21"), "\(broken)")
            #expect(broken.stdout.contains("BROKEN: entry 7 was altered"), "\(broken)")
            let inspected = try TownForwardTests.administer(hub, ["op": "inspect"])
            #expect(
                "\(inspected)".contains("town-audit-integrity") && "\(inspected)".contains("do not hold"),
                "\(inspected)")

            // Put back, then cut the copy's end together with its checkpoints: the hub's own chain
            // still names the head it witnessed, and the stream the head it acknowledged.
            try await sql(["UPDATE terminal_audit SET actor = (SELECT actor FROM kept) WHERE seq = 7"])
            #expect(try Self.verify(hub, "kametsu-21").reply["holds"] == .bool(true))
            try await sql([
                "DELETE FROM terminal_checkpoints WHERE audit_seq > 50", "DELETE FROM terminal_audit WHERE seq > 50",
            ])
            let cut = try Self.verify(hub, "kametsu-21")
            #expect(cut.reply["holds"] == .bool(false), "\(cut.reply)")
            let problems = Self.problems(cut.chain)
            #expect(
                problems.contains { $0.contains("the hub acknowledged entry \(head)") }
                    && problems.contains { $0.contains("witness outside the database signed entry") },
                "\(cut.reply)")
            // The copy's oldest entries deleted: it would read as a pruned trail, but the hub's
            // chain recorded where it started, and the hub never prunes a copy.
            try await sql(["DELETE FROM terminal_audit WHERE seq < 10"])
            let front = Self.problems(try Self.verify(hub, "kametsu-21").chain)
            #expect(front.contains { $0.contains("starts at entry 10") }, "\(front)")
            // Every entry deleted and the stream's head set back to nothing: the start is recorded.
            try await sql([
                "DELETE FROM terminal_checkpoints", "DELETE FROM terminal_audit",
                "UPDATE terminal_audit_streams SET head_seq = 0, head_hash = NULL",
            ])
            let emptied = Self.problems(try Self.verify(hub, "kametsu-21").chain)
            #expect(emptied.contains { $0.contains("holds none of its entries") }, "\(emptied)")
            // The whole copy deleted, stream and all: the hub's chain still names it.
            try await sql([
                "DELETE FROM terminal_checkpoints", "DELETE FROM terminal_audit", "DELETE FROM terminal_audit_streams",
            ])
            let gone = try Self.verify(hub, "kametsu-21")
            #expect(gone.reply["holds"] == .bool(false), "\(gone.reply)")
            #expect(Self.problems(gone.chain).contains { $0.contains("no longer holds it") }, "\(gone.reply)")
        }
    }

    @Test("a member prunes its trail past the retention: the anchor reaches the hub, and its copy still holds")
    func pruningAtTheTerminal() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let terminal = try Member.member(hub, "kametsu-24")
            defer { terminal.stop() }
            // Entries from 2010 and 2021, which the daemon cannot be asked to write.
            #expect(terminal.stop() == 0)
            let seeded = try AuditHistory.seed(
                terminal.stateDirectory + "/mamori.sqlite",
                times: [1_262_271_600_000, 1_262_271_601_000, 1_609_426_800_000, 1_609_426_801_000],
                terminal: "kametsu-24")
            #expect(seeded.status == 0, "\(seeded)")
            #expect(try terminal.start() == nil, "\(terminal.log)")
            let held = try await Self.streamed(terminal, writing: 1)
            #expect(held >= 5)
            let pruned = try Member.ask(
                terminal.socketPath, ["op": "audit.prune", "before": "2015-01-01T00:00:00+09:00"])
            #expect(pruned["pruned_through"] == .number(2), "\(pruned)")
            // The anchor was signed after the newest checkpoint, at an entry the hub already holds.
            _ = try await Self.streamed(terminal, writing: 3, pruned: 2)
            // A restart signs the head at shutdown, naming the anchor as the checkpoint before it;
            // the hub must hold both for its copy's checkpoints to link.
            #expect(terminal.stop() == 0)
            #expect(try terminal.start() == nil, "\(terminal.log)")
            let head = try await Self.streamed(terminal, writing: 1, pruned: 2)
            let copy = try Self.verify(hub, "kametsu-24")
            #expect(copy.reply["holds"] == .bool(true), "\(copy.reply)")
            #expect(Self.summary(copy.chain)["first_sequence"] == .number(1), "\(copy.reply)")
            #expect(Self.summary(copy.chain)["last_sequence"] == .number(Double(head)), "\(copy.reply)")
            #expect(Self.summary(copy.chain)["checkpoints"] == .number(2), "\(copy.reply)")
        }
    }

    @Test("malformed batches are answered bad_request, and the hub goes on serving")
    func malformedBatches() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let terminal = try await TownForwardTests.terminal(hub, "kametsu-23")
            defer { terminal.close() }
            let entry = { (sequence: Int64, time: Int64) in
                AuditTrailExport.Entry(
                    AuditChain.StoredEntry(
                        sequence: sequence, timeMillis: time, actorUID: nil, actor: "mamorid", event: "inspect",
                        target: "mamori:audit", outcome: "success", detailJSON: "{}", terminal: "kametsu-23",
                        zone: "mynumber", policyRevision: "sha256:r", previousHash: AuditEntry.genesis,
                        hash: AuditEntry.genesis))
            }
            let key = [UInt8](repeating: 9, count: 32)
            for entries in [
                [entry(60, 0), entry(55, 0)], [entry(Int64.min, 0)], [entry(Int64.max, 0)], [entry(1, Int64.max)],
            ] {
                do {
                    _ = try await terminal.call(
                        HubOperation.audit.rawValue,
                        TerminalAuditRequest(publicKey: key, entries: entries, checkpoints: []))
                    Issue.record("a malformed batch was accepted: \(entries.map(\.seq))")
                } catch let error as HubClientError {
                    #expect(error.code == "bad_request", "\(error)")
                }
            }
            // A well-formed first batch whose hash does not cover its entry: refused, and recorded once.
            for _ in 0..<2 {
                do {
                    _ = try await terminal.call(
                        HubOperation.audit.rawValue,
                        TerminalAuditRequest(publicKey: key, entries: [entry(1, 0)], checkpoints: []))
                    Issue.record("an entry whose hash does not cover it was kept")
                } catch let error as HubClientError {
                    #expect(error.code == "invalid", "\(error)")
                }
            }
            let hello = try await terminal.call(
                HubOperation.hello.rawValue, EmptyHello(), reading: TerminalHelloReply.self)
            #expect(hello.terminal == "kametsu-23")
            let trail = try TownForwardTests.administer(hub, ["op": "audit.read", "last": 50])
            #expect("\(trail)".components(separatedBy: "audit.witness").count - 1 == 1, "\(trail)")
        }
    }

    @Test("a terminal whose own trail was cut after the hub held it is refused, and the hub's verify says so")
    func tamperingAtTheTerminal() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let terminal = try Member.member(hub, "kametsu-22")
            defer { terminal.stop() }
            let head = try await Self.streamed(terminal, writing: 5)
            #expect(terminal.stop() == 0)
            // Root on the terminal cuts its last entries, with its checkpoints and the witness file.
            let cut = try Subprocess.run(
                "/usr/bin/python3",
                [
                    "-c",
                    """
                    import sqlite3, sys
                    db = sqlite3.connect(sys.argv[1])
                    db.executescript("DELETE FROM audit WHERE seq > %d; DELETE FROM checkpoints WHERE audit_seq > %d;"
                                     % (int(sys.argv[2]), int(sys.argv[2])))
                    db.commit()
                    """, terminal.stateDirectory + "/mamori.sqlite", "\(head - 3)",
                ])
            #expect(cut.status == 0, "\(cut)")
            try? FileManager.default.removeItem(atPath: terminal.stateDirectory + ".witness")
            #expect(try terminal.start() == nil, "\(terminal.log)")
            // New entries take the cut ones' numbers: the hub holds other entries under them.
            for _ in 0..<6 { _ = try Member.ask(terminal.socketPath, ["op": "audit.verify"]) }
            var refused: (reply: [String: JSONValue], chain: [String: JSONValue]?) = ([:], nil)
            let seen = try await Member.until(15) {
                refused = try Self.verify(hub, "kametsu-22")
                return Self.problems(refused.chain).contains { $0.contains("was refused") }
            }
            #expect(seen != nil, "the hub never refused the cut trail: \(refused.reply)\n\(terminal.log)")
            #expect(refused.reply["holds"] == .bool(false))
            #expect(
                Self.problems(refused.chain).contains { $0.contains("altered, cut or replaced") }, "\(refused.reply)")
            #expect(hub.harness.log.contains("does not continue the hub's copy"), "\(hub.harness.log)")
            // The terminal says so in its status, and its copy at the hub still holds what was acknowledged.
            guard case .object(let link)? = try Member.ask(terminal.socketPath, ["op": "status"])["hub"] else {
                Issue.record("no hub in status")
                return
            }
            #expect(link["audit_error"] != nil, "\(link)")
            let status = try Subprocess.run(Subprocess.product("mamori"), ["status", "--socket", terminal.socketPath])
            #expect(status.stdout.contains("hub audit") && status.stdout.contains("NOT SENT"), "\(status)")
            #expect(Self.summary(refused.chain)["last_sequence"] == .number(Double(head)), "\(refused.reply)")
        }
    }
}
