import ArgumentParser
import Foundation
import MamoriCore
import MamoriProtocol

/// The `mamori` command: the security administrator's tool. Administrative commands are clients
/// of mamorid's socket; `password`, `totp code` and the `policy` file commands work offline.
@main
struct Mamori: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mamori",
        abstract: "Mamori (守り): access control and multi-factor authentication for the town's terminals.",
        discussion: """
            Commands other than `password`, `totp code`, `schema` and `policy check|test|explain|graph` talk to \
            mamorid's socket (--socket, $MAMORI_SOCKET); your login session ($MAMORI_SESSION) goes \
            with each request, so the policy sees the factors you logged in with.
            Exit status: 0 on success; 1 when a check answers no (a password that does not match, a \
            decision that is not allow, a failed authentication); 2 when the command could not do \
            its work (bad input, a refused change); 3 when mamorid cannot be reached; 4 when the \
            policy does not let you do it; 64 for a usage error.
            """,
        version: MamoriVersion.current,
        subcommands: [
            StatusCommand.self, UserCommand.self, PasswdCommand.self, TOTPCommand.self, RecoveryCommand.self,
            RoleCommand.self, UnlockCommand.self, CheckCommand.self, PolicyCommand.self, AuditCommand.self,
            InspectCommand.self,
            ReviewCommand.self,
            PasswordCommand.self, SchemaCommand.self, JoinCommand.self,
        ]
    )

    /// Runs the command, mapping Mamori's own failures to exit status 2 with the message on stderr.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
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
