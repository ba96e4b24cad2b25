import ArgumentParser
import MamoriProtocol

/// `mamori status`: is mamorid running, and on what.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show mamorid's version, zone, terminal, policy revision and counts."
    )

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let reply = try connection.call("status")
        if connection.json { return Terminal.printJSON(reply) }
        let counts = reply.object("counts")
        print("mamorid \(reply.text("version")) (protocol \(reply.text("protocol"))) at \(connection.socketPath)")
        print(Terminal.fields([
            ("zone", reply.text("zone")), ("terminal", reply.text("terminal")),
            ("policy", reply.text("policy_revision")), ("uptime", "\(reply.text("uptime_seconds")) s"),
            ("users", counts.text("users")), ("open sessions", counts.text("open_sessions")),
            ("locked users", counts.text("locked_users")), ("audit entries", counts.text("audit_entries")),
        ]))
    }
}
