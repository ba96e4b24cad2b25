import Foundation
import MamoriCore
import MamoriProtocol
import MamoriTestSupport
import MamoriTown

/// Logins through a network cut (docs/town.md): a release `mamori-hub` on the private PostgreSQL,
/// and a release member mamorid in a network namespace joined to it over a veth pair, cut by an
/// nftables drop rule (a black hole). Figures, each beside its peers of the same run:
///
/// - a login with password and TOTP code at the member, online (through the hub) and offline,
///   against the raw libargon2 verify at the same parameters (the offline login's own Argon2 run);
/// - the first login after the cut (it waits until the member takes the hub for unreachable), and
///   the slowest of the logins after it (none should wait for the hub);
/// - the offline cache's size per user per day of tags.
enum OfflineBench {
    static let users = 12

    static func run(productsDirectory: String) async throws {
        guard NetworkNamespace.available else {
            print("Offline: needs root, ip and nft (a network namespace to cut); skipped\n")
            return
        }
        let namespace = try NetworkNamespace()
        defer { namespace.remove() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mamori-bench-offline-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        guard
            let hub = try HubBench.startHub(
                products: productsDirectory, database: "mamori_bench_offline", folder: folder,
                names: ["127.0.0.1", namespace.hostAddress])
        else { return }
        defer { hub.stop() }
        let windowHours = 72
        // Staff may log in offline in the My Number zone, with password and code.
        let settings = hub.policies + "/settings.yaml"
        try
            (try String(contentsOfFile: settings, encoding: .utf8)
            + "  offline: {roles: [staff], window-hours: \(windowHours), maximum-age-days: 7, failures: 5}\n").write(
                toFile: settings, atomically: true, encoding: .utf8)
        let zones = hub.policies + "/zones.yaml"
        try (try String(contentsOfFile: zones, encoding: .utf8)).replacingOccurrences(
            of: "    login-factors: [password, totp]\n",
            with: "    login-factors: [password, totp]\n    offline-login: tags\n"
        ).write(toFile: zones, atomically: true, encoding: .utf8)
        guard hub.admin.call(#"{"op":"policy.reload"}"#)?.contains(#""ok":true"#) == true else {
            print("Offline: the hub refused the offline policy; skipped\n")
            return
        }
        var devices: [String: TOTP] = [:]
        for index in 0..<users {
            let user = "clerk\(index)"
            _ = hub.admin.call(#"{"op":"user.add","user":"\#(user)","kind":"staff","organisation":"planning"}"#)
            _ = hub.admin.call(#"{"op":"role.grant","user":"\#(user)","role":"staff"}"#)
            _ = hub.admin.call(#"{"op":"user.passwd","user":"\#(user)","password":"\#(user) passphrase"}"#)
            guard let begun = hub.admin.call(#"{"op":"totp.enroll.begin","user":"\#(user)"}"#),
                let secret = DaemonBench.field(begun, "secret"), let device = try? TOTP(secret: Base32.decode(secret)),
                // The previous step's code (the window allows it), so that the current one is
                // left for the online login, and the next for the offline one right after the cut.
                let current = device.step(at: Date()),
                case let code = device.code(forStep: current - 1),
                hub.admin.call(#"{"op":"totp.enroll.confirm","user":"\#(user)","code":"\#(code)"}"#)?.contains(
                    #""ok":true"#) == true
            else {
                print("Offline: a user could not be enrolled; skipped\n")
                return
            }
            devices[user] = device
        }
        let state = try await HubBench.join(
            hub.admin, HubAddress(host: namespace.hostAddress, port: hub.port), "bench-offline", zone: "mynumber",
            folder: folder)
        guard
            let member = try HubBench.startDaemon(
                productsDirectory, state: state, policies: hub.policies, name: "bench-offline", folder: folder,
                in: namespace)
        else {
            print("Offline: the member mamorid did not start; skipped\n")
            return
        }
        defer {
            member.process.terminate()
            member.process.waitUntilExit()
        }
        // The member has the town's users once its `account` knows the last one.
        var ready = false
        for _ in 0..<500 where !ready {
            ready =
                SocketClient(path: member.socket)?.call(#"{"op":"account","user":"clerk\#(users - 1)"}"#)?.contains(
                    "unknown_user") == false
            if !ready { usleep(20_000) }
        }
        func login(_ user: String, step: UInt64) -> (ok: Bool, seconds: Double) {
            let code = devices[user]!.code(forStep: step)
            var ok = false
            let time = seconds {
                ok =
                    SocketClient(path: member.socket)?.call(
                        #"{"op":"authenticate","user":"\#(user)","password":"\#(user) passphrase","code":"\#(code)","service":"login"}"#
                    )?.contains(#""ok":true"#) == true
            }
            return (ok, time)
        }
        func now() -> UInt64 { UInt64(Date().timeIntervalSince1970) / 30 }
        func credentialFiles() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: state + "/town/offline")) ?? []).filter {
                $0.hasSuffix(".json")
            }
        }

        // Online, interleaved with the raw verify of a hash at the same parameters.
        let hasher = try PasswordHasher(parameters: .default)
        let hash = try hasher.hash("clerk0 passphrase")
        var online: [Double] = []
        var raw: [Double] = []
        var used: [String: UInt64] = [:]
        for index in 0..<users {
            let user = "clerk\(index)"
            let step = now()
            let result = login(user, step: step)
            guard result.ok else {
                print("Offline: an online login through the member failed; skipped\n")
                return
            }
            online.append(result.seconds)
            used[user] = step
            // The credential is made after the reply, on the member's Argon2 pool: waited for
            // (untimed), so that it does not run beside the next measurement.
            for _ in 0..<500 where credentialFiles().count <= index { usleep(5_000) }
            raw.append(seconds { _ = try? hasher.verify("clerk0 passphrase", against: hash) })
        }
        let cache = state + "/town/offline"
        let files = credentialFiles()
        let sizes = files.compactMap { name in
            (try? FileManager.default.attributesOfItem(atPath: cache + "/" + name))?[.size] as? Int
        }
        let perUser = Double(sizes.reduce(0, +)) / Double(max(1, sizes.count))

        // The cut, then at once the next step of every user offline (a step ahead is within the window).
        try namespace.blackHole()
        let first = login("clerk0", step: used["clerk0"]! + 1)
        var offline: [Double] = []
        var refused = first.ok ? 0 : 1
        for index in 1..<users {
            let user = "clerk\(index)"
            let result = login(user, step: used[user]! + 1)
            if !result.ok { refused += 1 }
            offline.append(result.seconds)
            raw.append(seconds { _ = try? hasher.verify("clerk0 passphrase", against: hash) })
        }
        try namespace.restore()

        let onlineTiming = Timing(samples: online)
        let offlineTiming = Timing(samples: offline)
        let rawTiming = Timing(samples: raw)
        print("Offline: a login with password and TOTP at a member terminal, at \(Argon2Parameters.default)")
        print(
            "  online (through the hub) median \(human(onlineTiming.median))   offline median \(human(offlineTiming.median))"
                + "   raw libargon2 verify median \(human(rawTiming.median))")
        print(
            String(
                format: "  offline / online %.2f   offline / raw verify %.2f%@",
                offlineTiming.median / onlineTiming.median,
                offlineTiming.median / rawTiming.median, refused == 0 ? "" : "   (\(refused) offline logins REFUSED)"))
        print(
            "  after a black-hole cut: the first login took \(human(first.seconds)) (the member takes the hub for "
                + "unreachable after 3 s without a heartbeat); the slowest of the \(users - 1) after it "
                + "\(human(offline.max() ?? 0)) (target: none waits for the hub)")
        print(
            String(
                format: "  offline cache: %.0f KB per user for a %d-hour window of tags: %.1f KB per user per day",
                perUser / 1024, windowHours, perUser / 1024 / Double(windowHours) * 24))
        print()
    }
}
