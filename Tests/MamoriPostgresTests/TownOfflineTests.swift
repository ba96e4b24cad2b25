import CoreFoundation
import Foundation
import MamoriCore
import MamoriProtocol
import MamoriTestSupport
import MamoriTown
import Testing

/// Logins through a network cut, end to end: a real hub on a real PostgreSQL server, two real
/// mamorid in network namespaces made for the test (joined to the hub over a veth pair each), cut
/// the two ways a counter's network fails: an nftables drop rule (a black hole: connections
/// stall) and the link down (refused at once). Logins are asked at the terminals' sockets, as PAM
/// asks.
@Suite(
    "logins through a network cut", .serialized,
    .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"),
    .enabled(if: NetworkNamespace.available, "needs root, ip (iproute2) and nft (nftables)"))
struct TownOfflineTests {
    typealias Hub = TownJoinTests.Hub

    /// The TOTP step now (30 s).
    static var step: Int { Int(Date().timeIntervalSince1970) / 30 }

    static func code(_ secret: String, step: Int) throws -> String {
        try Subprocess.run("oathtool", ["--totp", "-b", "-N", "@\(step * 30)", secret]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The code of the first step after `after` that is accepted now (a step either side of the
    /// current one is): waits for the next step when `after` is the one to come.
    static func code(_ secret: String, after: Int) async throws -> (code: String, step: Int) {
        while Self.step < after { try await Task.sleep(for: .milliseconds(200)) }
        let step = after + 1
        return (try code(secret, step: step), step)
    }

    /// A member that joined `hub` at the namespace's host address and runs in the namespace.
    static func member(_ hub: Hub, _ name: String, in namespace: NetworkNamespace) throws -> DaemonHarness {
        let harness = try DaemonHarness()
        harness.namespace = namespace
        let joined = try TownJoinTests.join(
            hub, token: try hub.add(name), state: harness.stateDirectory, at: namespace.hostAddress)
        #expect(joined.status == 0, "\(joined)")
        if let status = try harness.start() {
            throw SubprocessError(description: "the member mamorid exited with \(status):\n\(harness.log)")
        }
        return harness
    }

    /// Runs `body` on a thread of its own: a login through a cut may wait seconds in a blocking
    /// read, and the test process's cooperative threads (as many as cores) are the other suites'
    /// too (their `until` loops would miss their deadlines).
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// One `authenticate` at `socket`: the reply and the seconds it took.
    static func login(_ socket: String, _ user: String, code: String, password: String? = nil) async throws -> (
        reply: [String: JSONValue], seconds: Double
    ) {
        try await offThread {
            let started = Date()
            let reply = try TownMemberTests.ask(
                socket,
                [
                    "op": "authenticate", "user": .string(user),
                    "password": .string(password ?? "\(user)'s passphrase"), "code": .string(code), "service": "login",
                ])
            return (reply, Date().timeIntervalSince(started))
        }
    }

    /// The user's offline credential file in `harness`'s state folder, found by its contents.
    static func credentialFile(_ harness: DaemonHarness, of user: String) -> String? {
        let folder = TerminalMembership.folder(in: harness.stateDirectory) + "/offline"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") {
            if let text = try? String(contentsOfFile: folder + "/" + name, encoding: .utf8),
                text.contains("\"user\":\"\(user)\"")
            {
                return folder + "/" + name
            }
        }
        return nil
    }

    static func credentialCount(_ harness: DaemonHarness) -> Int {
        let folder = TerminalMembership.folder(in: harness.stateDirectory) + "/offline"
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") }
            .count
    }

    /// The offline settings at the hub: staff may log in offline in the My Number zone with tags.
    static func allowOffline(_ hub: Hub) throws -> String {
        let folder = hub.harness.policyDirectory
        let settings = folder + "/settings.yaml"
        try
            (try String(contentsOfFile: settings, encoding: .utf8)
            + "  offline: {roles: [staff], window-hours: 2, maximum-age-days: 7, failures: 10}\n").write(
                toFile: settings, atomically: true, encoding: .utf8)
        let zones = folder + "/zones.yaml"
        let text = try String(contentsOfFile: zones, encoding: .utf8)
        let mynumber = "    login-factors: [password, totp]\n"
        let range = try #require(text.range(of: mynumber))
        try text.replacingCharacters(in: range, with: mynumber + "    offline-login: tags\n").write(
            toFile: zones, atomically: true, encoding: .utf8)
        let reloaded = try TownForwardTests.administer(hub, ["op": "policy.reload"])
        #expect(reloaded["ok"] == .bool(true), "\(reloaded)")
        guard case .string(let revision)? = reloaded["revision"] else {
            throw SubprocessError(description: "\(reloaded)")
        }
        return revision
    }

    static func ok(_ reply: [String: JSONValue]) -> Bool { reply["ok"] == .bool(true) }

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    static func p95(_ values: [Double]) -> Double {
        values.sorted()[min(values.count - 1, Int((Double(values.count) * 0.95).rounded(.up)) - 1)]
    }

    static func audit(_ socket: String, last: Int) throws -> String {
        "\(try TownMemberTests.ask(socket, ["op": "audit.read", "last": .number(Double(last))]))"
    }

    @Test(
        "through a black hole and a link down: offline logins with password and code, refused as the policy says; on reconnect the hub spends the steps, a step used twice is flagged, and a disabled user is refused"
    )
    func loginsThroughACut() async throws {
        let a = try NetworkNamespace()
        defer { a.remove() }
        let b = try NetworkNamespace()
        defer { b.remove() }
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database, names: [a.hostAddress, b.hostAddress])
            defer { hub.harness.stop() }
            let revision = try Self.allowOffline(hub)
            let counterA = try Self.member(hub, "counter-a", in: a)
            defer { counterA.stop() }
            let counterB = try Self.member(hub, "counter-b", in: b)
            defer { counterB.stop() }

            // Twenty clerks to time, and one user for each other case.
            let timed = (1...20).map { String(format: "clerk%02d", $0) }
            let others = ["first", "locker", "aged", "gone", "twice", "copied", "rescue", "never"]
            var secrets: [String: String] = [:]
            for user in timed + others {
                secrets[user] = try TownMemberTests.enrol(hub, user, password: "\(user)'s passphrase", roles: ["staff"])
            }
            // "rescue" has recovery codes before logging in: the terminal gets them keyed.
            let issued = try TownForwardTests.administer(hub, ["op": "recovery.issue", "user": "rescue"])
            guard case .array(let rescueCodes)? = issued["codes"], rescueCodes.count >= 2,
                case .string(let rescueFirst) = rescueCodes[0], case .string(let rescueSecond) = rescueCodes[1]
            else { throw SubprocessError(description: "no recovery codes: \(issued)") }
            secrets["fiscal"] = try TownMemberTests.enrol(
                hub, "fiscal", password: "fiscal's passphrase", roles: ["fiscal-year-staff"])
            for terminal in [counterA, counterB] {
                #expect(
                    try await TownMemberTests.until(20) {
                        guard
                            case .string(let held)? = try TownMemberTests.ask(terminal.socketPath, ["op": "status"])[
                                "policy_revision"]
                        else { return false }
                        let fiscal = try TownMemberTests.ask(terminal.socketPath, ["op": "account", "user": "fiscal"])
                        return held == revision && fiscal["result"] != .string("unknown_user")
                    } != nil, "\(terminal.log)")
            }

            // Online logins at counter A, each with the code of the step it is in.
            var used: [String: Int] = [:]
            var online: [Double] = []
            for user in timed + others + ["fiscal"] where user != "never" {
                // The step after the current one: the enrolment may have used the current one.
                let step = Self.step + 1
                let (reply, seconds) = try await Self.login(
                    counterA.socketPath, user, code: try Self.code(secrets[user]!, step: step))
                let hubSaid =
                    Self.ok(reply) ? "" : "\(try TownForwardTests.administer(hub, ["op": "audit.read", "last": 2]))"
                #expect(Self.ok(reply), "\(user): \(reply)\n\(hubSaid)")
                // The grant is the terminal's alone: the caller never sees it.
                #expect(reply["offline"] == nil, "\(reply)")
                used[user] = step
                if timed.contains(user) { online.append(seconds) }
            }
            // "twice" logs in at counter B too, with the next step.
            let twiceAtB = try await Self.code(secrets["twice"]!, after: used["twice"]!)
            #expect(Self.ok(try await Self.login(counterB.socketPath, "twice", code: twiceAtB.code).reply))
            // Each terminal made a credential for each user the policy lets log in offline: not
            // for "fiscal", whose role may not.
            #expect(await TownMemberTests.until(30) { Self.credentialCount(counterA) == 27 } != nil)
            #expect(Self.credentialCount(counterA) == 27, "\(counterA.log)")
            #expect(await TownMemberTests.until(10) { Self.credentialCount(counterB) == 1 } != nil)
            #expect(Self.credentialFile(counterA, of: "fiscal") == nil)

            // The cache holds no seed and no code: the seed in every form, the next codes as digits.
            for user in timed + others where user != "never" {
                let file = try #require(Self.credentialFile(counterA, of: user))
                let text = try String(contentsOfFile: file, encoding: .utf8)
                let secret = secrets[user]!
                #expect(!text.contains(secret) && !text.contains(secret.lowercased()))
                let raw = try Base32.decode(secret)
                #expect(!text.contains(Data(raw).base64EncodedString()))
                #expect(!text.contains(raw.map { String(format: "%02x", $0) }.joined()))
                for step in (used[user]! + 1)...(used[user]! + 20) {
                    #expect(!text.contains(try Self.code(secret, step: step)), "\(user) step \(step)")
                }
                #expect(!text.contains("\(user)'s passphrase"))
                #expect(
                    !text.contains(rescueFirst) && !text.contains(rescueFirst.replacingOccurrences(of: "-", with: "")))
                var info = stat()
                #expect(lstat(file, &info) == 0 && info.st_mode & 0o777 == 0o600)
            }

