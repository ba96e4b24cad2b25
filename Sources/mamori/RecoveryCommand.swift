import ArgumentParser
import Foundation
import MamoriProtocol

/// `mamori recovery issue USER`.
struct RecoveryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery", abstract: "Recovery codes for a lost TOTP device.", subcommands: [Issue.self]
    )

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a new set of single-use recovery codes (the old set stops working). They are shown once."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        @Option(help: "How many codes (1–20).") var count = 10

        func run() throws {
            let request = RecoveryIssueRequest(user: user, count: count)
            guard let issued = try connection.call(.recoveryIssue, request, reading: RecoveryCodesReply.self) else {
                return
            }
            print("Recovery codes for \(user) — give them to the user; they are not shown again:")
            for code in issued.codes { print("  \(code)") }
        }
    }
}
