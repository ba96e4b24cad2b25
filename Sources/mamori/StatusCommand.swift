import ArgumentParser
import MamoriProtocol

/// `mamori status`: is mamorid running, and on what.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show mamorid's version, zone, terminal, policy revision and counts."
    )

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let reply = try connection.call(.status)
        if connection.json { return Terminal.printJSON(reply) }
        let counts = reply.object("counts")
        let chain = reply.object("audit_chain")
        let chainState =
            chain.text("checked") == "yes"
            ? (chain.text("holds") == "yes"
                ? "holds (\(chain.text("entries")) entries, verified \(chain.text("verified_at")))"
                : "BROKEN: \(chain.text("problems")) problem(s), verified \(chain.text("verified_at")); run `mamori audit verify`")
            : "not verified yet"
        print("mamorid \(reply.text("version")) (protocol \(reply.text("protocol"))) at \(connection.socketPath)")
        print(
            Terminal.fields([
                ("zone", reply.text("zone")), ("terminal", reply.text("terminal")),
                ("policy", reply.text("policy_revision")), ("uptime", "\(reply.text("uptime_seconds")) s"),
                ("users", counts.text("users")), ("open sessions", counts.text("open_sessions")),
                ("locked users", counts.text("locked_users")), ("audit entries", counts.text("audit_entries")),
                ("audit chain", chainState),
            ]))
    }
}
