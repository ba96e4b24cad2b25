import ArgumentParser
import Foundation
import MamoriCore
import MamoriStore

/// `mamori audit`: the audit trail (監査証跡).
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify the audit trail; export its verifying key.",
        subcommands: [Verify.self, Export.self, PublicKey.self]
    )

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the audit trail of a database copy as JSON lines or CSV, offline.",
            discussion: "Example: mamori audit export --db copy.sqlite --since 2026-04-01 --format csv > audit.csv"
        )

        @Option(help: "A copy of mamorid's database (opened read-only).") var db: String
        @Option(help: "Only entries at or after this day (YYYY-MM-DD, Tokyo) or ISO 8601 time.") var since: String?
        @Option(help: "Only entries before this day (YYYY-MM-DD, Tokyo) or ISO 8601 time.") var until: String?
        @Option(help: "jsonl or csv.") var format = "jsonl"

        func validate() throws {
            guard ["jsonl", "csv"].contains(format) else { throw ValidationError("The format must be jsonl or csv.") }
            for value in [since, until].compactMap({ $0 }) where Self.date(value) == nil {
                throw ValidationError("Please give dates as YYYY-MM-DD or ISO 8601 with an offset, not '\(value)'.")
            }
        }

        static func date(_ text: String) -> Date? {
            if let time = ISO8601DateFormatter().date(from: text) { return time }
            let formatter = DateFormatter()
            formatter.dateFormat = "yyyy-MM-dd"
            formatter.timeZone = TimeZone(identifier: "Asia/Tokyo")
            formatter.locale = Locale(identifier: "en_US_POSIX")
            return formatter.date(from: text)
        }

        func run() async throws {
            let entries = try await AuditCommand.open(db).auditTrail(db)
            let from = since.flatMap(Self.date)
            let to = until.flatMap(Self.date)
            let selected = entries.filter { stored in
                (from.map { stored.entry.time >= $0 } ?? true) && (to.map { stored.entry.time < $0 } ?? true)
            }
            let columns = ["seq", "time", "actor_uid", "actor", "event", "target", "outcome", "detail", "terminal", "zone", "policy_revision", "hash"]
            if format == "csv" { print(columns.joined(separator: ",")) }
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            for stored in selected {
                let entry = stored.entry
                let detail = (try? JSONSerialization.data(withJSONObject: entry.detail, options: [.sortedKeys]))
                    .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                let values: [String] = [
                    "\(stored.sequence)", formatter.string(from: entry.time), entry.actorUID.map(String.init) ?? "",
                    entry.actor, entry.event, entry.target, entry.outcome, detail, entry.terminal, entry.zone,
                    entry.policyRevision, stored.hash.map { String(format: "%02x", $0) }.joined(),
                ]
                if format == "csv" {
                    print(values.map(Self.csvField).joined(separator: ","))
                } else {
                    var object = Dictionary(uniqueKeysWithValues: zip(columns, values.map { $0 as Any }))
                    object["seq"] = Int(stored.sequence)
                    object["actor_uid"] = entry.actorUID.map { $0 as Any } ?? NSNull()
                    object["detail"] = entry.detail
                    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                        print(String(decoding: data, as: UTF8.self))
                    }
                }
            }
        }

        /// RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled. A leading
        /// =, +, - or @ is prefixed with ' so that a spreadsheet never runs it as a formula.
        static func csvField(_ value: String) -> String {
            var text = value
            if let first = text.first, "=+-@".contains(first) { text = "'" + text }
            guard text.contains(where: { ",\"\n\r".contains($0) }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
    }

    /// Opens an auditor's copy read-only, or says why not.
    static func open(_ db: String) throws(CommandFailure) -> Store {
        guard FileManager.default.isReadableFile(atPath: db) else { throw CommandFailure("There is no readable database at \(db).") }
        do {
            return try Store(readOnlyPath: db)
        } catch {
            throw CommandFailure("The database at \(db) cannot be opened: \(error)")
        }
    }

    struct PublicKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "public-key",
            abstract: "Print the Ed25519 key that verifies the audit trail's checkpoints (base64), for auditors."
        )
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let reply = try connection.call("audit.public_key")
            if connection.json { return Terminal.printJSON(reply) }
            print(reply.text("public_key"))
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every link of the audit chain in a copy of the database, offline.",
            discussion: """
                Example, on an auditor's machine: mamori audit verify --db mamori-2026-11-30.sqlite
                Names every altered, deleted, inserted or moved entry; exit 0 only when the chain holds.
                With --public-key (from `mamori audit public-key`), the signed checkpoints are checked
                too: a chain rewritten without the key, or entries cut off the end, no longer match.
                """
        )

        @Option(help: "A copy of mamorid's database (it is opened read-only).")
        var db: String

        @Option(help: "A file holding the verifying key (base64), from `mamori audit public-key`.")
        var publicKey: String?

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            var key: [UInt8]?
            if let publicKey {
                guard let text = try? String(contentsOfFile: publicKey, encoding: .utf8),
                    let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines))
                else { throw CommandFailure("\(publicKey) does not hold a base64 key.") }
                key = Array(bytes)
            }
            let store = try AuditCommand.open(db)
            let entries = try await store.auditTrail(db)
            let checkpoints: [AuditCheckpoint]
            do {
                checkpoints = try await store.checkpoints()
            } catch {
                throw CommandFailure("The checkpoints in \(db) cannot be read: \(error)")
            }
            var problems = AuditChain.verify(entries)
            if let key { problems += AuditChain.verify(checkpoints: checkpoints, against: entries, publicKey: key) }
            if json {
                let object: [String: Any] = [
                    "entries": entries.count, "valid": problems.isEmpty, "problems": problems.map(\.description),
                    "last_sequence": entries.last.map { Int($0.sequence) } ?? 0, "checkpoints": checkpoints.count,
                    "checkpoints_verified": key != nil,
                ]
                if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                    print(String(decoding: data, as: UTF8.self))
                }
            } else if problems.isEmpty {
                print("The audit chain holds: \(entries.count) entries, the last is \(entries.last.map { "\($0.sequence)" } ?? "none").")
                if key != nil {
                    let last = checkpoints.map(\.sequence).max() ?? 0
                    print("Checkpoints: \(checkpoints.count) signed, the last at entry \(last).")
                } else if !checkpoints.isEmpty {
                    print("The \(checkpoints.count) signed checkpoints were not checked: give --public-key.")
                }
            } else {
                for problem in problems { print("BROKEN: \(problem)") }
                print("\(problems.count) problem(s) in \(entries.count) entries.")
            }
            if !problems.isEmpty { throw ExitCode.answeredNo }
        }
    }
}

extension Store {
    /// The trail, or a failure naming the file.
    fileprivate func auditTrail(_ db: String) async throws(CommandFailure) -> [AuditChain.StoredEntry] {
        do {
            return try await auditTrail()
        } catch {
            throw CommandFailure("The audit trail in \(db) cannot be read: \(error)")
        }
    }
}
