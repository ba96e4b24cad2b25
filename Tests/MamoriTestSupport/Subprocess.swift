public import Foundation

/// What a finished child process left behind.
public struct ProcessResult: Sendable {
    /// The exit status (or 128 + signal number when it was killed by a signal).
    public let status: Int32
    /// Everything written to stdout, as UTF-8.
    public let stdout: String
    /// Everything written to stderr, as UTF-8.
    public let stderr: String

    /// A result from its parts.
    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Why a helper could not run a process at all.
public struct SubprocessError: Error, CustomStringConvertible {
    /// What went wrong, as one sentence for the test's failure message.
    public let description: String
    /// An error described by one sentence.
    public init(description: String) { self.description = description }
}

/// Runs real programs for tests: the built `mamori`, and peers such as `oathtool`, `argon2` and
/// Python with `argon2-cffi` and `pyotp`. `make test` installs the peers; a missing one is a
/// failure that says how to install it, never a silent skip.
public enum Subprocess {
    /// Runs `executable` (a path, or a name looked up in `PATH`) with `arguments`, feeding `input`
    /// on stdin. Output goes through temporary files, so no pipe can fill up and deadlock.
    ///
    /// Uses posix_spawn and waitpid directly: Foundation's Process.waitUntilExit was seen to hang
    /// forever here when many tests started processes at once.
    public static func run(
        _ executable: String, _ arguments: [String] = [], input: [UInt8] = [],
        environment: [String: String]? = nil
    ) throws -> ProcessResult {
        let path = try resolve(executable)
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("mamori-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let inputPath = folder.appendingPathComponent("stdin").path
        let outputPath = folder.appendingPathComponent("stdout").path
        let errorPath = folder.appendingPathComponent("stderr").path
        try Data(input).write(to: URL(fileURLWithPath: inputPath))
        let stdin = open(inputPath, O_RDONLY | O_CLOEXEC)
        let stdout = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let stderr = open(errorPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer {
            close(stdin)
            close(stdout)
            close(stderr)
        }
        guard stdin >= 0, stdout >= 0, stderr >= 0 else {
            throw SubprocessError(description: "cannot open temporary files")
        }
        let pid = try spawn(path, arguments, environment: environment, stdin: stdin, stdout: stdout, stderr: stderr)
        let status = wait(for: pid)
        return ProcessResult(
            status: status,
            stdout: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        )
    }

    /// Starts a program with the given descriptors as its stdin, stdout and stderr.
    public static func spawn(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil, stdin: Int32, stdout: Int32,
        stderr: Int32
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        let variables = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        // The child starts with no signal blocked and SIGTERM and SIGINT at their defaults: the test
        // runner's threads may block or ignore them, and a child inheriting that cannot be stopped.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGINT)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SubprocessError(description: "cannot start \(path): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// Waits for a child; returns its exit status, or 128 + the signal that ended it.
    public static func wait(for pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Runs a Python snippet with `-c`, passing `arguments` as `sys.argv[1:]`. The interpreter is
    /// `$MAMORI_PYTHON` (the Makefile points it at the virtual environment that holds argon2-cffi
    /// and pyotp), else `python3`.
    public static func python(_ script: String, _ arguments: [String] = [], input: [UInt8] = []) throws
        -> ProcessResult
    {
        let interpreter = ProcessInfo.processInfo.environment["MAMORI_PYTHON"] ?? "python3"
        return try run(interpreter, ["-c", script] + arguments, input: input)
    }

    /// The absolute path of `name`: itself when it contains a slash, else the first match in `PATH`.
    public static func resolve(_ name: String) throws -> String {
        if name.contains("/") { return name }
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in searchPath.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw SubprocessError(
            description: "'\(name)' is not installed; run `make test`, which installs the test peers."
        )
    }

    /// The folder holding this build's products (`.build/debug` or `.build/release`): the one that
    /// holds the running test binary.
    public static var productsDirectory: URL {
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent()
    }

    /// The path of a product built alongside the tests, such as `mamori`.
    public static func product(_ name: String) -> String {
        productsDirectory.appendingPathComponent(name).path
    }
}

/// A loopback TCP port free now, for a server a test starts (the kernel's pick for port 0; another
/// process could take it before the server binds, which on a test machine does not happen).
public func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw SubprocessError(description: "socket() failed") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
            bind(descriptor, generic, length) == 0 && getsockname(descriptor, generic, &length) == 0
        }
    }
    guard bound else { throw SubprocessError(description: "no free loopback port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A listening socket on `127.0.0.1:port` that accepts TCP connections (the kernel completes their
/// handshakes) and never reads or writes: a server behind a black hole, as TLS sees it. Close the
/// descriptor to end it.
public func silentListener(port: Int) throws -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw SubprocessError(description: "socket() failed") }
    var yes: Int32 = 1
    setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    let listening = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
            bind(descriptor, generic, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 && listen(descriptor, 64) == 0
        }
    }
    guard listening else {
        close(descriptor)
        throw SubprocessError(description: "127.0.0.1:\(port) cannot be listened on")
    }
    return descriptor
}
