import Foundation
internal import Yams

/// The daemon's configuration (`--config FILE`, YAML). Every key is optional; the defaults serve
/// development from the repository's root: state in `.mamori/`, the socket in it, `policies/`.
public struct DaemonConfiguration: Sendable, Hashable {
    /// Where the database and key file live; created 0700 if missing.
    public var stateDirectory: String = ".mamori"
    /// The audit witness: the newest signed checkpoint, kept outside the state folder so that a
    /// trail cut off at its end with its checkpoints is seen (default: beside the state folder,
    /// `<state-directory>.witness`).
    public var witnessFile: String?
    /// The witness file in use.
    public var witnessPath: String {
        witnessFile ?? (stateDirectory.hasSuffix("/") ? String(stateDirectory.dropLast()) : stateDirectory) + ".witness"
    }
    /// The Unix socket's path.
    public var socketPath: String = ".mamori/mamori.sock"
    /// The policy folder.
    public var policyDirectory: String = "policies"
    /// The zone this terminal belongs to.
    public var zone: String = "mynumber"
    /// This terminal's id, for audit entries and `login` decisions.
    public var terminal: String = ProcessInfo.processInfo.hostName
    /// Threads that run Argon2; each runs one hash at a time.
    public var argon2Workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Authentications that may wait for a worker; past this, `busy`.
    public var argon2Queue: Int = 64
    /// Connections open at once; past this, new ones are answered `busy` and closed.
    public var maximumConnections: Int = 256
    /// Of those, how many only operators (root, the daemon's user) may use, so that no other
    /// account can fill the socket and lock out root's break-glass login (at most half).
    public var operatorReservedConnections: Int = 16
    /// Connections one other uid may hold at once.
    public var connectionsPerUID: Int = 32
    /// Requests one connection may have in flight; past this the daemon stops reading from it
    /// until replies are written (pipelining stays fast, memory stays bounded).
    public var requestsPerConnection: Int = 16
    /// Requests one other uid may have in flight over all its connections; past this, `busy`.
    public var requestsPerUID: Int = 64
    /// Argon2 runs (working or queued) one other uid may hold; past this, `busy`.
    public var argon2PerUID: Int = 8
    /// Seconds a started request line may take to arrive whole (slow senders are cut off).
    public var lineTimeoutSeconds: Int = 10
    /// Seconds a connection may stay silent before it is closed.
    public var idleTimeoutSeconds: Int = 300
    /// Repeated denials of one caller are folded into one counted audit entry per this many seconds…
    public var denialIntervalSeconds: Int = 60
    /// …and a caller (not an operator) denied more often than this within one interval is cut
    /// off (`rate_limited`) until the interval ends, recorded once.
    public var denialsPerInterval: Int = 600
    /// Event-loop threads (default: one per core; `authorize` is answered on them).
    public var eventLoopThreads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// The TOTP issuer shown in authenticator apps.
    public var issuer: String = "Mamori"
    /// trace, debug, info, notice, warning, error or critical.
    public var logLevel: String = "info"
    /// A signed checkpoint of the audit chain every this many entries…
    public var checkpointEntries: Int = 100
    /// …and, when entries were written since the last one, every this many seconds.
    public var checkpointSeconds: Int = 600
    /// Where `inspect` reads this terminal's PAM services.
    public var pamDirectory: String = "/etc/pam.d"
    /// The login services `inspect` expects to run pam_mamori.so, where present.
    public var pamServices: [String] = DaemonConfiguration.defaultPAMServices

    /// Interactive login services a terminal may have: consoles, remote logins, privilege
    /// changes, display managers and screen lockers.
    public static let defaultPAMServices = [
        "login", "sshd", "sudo", "sudo-i", "su", "su-l", "polkit-1", "gdm-password", "lightdm", "sddm", "xscreensaver",
        "gnome-screensaver", "cinnamon-screensaver", "mate-screensaver", "xfce4-screensaver", "light-locker", "i3lock",
        "swaylock", "kde", "vlock", "physlock",
    ]

    /// Every key at its default: the development layout, relative to the current folder.
    public init() {}

