import ArgumentParser
import Foundation
import MamoriCore
import MamoriStore

/// `mamori audit`: the audit trail (監査証跡).
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify the audit trail's hash chain.", subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every link of the audit chain in a copy of the database, offline.",
            discussion: """
                Example, on an auditor's machine: mamori audit verify --db mamori-2026-11-30.sqlite
                Names every altered, deleted, inserted or moved entry; exit 0 only when the chain holds.
                Entries cut from the end of the trail leave a shorter chain that still links: signed
                checkpoints, which will reveal that, are not written yet.
                """
        )

        @Option(help: "A copy of mamorid's database (it is opened read-only).")
        var db: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            guard FileManager.default.isReadableFile(atPath: db) else {
                throw CommandFailure("There is no readable database at \(db).")
            }
            let entries: [AuditChain.StoredEntry]
            do {
                entries = try await Store(readOnlyPath: db).auditTrail()
            } catch {
                throw CommandFailure("The audit trail in \(db) cannot be read: \(error)")
            }
            let problems = AuditChain.verify(entries)
            if json {
                let object: [String: Any] = [
                    "entries": entries.count, "valid": problems.isEmpty, "problems": problems.map(\.description),
                    "last_sequence": entries.last.map { Int($0.sequence) } ?? 0,
                ]
                if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                    print(String(decoding: data, as: UTF8.self))
                }
            } else if problems.isEmpty {
                print("The audit chain holds: \(entries.count) entries, the last is \(entries.last.map { "\($0.sequence)" } ?? "none").")
            } else {
                for problem in problems { print("BROKEN: \(problem)") }
                print("\(problems.count) problem(s) in \(entries.count) entries.")
            }
            if !problems.isEmpty { throw ExitCode.answeredNo }
        }
    }
}
