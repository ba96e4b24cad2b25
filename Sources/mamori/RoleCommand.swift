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
            let request = RoleGrantRequest(user: user, role: role, until: until)
            guard let granted = try connection.call(.roleGrant, request, reading: RoleGrantReply.self) else { return }
            let end = granted.assignment.expiresAt.map { " until \($0)" } ?? ""
            print("Granted \(role) to \(user)\(end).")
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a role.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        @Argument(help: "The role's id.") var role: String

        func run() throws {
            let request = RoleRevokeRequest(user: user, role: role)
            guard try connection.call(.roleRevoke, request, reading: RoleRevokeReply.self) != nil else { return }
            print("Revoked \(role) from \(user).")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the policy's roles with their holders.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            guard let list = try connection.call(.roleList, reading: RoleListReply.self) else { return }
            let rows = list.roles.map { role -> [String] in
                let held = role.maxHolders.map { "\(role.holders.count)/\($0)" } ?? "\(role.holders.count)"
                return [
                    role.role, role.title, role.privileged ? "privileged" : "", held,
                    role.holders.joined(separator: ", "),
                ]
            }
            print(Terminal.table(["ROLE", "TITLE", "", "HOLDERS", "WHO"], rows))
        }
    }
}
