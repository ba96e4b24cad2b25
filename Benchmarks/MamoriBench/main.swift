import Foundation
import MamoriCore

// Mamori's benchmarks. Each figure is set beside a peer measured in the same run on the same
// machine, because these machines are shared and noisy: the ratio is the result, not the time.
// Run with `make bench` (a release build). Nothing here is a test: no figure fails anything.

print("Mamori benchmarks — \(ProcessInfo.processInfo.activeProcessorCount) cores, \(Date())")
print()

let python = ProcessInfo.processInfo.environment["MAMORI_PYTHON"] ?? which("python3") ?? "/usr/bin/python3"

// MARK: Argon2id at the default parameters, against Debian's `argon2` command

func benchmarkArgon2() throws {
    let parameters = Argon2Parameters.default
    let hasher = try PasswordHasher(parameters: parameters)
    guard let argon2 = which("argon2") else {
        print("argon2id: the `argon2` command is missing (apt-get install argon2); skipped")
        return
    }
    let password = Data("correct horse battery staple".utf8)
    let log2Memory = String(Int(log2(Double(parameters.memoryKiB))))
    let peerArguments = [
        "benchmarksalt16b", "-id", "-t", "\(parameters.iterations)", "-m", log2Memory,
        "-p", "\(parameters.parallelism)", "-l", "\(parameters.tagLength)", "-e",
    ]
    let rounds = 15
    var ours: [Double] = []
    var peer: [Double] = []
    // Interleave the two so that a burst of load elsewhere hits both alike.
    for _ in 0..<rounds {
        ours.append(try seconds { _ = try hasher.hash(Array(password)) })
        peer.append(try seconds { try runProgram(argon2, peerArguments, input: password) })
    }
    let mamori = Timing(samples: ours)
    let command = Timing(samples: peer)
    print("argon2id hash, \(parameters) (\(rounds) rounds each, interleaved)")
    print("  Mamori (libargon2)        median \(human(mamori.median))   p99 \(human(mamori.p99))")
    print("  argon2 command (process)  median \(human(command.median))   p99 \(human(command.p99))")
    print(
        String(
            format: "  ratio Mamori / argon2 command: %.2f  (the command's time includes starting a process)",
            mamori.median / command.median))
    print()
}

// MARK: TOTP verification, against pyotp in the same run

func benchmarkTOTP() throws {
    let secret = TOTP.generateSecret(for: .sha1)
    let totp = try TOTP(secret: secret)
    let moment = Date(timeIntervalSince1970: 1_700_000_000)
    // A code from the previous step: the verifier computes all three candidates either way.
    guard let step = totp.step(at: moment) else { return }
    let code = totp.code(forStep: step - 1)
    let batch = 10_000
    var samples: [Double] = []
    var accepted = 0
    for _ in 0..<30 {
        samples.append(
            seconds {
                for _ in 0..<batch where totp.verify(code, at: moment).isAccepted { accepted += 1 }
            } / Double(batch))
    }
    precondition(accepted == 30 * batch, "the benchmark's code must verify")
    let mamori = Timing(samples: samples)

    let script = """
        import sys, timeit, pyotp
        t = pyotp.TOTP(sys.argv[1])
        code = t.at(1700000000 - 30)
        assert t.verify(code, for_time=1700000000, valid_window=1)
        n = 2000
        runs = timeit.repeat(lambda: t.verify(code, for_time=1700000000, valid_window=1), number=n, repeat=15)
        runs.sort()
        print(runs[len(runs) // 2] / n)
        """
    let peer = try? runProgram(python, ["-c", script, Base32.encode(secret)], captureOutput: true)
    print("TOTP verify, SHA-1, 6 digits, window ±1 (3 HMACs a call)")
    print("  Mamori          median \(human(mamori.median)) a call   p99 \(human(mamori.p99))")
    if let peer, peer.status == 0, let pyotp = Double(peer.output.trimmingCharacters(in: .whitespacesAndNewlines)) {
        print("  pyotp (Python)  median \(human(pyotp)) a call")
        print(String(format: "  ratio Mamori / pyotp: %.3f", mamori.median / pyotp))
    } else {
        print("  pyotp: not available (make bench installs it); no ratio")
    }
    print()
}

do {
    let only = CommandLine.arguments.dropFirst().first
    if only == nil || only == "credentials" {
        try benchmarkArgon2()
        try benchmarkTOTP()
    }
    if only == nil || only == "policy" {
        try PolicyBench.run(python: python)
    }
    if only == nil || only == "audit" {
        try await AuditBench.run(python: python)
    }
    if only == nil || only == "daemon" {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        try DaemonBench.run(productsDirectory: products)
    }
    if only == nil || only == "hub" {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        try await HubBench.run(productsDirectory: products)
    }
    if only == nil || only == "offline" {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        try await OfflineBench.run(productsDirectory: products)
    }
} catch {
    print("benchmark failed: \(error)")
    exit(1)
}
