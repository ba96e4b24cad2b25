import ArgumentParser
import Foundation
import MamoriCore
import MamoriProtocol

/// `mamori user …`: accounts.
struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Add, show, list, disable, enable and remove users; set temporary passwords.",
        subcommands: [Add.self, Show.self, List.self, Disable.self, Enable.self, Remove.self, Passwd.self, Roles.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user: their Unix login name, and who they are.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's Unix login name.") var user: String
        @Option(help: "The name people read, e.g. \"田中 花子\".") var displayName: String?
        @Option(help: "staff, fiscal-year-staff, contractor or service.") var kind = "staff"
        @Option(help: "The organisation (an id from the policy).") var organisation: String?

        func run() throws {
            var fields: [String: JSONValue] = ["user": .string(user), "kind": .string(kind)]
            if let displayName { fields["display_name"] = .string(displayName) }
            if let organisation { fields["organisation"] = .string(organisation) }
            let reply = try connection.call(.userAdd, fields)
            if connection.json { return Terminal.printJSON(reply) }
            print(
                "Added \(user). Next: mamori user passwd \(user); mamori totp enroll \(user); mamori role grant \(user) ROLE"
            )
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a user, their second factor and roles.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String

        func run() throws {
            let reply = try connection.call(.userShow, ["user": .string(user)])
            if connection.json { return Terminal.printJSON(reply) }
            print(reply.text("user"))
            print(
                Terminal.fields([
                    ("name", reply.text("display_name")), ("kind", reply.text("kind")),
                    ("organisation", reply.text("organisation")), ("status", UserCommand.status(reply)),
                    (
                        "password",
                        reply.text("has_password") == "yes"
                            ? (reply.text("must_change_password") == "yes" ? "temporary" : "set") : "none"
                    ),
                    ("TOTP", reply.text("totp")), ("created", reply.text("created_at")),
                    ("last login", reply.text("last_login_at")),
                    ("roles", UserCommand.roles(reply.list("roles"))),
                ]))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every user.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let reply = try connection.call(.userList)
            if connection.json { return Terminal.printJSON(reply) }
            let rows = reply.list("users").map(\.object).map { user in
                [
                    user.text("user"), user.text("display_name"), user.text("kind"), user.text("organisation"),
                    user.text("totp"), UserCommand.status(user), UserCommand.roles(user.list("roles")),
                ]
            }
            print(Terminal.table(["USER", "NAME", "KIND", "ORGANISATION", "TOTP", "STATUS", "ROLES"], rows))
        }
    }

    /// A user-changing command with only the user as argument.
    struct Simple {
        static func run(_ op: WireOperation, _ user: String, _ connection: ConnectionOptions, done: String) throws {
            let reply = try connection.call(op, ["user": .string(user)])
            if connection.json { return Terminal.printJSON(reply) }
            print(done)
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user: no login, no roles, until enabled.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        func run() throws { try Simple.run(.userDisable, user, connection, done: "Disabled \(user).") }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled user.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        func run() throws { try Simple.run(.userEnable, user, connection, done: "Enabled \(user).") }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a user with their credentials and roles (the audit trail keeps their history).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        func run() throws { try Simple.run(.userRemove, user, connection, done: "Removed \(user).") }
    }

    struct Passwd: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a temporary password, which the user must change at their next login."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        @Flag(help: "Read the password from the first line of stdin instead of asking at the terminal.")
        var passwordStdin = false

        func run() throws {
            let password = try SecretInput.read(
                prompt: "Temporary password for \(user): ", confirm: true,
                maximumLength: PasswordHasher.maximumPasswordLength,
                pipeFlag: "--password-stdin", fromStandardInput: passwordStdin
            )
            let reply = try connection.call(
                .userPasswd, ["user": .string(user), "password": .string(String(decoding: password, as: UTF8.self))])
            if connection.json { return Terminal.printJSON(reply) }
            print("Set a temporary password for \(user); it must be changed at the next login.")
        }
    }

    struct Roles: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a user's roles, with who granted them and until when.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String

        func run() throws {
            let reply = try connection.call(.userRoles, ["user": .string(user)])
            if connection.json { return Terminal.printJSON(reply) }
            let rows = reply.list("roles").map(\.object).map { role in
                [
                    role.text("role"), role.text("granted_by"), role.text("granted_at"), role.text("expires_at"),
                    role.text("current") == "yes" ? "current" : "expired",
                ]
            }
            print(Terminal.table(["ROLE", "GRANTED BY", "GRANTED AT", "UNTIL", "STATE"], rows))
        }
    }

    static func status(_ user: [String: JSONValue]) -> String {
        if user.text("disabled") == "yes" { return "disabled" }
        if user.text("locked") == "yes" { return "locked" }
        return "active"
    }

    static func roles(_ roles: [JSONValue]) -> String {
        let names = roles.map(\.object).map {
            $0.text("current") == "yes" ? $0.text("role") : "\($0.text("role")) (expired)"
        }
        return names.isEmpty ? "-" : names.joined(separator: ", ")
    }
}
