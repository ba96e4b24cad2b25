import ArgumentParser
import Foundation
import MamoriCore
import MamoriProtocol

/// `mamori audit`: the audit trail (監査証跡), through mamorid; `verify --export` checks an
/// export offline, so this command never opens mamorid's database (it does not link it).
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify, read, export and prune the audit trail; export its verifying key.",
        subcommands: [Verify.self, Tail.self, Export.self, Prune.self, PublicKey.self]
    )

    /// A day (YYYY-MM-DD, at midnight in Tokyo, the town's time) or an ISO 8601 time with offset.
    static func date(_ text: String) -> Date? {
        if let time = ISO8601DateFormatter().date(from: text) { return time }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.timeZone = TimeZone(identifier: "Asia/Tokyo")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.date(from: text)
    }

    static func validateDate(_ value: String?) throws {
        if let value, date(value) == nil {
            throw ValidationError("Please give dates as YYYY-MM-DD or ISO 8601 with an offset, not '\(value)'.")
        }
    }

    /// Reads entries from mamorid page by page (`audit.read`) over one connection, calling
    /// `body` with each page; returns the last sequence number read. mamorid records the read
    /// once per connection, so a follower reuses its connection for every poll.
    static func readPages(
        _ options: ConnectionOptions, over connection: DaemonConnection, purpose: String, after: Int64 = 0,
        since: Date? = nil, until: Date? = nil, body: ([AuditRecord]) throws -> Void
    ) throws -> Int64 {
        var request = AuditReadRequest(
            purpose: purpose, after: after, limit: 1000, since: since?.formatted(.iso8601),
            until: until?.formatted(.iso8601))
        while true {
            let reply = try options.call(.auditRead, request, over: connection)
            let page = try ConnectionOptions.read(reply, as: AuditReadReply.self)
            let records = try decodeEntries(page)
            try body(records)
            guard let last = records.last, page.more else {
                return records.last?.seq ?? request.after ?? 0
            }
            request.after = last.seq
        }
    }

    static func decodeEntries(_ page: AuditReadReply) throws(CommandFailure) -> [AuditRecord] {
        do {
            return try JSONValue.array(page.entries).decode([AuditRecord].self)
        } catch {
            throw CommandFailure("mamorid sent audit entries this command cannot read.")
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every link and checkpoint of the audit chain; exit 0 only when all holds.",
            discussion: """
                Through mamorid (its own key checks the signatures): mamori audit verify
                Offline, on an auditor's machine, an export from `mamori audit export --format trail` or \
                `mamorid export-audit`: mamori audit verify --export trail.jsonl --public-key audit.pub \
                --witness mamori.witness

                Names every altered, deleted, inserted or moved entry, a start deleted rather than \
                pruned, and entries cut off the end after a checkpoint. The key (from \
                `mamori audit public-key`) makes the checkpoints proof against a rewritten chain; the \
                witness (a copy of the file beside mamorid's state folder) shows a trail cut off at its \
                end together with its checkpoints. mamorid always checks against its witness.
                """
        )

        @Option(help: "Check a trail export (JSON lines) offline instead of asking mamorid.")
        var export: String?

        @Option(help: "With --export: a file holding the verifying key (base64), from `mamori audit public-key`.")
        var publicKey: String?

        @Option(help: "With --export: a copy of the audit witness (mamorid's witness-file); a shorter trail is BROKEN.")
        var witness: String?

        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            if publicKey != nil && export == nil {
                throw ValidationError("--public-key goes with --export; mamorid checks with its own key.")
            }
            if witness != nil && export == nil {
                throw ValidationError("--witness goes with --export; mamorid checks its own witness.")
            }
        }

        func run() async throws {
            let summary: AuditReport.Summary
            var notes: [String] = []
            if let export {
                (summary, notes) = try await offline(export)
            } else {
                let reply = try connection.call(.auditVerify, timeout: DaemonConnection.wholeTrailTimeout)
                do {
                    summary = try JSONValue.object(reply).decode(AuditReport.Summary.self)
                } catch {
                    throw CommandFailure("mamorid sent a verification report this command cannot read.")
                }
            }
            if connection.json {
                print((try? JSONValue(encoding: summary).text) ?? "{}")
            } else {
                for line in summary.lines + notes { print(line) }
            }
            if !summary.holds { throw ExitCode.answeredNo }
        }

        /// Verifies the export at `path`; with the notes a reader needs about where the key came from.
        private func offline(_ path: String) async throws -> (AuditReport.Summary, [String]) {
            var key: [UInt8]?
            if let publicKey {
                guard let text = try? String(contentsOfFile: publicKey, encoding: .utf8),
                    let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines))
                else { throw CommandFailure("\(publicKey) does not hold a base64 key.") }
                key = Array(bytes)
            }
            var witnessed: AuditCheckpoint?
            if let witness {
                do {
                    guard let read = try AuditWitness.read(witness) else {
                        throw CommandFailure("There is no witness file \(witness).")
                    }
                    witnessed = read
                } catch let failure as AuditWitness.Failure {
                    throw CommandFailure(failure.description)
                }
            }
            let file: AuditTrailFile
            do {
                file = try AuditTrailFile(path: path)
            } catch {
                throw CommandFailure(error.description)
            }
            var notes: [String] = []
            if key == nil {
                // Never the key inside the export: whoever edits the file can re-sign its
                // checkpoints and put their own key in the header, so it would prove nothing.
                notes.append(
                    "The signatures were not checked: no --public-key was given. A key inside the export proves "
                        + "nothing (whoever edits the file can re-sign it); give the key you hold from `mamori audit public-key`."
                )
            } else if let key, let exported = file.publicKey, exported != key {
                notes.append("The export names a different verifying key from the one given; the one given was used.")
            }
            do {
                return (try await AuditVerifier.verify(file, publicKey: key, witness: witnessed).summary, notes)
            } catch let failure as AuditTrailExport.Failure {
                throw CommandFailure(failure.description)
            } catch {
                throw CommandFailure("The export \(path) cannot be read: \(error)")
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write the audit trail as JSON lines or CSV, filtered by time, or whole for offline verification.",
            discussion: """
                Needs mamori.audit.export. Days are midnight in Tokyo; --since is inclusive, --until exclusive.
                  mamori audit export --since 2026-04-01 --format csv > audit.csv
                  mamori audit export --format trail > trail.jsonl      (then: mamori audit verify --export trail.jsonl)

                jsonl and csv give one record per entry, for reading and for other tools. trail is the whole \
                trail as stored, with its checkpoints and the verifying key (docs/operations.md, "Verifying \
                offline"); it takes no --since or --until, since a part of the chain does not verify.
                """
        )

        @Option(help: "Only entries at or after this day (YYYY-MM-DD, Tokyo) or ISO 8601 time.") var since: String?
        @Option(help: "Only entries before this day (YYYY-MM-DD, Tokyo) or ISO 8601 time.") var until: String?
        @Option(help: "jsonl, csv or trail.") var format = "jsonl"
        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            guard ["jsonl", "csv", "trail"].contains(format) else {
                throw ValidationError("The format must be jsonl, csv or trail.")
            }
            if format == "trail" && (since != nil || until != nil) {
                throw ValidationError("A trail export is the whole trail: --since and --until go with jsonl and csv.")
            }
            try AuditCommand.validateDate(since)
            try AuditCommand.validateDate(until)
        }

        func run() throws {
            let daemon = try connection.connect()
            if format == "trail" { return try trail(over: daemon) }
            if format == "csv" { print(AuditRecord.columns.joined(separator: ",")) }
            _ = try AuditCommand.readPages(
                connection, over: daemon, purpose: "export", since: since.flatMap(AuditCommand.date),
                until: until.flatMap(AuditCommand.date)
            ) { records in
                for record in records { print(format == "csv" ? record.csvRow : record.jsonLine) }
            }
        }

        /// The header and checkpoints from the first page, then every page of entries, each line
        /// as mamorid sent it (re-encoded by the same type that reads it back).
        private func trail(over daemon: DaemonConnection) throws {
            var after: Int64 = 0
            while true {
                let reply = try connection.call(.auditTrail, AuditTrailRequest(after: after, limit: 1000), over: daemon)
                let page = try ConnectionOptions.read(reply, as: AuditTrailReply.self)
                let entries: [AuditTrailExport.Entry]
                do {
                    entries = try JSONValue.array(page.entries).decode([AuditTrailExport.Entry].self)
                    if after == 0 {
                        let key = page.publicKey.flatMap { Data(base64Encoded: $0) }.map(Array.init)
                        print(AuditTrailExport.line(AuditTrailExport.Header(publicKey: key, exported: Date())))
                        let checkpoints = try JSONValue.array(page.checkpoints ?? []).decode(
                            [AuditTrailExport.Checkpoint].self)
                        for checkpoint in checkpoints { print(AuditTrailExport.line(checkpoint)) }
                    }
                } catch {
                    throw CommandFailure("mamorid sent an audit trail this command cannot read.")
                }
                for entry in entries { print(AuditTrailExport.line(entry)) }
                guard let last = entries.last, page.more else { return }
                after = last.seq
            }
        }
    }

    struct Tail: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the newest audit entries; with -f, keep showing new ones as they are written.",
            discussion: "Example: mamori audit tail -n 20 -f   (stop with Ctrl-C)"
        )

        @Option(name: [.customShort("n"), .customLong("lines")], help: "How many of the newest entries to show first.")
        var count = 10
        @Flag(name: .short, help: "Follow: wait for new entries and show them.") var follow = false
        @Option(help: "With -f: seconds between checks for new entries (at most 60).") var interval = 1.0
        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            guard (0...10_000).contains(count) else { throw ValidationError("-n must be from 0 to 10000.") }
            // One connection serves every poll; mamorid closes connections silent for longer.
            guard (0.1...60).contains(interval) else {
                throw ValidationError("--interval must be from 0.1 to 60 seconds.")
            }
        }

        func show(_ records: [AuditRecord]) {
            for record in records { print(connection.json ? record.jsonLine : record.summaryLine) }
            fflush(nil)
        }

        func run() throws {
            let daemon = try connection.connect()
            let reply = try connection.call(.auditRead, AuditReadRequest(purpose: "tail", last: count), over: daemon)
            let page = try ConnectionOptions.read(reply, as: AuditReadReply.self)
            let records = try AuditCommand.decodeEntries(page)
            show(records)
            guard follow else { return }
            var after = page.lastSequence
            while true {
                Thread.sleep(forTimeInterval: interval)
                // One connection for every poll: mamorid records the follower once. If mamorid
                // restarts, the follower stops with exit status 3; run it again.
                after = try AuditCommand.readPages(connection, over: daemon, purpose: "tail", after: after, body: show)
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove audit entries older than a date that lies beyond the policy's retention.",
            discussion: """
                Example: mamori audit prune --before 2019-04-01

                mamorid refuses a date within the retention period (settings: audit: retention-years). \
                Before removing, it signs a checkpoint at the last entry removed, so that \
                `mamori audit verify` still passes on what remains. Export first what you must keep.
                """
        )

        @Option(help: "Remove entries written before this day (YYYY-MM-DD, Tokyo) or ISO 8601 time.") var before: String
        @OptionGroup var connection: ConnectionOptions

        func validate() throws { try AuditCommand.validateDate(before) }

        func run() throws {
            guard let cutoff = AuditCommand.date(before) else { return }
            guard
                let pruned = try connection.call(
                    .auditPrune, AuditPruneRequest(before: cutoff.formatted(.iso8601)), reading: AuditPruneReply.self,
                    timeout: DaemonConnection.wholeTrailTimeout)
            else { return }
            if pruned.removed == 0 {
                print("Nothing to prune: no entry was written before \(before).")
            } else {
                print(
                    "Pruned \(pruned.removed) entries, through entry \(pruned.prunedThrough); a signed checkpoint anchors the rest."
                )
            }
        }
    }

    struct PublicKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "public-key",
            abstract: "Print the Ed25519 key that verifies the audit trail's checkpoints (base64), for auditors."
        )
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            guard let key = try connection.call(.auditPublicKey, reading: AuditPublicKeyReply.self) else { return }
            print(key.publicKey)
        }
    }
}
