import ArgumentParser
import Foundation
import MamoriCore
import MamoriProtocol

/// `mamori passwd`: change one's own password.
struct PasswdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd", abstract: "Change your own password (the old one is needed)."
    )
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Read the old and the new password from the first two lines of stdin.")
    var passwordStdin = false

    func run() throws {
        guard let user = loginName() else {
            throw CommandFailure("Your uid has no login name in the password database.")
        }
        let limit = PasswordHasher.maximumPasswordLength
        let old = try SecretInput.read(
            prompt: "Current password: ", maximumLength: limit, pipeFlag: "--password-stdin",
            fromStandardInput: passwordStdin)
        let new = try SecretInput.read(
            prompt: "New password: ", confirm: true, maximumLength: limit, pipeFlag: "--password-stdin",
            fromStandardInput: passwordStdin)
        let request = PasswordChangeRequest(
            user: user, oldPassword: String(decoding: old, as: UTF8.self),
            newPassword: String(decoding: new, as: UTF8.self))
        guard try connection.call(.passwordChange, request, reading: PasswordSetReply.self) != nil else { return }
        print("Changed the password of \(user).")
    }

    private func loginName() -> String? {
        guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name else { return nil }
        return String(cString: name)
    }
}
