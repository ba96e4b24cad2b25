import ArgumentParser
import Foundation
import MamoriCore

/// The `mamori` command: the operator's tool. Until the daemon exists it holds the offline tools
/// (`password`, `totp`); administrative commands will be clients of mamorid's socket.
@main
struct Mamori: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mamori",
        abstract: "Mamori (守り): access control and multi-factor authentication for the town's terminals.",
        discussion: """
            Exit status: 0 on success; 1 when a check answers no (a password that does not match); \
            2 when the command could not do its work (bad input, a malformed hash); 64 for a usage error.
            """,
        version: MamoriVersion.current,
        subcommands: [PasswordCommand.self, TOTPCommand.self, PolicyCommand.self]
    )

    /// Runs the command, mapping Mamori's own failures to exit status 2 with the message on stderr.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let failure as CommandFailure {
            standardError("mamori: \(failure.message)")
            Foundation.exit(failure.exitCode.rawValue)
        } catch let error as PasswordError {
            standardError("mamori: \(error.message)")
            Foundation.exit(ExitCode.commandFailed.rawValue)
        } catch let error as OTPError {
            standardError("mamori: \(error.message)")
            Foundation.exit(ExitCode.commandFailed.rawValue)
        } catch {
            exit(withError: error)
        }
    }
}

enum MamoriVersion {
    static let current = "0.1.0"
}

extension ExitCode {
    /// A check that answered no: a password that does not match.
    static let answeredNo = ExitCode(1)
    /// The command could not do its work.
    static let commandFailed = ExitCode(2)
}

/// A failure the command reports as one sentence on stderr, with its exit status.
struct CommandFailure: Error {
    let message: String
    let exitCode: ExitCode

    init(_ message: String, exitCode: ExitCode = .commandFailed) {
        self.message = message
        self.exitCode = exitCode
    }
}

func standardError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