    static let keys = [
        "state-directory", "witness-file", "socket", "policies", "zone", "terminal", "argon2-workers", "argon2-queue",
        "maximum-connections", "operator-reserved-connections", "connections-per-uid", "requests-per-connection",
        "requests-per-uid", "argon2-per-uid", "line-timeout-seconds", "idle-timeout-seconds", "denial-interval-seconds",
        "denials-per-interval", "event-loop-threads", "issuer", "log-level",
        "checkpoint-entries", "checkpoint-seconds", "pam-directory", "pam-services",
    ]

    /// Reads a configuration file; unknown keys and wrong types are errors naming the line.
    public init(file path: String) throws(ConfigurationError) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError("\(path): the configuration file cannot be read.")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ConfigurationError("\(path): this is not valid YAML.")
        }
        self.init()
        guard let node else { return }
        guard case .mapping(let mapping) = node else {
            throw ConfigurationError("\(path): the configuration must be a mapping of keys to values.")
        }
        for (key, value) in mapping {
            let name = key.string ?? ""
            let line = key.mark?.line ?? 1
            func text() throws(ConfigurationError) -> String {
                guard case .scalar(let scalar) = value, !scalar.string.isEmpty else {
                    throw ConfigurationError("\(path):\(line): '\(name)' must be a single value.")
                }
                return scalar.string
            }
            func number(_ range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
                guard let number = value.int, range.contains(number) else {
                    throw ConfigurationError(
                        "\(path):\(line): '\(name)' must be a whole number from \(range.lowerBound) to \(range.upperBound)."
                    )
                }
                return number
            }
            func serviceNames() throws(ConfigurationError) -> [String] {
                // File names only: no path can be smuggled into the folder that is read.
                let items = value.sequence.map { Array($0) } ?? []
                let names = items.compactMap(\.string).filter { !$0.isEmpty && !$0.contains("/") && $0 != ".." }
                guard !items.isEmpty, names.count == items.count else {
                    throw ConfigurationError(
                        "\(path):\(line): 'pam-services' must be a list of service names, such as [login, sshd, sudo].")
                }
                return names
            }
            switch name {
            case "state-directory": stateDirectory = try text()
            case "witness-file": witnessFile = try text()
            case "socket": socketPath = try text()
            case "policies": policyDirectory = try text()
            case "zone": zone = try text()
            case "terminal": terminal = try text()
            case "argon2-workers": argon2Workers = try number(1...256)
            case "argon2-queue": argon2Queue = try number(0...100_000)
            case "maximum-connections": maximumConnections = try number(1...100_000)
            case "operator-reserved-connections": operatorReservedConnections = try number(0...50_000)
            case "connections-per-uid": connectionsPerUID = try number(1...100_000)
            case "requests-per-connection": requestsPerConnection = try number(1...1_024)
            case "requests-per-uid": requestsPerUID = try number(1...100_000)
            case "argon2-per-uid": argon2PerUID = try number(1...100_000)
            case "line-timeout-seconds": lineTimeoutSeconds = try number(1...3_600)
            case "idle-timeout-seconds": idleTimeoutSeconds = try number(1...86_400)
            case "denial-interval-seconds": denialIntervalSeconds = try number(1...86_400)
            case "denials-per-interval": denialsPerInterval = try number(1...10_000_000)
            case "event-loop-threads": eventLoopThreads = try number(1...64)
            case "issuer": issuer = try text()
            case "log-level": logLevel = try text()
            case "checkpoint-entries": checkpointEntries = try number(1...100_000)
            case "checkpoint-seconds": checkpointSeconds = try number(1...86_400)
            case "pam-directory": pamDirectory = try text()
            case "pam-services": pamServices = try serviceNames()
            default:
                throw ConfigurationError(
                    "\(path):\(line): unknown key '\(name)'; keys are \(Self.keys.joined(separator: ", ")).")
            }
        }
    }
}

/// A configuration or start-up problem, as one sentence for the operator.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// The problem, as one sentence for the operator.
    public let description: String
    /// A problem described by one sentence; name the file and line when there is one.
    public init(_ description: String) { self.description = description }
}
