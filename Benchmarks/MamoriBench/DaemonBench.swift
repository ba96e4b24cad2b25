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
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mamori-bench-daemon-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let policies = folder.appendingPathComponent("policies").path
        try FileManager.default.copyItem(atPath: ProcessInfo.processInfo.environment["MAMORI_POLICIES"] ?? "policies", toPath: policies)
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
        guard let setup else { print("mamorid did not start"); return }

        // A user with a password and TOTP, logged in once: the session every authorize asks about.
        _ = setup.call(#"{"op":"user.add","user":"bench","kind":"staff","organisation":"planning"}"#)
        _ = setup.call(#"{"op":"role.grant","user":"bench","role":"staff"}"#)
        _ = setup.call(#"{"op":"user.passwd","user":"bench","password":"bench password"}"#)
        guard let begin = setup.call(#"{"op":"totp.enroll.begin","user":"bench"}"#),
            let secret = field(begin, "secret"), let seed = try? Base32.decode(secret), let totp = try? TOTP(secret: seed),
            let now = totp.step(at: Date())
        else { print("enrolment failed"); return }
        _ = setup.call(#"{"op":"totp.enroll.confirm","user":"bench","code":"\#(totp.code(forStep: now))"}"#)
        guard let login = setup.call(#"{"op":"authenticate","user":"bench","password":"bench password","code":"\#(totp.code(forStep: now + 1))"}"#),
            let ticket = field(login, "ticket"),
            let opened = setup.call(#"{"op":"session.open","ticket":"\#(ticket)","service":"bench"}"#),
            let session = field(opened, "session")
        else { print("login failed"); return }
        let request = Array(#"{"op":"authorize","session":"\#(session)","action":"asset.read","resource":"point.participants"}"#.utf8) + [10]
        guard let sample = setup.call(String(decoding: request.dropLast(), as: UTF8.self)), sample.contains(#""effect":"allow""#) else {
            print("authorize failed")
            return
        }

        print("Daemon: authorize over the socket (a release mamorid; this process drives it)")
        for pipelined in [false, true] {
            for clients in [1, 8, 32] {
                let result = load(socketPath: socketPath, request: request, clients: clients, pipeline: pipelined ? 32 : 1, seconds: 2)
                print(String(format: "  %2d connection%@ %@  %8.0f decisions/s   p50 %@   p99 %@   errors %d",
                             clients, clients == 1 ? " " : "s", pipelined ? "pipelined ×32" : "one at a time",
                             result.rate, human(result.p50), human(result.p99), result.errors))
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
            let line = #"{"op":"authenticate","user":"bench","password":"bench password","code":"\#(code)","id":\#(round)}"#
            daemonTimes.append(seconds { _ = setup.call(line) })
        }
        let rawMedian = Timing(samples: raw).median
        let daemonMedian = Timing(samples: daemonTimes).median
        print("Daemon: authenticate at \(parameters) (12 rounds each, interleaved)")
        print("  over the socket median \(human(daemonMedian))   raw libargon2 verify median \(human(rawMedian))")
        print(String(format: "  overhead %@ (ratio %.3f)", human(daemonMedian - rawMedian), daemonMedian / rawMedian))
        _ = setup.call(#"{"op":"user.unlock","user":"bench"}"#)

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
        print("Daemon: 100 authentications at once (64 MiB each, \(ProcessInfo.processInfo.activeProcessorCount) workers, queue 256)")
        print("  peak resident memory \(before / 1024) MiB before, \(after / 1024) MiB after; \(busy.value) answered busy")
        print()
    }

    static func field(_ line: String, _ name: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
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
        func add(_ amount: Int = 1) { lock.lock(); count += amount; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    }

    final class Samples: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var latencies: [Double] = []
        private(set) var completed = 0
        private(set) var errors = 0
        func add(_ values: [Double], completed: Int, errors: Int) {
            lock.lock()
            latencies += values
            self.completed += completed
            self.errors += errors
            lock.unlock()
        }
    }

    /// Each of `clients` threads sends `pipeline` requests, reads the replies, and repeats for
    /// `seconds`. Latency is per batch (the time for all `pipeline` replies of a write).
    static func load(socketPath: String, request: [UInt8], clients: Int, pipeline: Int, seconds limit: Double)
        -> (rate: Double, p50: Double, p99: Double, errors: Int)
    {
        let samples = Samples()
        let group = DispatchGroup()
        let batch = Array(repeating: request, count: pipeline).flatMap { $0 }
        let start = Date()
        for _ in 0..<clients {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let client = SocketClient(path: socketPath) else { samples.add([], completed: 0, errors: 1); return }
                var latencies: [Double] = []
                var completed = 0
                var errors = 0
                let clock = ContinuousClock()
                while Date().timeIntervalSince(start) < limit {
                    var replies: [String]?
                    let elapsed = clock.measure {
                        guard client.send(batch) else { return }
                        replies = client.readReplies(pipeline)
                    }
                    guard let replies else { errors += 1; break }
                    latencies.append(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
                    completed += replies.count
                    errors += replies.filter { !$0.contains(#""ok":true"#) }.count
                }
                samples.add(latencies, completed: completed, errors: errors)
            }
        }
        group.wait()
        let elapsed = Date().timeIntervalSince(start)
        let timing = Timing(samples: samples.latencies)
        return (Double(samples.completed) / elapsed, timing.median, timing.p99, samples.errors)
    }
}
