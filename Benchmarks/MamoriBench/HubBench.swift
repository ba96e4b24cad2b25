import Foundation
import MamoriCore
import MamoriProtocol
import MamoriTestSupport
import MamoriTown
import Synchronization

/// The hub's benchmark: a real release `mamori-hub` on the private PostgreSQL `make bench` starts
/// (scripts/with-postgres), with terminals simulated by TLS clients holding real certificates from
/// real joins. Three figures, each against a peer measured in the same run:
///
/// - `authenticate` forwarded through the hub against the raw libargon2 verify of the same hash;
/// - the hub's `authenticate` throughput with Argon2 made cheap, against pgbench's select-only rate
///   on the same server;
/// - a revocation's propagation to 2 and to 50 joined terminals, each watching on one connection, p50 and p99;
/// - `authorize` on a member terminal (a release mamorid joined to the hub) against a standalone
///   mamorid with the same user, driven by Benchmarks/loadgen.c.
enum HubBench {
    /// A forwarded login: the fields, and the caller the terminal saw (root: its PAM module).
    struct ForwardedLogin: WireRequestBody {
        var user: String
        var password: String
        var caller = ForwardedCaller(uid: 0, pid: 1, name: "root")
    }

    /// A release `mamori-hub` serving `database` (made anew) on the private PostgreSQL of
    /// `make bench`, with a copy of the repository's policies in `folder`.
    struct RunningHub {
        let process: Process
        let admin: SocketClient
        let port: Int
        let policies: String
        let server: String

