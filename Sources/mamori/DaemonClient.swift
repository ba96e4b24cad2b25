import ArgumentParser
import Foundation
import MamoriProtocol

/// Options every command that talks to mamorid shares.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "mamorid's socket (default: $MAMORI_SOCKET, else /run/mamori/mamori.sock).")
    var socket: String?

    @Option(
        help: "The user mamorid runs as (default: $MAMORI_DAEMON_USER, else mamori); only it, root or you are trusted.")
    var daemonUser: String?

    @Flag(help: "Print the daemon's reply as JSON, for scripts.")
    var json = false

    /// The socket path this command will use. Never one relative to the working folder by
    /// default: whoever can write there could otherwise pose as mamorid and collect passwords.
    var socketPath: String {
        if let socket { return socket }
        if let environment = ProcessInfo.processInfo.environment["MAMORI_SOCKET"], !environment.isEmpty {
            return environment
        }
        return "/run/mamori/mamori.sock"
    }

    /// The uids a server may run as for this command to send it anything: root, the daemon's
    /// user, and the user running the command (a development daemon of one's own).
    var trustedUIDs: Set<uid_t> {
        let name =
            daemonUser ?? ProcessInfo.processInfo.environment["MAMORI_DAEMON_USER"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "mamori"
        var uids: Set<uid_t> = [0, getuid()]
        if let entry = getpwnam(name) { uids.insert(entry.pointee.pw_uid) }
        return uids
    }

    /// Opens a connection to mamorid, refusing a server whose uid is not trusted.
    func connect(timeout: Int = DaemonConnection.defaultTimeout) throws(CommandFailure) -> DaemonConnection {
        try DaemonConnection(path: socketPath, timeout: timeout, trusting: trustedUIDs)
    }

    /// Sends one request and returns the reply's fields, or throws a failure with the exit status
    /// that fits it. The caller's login session ($MAMORI_SESSION) goes with every request, so that
    /// the policy sees the factors it was opened with.
    ///
    /// - Parameters:
    ///   - session: the session to name instead of $MAMORI_SESSION (`mamori check --session`).
    ///   - connection: an open connection to reuse (a follower's polls, an export's pages); by
    ///     default each call opens its own.
    ///   - timeout: seconds to wait for the reply on a connection this call opens.
    func call(
        _ op: WireOperation, _ body: some WireRequestBody = EmptyRequest(), session: String? = nil,
        over connection: DaemonConnection? = nil, timeout: Int = DaemonConnection.defaultTimeout
    ) throws -> [String: JSONValue] {
        var request = try body.fields()
        request["op"] = .string(op.rawValue)
        if let session {
            request["session"] = .string(session)
        } else if request["session"] == nil, let session = ProcessInfo.processInfo.environment["MAMORI_SESSION"],
            !session.isEmpty
        {
            request["session"] = .string(session)
        }
        let client = try connection ?? connect(timeout: timeout)
        let reply = try client.exchange(WireReply.encodeRequest(request))
        guard let object = WireReply.parse(reply) else {
            throw CommandFailure("mamorid sent a reply that is not JSON.", exitCode: .commandFailed)
        }
        if case .bool(true)? = object["ok"] { return object }
        guard case .object(let error)? = object["error"], case .string(let code)? = error["code"],
            case .string(let message)? = error["message"]
        else {
            throw CommandFailure("mamorid refused the request without saying why.", exitCode: .commandFailed)
        }
        if json {
            print(String(decoding: reply, as: UTF8.self))
            throw ExitCode(Self.exitCode(for: code).rawValue)
        }
        throw CommandFailure(Self.sentence(code: code, message: message), exitCode: Self.exitCode(for: code))
    }

    /// Sends one request and reads its success reply as `type`, the operation's reply type in
    /// MamoriProtocol. With `--json` the reply is printed as it came and nil is returned: the
    /// command has nothing more to print.
    func call<Reply: WireReplyBody>(
        _ op: WireOperation, _ body: some WireRequestBody = EmptyRequest(), reading type: Reply.Type,
        over connection: DaemonConnection? = nil, timeout: Int = DaemonConnection.defaultTimeout
    ) throws -> Reply? {
        let reply = try call(op, body, over: connection, timeout: timeout)
        if json {
            Terminal.printJSON(reply)
            return nil
        }
        return try Self.read(reply, as: type)
    }

    /// A success reply's fields as `type`; a failure names the operation, never a value.
    static func read<Reply: WireReplyBody>(_ reply: [String: JSONValue], as type: Reply.Type) throws -> Reply {
        do {
            return try Reply(reply: reply)
        } catch {
            throw CommandFailure(
                "mamorid's reply does not have the shape this mamori expects (\(Reply.self)); are both the same version?",
                exitCode: .commandFailed)
        }
    }

    static func exitCode(for code: String) -> ExitCode {
        switch code {
        case ErrorCode.denied.rawValue, ErrorCode.stepUpRequired.rawValue: .permissionDenied
        case ErrorCode.authenticationFailed.rawValue: .answeredNo
        default: .commandFailed
        }
    }

    /// The daemon's message, lower-cased at the start where it names a permission problem, as the
    /// operator reads it.
    static func sentence(code: String, message: String) -> String {
        switch code {
        case ErrorCode.denied.rawValue:
            return "permission denied: " + message.replacingOccurrences(of: "Permission denied: ", with: "")
        default: return message
        }
    }
}

extension ExitCode {
    /// mamorid is not running or the socket cannot be reached.
    static let unreachable = ExitCode(3)
    /// The policy does not let this user do it (or only after a step-up).
    static let permissionDenied = ExitCode(4)
}

/// One connection to mamorid, checked before use: request lines out, reply lines back.
final class DaemonConnection {
    private let connection: LineConnection
    let path: String

    /// Seconds to wait for a reply: a daemon that hangs must not hang the operator's shell forever.
    static let defaultTimeout = 30
    /// For requests that read the whole audit trail (verify, inspect, prune): minutes on a long one.
    static let wholeTrailTimeout = 3_600

    /// Connects, and before anything is sent checks the server's peer uid against `trusted`:
    /// passwords, codes and sessions go only to a server run by root, the daemon's user or you.
    init(path: String, timeout: Int = DaemonConnection.defaultTimeout, trusting trusted: Set<uid_t>)
        throws(CommandFailure)
    {
        self.path = path
        do {
            connection = try LineConnection(path: path, receiveTimeout: timeout)
        } catch {
            throw CommandFailure(
                "cannot reach mamorid at \(path) (\(error.reason)) — is it running? (`make run`)",
                exitCode: .unreachable)
        }
        guard let uid = connection.peerUID, trusted.contains(uid) else {
            let who = connection.peerUID.map { "uid \($0)" } ?? "an unknown user"
            throw CommandFailure(
                "refusing to talk to the server at \(path): it runs as \(who), not as root, the daemon's user or you; "
                    + "if mamorid runs as another user, say so with --daemon-user or $MAMORI_DAEMON_USER.",
                exitCode: .unreachable
            )
        }
    }

    /// Writes `line` (with its newline) and reads one reply line.
    func exchange(_ line: [UInt8]) throws(CommandFailure) -> [UInt8] {
        guard connection.send(line) else {
            throw CommandFailure("mamorid at \(path) closed the connection.", exitCode: .unreachable)
        }
        guard let reply = connection.readLine() else {
            throw CommandFailure("mamorid at \(path) did not answer (closed or timed out).", exitCode: .unreachable)
        }
        return reply
    }
}