            // The cut: counter A behind a black hole, counter B with its link down.
            try a.blackHole()
            try b.linkDown()
            // The first login after the cut waits at most until the terminal takes the hub for
            // unreachable (its stream is silent for 3 s); it is then decided here.
            let firstCode = try await Self.code(secrets["first"]!, after: used["first"]!)
            let first = try await Self.login(counterA.socketPath, "first", code: firstCode.code)
            #expect(Self.ok(first.reply), "\(first.reply)\n\(counterA.log)")
            print(String(format: "the first login after a black-hole cut: %.0f ms", first.seconds * 1000))

            // Twenty offline logins, timed against the same logins online.
            var offline: [Double] = []
            var offlineSteps: [String: Int] = [:]
            for user in timed {
                let (code, step) = try await Self.code(secrets[user]!, after: used[user]!)
                let (reply, seconds) = try await Self.login(counterA.socketPath, user, code: code)
                #expect(Self.ok(reply), "\(user): \(reply)")
                if case .array(let factors)? = reply["factors"] { #expect(factors == ["password", "totp"]) }
                offline.append(seconds)
                offlineSteps[user] = step
            }
            print(
                String(
                    format:
                        "login through the hub: median %.1f ms, p95 %.1f ms; offline: median %.1f ms, p95 %.1f ms (20 each)",
                    Self.median(online) * 1000, Self.p95(online) * 1000, Self.median(offline) * 1000,
                    Self.p95(offline) * 1000))

            // A session opens on an offline ticket, here.
            let clerk = timed[0]
            let again = try await Self.login(
                counterA.socketPath, clerk, code: try Self.code(secrets[clerk]!, step: offlineSteps[clerk]!))
            // The code just used offline is a replay.
            #expect(TownMemberTests.code(again.reply) == "auth_failed", "\(again.reply)")
            let fresh = try await Self.login(
                counterA.socketPath, timed[1],
                code: try await Self.code(secrets[timed[1]]!, after: offlineSteps[timed[1]]!).code)
            #expect(Self.ok(fresh.reply), "\(fresh.reply)")
            guard case .string(let ticket)? = fresh.reply["ticket"] else {
                throw SubprocessError(description: "no ticket")
            }
            let session = try TownMemberTests.ask(
                counterA.socketPath, ["op": "session.open", "ticket": .string(ticket), "service": "login"])
            #expect(Self.ok(session), "\(session)")

            // A wrong code, and the eleventh failure (the policy's offline failures are 10): as online.
            let lockerCode = try await Self.code(secrets["locker"]!, after: used["locker"]!).code
            let wrong = String(format: "%06d", (Int(lockerCode)! + 1) % 1_000_000)
            for _ in 1...10 {
                #expect(
                    TownMemberTests.code(try await Self.login(counterA.socketPath, "locker", code: wrong).reply)
                        == "auth_failed")
            }
            let eleventh = try await Self.login(counterA.socketPath, "locker", code: lockerCode)
            #expect(TownMemberTests.code(eleventh.reply) == "auth_failed", "\(eleventh.reply)")
            #expect(try Self.audit(counterA.socketPath, last: 40).contains("auth.lockout"))

