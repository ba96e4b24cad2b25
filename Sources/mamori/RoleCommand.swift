import ArgumentParser
import Foundation
import MamoriProtocol

/// `mamori role …`: who holds what.
struct RoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role", abstract: "Grant, revoke and list roles.",
        subcommands: [Grant.self, Revoke.self, List.self]
    )

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Grant a role, checked against separation of duty and holder limits.",
            discussion:
                "Example: mamori role grant sato fiscal-year-staff --until 2027-03-31 (the role ends with that day)."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        @Argument(help: "The role's id from the policy.") var role: String
        @Option(help: "The last day the role counts (YYYY-MM-DD), or an ISO 8601 time.") var until: String?

        func run() throws {
            var fields: [String: JSONValue] = ["user": .string(user), "role": .string(role)]
            if let until { fields["until"] = .string(until) }
            let reply = try connection.call(.roleGrant, fields)
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
            let reply = try connection.call(.roleRevoke, ["user": .string(user), "role": .string(role)])
            if connection.json { return Terminal.printJSON(reply) }
            print("Revoked \(role) from \(user).")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the policy's roles with their holders.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let reply = try connection.call(.roleList)
            if connection.json { return Terminal.printJSON(reply) }
            let rows = reply.list("roles").map(\.object).map { role -> [String] in
                let holders = role.list("holders").map(\.string)
                let limit = role.text("max_holders")
                return [
                    role.text("role"), role.text("title"), role.text("privileged") == "yes" ? "privileged" : "",
                    limit == "-" ? "\(holders.count)" : "\(holders.count)/\(limit)", holders.joined(separator: ", "),
                ]
            }
            print(Terminal.table(["ROLE", "TITLE", "", "HOLDERS", "WHO"], rows))
        }
    }
}
