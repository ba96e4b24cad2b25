public import Foundation

/// What a finished child process left behind.
public struct ProcessResult: Sendable {
    /// The exit status (or 128 + signal number when it was killed by a signal).
    public let status: Int32
    /// Everything written to stdout, as UTF-8.
    public let stdout: String
    /// Everything written to stderr, as UTF-8.
    public let stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Why a helper could not run a process at all.
public struct SubprocessError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// Runs real programs for tests: the built `mamori`, and peers such as `oathtool`, `argon2` and
/// Python with `argon2-cffi` and `pyotp`. `make test` installs the peers; a missing one is a
/// failure that says how to install it, never a silent skip.
public enum Subprocess {
    /// Runs `executable` (a path, or a name looked up in `PATH`) with `arguments`, feeding `input`
    /// on stdin. Output goes through temporary files, so no pipe can fill up and deadlock.
    public static func run(
        _ executable: String, _ arguments: [String] = [], input: [UInt8] = [],
        environment: [String: String]? = nil
    ) throws -> ProcessResult {
        let path = try resolve(executable)
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("mamori-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let inputURL = folder.appendingPathComponent("stdin")
        let outputURL = folder.appendingPathComponent("stdout")
        let errorURL = folder.appendingPathComponent("stderr")
        try Data(input).write(to: inputURL)
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let inputHandle = try FileHandle(forReadingFrom: inputURL)
        let outputHandle = try FileHandle(forWritingTo: outputURL)
        let errorHandle = try FileHandle(forWritingTo: errorURL)
        defer {
            try? inputHandle.close()
            try? outputHandle.close()
            try? errorHandle.close()
        }
        process.standardInput = inputHandle
        process.standardOutput = outputHandle
        process.standardError = errorHandle
        try process.run()
        process.waitUntilExit()
        let status = process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
        return ProcessResult(
            status: status,
            stdout: try String(contentsOf: outputURL, encoding: .utf8),
            stderr: try String(contentsOf: errorURL, encoding: .utf8)
        )
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
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent()
    }

    /// The path of a product built alongside the tests, such as `mamori`.
    public static func product(_ name: String) -> String {
        productsDirectory.appendingPathComponent(name).path
    }
}
