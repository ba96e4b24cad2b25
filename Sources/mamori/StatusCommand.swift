import ArgumentParser
import MamoriProtocol

/// `mamori status`: is mamorid running, and on what.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show mamorid's version, zone, terminal, policy revision and counts."
    )

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        guard let status = try connection.call(.status, reading: StatusReply.self) else { return }
        let chain = status.auditChain
        let verified = chain.verifiedAt ?? "-"
        let chainState =
            chain.checked
            ? (chain.holds == true
                ? "holds (\(chain.entries ?? 0) entries, verified \(verified))"
                : "BROKEN: \(chain.problems ?? 0) problem(s), verified \(verified); run `mamori audit verify`")
            : "not verified yet"
        func count(_ key: String) -> String { status.counts[key].map(String.init) ?? "-" }
        print("mamorid \(status.version) (protocol \(status.protocolVersion)) at \(connection.socketPath)")
        print(
            Terminal.fields(
                [
                    ("zone", status.zone), ("terminal", status.terminal), ("policy", status.policyRevision),
                    ("uptime", "\(status.uptimeSeconds) s"), ("users", count("users")),
                    ("open sessions", count("open_sessions")), ("locked users", count("locked_users")),
                    ("audit entries", count("audit_entries")), ("audit chain", chainState),
                ] + hubLine(status.hub)))
    }

    /// A member terminal's line about its hub.
    private func hubLine(_ hub: StatusReply.HubLinkState?) -> [(String, String)] {
        guard let hub else { return [] }
        let change = hub.change.map { "change \($0)" } ?? "nothing read yet"
        var state =
            hub.connected
            ? "connected, \(change), users read \(hub.readAt ?? "-")"
            : "NOT CONNECTED (\(hub.error ?? "connecting")); decisions use the users read \(hub.readAt ?? "never")"
        if hub.offline == true { state += "; OFFLINE: logins are decided on this terminal" }
        let audit =
            hub.auditError.map { "NOT SENT (\($0))" }
            ?? hub.auditAcknowledged.map { "the hub holds entries through \($0)" } ?? "nothing acknowledged yet"
        return [("hub", "\(hub.address): \(state)"), ("hub audit", audit)]
    }
}