            // A recovery code, offline: accepted once.
            let rescued = try await Self.login(counterA.socketPath, "rescue", code: rescueFirst)
            #expect(Self.ok(rescued.reply), "\(rescued.reply)")
            if case .array(let factors)? = rescued.reply["factors"] {
                #expect(factors == ["password", "recovery-code"])
            }
            #expect(
                TownMemberTests.code(try await Self.login(counterA.socketPath, "rescue", code: rescueFirst).reply)
                    == "auth_failed")

            // Never logged in here; a role the policy does not let log in offline: refused.
            for user in ["never", "fiscal"] {
                let code = try Self.code(secrets[user]!, step: Self.step)
                #expect(
                    TownMemberTests.code(try await Self.login(counterA.socketPath, user, code: code).reply)
                        == "auth_failed")
            }
            // A wrong password with the right code: refused.
            #expect(
                TownMemberTests.code(
                    try await Self.login(
                        counterA.socketPath, "copied", code: try Self.code(secrets["copied"]!, step: Self.step),
                        password: "guess"
                    ).reply) == "auth_failed")

            // The same step of "twice", used offline on both cut terminals.
            let twiceCode = try await Self.code(secrets["twice"]!, after: twiceAtB.step).code
            #expect(Self.ok(try await Self.login(counterA.socketPath, "twice", code: twiceCode).reply))
            #expect(
                Self.ok(try await Self.login(counterB.socketPath, "twice", code: twiceCode).reply), "\(counterB.log)")

            // "copied" logs in offline at A; its credential file, copied to B's state folder, verifies nothing there.
            let copied = try await Self.code(secrets["copied"]!, after: used["copied"]!)
            #expect(Self.ok(try await Self.login(counterA.socketPath, "copied", code: copied.code).reply))
            #expect(try await Self.offThread { counterB.stop() } == 0)
            let copiedFile = try #require(Self.credentialFile(counterA, of: "copied"))
            let target =
                TerminalMembership.folder(in: counterB.stateDirectory) + "/offline/"
                + (copiedFile as NSString).lastPathComponent
            try FileManager.default.copyItem(atPath: copiedFile, toPath: target)
            #expect(try await Self.offThread { try counterB.start() } == nil)
            let copiedAtB = try await Self.login(
                counterB.socketPath, "copied", code: try await Self.code(secrets["copied"]!, after: copied.step).code)
            #expect(TownMemberTests.code(copiedAtB.reply) == "auth_failed", "\(copiedAtB.reply)")

            // Past the maximum offline age: the last online login eight days ago, as the file says
            // after a restart (the terminal reads its cache at start).
            #expect(try await Self.offThread { counterA.stop() } == 0)
            let agedFile = try #require(Self.credentialFile(counterA, of: "aged"))
            var aged = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: agedFile)))
                    as? [String: Any])
            aged["onlineAt"] = (Date().timeIntervalSince1970 - 8 * 86_400) * 1000
            try JSONSerialization.data(withJSONObject: aged).write(to: URL(fileURLWithPath: agedFile))
            #expect(try await Self.offThread { try counterA.start() } == nil)
            let agedLogin = try await Self.login(
                counterA.socketPath, "aged", code: try await Self.code(secrets["aged"]!, after: used["aged"]!).code)
            #expect(TownMemberTests.code(agedLogin.reply) == "auth_failed", "\(agedLogin.reply)")
            // The rest of the cache survived the restart.
            let afterRestart = try await Self.login(
                counterA.socketPath, timed[2],
                code: try await Self.code(secrets[timed[2]]!, after: offlineSteps[timed[2]]!).code)
            #expect(Self.ok(afterRestart.reply), "\(afterRestart.reply)\n\(counterA.log)")

            // `status` says the terminal decides logins itself (after the restart, once a first
            // attempt to reach the hub has stalled); and the watch's first attempt, whose time-out
            // is the patient one of a start (10 s), is over: from then on it tries about twice a second.
            #expect(
                await TownMemberTests.until(20) {
                    counterA.log.components(separatedBy: "the hub cannot be reached; decisions use the users last read")
                        .count - 1 >= 2
                } != nil)
            #expect(
                try await TownMemberTests.until(20) {
                    guard
                        case .object(let link)? = try TownMemberTests.ask(counterA.socketPath, ["op": "status"])["hub"]
                    else { return false }
                    return link["offline"] == .bool(true)
                } != nil)
            let shown = try Subprocess.run(Subprocess.product("mamori"), ["status", "--socket", counterA.socketPath])
            #expect(shown.stdout.contains("OFFLINE: logins are decided on this terminal"), "\(shown.stdout)")

            // Disabled at the hub during the cut: the terminal cannot know, and lets "gone" in.
            let disabled = try TownForwardTests.administer(hub, ["op": "user.disable", "user": "gone"])
            #expect(Self.ok(disabled), "\(disabled)")
            let gone = try await Self.code(secrets["gone"]!, after: used["gone"]!)
            #expect(Self.ok(try await Self.login(counterA.socketPath, "gone", code: gone.code).reply))

            // The link back: the terminal reports, reads the town again, and "gone" is refused.
            try a.restore()
            let refusedAfter = try await TownMemberTests.until(30) {
                try TownMemberTests.ask(counterA.socketPath, ["op": "account", "user": "gone"])["result"]
                    == .string("denied")
            }
            #expect(refusedAfter != nil, "\(counterA.log)")
            print(
                String(
                    format: "a user disabled during the cut is refused %.2f s after the link returns",
                    refusedAfter ?? -1))
            let goneAgain = try await Self.login(
                counterA.socketPath, "gone", code: try await Self.code(secrets["gone"]!, after: gone.step).code)
            #expect(TownMemberTests.code(goneAgain.reply) == "auth_failed", "\(goneAgain.reply)\n\(counterA.log)")

            // The steps used offline are spent at the hub: the code "clerk03" used offline is a
            // replay there now.
            let spent = try TownForwardTests.administer(
                hub,
                [
                    "op": "authenticate", "user": .string(timed[3]), "password": .string("\(timed[3])'s passphrase"),
                    "code": .string(try Self.code(secrets[timed[3]]!, step: offlineSteps[timed[3]]!)),
                    "service": "login",
                ])
            #expect(TownMemberTests.code(spent) == "auth_failed", "\(spent)")
            // The recovery code used offline is consumed at the hub; the next one is not.
            for (code, accepted) in [(rescueFirst, false), (rescueSecond, true)] {
                let online = try TownForwardTests.administer(
                    hub,
                    [
                        "op": "authenticate", "user": "rescue", "password": "rescue's passphrase",
                        "code": .string(code),
                        "service": "login",
                    ])
                #expect((online["ok"] == .bool(true)) == accepted, "\(online)")
            }
            let hubTrail = "\(try TownForwardTests.administer(hub, ["op": "audit.read", "last": 60]))"
            #expect(hubTrail.contains("terminal.offline"), "\(hubTrail)")
            // The terminal's own entries of the cut reached the hub: it acknowledges A's whole chain.
            guard
                case .number(let head)? = try TownMemberTests.ask(
                    counterA.socketPath, ["op": "audit.read", "last": 1])["last_sequence"]
            else { throw SubprocessError(description: "no last_sequence") }
            #expect(
                try await TownMemberTests.until(10) {
                    guard
                        case .object(let link)? = try TownMemberTests.ask(counterA.socketPath, ["op": "status"])["hub"],
                        case .number(let acknowledged)? = link["audit_acknowledged"]
                    else { return false }
                    return acknowledged >= head
                } != nil)

            // B comes back: the step "twice" used on both is flagged in both chains, the hub's,
            // and the hub's inspection.
            try b.restore()
            for terminal in [counterA, counterB] {
                // Asked four times a second: each read is an entry of its own.
                var flagged = false
                for _ in 0..<120 where !flagged {
                    flagged = try Self.audit(terminal.socketPath, last: 200).contains("offline.conflict")
                    if !flagged { try await Task.sleep(for: .milliseconds(250)) }
                }
                #expect(flagged, "\(terminal.log)")
            }
            #expect(
                "\(try TownForwardTests.administer(hub, ["op": "audit.read", "last": 80]))".contains("offline.conflict")
            )
            let report = "\(try TownForwardTests.administer(hub, ["op": "inspect"]))"
            #expect(report.contains("offline-logins"), "\(report)")
            #expect(report.contains("was used offline on both counter-a and counter-b"), "\(report)")
            #expect(report.contains("counter-a: clerk01: 1 offline login(s)"), "\(report)")
        }
    }
}

