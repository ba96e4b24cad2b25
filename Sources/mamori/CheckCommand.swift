import ArgumentParser
import Foundation
import MamoriProtocol

/// `mamori check`: ask the daemon for a decision.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Ask mamorid whether a user (or a session) may do an action on a resource, and why.",
        discussion: """
            Examples:
              mamori check tanaka asset.read point.participants --zone mynumber --factors password,totp
              mamori check --session $MAMORI_SESSION asset.export point.ledger
            Exit status 0 when allowed, 1 when denied or a step-up is needed.
            """
    )
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Decide for this session instead of a user.") var session: String?
    @Argument(help: "USER ACTION RESOURCE, or ACTION RESOURCE with --session.") var words: [String]
    @Option(help: "The zone of the session to imagine (default: the daemon's).") var zone: String?
    @Option(help: "Factors of the session to imagine, comma-separated: password,totp,recovery-code.") var factors:
        String?

    func validate() throws {
        let expected = session == nil ? 3 : 2
        guard words.count == expected else {
            throw ValidationError(
                session == nil ? "Please give USER ACTION RESOURCE." : "Please give ACTION RESOURCE with --session.")
        }
        if session != nil && (zone != nil || factors != nil) {
            throw ValidationError("A session has its own zone and factors; --zone and --factors go with a user.")
        }
    }

    func run() throws {
        var question = AuthorizeRequest(action: words[words.count - 2], resource: words[words.count - 1])
        if session == nil {
            question.user = words[0]
            question.zone = zone
            question.factors = factors.map { $0.split(separator: ",").map(String.init) }
        }
        let decision = try ConnectionOptions.read(
            try connection.call(.authorize, question, session: session), as: DecisionReply.self)
        if connection.json {
            Terminal.printJSON(decision.fields)
        } else {
            decision.lines.forEach { print($0) }
        }
        if !decision.allowed { throw ExitCode.answeredNo }
    }
}
