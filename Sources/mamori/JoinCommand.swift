import ArgumentParser
import CoreFoundation
import Foundation
import MamoriCore
import MamoriTown

/// `mamori join`: this terminal joins the town's hub with the one-time token its administrator
/// printed (`mamori-hub terminal add`). It writes the terminal's key, certificate, the hub's CA
/// and the membership into mamorid's state folder (`town/`); docs/town.md says what follows.
struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Join the town's hub with a one-time token: make this terminal's key and get its certificate.",
        discussion: """
            Run it as root (or as mamorid's user) on the terminal. Give the token as `--token -` and paste it, \
            rather than on the command line, where every account on the machine can read it while it runs.
              mamori join hub.example:7443 --token - --state-directory /var/lib/mamori
            """
    )

    @Argument(help: "The hub's terminal port: HOST[:PORT] (port \(HubAddress.defaultPort) by default).")
    var hub: String

    @Option(
        help:
            "- to read the join token from standard input (without echo at a terminal); a token itself is refused here."
    )
    var token: String?

    @Option(help: "A file holding the join token, readable by its owner only (mode 0600).")
    var tokenFile: String?

    func validate() throws {
        guard (token == nil) != (tokenFile == nil) else {
            throw ValidationError("Give --token - (then paste the token) or --token-file FILE.")
        }
        if let token, token != "-" {
            // Refused, not just discouraged: while the join runs every account can read its arguments.
            throw ValidationError(
                "A token on the command line is readable by every account on this machine; give --token - and paste it."
            )
        }
    }

    @Option(help: "mamorid's state folder.")
    var stateDirectory = ".mamori"

    private func readToken() throws -> String {
        guard let tokenFile else {
            let bytes = try SecretInput.read(prompt: "Join token: ", maximumLength: 256)
            return String(decoding: bytes, as: UTF8.self)
        }
        let descriptor = open(tokenFile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw CommandFailure("\(tokenFile) cannot be read.", exitCode: .commandFailed) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & 0o077 == 0 else {
            throw CommandFailure(
                "\(tokenFile) may be read by others (chmod 600 it, and get a new token).", exitCode: .commandFailed)
        }
        var bytes = [UInt8](repeating: 0, count: 512)
        let count = read(descriptor, &bytes, bytes.count)
        guard count > 0 else { throw CommandFailure("\(tokenFile) is empty.", exitCode: .commandFailed) }
        return String(decoding: bytes[..<count], as: UTF8.self)
    }

    func run() async throws {
        guard let address = HubAddress(hub) else {
            throw CommandFailure("\(hub) is not HOST[:PORT].", exitCode: .validationFailure)
        }
        let text = try readToken()
        guard let joinToken = JoinToken(text) else {
            // Never echoed: a mistyped token is still most of a secret.
            throw CommandFailure(
                "That is not a join token (mamori1.…, as mamori-hub terminal add printed it).",
                exitCode: .validationFailure)
        }
        do {
            let membership = try await TerminalJoin.join(hub: address, token: joinToken, stateDirectory: stateDirectory)
            print("Joined \(membership.hub) as terminal \(membership.terminal) (zone \(membership.zone)).")
            print("The key, certificate and the hub's CA are in \(TerminalMembership.folder(in: stateDirectory)).")
        } catch let error as HubClientError {
            throw CommandFailure(error.message, exitCode: error.code == nil ? .unreachable : .commandFailed)
        }
    }
}
