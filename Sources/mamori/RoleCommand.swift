import ArgumentParser
import Foundation
import MamoriProtocol

/// `mamori role …`: who holds what.
struct RoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role", abstract: "Grant, revoke and list roles.", subcommands: [Grant.self, Revoke.self, List.self]
    )

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Grant a role, checked against separation of duty and holder limits.",
            discussion: "Example: mamori role grant sato fiscal-year-staff --until 2027-03-31 (the role ends with that day)."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        @Argument(help: "The role's id from the policy.") var role: String
        @Option(help: "The last day the role counts (YYYY-MM-DD), or an ISO 8601 time.") var until: String?

        func run() throws {
            var fields: [String: JSONValue] = ["user": .string(user), "role": .string(role)]
            if let until { fields["until"] = .string(until) }
            let reply = try connection.call("role.grant", fields)
            if connection.json { return Terminal.printJSON(reply) }
            let assignment = reply.object("assignment")
            let end = assignment.text("expires_at") == "-" ? "" : " until \(assignment.text("expires_at"))"
            print("Granted \(role) to \(user)\(end).")
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a role.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        @Argument(help: "The role's id.") var role: String

        func run() throws {
            let reply = try connection.call("role.revoke", ["user": .string(user), "role": .string(role)])
            if connection.json { return Terminal.printJSON(reply) }
            print("Revoked \(role) from \(user).")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the policy's roles with their holders.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let reply = try connection.call("role.list")
            if connection.json { return Terminal.printJSON(reply) }
            let rows = reply.list("roles").map(\.object).map { role -> [String] in
                let holders = role.list("holders").map(\.string)
                let limit = role.text("max_holders")
                return [role.text("role"), role.text("title"), role.text("privileged") == "yes" ? "privileged" : "",
                        limit == "-" ? "\(holders.count)" : "\(holders.count)/\(limit)", holders.joined(separator: ", ")]
            }
            print(Terminal.table(["ROLE", "TITLE", "", "HOLDERS", "WHO"], rows))
        }
    }
}

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
            let reply = try connection.call("recovery.issue", ["user": .string(user), "count": .number(Double(count))])
            if connection.json { return Terminal.printJSON(reply) }
            print("Recovery codes for \(user) — give them to the user; they are not shown again:")
            for code in reply.list("codes") { print("  \(code.string)") }
        }
    }
}

/// `mamori unlock USER`.
struct UnlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unlock", abstract: "Unlock an account locked after failed logins.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The user's login name.") var user: String
    func run() throws { try UserCommand.Simple.run("user.unlock", user, connection, done: "Unlocked \(user).") }
}

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
    @Option(help: "Factors of the session to imagine, comma-separated: password,totp,recovery-code.") var factors: String?

    func validate() throws {
        let expected = session == nil ? 3 : 2
        guard words.count == expected else {
            throw ValidationError(session == nil ? "Please give USER ACTION RESOURCE." : "Please give ACTION RESOURCE with --session.")
        }
        if session != nil && (zone != nil || factors != nil) {
            throw ValidationError("A session has its own zone and factors; --zone and --factors go with a user.")
        }
    }

    func run() throws {
        var fields: [String: JSONValue] = ["action": .string(words[words.count - 2]), "resource": .string(words[words.count - 1])]
        if let session {
            fields["session"] = .string(session)
        } else {
            fields["user"] = .string(words[0])
            if let zone { fields["zone"] = .string(zone) }
            if let factors { fields["factors"] = .array(factors.split(separator: ",").map { .string(String($0)) }) }
        }
        let reply = try connection.call("authorize", fields)
        if connection.json {
            Terminal.printJSON(reply)
        } else {
            print(reply.text("effect"))
            let missing = reply.list("missing_factors").map(\.string)
            if !missing.isEmpty { print("  missing factors: \(missing.joined(separator: ", "))") }
            let rules = reply.list("rules").map(\.string)
            if !rules.isEmpty { print("  deciding rules: \(rules.joined(separator: ", "))") }
            for reason in reply.list("reasons") { print("  \(reason.string)") }
            print("  policy revision: \(reply.text("policy_revision"))")
        }
        if reply.text("effect") != "allow" { throw ExitCode.answeredNo }
    }
}
