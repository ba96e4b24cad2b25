import Foundation
import MamoriCore

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's benchmark: a real release `mamorid` in a temporary folder, driven from this
/// separate process. `authorize` throughput and latency with 1, 8 and 32 connections, with and
/// without pipelining; `authenticate` against raw libargon2 at the same parameters; the daemon's
/// peak memory with 100 authentications at once.
enum DaemonBench {
    static func run(productsDirectory: String) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mamori-bench-daemon-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let policies = folder.appendingPathComponent("policies").path
        try FileManager.default.copyItem(
            atPath: ProcessInfo.processInfo.environment["MAMORI_POLICIES"] ?? "policies", toPath: policies)
        let socketPath = folder.appendingPathComponent("mamori.sock").path
        let configuration = folder.appendingPathComponent("mamorid.yaml").path
        try """
        state-directory: \(folder.appendingPathComponent("state").path)
        socket: \(socketPath)
        policies: \(policies)
        terminal: bench
        log-level: warning
        argon2-queue: 256
        """.write(toFile: configuration, atomically: true, encoding: .utf8)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: productsDirectory + "/mamorid")
        daemon.arguments = ["--config", configuration]
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        var setup: SocketClient?
        for _ in 0..<500 where setup == nil {
            usleep(20_000)
            setup = SocketClient(path: socketPath)
        }
        guard let setup else {
            print("mamorid did not start")
            return
        }

        // A user with a password and TOTP, logged in once: the session every authorize asks about.
        _ = setup.call(#"{"op":"user.add","user":"bench","kind":"staff","organisation":"planning"}"#)
        _ = setup.call(#"{"op":"role.grant","user":"bench","role":"staff"}"#)
        _ = setup.call(#"{"op":"user.passwd","user":"bench","password":"bench password"}"#)
        guard let begin = setup.call(#"{"op":"totp.enroll.begin","user":"bench"}"#),
            let secret = field(begin, "secret"), let seed = try? Base32.decode(secret),
            let totp = try? TOTP(secret: seed),
            let now = totp.step(at: Date())
        else {
            print("enrolment failed")
            return
        }
        _ = setup.call(#"{"op":"totp.enroll.confirm","user":"bench","code":"\#(totp.code(forStep: now))"}"#)
        guard
            let login = setup.call(
                #"{"op":"authenticate","user":"bench","password":"bench password","code":"\#(totp.code(forStep: now + 1))"}"#
            ),
            let ticket = field(login, "ticket"),
            let opened = setup.call(#"{"op":"session.open","ticket":"\#(ticket)","service":"bench"}"#),
            let session = field(opened, "session")
        else {
            print("login failed")
            return
        }
        let request =
            Array(
                #"{"op":"authorize","session":"\#(session)","action":"asset.read","resource":"point.participants"}"#
                    .utf8) + [10]
        guard let sample = setup.call(String(decoding: request.dropLast(), as: UTF8.self)),
            sample.contains(#""effect":"allow""#)
        else {
            print("authorize failed")
            return
        }

        print(
            "Daemon: authorize over the socket (a release mamorid, driven by Benchmarks/loadgen.c in its own process)")
        let loadgen = productsDirectory + "/loadgen"
        for pipelined in [false, true] {
            for clients in [1, 8, 32] {
                let depth = pipelined ? 32 : 1
                guard
                    let result = try? runProgram(
                        loadgen,
                        [
                            socketPath, String(decoding: request.dropLast(), as: UTF8.self), "\(clients)", "\(depth)",
                            "2",
                        ],
                        captureOutput: true
                    ), result.status == 0
                else {
                    print("  loadgen did not run (make bench builds it)")
                    break
                }
                let values = Dictionary(
                    uniqueKeysWithValues: result.output.split(separator: " ").compactMap { pair -> (String, Double)? in
                        let parts = pair.split(separator: "=")
                        guard parts.count == 2,
                            let value = Double(parts[1].trimmingCharacters(in: .whitespacesAndNewlines))
                        else { return nil }
                        return (String(parts[0]), value)
                    })
                let rate = (values["replies"] ?? 0) / max(values["seconds"] ?? 1, 0.001)
                print(
                    String(
                        format: "  %2d connection%@ %@  %8.0f decisions/s   batch p50 %@   p99 %@   errors %.0f",
                        clients, clients == 1 ? " " : "s", pipelined ? "pipelined ×32" : "one at a time", rate,
                        human((values["p50_us"] ?? 0) / 1e6), human((values["p99_us"] ?? 0) / 1e6),
                        values["errors"] ?? 0))
            }
        }

        // authenticate at the policy's Argon2 setting, against the raw verify of the same hash.
        let parameters = Argon2Parameters.default
        let hasher = try PasswordHasher(parameters: parameters)
        let hash = try hasher.hash("bench password")
        var raw: [Double] = []
        var daemonTimes: [Double] = []
        for round in 0..<12 {
            raw.append(seconds { _ = try? hasher.verify("bench password", against: hash) })
            let code = totp.code(forStep: now + 1)  // a replay: fails after the same Argon2 work
            let line =
                #"{"op":"authenticate","user":"bench","password":"bench password","code":"\#(code)","id":\#(round)}"#
            daemonTimes.append(seconds { _ = setup.call(line) })
        }
        let rawMedian = Timing(samples: raw).median
        let daemonMedian = Timing(samples: daemonTimes).median
        print("Daemon: authenticate at \(parameters) (12 rounds each, interleaved)")
        print("  over the socket median \(human(daemonMedian))   raw libargon2 verify median \(human(rawMedian))")
        print(String(format: "  overhead %@ (ratio %.3f)", human(daemonMedian - rawMedian), daemonMedian / rawMedian))
        _ = setup.call(#"{"op":"user.unlock","user":"bench"}"#)

        try pamBenchmark(
            folder: folder, socketPath: socketPath, setup: setup, hasher: hasher, hash: hash,
            productsDirectory: productsDirectory)

        // Peak memory with 100 authentications at once.
        let before = peakMemory(of: daemon.processIdentifier)
        let group = DispatchGroup()
        let busy = AtomicCounter()
        for index in 0..<100 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let client = SocketClient(path: socketPath),
                    let reply = client.call(#"{"op":"authenticate","user":"ghost\#(index)","password":"x","code":"1"}"#)
                else { return }
                if reply.contains(#""busy""#) { busy.add() }
            }
        }
        group.wait()
        let after = peakMemory(of: daemon.processIdentifier)
        print(
            "Daemon: 100 authentications at once (64 MiB each, \(ProcessInfo.processInfo.activeProcessorCount) workers, queue 256)"
        )
        print(
            "  peak resident memory \(before / 1024) MiB before, \(after / 1024) MiB after; \(busy.value) answered busy"
        )
        print()
    }

    /// A full PAM authentication (password + second factor) through pam_mamori.so and the
    /// daemon, by pam/tests/pam_harness.c, against the raw Argon2 verify and against
    /// pam_google_authenticator checking a TOTP code through the same harness.
    static func pamBenchmark(
        folder: URL, socketPath: String, setup: SocketClient, hasher: PasswordHasher, hash: String,
        productsDirectory: String
    ) throws {
        let pamBuild = URL(fileURLWithPath: productsDirectory).deletingLastPathComponent().appendingPathComponent("pam")
            .path
        let harness = pamBuild + "/pam_harness"
        guard FileManager.default.isExecutableFile(atPath: harness) else {
            print("PAM: the harness is not built (make bench builds it); skipped")
            return
        }
        let confdir = folder.appendingPathComponent("pam.d").path
        try FileManager.default.createDirectory(atPath: confdir, withIntermediateDirectories: true)
        try "auth required \(pamBuild)/pam_mamori.so socket=\(socketPath)\n"
            .write(toFile: confdir + "/mamori", atomically: true, encoding: .utf8)
        // Recovery codes give a fresh second factor for every round (a TOTP step is accepted once).
        let rounds = 12
        guard let issued = setup.call(#"{"op":"recovery.issue","user":"bench","count":\#(rounds)}"#),
            let object = try? JSONSerialization.jsonObject(with: Data(issued.utf8)) as? [String: Any],
            let codes = object["codes"] as? [String]
        else {
            print("PAM: recovery codes could not be issued")
            return
        }
        var through: [Double] = []
        var raw: [Double] = []
        var failures = 0
        for code in codes {
            raw.append(seconds { _ = try? hasher.verify("bench password", against: hash) })
            var output = ""
            through.append(
                seconds {
                    output =
                        (try? runProgram(
                            harness, [confdir, "mamori", "bench", "auth", "bench password", code], captureOutput: true
                        ).output) ?? ""
                })
            if !output.contains("auth 0 PAM_SUCCESS") { failures += 1 }
        }
        let pamMedian = Timing(samples: through).median
        let rawMedian = Timing(samples: raw).median
        print(
            "PAM: a full authentication through pam_mamori.so and mamorid (\(rounds) rounds, password + recovery code)")
        print(
            "  harness process, PAM, module, daemon median \(human(pamMedian))   raw Argon2 verify median \(human(rawMedian))"
        )
        print(
            "  overhead \(human(pamMedian - rawMedian)) (includes starting the harness process)   failures \(failures)")

        // pam_google_authenticator checking a TOTP code through the same harness.
        let module = "/lib/x86_64-linux-gnu/security/pam_google_authenticator.so"
        guard FileManager.default.fileExists(atPath: module) else {
            print("  pam_google_authenticator: not installed (make bench installs it); no comparison")
            return
        }
        let secret = TOTP.generateSecret(for: .sha1)
        let secretFile = folder.appendingPathComponent("ga-secret").path
        // Reuse allowed so that every round may use the current code.
        try "\(Base32.encode(secret))\n\" TOTP_AUTH\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        chmod(secretFile, 0o600)
        try "auth required \(module) secret=\(secretFile) user=root no_strict_owner allowed_perm=0600\n"
            .write(toFile: confdir + "/google", atomically: true, encoding: .utf8)
        let totp = try TOTP(secret: secret)
        var google: [Double] = []
        var googleFailures = 0
        for _ in 0..<rounds {
            let code = totp.code(at: Date()) ?? "000000"
            var output = ""
            google.append(
                seconds {
                    output =
                        (try? runProgram(harness, [confdir, "google", "root", "auth", code], captureOutput: true).output)
                        ?? ""
                })
            if !output.contains("auth 0 PAM_SUCCESS") { googleFailures += 1 }
        }
        let googleMedian = Timing(samples: google).median
        print(
            "  pam_google_authenticator (TOTP only) through the same harness median \(human(googleMedian)), failures \(googleFailures)"
        )
        print(
            String(
                format: "  Mamori minus its Argon2 work, against it: %@ vs %@", human(pamMedian - rawMedian),
                human(googleMedian)))
    }

    static func field(_ line: String, _ name: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            return nil
        }
        return object[name] as? String
    }

    /// VmHWM (peak resident set) in KiB.
    static func peakMemory(of pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
        return line.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
    }

    final class AtomicCounter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func add(_ amount: Int = 1) {
            lock.lock()
            count += amount
            lock.unlock()
        }
        var value: Int {
            lock.lock()
            defer { lock.unlock() }
            return count
        }
    }

}