/// What a terminal reports of its logins through a cut, judged at the hub: a report of what the
/// hub never made possible changes nothing (a terminal with root taken cannot spend other users'
/// steps or recovery codes, or push a user's TOTP past the present).
@Suite(
    "offline reports at the hub", .serialized,
    .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"))
struct OfflineReportTests {
    typealias Hub = TownJoinTests.Hub

    @Test("a full report of the longest uses fits in one request line")
    func fullReportFits() throws {
        let longest = String(repeating: "u", count: 64)
        let uses = (0..<TerminalOfflineRequest.maximumUses).map { index in
            OfflineUseLine(
                sequence: Int64.max - Int64(index), user: longest, kind: "failure", at: 253_402_300_799_000,
                step: UInt64(Int64.max), recoveryCode: Int64.max, reason: String(repeating: "r", count: 64),
                onlineAt: 253_402_300_799_000)
        }
        var fields = try TerminalOfflineRequest(uses: uses).fields()
        fields["op"] = .string(HubOperation.offline.rawValue)
        fields["id"] = .number(1)
        #expect(WireReply.encodeRequest(fields).count < WireLimits.maximumLineLength)
    }

    @Test("a report of steps or recovery codes never granted to the terminal is refused and spends nothing")
    func forgedReport() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let secret = try TownMemberTests.enrol(hub, "sato", password: "sato's passphrase", roles: ["staff"])
            let issued = try TownForwardTests.administer(hub, ["op": "recovery.issue", "user": "sato"])
            #expect(issued["ok"] == .bool(true), "\(issued)")
            // A terminal never given anything for sato reports a login at a step far in the
            // future, and one with each recovery code id there may be.
            let terminal = try await TownForwardTests.terminal(hub, "rogue")
            defer { terminal.close() }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var uses = [
                OfflineUseLine(
                    sequence: 1, user: "sato", kind: "login", at: now, step: UInt64(Int64.max / 2), recoveryCode: nil,
                    reason: nil, onlineAt: now)
            ]
            for id in 1...20 {
                uses.append(
                    OfflineUseLine(
                        sequence: Int64(1 + id), user: "sato", kind: "login", at: now, step: nil,
                        recoveryCode: Int64(id), reason: nil, onlineAt: now))
            }
            let reply = try await terminal.call(
                HubOperation.offline.rawValue, TerminalOfflineRequest(uses: uses), reading: TerminalOfflineReply.self)
            #expect(reply.kept == uses.count)
            // Sato's TOTP and recovery codes work as before.
            let login = try TownForwardTests.administer(
                hub,
                [
                    "op": "authenticate", "user": "sato", "password": "sato's passphrase",
                    "code": .string(try TownForwardTests.code(secret, offset: 30)), "service": "login",
                ])
            #expect(login["ok"] == .bool(true), "\(login)")
            guard case .array(let codes)? = issued["codes"], case .string(let code)? = codes.first else {
                throw SubprocessError(description: "no recovery codes: \(issued)")
            }
            let recovered = try TownForwardTests.administer(
                hub,
                [
                    "op": "authenticate", "user": "sato", "password": "sato's passphrase", "code": .string(code),
                    "service": "login",
                ])
            #expect(recovered["ok"] == .bool(true), "\(recovered)")
            // The inspection names the refused report, and the hub's log says so as critical.
            let report = "\(try TownForwardTests.administer(hub, ["op": "inspect"]))"
            #expect(report.contains("rogue: reported a login of sato"), "\(report)")
            #expect(report.contains("that the hub never made possible (not-granted); refused"))
            #expect(hub.harness.log.contains("a terminal reported offline uses the hub never granted"))
        }
    }
}
