import CoreFoundation
import Foundation
import MamoriProtocol
import MamoriTestSupport
import MamoriTown
import Testing

/// Member terminals end to end: a real hub on a real PostgreSQL server, and two real mamorid that
/// joined it with `mamori join`, each with its own state folder and socket, talking to the hub
/// over real mutual TLS on loopback. Everything is asked at the terminals' sockets, as PAM and
/// the CLI ask.
@Suite(
    "member terminals of a town", .serialized,
    .enabled(if: TestServer.address != nil, "run through make test, which starts PostgreSQL"))
struct TownMemberTests {
    typealias Hub = TownJoinTests.Hub

    /// A mamorid that joined `hub` as `name` before it started, so it starts as a member.
    static func member(_ hub: Hub, _ name: String, zone: String = "mynumber") throws -> DaemonHarness {
        let harness = try DaemonHarness()
        harness.zone = zone
        let joined = try TownJoinTests.join(hub, token: try hub.add(name, zone: zone), state: harness.stateDirectory)
        #expect(joined.status == 0, "\(joined)")
        if let status = try harness.start() {
            throw SubprocessError(description: "the member mamorid exited with \(status):\n\(harness.log)")
        }
        return harness
    }

    /// One request at `socket`, as this process's user (root: the PAM module's view).
    static func ask(_ socket: String, _ fields: [String: JSONValue]) throws -> [String: JSONValue] {
        let client = try LineClient(path: socket)
        let reply = try client.request(String(decoding: WireReply.encodeRequest(fields).dropLast(), as: UTF8.self))
        return try #require(WireReply.parse(Array(reply.utf8)))
    }

    static func code(_ reply: [String: JSONValue]) -> String? {
        guard case .object(let error)? = reply["error"], case .string(let code)? = error["code"] else { return nil }
        return code
    }

    /// Waits up to `seconds` for `condition`; returns the seconds it took, or nil.
    /// (It sleeps as a task, not as a thread: the test process has as many cooperative threads as
    /// cores, and a thread asleep here is one the other suites' tasks, such as a transaction
    /// holding PostgreSQL's chain lock, cannot run on.)
    static func until(_ seconds: Double, _ condition: () throws -> Bool) async rethrows -> Double? {
        let start = Date()
        repeat {
            if try condition() { return Date().timeIntervalSince(start) }
            try? await Task.sleep(for: .milliseconds(2))
        } while Date().timeIntervalSince(start) < seconds
        return nil
    }

    /// Adds `user` at the hub (as its operator) with a password, `roles` and a confirmed TOTP
    /// enrolment; returns the seed.
    static func enrol(_ hub: Hub, _ user: String, password: String, roles: [String]) throws -> String {
        var steps: [[String: JSONValue]] = [
            ["op": "user.add", "user": .string(user), "kind": "staff", "organisation": "planning"],
            ["op": "user.passwd", "user": .string(user), "password": .string(password)],
        ]
        for role in roles { steps.append(["op": "role.grant", "user": .string(user), "role": .string(role)]) }
        for fields in steps {
            #expect(try TownForwardTests.administer(hub, fields)["ok"] == .bool(true), "\(fields)")
        }
        let begun = try TownForwardTests.administer(hub, ["op": "totp.enroll.begin", "user": .string(user)])
        guard case .string(let secret)? = begun["secret"] else { throw SubprocessError(description: "\(begun)") }
        let confirmed = try TownForwardTests.administer(
            hub,
            ["op": "totp.enroll.confirm", "user": .string(user), "code": .string(try TownForwardTests.code(secret))])
        #expect(confirmed["ok"] == .bool(true), "\(confirmed)")
        return secret
    }

    static let readRecords: [String: JSONValue] = [
        "op": "authorize", "user": "sato", "action": "asset.read", "resource": "point.participants",
        "factors": .array(["password", "totp"]),
    ]

    static func effect(_ socket: String) throws -> String? {
        guard case .string(let effect)? = try ask(socket, readRecords)["effect"] else { return nil }
        return effect
    }

