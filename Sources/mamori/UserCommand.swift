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
            let request = UserAddRequest(user: user, displayName: displayName, kind: kind, organisation: organisation)
            guard try connection.call(.userAdd, request, reading: UserDescription.self) != nil else { return }
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
            guard let shown = try connection.call(.userShow, UserRequest(user: user), reading: UserDescription.self)
            else { return }
            print(shown.user)
            print(
                Terminal.fields([
                    ("name", shown.displayName), ("kind", shown.kind), ("organisation", shown.organisation ?? "-"),
                    ("status", UserCommand.status(shown)),
                    ("password", shown.hasPassword ? (shown.mustChangePassword ? "temporary" : "set") : "none"),
                    ("TOTP", shown.totp), ("created", shown.createdAt), ("last login", shown.lastLoginAt ?? "-"),
                    ("roles", UserCommand.roles(shown.roles)),
                ]))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every user.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            guard let list = try connection.call(.userList, reading: UserListReply.self) else { return }
            let rows = list.users.map { user in
                [
                    user.user, user.displayName, user.kind, user.organisation ?? "-", user.totp,
                    UserCommand.status(user), UserCommand.roles(user.roles),
                ]
            }
            print(Terminal.table(["USER", "NAME", "KIND", "ORGANISATION", "TOTP", "STATUS", "ROLES"], rows))
        }
    }

    /// A user-changing command with only the user as argument.
    struct Simple {
        static func run<Reply: WireReplyBody>(
            _ op: WireOperation, _ user: String, _ connection: ConnectionOptions, reading type: Reply.Type,
            done: String
        ) throws {
            guard try connection.call(op, UserRequest(user: user), reading: type) != nil else { return }
            print(done)
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user: no login, no roles, until enabled.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        func run() throws {
            try Simple.run(.userDisable, user, connection, reading: UserDisabledReply.self, done: "Disabled \(user).")
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled user.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        func run() throws {
            try Simple.run(.userEnable, user, connection, reading: UserDisabledReply.self, done: "Enabled \(user).")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a user with their credentials and roles (the audit trail keeps their history).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        func run() throws {
            try Simple.run(.userRemove, user, connection, reading: UserRemovedReply.self, done: "Removed \(user).")
        }
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
            let request = UserPasswdRequest(user: user, password: String(decoding: password, as: UTF8.self))
            guard try connection.call(.userPasswd, request, reading: PasswordSetReply.self) != nil else { return }
            print("Set a temporary password for \(user); it must be changed at the next login.")
        }
    }

    struct Roles: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a user's roles, with who granted them and until when.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String

        func run() throws {
            guard let held = try connection.call(.userRoles, UserRequest(user: user), reading: UserRolesReply.self)
            else { return }
            let rows = held.roles.map { role in
                [
                    role.role, role.grantedBy, role.grantedAt, role.expiresAt ?? "-",
                    role.current ? "current" : "expired",
                ]
            }
            print(Terminal.table(["ROLE", "GRANTED BY", "GRANTED AT", "UNTIL", "STATE"], rows))
        }
    }

    static func status(_ user: UserDescription) -> String {
        if user.disabled { return "disabled" }
        if user.locked { return "locked" }
        return "active"
    }

    static func roles(_ roles: [AssignmentDescription]) -> String {
        let names = roles.map { $0.current ? $0.role : "\($0.role) (expired)" }
        return names.isEmpty ? "-" : names.joined(separator: ", ")
    }
}