        func stop() {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// Starts a hub in `folder` on `database`; `names` are the addresses terminals use (with more
    /// than loopback, it listens on every address). Nil, after saying why, when it cannot.
    static func startHub(
        products: String, database: String, folder: URL, names: [String] = ["127.0.0.1"], databases: [String] = []
    ) throws -> RunningHub? {
        guard let postgres = ProcessInfo.processInfo.environment["MAMORI_TEST_POSTGRES"] else {
            print("Hub: no PostgreSQL (make bench runs this inside scripts/with-postgres); skipped\n")
            return nil
        }
        let serverFolder = (postgres as NSString).deletingLastPathComponent
        for name in [database] + databases {
            try runProgram(
                "/usr/bin/psql",
                [
                    "-q", "-h", serverFolder, "-U", "mamori", "-d", "postgres", "-c",
                    "DROP DATABASE IF EXISTS \(name)",
                    "-c", "CREATE DATABASE \(name)",
                ])
        }
        let policies = folder.appendingPathComponent("policies").path
        try FileManager.default.copyItem(
            atPath: ProcessInfo.processInfo.environment["MAMORI_POLICIES"] ?? "policies", toPath: policies)
        let socketPath = folder.appendingPathComponent("hub.sock").path
        let configuration = folder.appendingPathComponent("hub.yaml").path
        try """
        state-directory: \(folder.appendingPathComponent("state").path)
        socket: \(socketPath)
        policies: \(policies)
        terminal: bench-hub
        log-level: warning
        argon2-queue: 256
        """.write(toFile: configuration, atomically: true, encoding: .utf8)
        let port = 20_000 + Int(getpid() % 20_000) + (names.count > 1 ? 1 : 0)
        let hub = Process()
        hub.executableURL = URL(fileURLWithPath: products + "/mamori-hub")
        hub.arguments =
            [
                "serve", "--socket", postgres, "--database", database, "--config", configuration, "--listen",
                "\(names == ["127.0.0.1"] ? "127.0.0.1" : "0.0.0.0"):\(port)",
            ] + names.flatMap { ["--server-name", $0] }
        hub.standardError = FileHandle.nullDevice
        try hub.run()
        var admin: SocketClient?
        for _ in 0..<500 where admin == nil {
            usleep(20_000)
            admin = SocketClient(path: socketPath)
        }
        guard let admin else {
            print("Hub: mamori-hub did not start")
            hub.terminate()
            hub.waitUntilExit()
            return nil
        }
        usleep(300_000)
        return RunningHub(process: hub, admin: admin, port: port, policies: policies, server: serverFolder)
    }

    static func run(productsDirectory: String) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mamori-bench-hub-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        guard
            let running = try startHub(
                products: productsDirectory, database: "mamori_bench", folder: folder, databases: ["mamori_pgbench"])
        else { return }
        defer { running.stop() }
        let (hub, admin, port, policies, serverFolder) = (
            running.process, running.admin, running.port, running.policies, running.server
        )
        let address = HubAddress(host: "127.0.0.1", port: port)
        // Two terminals: one in the password-only zone (lgwan) for logins, one watching the feed.
        let login = try await join(admin, address, "bench-lgwan", zone: "lgwan", folder: folder)
        // Fifty terminals, each with one watching connection, as a town's would be.
        var watching: [String] = []
        for index in 0..<50 {
            watching.append(try await join(admin, address, "bench-watch-\(index)", zone: "mynumber", folder: folder))
        }
        _ = admin.call(#"{"op":"user.add","user":"bench","kind":"staff","organisation":"planning"}"#)
        _ = admin.call(#"{"op":"role.grant","user":"bench","role":"staff"}"#)
        _ = admin.call(#"{"op":"user.passwd","user":"bench","password":"bench password"}"#)

        try await latency(address, login)
        try await throughput(address, login, admin: admin, policies: policies, hub: hub, server: serverFolder)
        for watchers in [2, 50] {
            try await propagation(address, Array(watching.prefix(watchers)), admin: admin)
        }
        let member = try await join(admin, address, "bench-member", zone: "mynumber", folder: folder)
        try memberAuthorize(products: productsDirectory, memberState: member, policies: policies, folder: folder)
    }

    /// A mamorid started on `state` with `policies`; nil when its socket does not answer.
    static func startDaemon(
        _ products: String, state: String, policies: String, name: String, folder: URL,
        in namespace: NetworkNamespace? = nil
    ) throws -> (process: Process, socket: String)? {
        let socket = folder.appendingPathComponent("\(name).sock").path
        let configuration = folder.appendingPathComponent("\(name).yaml").path
        try """
        state-directory: \(state)
        socket: \(socket)
        policies: \(policies)
        zone: mynumber
        terminal: \(name)
        log-level: warning
        """.write(toFile: configuration, atomically: true, encoding: .utf8)
        let daemon = Process()
        var (program, arguments) = (products + "/mamorid", ["--config", configuration])
        if let namespace { (program, arguments) = namespace.command(program, arguments) }
        daemon.executableURL = URL(fileURLWithPath: program)
        daemon.arguments = arguments
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        for _ in 0..<500 {
            if SocketClient(path: socket) != nil { return (daemon, socket) }
            usleep(20_000)
        }
        daemon.terminate()
        daemon.waitUntilExit()
        return nil
    }

    /// `authorize` on a member terminal, whose users come from the hub's mirror, against a
    /// standalone mamorid holding the same user itself: 8 connections, 32 pipelined, 2 s each,
    /// three rounds interleaved.
    static func memberAuthorize(products: String, memberState: String, policies: String, folder: URL) throws {
        let standaloneState = folder.appendingPathComponent("standalone").path
        guard
            let member = try startDaemon(
                products, state: memberState, policies: policies, name: "member", folder: folder),
            let standalone = try startDaemon(
                products, state: standaloneState, policies: policies, name: "standalone", folder: folder)
        else {
            print("Hub: a member or standalone mamorid did not start; authorize not measured")
            return
        }
        defer {
            for daemon in [member.process, standalone.process] {
                daemon.terminate()
                daemon.waitUntilExit()
            }
        }
        let local = SocketClient(path: standalone.socket)
        _ = local?.call(#"{"op":"user.add","user":"bench","kind":"staff","organisation":"planning"}"#)
        _ = local?.call(#"{"op":"role.grant","user":"bench","role":"staff"}"#)
        let request =
            #"{"op":"authorize","user":"bench","action":"asset.read","resource":"point.participants","factors":["password","totp"]}"#
        // The member reads the town's users when it connects.
        var ready = false
        for _ in 0..<250 where !ready {
            ready = SocketClient(path: member.socket)?.call(request)?.contains(#""effect":"allow""#) == true
            if !ready { usleep(20_000) }
        }
        guard ready, SocketClient(path: standalone.socket)?.call(request)?.contains(#""effect":"allow""#) == true
        else {
            print("Hub: authorize is not allowed on the member or the standalone daemon; not measured")
            return
        }
        func rate(_ socket: String) -> Double? {
            guard
                let result = try? runProgram(
                    products + "/loadgen", [socket, request, "8", "32", "2"], captureOutput: true),
                result.status == 0
            else { return nil }
            var values: [String: Double] = [:]
            for pair in result.output.split(separator: " ") {
                let parts = pair.split(separator: "=")
                if parts.count == 2, let value = Double(parts[1].trimmingCharacters(in: .whitespacesAndNewlines)) {
                    values[String(parts[0])] = value
                }
            }
            guard values["errors"] == 0 else { return nil }
            return (values["replies"] ?? 0) / max(values["seconds"] ?? 1, 0.001)
        }
        var memberRates: [Double] = []
        var standaloneRates: [Double] = []
        for _ in 0..<3 {
            guard let onMember = rate(member.socket), let onStandalone = rate(standalone.socket) else {
                print("Hub: loadgen did not run cleanly (make bench builds it)")
                return
            }
            memberRates.append(onMember)
            standaloneRates.append(onStandalone)
        }
        let memberMedian = memberRates.sorted()[1]
        let standaloneMedian = standaloneRates.sorted()[1]
        print(
            "Hub: authorize on a member terminal against a standalone mamorid (8 connections × 32 pipelined, 3 rounds)")
        print(
            String(
                format: "  member %.0f decisions/s   standalone %.0f decisions/s   ratio %.2f (target: equal)",
                memberMedian, standaloneMedian, memberMedian / standaloneMedian))
    }

    /// Adds a terminal and joins it the way `mamori join` does; returns its state folder.
    static func join(_ admin: SocketClient, _ address: HubAddress, _ name: String, zone: String, folder: URL)
        async throws -> String
    {
        guard let reply = admin.call(#"{"op":"terminal.add","terminal":"\#(name)","zone":"\#(zone)"}"#),
            let text = DaemonBench.field(reply, "token"), let token = JoinToken(text)
        else { throw HubClientError("terminal.add failed") }
        let state = folder.appendingPathComponent(name).path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        _ = try await TerminalJoin.join(hub: address, token: token, stateDirectory: state)
        return state
    }

    static func client(_ address: HubAddress, _ state: String) async throws -> HubClient {
        try await HubClient.connect(to: address, tls: try TerminalMembership.clientTLS(stateDirectory: state))
    }

    /// A forwarded `authenticate` at the policy's Argon2 setting, against the raw verify.
    static func latency(_ address: HubAddress, _ state: String) async throws {
        let parameters = Argon2Parameters.default
        let hasher = try PasswordHasher(parameters: parameters)
        let hash = try hasher.hash("bench password")
        let terminal = try await client(address, state)
        defer { terminal.close() }
        var raw: [Double] = []
        var forwarded: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<12 {
            raw.append(seconds { _ = try? hasher.verify("bench password", against: hash) })
            let started = clock.now
            _ = try await terminal.call("authenticate", ForwardedLogin(user: "bench", password: "bench password"))
            forwarded.append(Double((clock.now - started) / .nanoseconds(1)) / 1e9)
        }
        let rawMedian = Timing(samples: raw).median
        let hubMedian = Timing(samples: forwarded).median
        print("Hub: authenticate forwarded by a terminal over TLS, at \(parameters) (12 rounds each, interleaved)")
        print("  through the hub median \(human(hubMedian))   raw libargon2 verify median \(human(rawMedian))")
        print(
            String(
                format: "  overhead %@ (target ≤ 2 ms; ratio %.3f)", human(hubMedian - rawMedian), hubMedian / rawMedian
            ))
    }

    /// Logins a second with Argon2 made cheap, 8 terminal connections, against pgbench -S with 8 clients.
    static func throughput(
        _ address: HubAddress, _ state: String, admin: SocketClient, policies: String, hub: Process, server: String
    ) async throws {
        let settings = policies + "/settings.yaml"
        let text = try String(contentsOfFile: settings, encoding: .utf8)
            .replacingOccurrences(of: "memory-kib: 65536", with: "memory-kib: 1024")
            .replacingOccurrences(of: "iterations: 3", with: "iterations: 1")
            .replacingOccurrences(of: "parallelism: 4", with: "parallelism: 1")
        try text.write(toFile: settings, atomically: true, encoding: .utf8)
        _ = admin.call(#"{"op":"policy.reload"}"#)
        let clients = 8
        for index in 0..<clients {
            _ = admin.call(#"{"op":"user.add","user":"cheap\#(index)","kind":"staff","organisation":"planning"}"#)
            _ = admin.call(#"{"op":"user.passwd","user":"cheap\#(index)","password":"cheap password"}"#)
        }
        try await fixedCost(address, state)
        let duration = Duration.seconds(5)
        let clock = ContinuousClock()
        let deadline = clock.now + duration
        let counts = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for index in 0..<clients {
                group.addTask {
                    let terminal = try await client(address, state)
                    defer { terminal.close() }
                    var done = 0
                    var failed = 0
                    while clock.now < deadline {
                        do {
                            _ = try await terminal.call(
                                "authenticate", ForwardedLogin(user: "cheap\(index)", password: "cheap password"))
                            done += 1
                        } catch {
                            failed += 1
                        }
                    }
                    return (done, failed)
                }
            }
            var total = (0, 0)
            for try await count in group { total = (total.0 + count.0, total.1 + count.1) }
            return total
        }
        let rate = Double(counts.0) / 5
        try runProgram(
            "/usr/lib/postgresql/15/bin/pgbench", ["-i", "-q", "-h", server, "-U", "mamori", "mamori_pgbench"])
        let pgbench = try runProgram(
            "/usr/lib/postgresql/15/bin/pgbench",
            // A count, not -T: pgbench ends -T with SIGALRM, which this process's threads may have
            // blocked for the child it spawns; it reports its own rate either way.
            ["-S", "-n", "-c", "\(clients)", "-j", "2", "-t", "20000", "-h", server, "-U", "mamori", "mamori_pgbench"],
            captureOutput: true)
        let tps = pgbench.output.split(separator: "\n").first { $0.hasPrefix("tps = ") }
            .flatMap { Double($0.dropFirst(6).prefix { $0 == "." || $0.isNumber }) }
        print("Hub: authenticate throughput, Argon2 at m=1024 KiB t=1 p=1, \(clients) terminal connections, 5 s")
        print(String(format: "  hub %.0f logins/s (%d failed)", rate, counts.1))
        if let tps {
            print(
                String(
                    format: "  pgbench -S, %d clients, same server: %.0f transactions/s   ratio hub / pgbench %.4f",
                    clients, tps, rate / tps))
        } else {
            print("  pgbench: no rate read; no ratio")
        }
    }

    /// Where a forwarded login's time goes besides Argon2, with Argon2 made cheap: one connection,
    /// one request at a time. `terminal.hello` is the round trip over TLS to the hub and back; a
    /// forwarded `authenticate` adds the hub's work and its PostgreSQL transactions; the raw
    /// verify is the cheap Argon2 run itself.
    static func fixedCost(_ address: HubAddress, _ state: String) async throws {
        let hasher = try PasswordHasher(parameters: Argon2Parameters(memoryKiB: 1024, iterations: 1, parallelism: 1))
        let hash = try hasher.hash("cheap password")
        let terminal = try await client(address, state)
        defer { terminal.close() }
        let clock = ContinuousClock()
        let elapsed = { (start: ContinuousClock.Instant) in Double((clock.now - start) / .nanoseconds(1)) / 1e9 }
        var hello: [Double] = []
        var login: [Double] = []
        var raw: [Double] = []
        for _ in 0..<50 {
            var started = clock.now
            _ = try await terminal.call(HubOperation.hello.rawValue, EmptyRequest(), reading: TerminalHelloReply.self)
            hello.append(elapsed(started))
            started = clock.now
            _ = try await terminal.call("authenticate", ForwardedLogin(user: "cheap0", password: "cheap password"))
            login.append(elapsed(started))
            raw.append(seconds { _ = try? hasher.verify("cheap password", against: hash) })
        }
        let (helloMedian, loginMedian, rawMedian) = (
            Timing(samples: hello).median, Timing(samples: login).median, Timing(samples: raw).median
        )
        print("Hub: where a forwarded login's time goes, Argon2 at m=1024 KiB t=1 p=1 (50 rounds, one connection)")
        print(
            "  terminal.hello round trip \(human(helloMedian))   authenticate \(human(loginMedian))   "
                + "raw verify \(human(rawMedian))   the hub's own work \(human(loginMedian - helloMedian - rawMedian))")
    }

    /// 100 revocations, each timed from its request to its arrival at every watching connection.
    static func propagation(_ address: HubAddress, _ states: [String], admin: SocketClient) async throws {
        let count = states.count
        let arrivals = Mutex<[Int64: [ContinuousClock.Instant]]>([:])
        var watchers: [HubClient] = []
        defer { for watcher in watchers { watcher.close() } }
        let probe = try await client(address, states[0])
        let latest = try await probe.call(
            HubOperation.changes.rawValue, TerminalChangesRequest(since: 0), reading: TerminalChangesReply.self
        ).latest
        probe.close()
        for state in states {
            // One after another: each becomes a terminal's connection before the next handshake.
            let watcher = try await client(address, state)
            _ = try await watcher.watch(since: latest) { pushed in
                let now = ContinuousClock.now
                arrivals.withLock { book in
                    for change in pushed.changes { book[change.number, default: []].append(now) }
                }
            }
            watchers.append(watcher)
        }
        var latencies: [Double] = []
        var missing = 0
        for round in 1...100 {
            guard let granted = admin.call(#"{"op":"role.grant","user":"bench","role":"auditor"}"#),
                granted.contains("\"ok\":true")
            else { throw HubClientError("role.grant failed") }
            let asked = ContinuousClock.now
            guard let revoked = admin.call(#"{"op":"role.revoke","user":"bench","role":"auditor"}"#),
                revoked.contains("\"ok\":true")
            else { throw HubClientError("role.revoke failed") }
            // Nothing else changes meanwhile: each round's grant and revocation take the next two numbers.
            let number = latest + Int64(2 * round)
            for _ in 0..<400 {
                if arrivals.withLock({ $0[number]?.count ?? 0 }) == count { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            let times = arrivals.withLock { $0[number] ?? [] }
            missing += count - times.count
            latencies += times.map { Double(($0 - asked) / .nanoseconds(1)) / 1e9 }
        }
        let timing = Timing(samples: latencies)
        print(
            "Hub: a revocation's request to its push, \(count) terminals watching, one connection each, 100 revocations"
        )
        print(
            "  p50 \(human(timing.median))   p99 \(human(timing.p99))   max \(human(latencies.max() ?? 0))"
                + "   not arrived within 2 s: \(missing)")
    }
}
