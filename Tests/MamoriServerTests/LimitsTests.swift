import Foundation
import MamoriTestSupport
import Testing

@Suite("mamorid's limits")
struct LimitsTests {
    @Test("past the Argon2 pool and its queue, authentication answers busy at once; the daemon goes on")
    func busy() throws {
        let daemon = try startDaemon(cheapArgon2: false, configuration: "argon2-workers: 1\nargon2-queue: 0")
        let replies = Replies()
        let group = DispatchGroup()
        for index in 0..<6 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let client = try? LineClient(path: daemon.socketPath),
                    let reply = try? client.request(
                        #"{"op":"authenticate","user":"u\#(index)","password":"x","code":"1"}"#)
                else { return }
                replies.add(reply)
            }
        }
        group.wait()
        let lines = replies.lines
        #expect(lines.count == 6)
        #expect(lines.contains { $0.contains(#""code":"busy""#) }, "\(lines)")
        #expect(lines.contains { $0.contains(#""code":"auth_failed""#) })
        #expect(try LineClient(path: daemon.socketPath).call(["op": "status"])["ok"] as? Bool == true)
    }

    /// With one request in flight per connection, the second line waits until the first reply is
    /// written; if it is then answered at once (malformed, say), that reply must still be flushed.
    @Test("a waiting line answered at once after a queued reply is sent, not left unflushed")
    func waitingLineIsFlushed() throws {
        let daemon = try startDaemon(configuration: "requests-per-connection: 1")
        let client = try LineClient(path: daemon.socketPath, timeoutSeconds: 5)
        try client.send(Array(#"{"op":"status","id":1}\#n{"op":\#n"#.utf8))
        #expect(try client.readLine().contains(#""id":1"#))
        #expect(try client.readLine().contains(#""code":"bad_request""#))
    }

    @Test("a silent connection is closed after the idle timeout")
    func idle() throws {
        let daemon = try startDaemon(configuration: "idle-timeout-seconds: 1")
        let client = try LineClient(path: daemon.socketPath, timeoutSeconds: 5)
        #expect(try client.call(["op": "status"])["ok"] as? Bool == true)
        sleep(2)
        #expect(throws: SubprocessError.self) { _ = try client.request(#"{"op":"status"}"#) }
    }

    @Test("a connection waiting for a slow answer is not idle: it gets its reply")
    func slowAnswerIsNotIdle() throws {
        // Argon2 made slow on purpose (more than the 1-second idle time-out per hash).
        let daemon = try DaemonHarness()
        let settings = daemon.policyDirectory + "/settings.yaml"
        let text = try String(contentsOfFile: settings, encoding: .utf8).replacingOccurrences(
            of: "iterations: 3", with: "iterations: 40")
        try text.write(toFile: settings, atomically: true, encoding: .utf8)
        #expect(try daemon.start(extraConfiguration: "idle-timeout-seconds: 1") == nil, "\(daemon.log)")
        let client = try LineClient(path: daemon.socketPath, timeoutSeconds: 60)
        #expect(try client.call(["op": "user.add", "user": "slow"]).ok)
        let started = Date()
        let reply = try client.call(["op": "user.passwd", "user": "slow", "password": "a slow password"])
        #expect(reply.ok, "\(reply)")
        // Only meaningful if the hash did outlast the time-out; say so if this machine was too fast.
        #expect(Date().timeIntervalSince(started) > 1, "the hash took under a second; raise its iterations")
    }

    @Test("past the connection limit a new connection is told busy and closed")
    func connectionLimit() throws {
        let daemon = try startDaemon(configuration: "maximum-connections: 2")
        // The harness's start-up probe has hung up; give the daemon a moment to count it out.
        usleep(300_000)
        let first = try LineClient(path: daemon.socketPath)
        let second = try LineClient(path: daemon.socketPath)
        #expect(try first.call(["op": "status"])["ok"] as? Bool == true)
        #expect(try second.call(["op": "status"])["ok"] as? Bool == true)
        let third = try LineClient(path: daemon.socketPath)
        #expect(try third.readLine().contains(#""code":"busy""#))
        // The two admitted clients are still served.
        #expect(try first.call(["op": "status"])["ok"] as? Bool == true)
    }
}

/// Reply lines collected from several threads.
final class Replies: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func add(_ line: String) {
        lock.lock()
        stored.append(line)
        lock.unlock()
    }
    var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
}
