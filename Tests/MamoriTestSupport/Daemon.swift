public import Foundation
import MamoriProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// A real `mamorid` started for a test: its own state folder, socket and policy copy in a
/// temporary folder, its log captured. Stop it with ``stop()``; the folder goes with it.
public final class DaemonHarness: @unchecked Sendable {
    /// The temporary folder holding everything below; removed with the harness.
    public let folder: URL
    /// The daemon's Unix socket, inside ``folder``.
    public let socketPath: String
    /// The daemon's state folder (database and keys), inside ``folder``.
    public let stateDirectory: String
    /// The daemon's copy of the policies: edit it, then send SIGHUP to reload.
    public let policyDirectory: String
    /// The daemon's stdout and stderr, appended to across restarts.
    public let logPath: String
    /// The zone its configuration names (set before ``start(extraConfiguration:timeout:)``).
    public var zone = "mynumber"
    /// The network namespace it runs in (set before ``start(extraConfiguration:timeout:)``); nil: the test's own.
    public var namespace: NetworkNamespace?
    /// The program started (`mamorid`, or `mamori-hub` to serve a hub) and the arguments before `--config`.
    private let product: String
    private let arguments: [String]
    private var pid: pid_t?

    /// Prepares a folder with a copy of `policies` (the repository's by default). With `product`
    /// `mamori-hub` and `arguments` `["serve", …database and listener options]`, the harness runs
    /// a hub, whose Unix socket answers as mamorid's does.
    public init(policies source: String? = nil, product: String = "mamorid", arguments: [String] = []) throws {
        self.product = product
        self.arguments = arguments
        folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(product)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        socketPath = folder.appendingPathComponent("mamori.sock").path
        stateDirectory = folder.appendingPathComponent("state").path
        policyDirectory = folder.appendingPathComponent("policies").path
        logPath = folder.appendingPathComponent("mamorid.log").path
        try FileManager.default.copyItem(atPath: source ?? Self.repositoryPolicies, toPath: policyDirectory)
    }

    /// The repository's `policies/` folder.
    public static var repositoryPolicies: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("policies").path
    }

    /// Writes a configuration file and starts the daemon, waiting until the socket answers.
    /// - Returns: the exit status instead, if the daemon stopped during start-up.
    @discardableResult
    public func start(extraConfiguration: String = "", timeout: TimeInterval = 20) throws -> Int32? {
        let configuration = folder.appendingPathComponent("mamorid.yaml")
        try """
        state-directory: \(stateDirectory)
        socket: \(socketPath)
        policies: \(policyDirectory)
        zone: \(zone)
        terminal: test-terminal
        log-level: debug
        \(extraConfiguration)
        """.write(to: configuration, atomically: true, encoding: .utf8)
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = open(logPath, O_WRONLY | O_APPEND | O_CLOEXEC)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer {
            close(log)
            close(null)
        }
        guard log >= 0, null >= 0 else { throw SubprocessError(description: "cannot open \(logPath)") }
        var program = Subprocess.product(product)
        var programArguments = arguments + ["--config", configuration.path]
        if let namespace {
            // `ip netns exec` runs the program in the namespace's place: the pid is the daemon's.
            (program, programArguments) = namespace.command(program, programArguments)
        }
        let started = try Subprocess.spawn(program, programArguments, stdin: null, stdout: log, stderr: log)
        pid = started
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(started, &status, WNOHANG) == started {
                pid = nil
                let signal = status & 0x7F
                return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
            }
            if let client = try? LineClient(path: socketPath), (try? client.request(#"{"op":"status"}"#)) != nil {
                return nil
            }
            usleep(20_000)
        }
        throw SubprocessError(description: "\(product) did not start within \(timeout) s; log:\n\(self.log)")
    }

    /// The running daemon's process id.
    public var processID: pid_t? { pid }

    /// The running daemon's resident memory in KiB (VmRSS), from /proc.
    public var residentKiB: Int? {
        guard let pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }

    /// The daemon's log so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Sends a signal to the daemon.
    public func signal(_ number: Int32) {
        if let pid { kill(pid, number) }
    }

    /// SIGTERM, then waits; returns the exit status.
    @discardableResult
    public func stop() -> Int32? {
        guard let pid else { return nil }
        kill(pid, SIGTERM)
        self.pid = nil
        return Subprocess.wait(for: pid)
    }

    /// SIGTERM, then waits up to `seconds`: the exit status, or nil when it had not exited by then
    /// (it is killed then).
    public func stop(within seconds: Double) -> Int32? {
        guard let pid else { return nil }
        kill(pid, SIGTERM)
        self.pid = nil
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { return status }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
        return nil
    }

    deinit {
        if let pid {
            kill(pid, SIGKILL)
            _ = Subprocess.wait(for: pid)
        }
        try? FileManager.default.removeItem(at: folder)
    }
}

/// A raw client of the socket: writes lines, reads lines. Blocking, with a receive timeout.
public final class LineClient: @unchecked Sendable {
    private let connection: LineConnection

    /// Connects to the socket at `path`; a read that waits longer than `timeoutSeconds` fails.
    public init(path: String, timeoutSeconds: Int = 15) throws {
        do {
            connection = try LineConnection(path: path, receiveTimeout: timeoutSeconds)
        } catch {
            throw SubprocessError(description: "cannot connect to \(path): \(error.reason)")
        }
    }

    /// Writes raw bytes (a line should end with "\n").
    public func send(_ bytes: [UInt8]) throws {
        guard connection.send(bytes) else { throw SubprocessError(description: "write failed") }
    }

    /// Reads one line (without its newline), or throws on timeout or end of stream.
    public func readLine() throws -> String {
        guard let line = connection.readLine() else {
            throw SubprocessError(description: "no reply (connection closed or timed out)")
        }
        return String(decoding: line, as: UTF8.self)
    }

    /// Sends one line and returns the reply line.
    public func request(_ line: String) throws -> String {
        try send(Array((line + "\n").utf8))
        let reply = try readLine()
        ReplyLog.record(request: Array(line.utf8), reply: Array(reply.utf8))
        return reply
    }

    /// Sends a JSON object and returns the reply as an object.
    public func call(_ object: [String: Any]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        let reply = try request(String(decoding: data, as: UTF8.self))
        guard let parsed = try JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any] else {
            throw SubprocessError(description: "reply is not an object: \(reply)")
        }
        return parsed
    }
}
