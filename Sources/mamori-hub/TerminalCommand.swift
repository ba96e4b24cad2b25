import ArgumentParser
import Foundation
import MamoriProtocol

/// `mamori-hub terminal add|list|remove`: the town's terminals, through the hub's own socket, so
/// that each act is authorised by the policy and recorded in the hub's chain like any other.
struct TerminalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "terminal",
        abstract: "Add, list or remove the town's terminals (through the running hub's socket).",
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct SocketOptions: ParsableArguments {
        @Option(help: "The running hub's socket (default: $MAMORI_SOCKET, or /run/mamori-hub/mamori.sock).")
        var socket: String = ProcessInfo.processInfo.environment["MAMORI_SOCKET"] ?? "/run/mamori-hub/mamori.sock"

        /// Sends one request; prints the refusal and exits (2, 3 or 4, as `mamori` does) when it fails.
        func call(_ op: WireOperation, _ body: some WireRequestBody) throws -> [String: JSONValue] {
            var fields = try body.fields()
            fields["op"] = .string(op.rawValue)
            let connection: LineConnection
            do {
                connection = try LineConnection(path: socket, receiveTimeout: 30)
            } catch {
                TerminalCommand.fail("the hub's socket \(socket) cannot be reached: \(error)", status: 3)
            }
            // Only a hub running as root or as this user is believed: a token must not go to another's socket.
            guard let peer = connection.peerUID, peer == 0 || peer == geteuid() else {
                TerminalCommand.fail("the process on \(socket) is not a hub of root's or of this user's.", status: 3)
            }
            guard let reply = connection.exchange(WireReply.encodeRequest(fields)),
                let object = WireReply.parse(reply)
            else {
                TerminalCommand.fail("the hub at \(socket) did not answer.", status: 3)
            }
            if case .bool(true)? = object["ok"] { return object }
            if case .object(let error)? = object["error"], case .string(let code)? = error["code"],
                case .string(let message)? = error["message"]
            {
                TerminalCommand.fail(message, status: code == "denied" || code == "step_up_required" ? 4 : 2)
            }
            TerminalCommand.fail("the hub refused the request without saying why.", status: 2)
        }
    }

    static func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data("mamori-hub: \(message)\n".utf8))
        Foundation.exit(status)
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a terminal and print its one-time join token.",
            discussion: """
                Give the token to whoever installs the terminal, by a way no one else reads; on the terminal, as root:
                  mamori join HUB:PORT --token -        (then paste the token)
                The hub keeps only the token's digest. It is accepted once, until it expires.
                """)

        @OptionGroup var socket: SocketOptions
        @Argument(help: "The terminal's name in the town.") var name: String
        @Option(help: "The policy zone it is in.") var zone: String
        @Option(help: "Hours the token is accepted (1 to 168).") var expiresHours = 24

        func run() throws {
            let reply = try socket.call(
                .terminalAdd, TerminalAddRequest(terminal: name, zone: zone, expiresHours: expiresHours))
            let added = try TerminalAddReply(reply: reply)
            print(
                "Terminal \(added.terminal) (zone \(added.zone)) added. Its join token, accepted once until \(added.expiresAt):"
            )
            print(added.token)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the town's terminals, removed ones too.")

        @OptionGroup var socket: SocketOptions

        func run() throws {
            let reply = try TerminalListReply(reply: socket.call(.terminalList, EmptyRequest()))
            for terminal in reply.terminals {
                let detail =
                    switch terminal.state {
                    case "joined":
                        "joined \(terminal.joinedAt ?? "-"), certificate \(terminal.certificateSerial ?? "-") until \(terminal.certificateExpiresAt ?? "-")"
                    case "awaiting-join": "token until \(terminal.tokenExpiresAt ?? "-")"
                    case "removed": "removed \(terminal.removedAt ?? "-")"
                    default: "token expired: remove it and add it again"
                    }
                print("\(terminal.terminal)  \(terminal.zone)  \(terminal.state)  \(detail)")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a terminal: its certificate is refused, its connections closed, at once.")

        @OptionGroup var socket: SocketOptions
        @Argument(help: "The terminal's name.") var name: String

        func run() throws {
            let reply = try TerminalRemovedReply(reply: socket.call(.terminalRemove, TerminalRequest(terminal: name)))
            print("Terminal \(reply.terminal) removed.")
        }
    }
}