    @Test("a member renews its certificate over its own connection; the replaced one still connects but renews nothing")
    func certificateRenewal() async throws {
        try await TestServer.withDatabase { _, database, _ in
            // Certificates of 20 days: under the 30 days a member renews at, so it renews at its start.
            let hub = try Hub(database: database, extra: ["--certificate-days", "20"])
            defer { hub.harness.stop() }
            let terminal = try DaemonHarness()
            let joined = try TownJoinTests.join(hub, token: try hub.add("kametsu-31"), state: terminal.stateDirectory)
            #expect(joined.status == 0, "\(joined)")
            let town = TerminalMembership.folder(in: terminal.stateDirectory)
            let first = try String(contentsOfFile: town + "/terminal.pem", encoding: .utf8)
            // The first key and certificate, kept elsewhere, as someone who copied them would.
            let copied = TownJoinTests.folder()
            try FileManager.default.copyItem(atPath: town, toPath: TerminalMembership.folder(in: copied))
            if let status = try terminal.start() {
                throw SubprocessError(description: "exited \(status): \(terminal.log)")
            }
            defer { terminal.stop() }
            let renewed = await Self.until(15) { terminal.log.contains("the terminal's certificate was renewed") }
            #expect(renewed != nil, "\(terminal.log)")
            let second = try String(contentsOfFile: town + "/terminal.pem", encoding: .utf8)
            #expect(second != first)
            #expect(!FileManager.default.fileExists(atPath: town + "/terminal.key.next"))
            let trail = try TownForwardTests.administer(hub, ["op": "audit.read", "last": 20])
            #expect("\(trail)".contains("terminal.renew"), "\(trail)")

            // The replaced certificate is still accepted until it expires (a terminal that lost the
            // reply can connect), but it renews nothing: only the current one does.
            let old = try await TownJoinTests.member(hub, state: copied)
            defer { old.close() }
            let hello = try await old.call(
                HubOperation.hello.rawValue, EmptyHello(), reading: TerminalHelloReply.self)
            #expect(hello.terminal == "kametsu-31")
            do {
                _ = try await TerminalJoin.renew(using: old, stateDirectory: copied)
                Issue.record("the replaced certificate renewed")
            } catch let error as HubClientError {
                #expect(error.code == "denied", "\(error)")
            }

            // A restart connects with the new certificate (and, at 20 days, renews again). The
            // first renewal's pair is kept, to play a terminal that never got the second's reply.
            let firstRenewal = TownJoinTests.folder()
            try FileManager.default.copyItem(atPath: town, toPath: TerminalMembership.folder(in: firstRenewal))
            #expect(terminal.stop() == 0)
            if let status = try terminal.start() {
                throw SubprocessError(description: "exited \(status): \(terminal.log)")
            }
            let connected = try await Self.until(15) {
                guard case .object(let link)? = try Self.ask(terminal.socketPath, ["op": "status"])["hub"] else {
                    return false
                }
                return link["connected"] == .bool(true)
                    // The log runs on across restarts: this start's renewal is its second line.
                    && terminal.log.components(separatedBy: "the terminal's certificate was renewed").count == 3
            }
            #expect(connected != nil, "\(terminal.log)")

            // The reply lost: the terminal still holds the replaced certificate and the key it
            // asked for. Asked again with that key, the hub issues a certificate for it again.
            let pendingKey = TerminalMembership.folder(in: firstRenewal) + "/terminal.key.next"
            try FileManager.default.copyItem(atPath: town + "/terminal.key", toPath: pendingKey)
            let lost = try await TownJoinTests.member(hub, state: firstRenewal)
            defer { lost.close() }
            let again = try await TerminalJoin.renew(using: lost, stateDirectory: firstRenewal)
            #expect(again > Date().addingTimeInterval(19 * 86_400))
            #expect(!FileManager.default.fileExists(atPath: pendingKey))
            #expect(
                try String(
                    contentsOfFile: TerminalMembership.folder(in: firstRenewal) + "/terminal.key", encoding: .utf8)
                    == String(contentsOfFile: town + "/terminal.key", encoding: .utf8))
            let renewedAgain = try await TownJoinTests.member(hub, state: firstRenewal)
            #expect(
                try await renewedAgain.call(
                    HubOperation.hello.rawValue, EmptyHello(), reading: TerminalHelloReply.self
                ).terminal == "kametsu-31")
            renewedAgain.close()
        }
    }

    @Test("a member restarted while its hub is down decides on the users it last heard of, kept without secrets")
    func mirrorKept() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            _ = try Self.enrol(hub, "sato", password: "sato's passphrase", roles: ["staff"])
            let terminal = try Self.member(hub, "kametsu-33")
            defer { terminal.stop() }
            #expect(try await Self.until(10) { try Self.effect(terminal.socketPath) == "allow" } != nil)
            let file = TerminalMembership.folder(in: terminal.stateDirectory) + "/mirror.json"
            #expect(await Self.until(5) { FileManager.default.fileExists(atPath: file) } != nil)

            // The hub goes away; the terminal restarts without it.
            #expect(hub.harness.stop() == 0)
            #expect(terminal.stop() == 0)
            #expect(try terminal.start() == nil, "\(terminal.log)")
            #expect(try Self.effect(terminal.socketPath) == "allow", "\(terminal.log)")
            guard case .object(let link)? = try Self.ask(terminal.socketPath, ["op": "status"])["hub"] else {
                Issue.record("no hub in status")
                return
            }
            #expect(link["connected"] == .bool(false) && link["read_at"] != nil, "\(link)")
            // What is kept: the state folder's owner's alone, and nothing secret in it.
            var info = stat()
            #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600)
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.contains("\"sato\"") && text.contains("\"staff\""), "\(text)")
            #expect(!text.contains("$argon2") && !text.contains("passphrase") && !text.contains("seed"), "\(text)")

            // A damaged file is not read: the terminal waits for its hub, refusing, as before any read.
            #expect(terminal.stop() == 0)
            try Data("{not json".utf8).write(to: URL(fileURLWithPath: file))
            #expect(try terminal.start() == nil, "\(terminal.log)")
            #expect(try Self.effect(terminal.socketPath) != "allow")
        }
    }

    @Test("a certificate with more than 31 days left is not renewed: a terminal's root cannot renew over and over")
    func renewalNotDue() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let state = try TownForwardTests.joinedState(hub, "kametsu-32")
            let client = try await TownJoinTests.member(hub, state: state)
            defer { client.close() }
            let before = try String(
                contentsOfFile: TerminalMembership.folder(in: state) + "/terminal.pem", encoding: .utf8)
            do {
                _ = try await TerminalJoin.renew(using: client, stateDirectory: state)
                Issue.record("a certificate of 365 days was renewed")
            } catch let error as HubClientError {
                #expect(error.code == "invalid" && "\(error)".contains("renews in its last 31 days"), "\(error)")
            }
            #expect(
                try String(contentsOfFile: TerminalMembership.folder(in: state) + "/terminal.pem", encoding: .utf8)
                    == before)
        }
    }

    @Test(
        "a user of the hub logs in on a member terminal, one code is used once town-wide, and failures on two terminals add up to one lock"
    )
    func logins() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let secret = try Self.enrol(hub, "sato", password: "sato's passphrase", roles: ["staff"])
            let first = try Self.member(hub, "kametsu-11")
            defer { first.stop() }
            let second = try Self.member(hub, "kametsu-12")
            defer { second.stop() }
            // Each terminal reads the town's users when it connects: sato's login is allowed there.
            for terminal in [first, second] {
                // (Asking for a new password: the hub's administrator set a temporary one.)
                let ready = try await Self.until(10) {
                    try Self.ask(terminal.socketPath, ["op": "account", "user": "sato"])["result"]
                        == "password_change_required"
                }
                #expect(ready != nil, "the member never learnt of sato:\n\(terminal.log)")
            }

            // PAM's phases on the first terminal: the hub checks the password and the code.
            let code = try TownForwardTests.code(secret, offset: 30)
            let login: [String: JSONValue] = [
                "op": "authenticate", "user": "sato", "password": "sato's passphrase", "code": .string(code),
                "service": "login", "tty": "tty1",
            ]
            let accepted = try Self.ask(first.socketPath, login)
            #expect(
                accepted["ok"] == .bool(true) && accepted["factors"] == .array(["password", "totp"]), "\(accepted)")
            guard case .string(let ticket)? = accepted["ticket"] else { return }
            let opened = try Self.ask(
                first.socketPath, ["op": "session.open", "ticket": .string(ticket), "tty": "tty1"])
            guard case .string(let session)? = opened["session"] else {
                Issue.record("no session: \(opened)\n\(first.log)")
                return
            }
            // The terminal decides on its own copy of the session.
            let decided = try Self.ask(
                first.socketPath,
                [
                    "op": "authorize", "session": .string(session), "action": "asset.read",
                    "resource": "point.participants",
                ])
            #expect(decided["effect"] == "allow", "\(decided)")
            // The same code on the second terminal: one step is accepted once, town-wide.
            let replayed = try Self.ask(second.socketPath, login)
            #expect(Self.code(replayed) == "auth_failed" && replayed["error"] != nil, "\(replayed)")
            // The second terminal never saw the session.
            let elsewhere = try Self.ask(
                second.socketPath,
                [
                    "op": "authorize", "session": .string(session), "action": "asset.read",
                    "resource": "point.participants",
                ])
            #expect(Self.code(elsewhere) == "not_found", "\(elsewhere)")
            // Closed on the terminal: refused there at once.
            #expect(
                try Self.ask(first.socketPath, ["op": "session.close", "session": .string(session)])["ok"]
                    == .bool(true))
            let closed = try Self.ask(
                first.socketPath,
                [
                    "op": "authorize", "session": .string(session), "action": "asset.read",
                    "resource": "point.participants",
                ])
            #expect(Self.code(closed) == "not_found", "\(closed)")

            // Ten failures (the policy's lockout), alternating terminals, lock sato everywhere.
            for attempt in 0..<10 {
                let terminal = attempt % 2 == 0 ? first : second
                let failed = try Self.ask(
                    terminal.socketPath,
                    ["op": "authenticate", "user": "sato", "password": "not it", "code": "000000", "service": "login"])
                #expect(Self.code(failed) == "auth_failed", "\(failed)")
            }
            let locked = try Self.ask(
                first.socketPath, login.merging(["code": .string(try TownForwardTests.code(secret, offset: 60))]) { $1 }
            )
            #expect(Self.code(locked) == "auth_failed", "a locked account logged in: \(locked)")
            for terminal in [first, second] {
                let refused = try await Self.until(2) {
                    try Self.ask(terminal.socketPath, ["op": "account", "user": "sato"])["reasons"]
                        == .array(["The account is locked after failed logins."])
                }
                #expect(refused != nil, "the lock did not reach \(terminal.socketPath)")
            }
            // Nothing secret in a terminal's log.
            for terminal in [first, second] {
                #expect(!terminal.log.contains("sato's passphrase") && !terminal.log.contains(ticket))
            }
        }
    }

    @Test(
        "an administrator steps up on terminal A and revokes a role there; authorize on terminal B refuses soon after (p50, p99 of 100 printed)"
    )
    func revocations() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            _ = try Self.enrol(hub, "sato", password: "sato's passphrase", roles: ["staff"])
            // The security manager is the Unix account nobody (uid 65534) on the terminal.
            let managerSeed = try Self.enrol(
                hub, "nobody", password: "nobody's passphrase", roles: ["security-manager"])
            let a = try Self.member(hub, "kametsu-13")
            defer { a.stop() }
            let b = try Self.member(hub, "kametsu-14")
            defer { b.stop() }
            #expect(try await Self.until(10) { try Self.effect(b.socketPath) == "allow" } != nil, "\(b.log)")

            // The manager logs in on A (PAM asks as root), and administers with that session.
            let login = try Self.ask(
                a.socketPath,
                [
                    "op": "authenticate", "user": "nobody", "password": "nobody's passphrase",
                    "code": .string(try TownForwardTests.code(managerSeed, offset: 30)), "service": "login",
                ])
            guard case .string(let ticket)? = login["ticket"] else {
                Issue.record("the manager could not log in: \(login)")
                return
            }
            guard
                case .string(let session)? = try Self.ask(
                    a.socketPath, ["op": "session.open", "ticket": .string(ticket)])["session"]
            else {
                Issue.record("no session for the manager")
                return
            }
            let mamori = Subprocess.product("mamori")
            func asManager(_ arguments: [String]) throws -> ProcessResult {
                try Subprocess.run(
                    "setpriv",
                    ["--reuid=65534", "--regid=65534", "--clear-groups", mamori] + arguments + [
                        "--socket", a.socketPath,
                    ],
                    environment: ["MAMORI_SESSION": session, "PATH": "/usr/bin:/bin"])
            }
            // Without the session the hub asks the manager to step up.
            let bare = try Subprocess.run(
                "setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", mamori, "role", "revoke", "sato", "staff",
                    "--socket", a.socketPath,
                ],
                environment: ["PATH": "/usr/bin:/bin"])
            #expect(bare.status != 0 && bare.stderr.contains("Step up"), "\(bare)")
            // The session was opened on A: through B it steps nobody up.
            let elsewhere = try Subprocess.run(
                "setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", mamori, "role", "revoke", "sato", "staff",
                    "--socket", b.socketPath,
                ],
                environment: ["MAMORI_SESSION": session, "PATH": "/usr/bin:/bin"])
            #expect(elsewhere.status != 0 && elsewhere.stderr.contains("Step up"), "\(elsewhere)")

            var delays: [Double] = []
            for round in 0..<100 {
                let revoked = try asManager(["role", "revoke", "sato", "staff"])
                #expect(revoked.status == 0, "round \(round): \(revoked)")
                guard let delay = try await Self.until(5, { try Self.effect(b.socketPath) == "deny" }) else {
                    Issue.record("round \(round): the revocation did not reach terminal B in 5 s")
                    return
                }
                delays.append(delay)
                // A sees its own change before the reply: no wait at all.
                #expect(try Self.effect(a.socketPath) == "deny")
                #expect(try asManager(["role", "grant", "sato", "staff"]).status == 0)
                #expect(try await Self.until(5) { try Self.effect(b.socketPath) == "allow" } != nil)
            }
            delays.sort()
            let p50 = delays[49]
            let p99 = delays[98]
            print(
                String(
                    format:
                        "revocation on A → authorize refuses on B: p50 %.1f ms, p99 %.1f ms, max %.1f ms (100 rounds)",
                    p50 * 1000, p99 * 1000, delays[99] * 1000))
            // The hub's trail names the terminal the manager acted from.
            let trail = try TownForwardTests.administer(hub, ["op": "audit.read", "last": 5])
            #expect("\(trail)".contains("kametsu-13"))
        }
    }

    @Test("members reconnect to a restarted hub by themselves: they read what changed meanwhile, and logins go on")
    func hubRestart() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let secret = try Self.enrol(hub, "sato", password: "sato's passphrase", roles: ["staff"])
            let a = try Self.member(hub, "kametsu-15")
            defer { a.stop() }
            #expect(try await Self.until(10) { try Self.effect(a.socketPath) == "allow" } != nil)

            #expect(hub.harness.stop() == 0)
            // While the hub is down: the terminal says so for what the hub answers, and decides
            // `authorize` on what it last read.
            let login: [String: JSONValue] = [
                "op": "authenticate", "user": "sato", "password": "sato's passphrase",
                "code": .string(try TownForwardTests.code(secret, offset: 30)), "service": "login",
            ]
            // Behind a black hole: the hub's port accepts TCP and never answers TLS.
            let blackHole = try silentListener(port: hub.port)
            let unreachable = try Self.ask(a.socketPath, login)
            #expect(Self.code(unreachable) == "busy", "\(unreachable)")
            // The next one does not try the hub again: the terminal knows the hub stalled, and
            // answers at once (each login would otherwise wait out the connect time-out again);
            // one request every 5 s tries again.
            let started = Date()
            let known = try Self.ask(a.socketPath, login)
            let waited = Date().timeIntervalSince(started)
            #expect(
                Self.code(known) == "busy" && "\(known)".contains("this terminal tries again every 5 s"), "\(known)")
            print(
                String(format: "a login while the hub is known to be unreachable: answered in %.1f ms", waited * 1000))
            #expect(try Self.effect(a.socketPath) == "allow")
            // `status` says so, for monitoring (once the watch's own reconnection has given up on
            // the black hole: its connect time-out is 10 s).
            func link() throws -> [String: JSONValue]? {
                guard case .object(let hub)? = try Self.ask(a.socketPath, ["op": "status"])["hub"] else { return nil }
                return hub
            }
            #expect(
                try await Self.until(20) { try link()?["connected"] == .bool(false) && link()?["error"] != nil } != nil)

            close(blackHole)
            #expect(try hub.harness.start() == nil)
            // The revocation made right after the restart reaches the terminal once it is back.
            let revoked = try TownForwardTests.administer(hub, ["op": "role.revoke", "user": "sato", "role": "staff"])
            #expect(revoked["ok"] == .bool(true), "\(revoked)")
            #expect(try await Self.until(40) { try Self.effect(a.socketPath) == "deny" } != nil, "\(a.log)")
            // A login through the terminal reaches the restarted hub (the code unused before).
            let accepted = try Self.ask(a.socketPath, login)
            #expect(accepted["ok"] == .bool(true), "\(accepted)")
            #expect(try link()?["connected"] == .bool(true) && link()?["address"] == .string("127.0.0.1:\(hub.port)"))
            let shown = try Subprocess.run(Subprocess.product("mamori"), ["status", "--socket", a.socketPath])
            #expect(
                shown.stdout.contains("hub            127.0.0.1:\(hub.port): connected, change "), "\(shown.stdout)")
            // It read the town whole again when it came back.
            #expect(a.log.components(separatedBy: "the users of the town were read from the hub").count - 1 >= 2)
        }
    }

    @Test("a session outlives neither its user's removal at the hub nor a new user of the same name")
    func sessionsOfRemovedUsers() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let secret = try Self.enrol(hub, "sato", password: "sato's passphrase", roles: ["staff"])
            let a = try Self.member(hub, "kametsu-16")
            defer { a.stop() }
            #expect(try await Self.until(10) { try Self.effect(a.socketPath) == "allow" } != nil)
            let login = try Self.ask(
                a.socketPath,
                [
                    "op": "authenticate", "user": "sato", "password": "sato's passphrase",
                    "code": .string(try TownForwardTests.code(secret, offset: 30)), "service": "login",
                ])
            guard case .string(let ticket)? = login["ticket"],
                case .string(let session)? = try Self.ask(
                    a.socketPath, ["op": "session.open", "ticket": .string(ticket)])[
                        "session"]
            else {
                Issue.record("no session: \(login)")
                return
            }
            let query: [String: JSONValue] = [
                "op": "authorize", "session": .string(session), "action": "asset.read",
                "resource": "point.participants",
            ]
            #expect(try Self.ask(a.socketPath, query)["effect"] == "allow")
            // Removed at the hub and added again at once, with the same role: a new person.
            for fields: [String: JSONValue] in [
                ["op": "user.remove", "user": "sato"],
                ["op": "user.add", "user": "sato", "kind": "staff", "organisation": "planning"],
                ["op": "role.grant", "user": "sato", "role": "staff"],
            ] {
                #expect(try TownForwardTests.administer(hub, fields)["ok"] == .bool(true), "\(fields)")
            }
            let refused = try await Self.until(5) { Self.code(try Self.ask(a.socketPath, query)) == "not_found" }
            #expect(refused != nil, "the old session still decides for the new sato")
            // The new sato is known to the terminal: it is the session that is refused, not the user.
            #expect(try await Self.until(5) { try Self.effect(a.socketPath) == "allow" } != nil)
            // The copy is closed in the terminal's own chain too.
            let trail = try Self.ask(a.socketPath, ["op": "audit.read", "last": 5])
            #expect("\(trail)".contains("removed-at-hub"), "\(trail)")
        }
    }

    @Test("one local account holds at most two of the terminal's connections to the hub; root's logins go on")
    func fairShareOfTheHub() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            _ = try Self.enrol(hub, "sato", password: "sato's passphrase", roles: ["staff"])
            let a = try Self.member(hub, "kametsu-17")
            defer { a.stop() }
            #expect(try await Self.until(10) { try Self.effect(a.socketPath) == "allow" } != nil)
            // The account nobody sends six logins at once on six connections (each an Argon2 run
            // at the hub): two go to the hub, the others are turned away at the terminal.
            let script = """
                import json, socket, sys
                conns = []
                for i in range(6):
                    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); conns.append(s)
                for s in conns:
                    s.sendall(b'{"op":"authenticate","user":"nobody","password":"guess"}\\n')
                for s in conns:
                    line = s.makefile().readline()
                    print(json.loads(line).get("error", {}).get("code", "ok"))
                """
            let flood = try Subprocess.run(
                "setpriv",
                ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script, a.socketPath])
            let codes = flood.stdout.split(separator: "\n").map(String.init)
            #expect(codes.count == 6, "\(flood)")
            #expect(codes.filter { $0 == "auth_failed" }.count <= 2, "\(codes)")
            #expect(codes.filter { $0 == "busy" }.count >= 4, "\(codes)")
            // Root (PAM, for every user) is not held to the share.
            let root = try Self.ask(
                a.socketPath, ["op": "authenticate", "user": "sato", "password": "wrong", "service": "login"])
            #expect(Self.code(root) == "auth_failed", "\(root)")
        }
    }

    @Test(
        "the hub publishes its policy: terminals adopt a reload there; one without a terminal's zone is refused by it, and its own stays"
    )
    func policyFromTheHub() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let a = try Self.member(hub, "kametsu-18")
            defer { a.stop() }
            let b = try Self.member(hub, "kametsu-19", zone: "internet")
            defer { b.stop() }
            func revision(_ socket: String) throws -> String? {
                guard case .string(let revision)? = try Self.ask(socket, ["op": "status"])["policy_revision"] else {
                    return nil
                }
                return revision
            }
            func reload() throws -> String? {
                let reloaded = try TownForwardTests.administer(hub, ["op": "policy.reload"])
                #expect(reloaded["ok"] == .bool(true), "\(reloaded)")
                guard case .string(let revision)? = reloaded["revision"] else { return nil }
                return revision
            }
            let folder = hub.harness.policyDirectory
            func rewrite(_ file: String, _ change: (String) -> String) throws {
                let path = folder + "/" + file
                try change(try String(contentsOfFile: path, encoding: .utf8)).write(
                    toFile: path, atomically: true, encoding: .utf8)
            }

            // An edit at the hub, reloaded there: both terminals adopt it.
            try rewrite("rules.yaml") { $0 + "\n# Edited at the hub.\n" }
            let edited = try #require(try reload())
            for terminal in [a, b] {
                #expect(
                    try await Self.until(5) { try revision(terminal.socketPath) == edited } != nil, "\(terminal.log)")
            }
            let copy = try String(
                contentsOfFile: TerminalMembership.folder(in: a.stateDirectory) + "/policy/rules.yaml", encoding: .utf8)
            #expect(copy.hasSuffix("# Edited at the hub.\n"))

            // A policy without the Internet zone: valid at the hub, not for the terminal in it.
            try rewrite("zones.yaml") {
                $0.replacingOccurrences(
                    of: "  - id: internet\n    title: インターネット接続系 (Internet zone)\n    login-factors: [password]\n",
                    with: "")
            }
            try rewrite("assets.yaml") { $0.replacingOccurrences(of: "zone: internet", with: "zone: lgwan") }
            try rewrite("rules.yaml") { $0.replacingOccurrences(of: "zone: [internet, lgwan]", with: "zone: [lgwan]") }
            let narrowed = try #require(try reload())
            #expect(try await Self.until(5) { try revision(a.socketPath) == narrowed } != nil, "\(a.log)")
            #expect(await Self.until(5) { b.log.contains("the hub's policy has no zone for this terminal") } != nil)
            #expect(try revision(b.socketPath) == edited)
            let trail = try Self.ask(b.socketPath, ["op": "audit.read", "last": 5])
            #expect("\(trail)".contains("no-zone"), "\(trail)")

            // A restarted terminal starts on the hub's policy it adopted, not its configured folder.
            #expect(a.stop() == 0)
            #expect(try a.start() == nil)
            #expect(try revision(a.socketPath) == narrowed)
        }
    }

    @Test(
        "PAM on member terminals: pam_mamori.so logs in through the hub, changes the temporary password there, and a code used on one terminal fails on the other"
    )
    func pamOnMembers() async throws {
        try await TestServer.withDatabase { _, database, _ in
            let hub = try Hub(database: database)
            defer { hub.harness.stop() }
            let secret = try Self.enrol(hub, "sato", password: "sato's passphrase", roles: ["staff"])
            let a = try Self.member(hub, "kametsu-20")
            defer { a.stop() }
            let b = try Self.member(hub, "kametsu-21")
            defer { b.stop() }
            let build = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".build/pam").path
            // A PAM service per terminal, in the test's own folder (pam_start_confdir).
            let confdir = a.folder.appendingPathComponent("pam.d").path
            try FileManager.default.createDirectory(atPath: confdir, withIntermediateDirectories: true)
            for (name, terminal) in [("terminal-a", a), ("terminal-b", b)] {
                try ["auth", "account", "session", "password"].map {
                    "\($0) required \(build)/pam_mamori.so socket=\(terminal.socketPath) timeout=5000"
                }
                .joined(separator: "\n").appending("\n")
                .write(toFile: confdir + "/" + name, atomically: true, encoding: .utf8)
            }
            func pam(_ service: String, _ phases: String, _ answers: [String]) throws -> [String] {
                let result = try Subprocess.run(build + "/pam_harness", [confdir, service, "sato", phases] + answers)
                #expect(result.status == 0, "\(result.stderr)")
                return result.stdout.split(separator: "\n").map(String.init)
            }
            for terminal in [a, b] {
                let ready = try await Self.until(10) {
                    try Self.ask(terminal.socketPath, ["op": "account", "user": "sato"])["result"]
                        == "password_change_required"
                }
                #expect(ready != nil)
            }
            let code = try TownForwardTests.code(secret, offset: 30)
            // On A: the hub checks the password and the code; the temporary password must go.
            let first = try pam("terminal-a", "auth,account", ["sato's passphrase", code])
            #expect(first.suffix(2) == ["auth 0 PAM_SUCCESS", "account 12 PAM_NEW_AUTHTOK_REQD"], "\(first)")
            let changed = try pam(
                "terminal-a", "chauthtok", ["sato's passphrase", "a new passphrase", "a new passphrase"])
            #expect(changed.last == "chauthtok 0 PAM_SUCCESS", "\(changed)")
            #expect(try pam("terminal-a", "account", []).last == "account 0 PAM_SUCCESS")
            // On B: the change reached its mirror; the code A used is spent town-wide.
            let current = try await Self.until(5) {
                try Self.ask(b.socketPath, ["op": "account", "user": "sato"])["result"] == "allowed"
            }
            #expect(current != nil)
            #expect(try pam("terminal-b", "account", []).last == "account 0 PAM_SUCCESS")
            #expect(try pam("terminal-b", "auth", ["a new passphrase", code]).last == "auth 7 PAM_AUTH_ERR")
            #expect(try pam("terminal-b", "auth", ["sato's passphrase", code]).last == "auth 7 PAM_AUTH_ERR")
        }
    }
}
