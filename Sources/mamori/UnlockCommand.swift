import ArgumentParser
import MamoriProtocol

/// `mamori unlock USER`.
struct UnlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlock", abstract: "Unlock an account locked after failed logins.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The user's login name.") var user: String
    func run() throws {
        try UserCommand.Simple.run(
            .userUnlock, user, connection, reading: UserUnlockedReply.self, done: "Unlocked \(user).")
    }
}
