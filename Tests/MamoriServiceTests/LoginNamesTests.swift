import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import MamoriServer

/// Callers' names come from the password database off the event loop; a database that hangs must
/// not queue work for every connection, nor make the operators wait.
@Suite("login names of callers")
struct LoginNamesTests {
    /// A lookup that counts its calls and, while `held`, blocks like a directory service that hangs.
    final class SlowDirectory: Sendable {
        let calls = NIOLockedValueBox(0)
        let gate = DispatchSemaphore(value: 0)
        let held: Bool

        init(held: Bool) { self.held = held }

        func lookup(_ uid: UInt32) -> String? {
            if uid != 0 && uid != geteuid() {
                calls.withLockedValue { $0 += 1 }
                if held { gate.wait() }
            }
            return uid == 65_534 ? "nobody" : Caller.loginName(of: uid)
        }
    }

    /// An event loop and a one-thread pool for the lookups, shut down after `body`.
    func withLoop(_ body: (any EventLoop, NIOThreadPool) throws -> Void) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        defer {
            try? pool.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
        }
        try body(group.next(), pool)
    }

    @Test("one uid's many connections share one lookup; the answer is kept; the operators never wait")
    func sharedAndKept() throws {
        try withLoop { loop, pool throws in
            let directory = SlowDirectory(held: true)
            defer { directory.gate.signal() }  // never leave the pool's thread blocked, even on failure
            let names = LoginNames(pool: pool, lookup: { .found(directory.lookup($0)) })

            // The directory hangs: fifty connections of one uid wait on one lookup...
            let waiting = (0..<50).map { _ in names.name(of: 65_534, on: loop) }
            // ...while root is named at once.
            // Bounded wait: were root queued behind the hung lookup, wait() would hang the suite.
            let rootName = names.name(of: 0, on: loop)
            let answered = DispatchSemaphore(value: 0)
            rootName.whenComplete { _ in answered.signal() }
            let rootAnswered = answered.wait(timeout: .now() + 2) == .success
            #expect(rootAnswered, "root waited on the hung directory")
            if rootAnswered { #expect(try rootName.wait() == Caller.loginName(of: 0)) }
            Thread.sleep(forTimeInterval: 0.2)
            #expect(directory.calls.withLockedValue { $0 } == 1)

            directory.gate.signal()
            for future in waiting { #expect(try future.wait() == "nobody") }
            #expect(try names.name(of: 65_534, on: loop).wait() == "nobody")
            #expect(directory.calls.withLockedValue { $0 } == 1, "kept for its lifetime")
        }
    }

    @Test("an answer that lapsed is asked again")
    func lapses() throws {
        try withLoop { loop, pool throws in
            let directory = SlowDirectory(held: false)
            let names = LoginNames(
                pool: pool, lifetime: .milliseconds(50), lookup: { .found(directory.lookup($0)) })
            #expect(try names.name(of: 65_534, on: loop).wait() == "nobody")
            Thread.sleep(forTimeInterval: 0.1)
            #expect(try names.name(of: 65_534, on: loop).wait() == "nobody")
            #expect(directory.calls.withLockedValue { $0 } == 2)
        }
    }

    @Test("a hung lookup holds no connection past the wait limit; a failed one is not remembered")
    func hungAndFailed() throws {
        try withLoop { loop, pool throws in
            let directory = SlowDirectory(held: true)
            defer { directory.gate.signal() }
            let names = LoginNames(
                pool: pool, waitLimit: .milliseconds(200), lookup: { .found(directory.lookup($0)) })
            // The directory hangs: the caller goes on without a name (no Mamori user's rights).
            #expect(try names.name(of: 65_534, on: loop).wait() == nil)
            #expect(try names.name(of: 65_534, on: loop).wait() == nil)
            #expect(directory.calls.withLockedValue { $0 } == 1, "still one lookup in flight")
        }
        try withLoop { loop, pool throws in
            let failures = NIOLockedValueBox(0)
            let names = LoginNames(
                pool: pool,
                lookup: { uid in
                    if uid == 0 || uid == geteuid() { return .found(Caller.loginName(of: uid)) }
                    failures.withLockedValue { $0 += 1 }
                    return .failed
                })
            #expect(try names.name(of: 65_534, on: loop).wait() == nil)
            #expect(try names.name(of: 65_534, on: loop).wait() == nil)
            #expect(failures.withLockedValue { $0 } == 2, "a failure is asked again, not kept as 'no name'")
        }
    }
}
