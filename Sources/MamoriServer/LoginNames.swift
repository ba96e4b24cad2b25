import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The login names of callers' uids, looked up off the event loop and kept a while.
///
/// `getpwuid_r` may ask a directory service (sssd, LDAP) that answers slowly or not at all, and a
/// local account can open many connections. So: the operators (root and the daemon's own user)
/// are named once, at start, and never wait on a lookup; one uid's connections share the one
/// lookup in flight, so an account queues at most one job on the pool however many connections
/// it opens; an answer (a name, or none) is kept for `lifetime`, so a busy caller asks rarely, but
/// a failed lookup is not kept; and no connection waits longer than `waitLimit`: past it, the caller
/// goes on without a name (so with no Mamori user's rights) while the lookup may still finish.
final class LoginNames: Sendable {
    /// What the password database said.
    enum Answer: Sendable, Equatable {
        /// The uid's login name, or nil when the database has none.
        case found(String?)
        /// The lookup failed (a directory service down): not remembered.
        case failed
    }

    private enum Entry {
        case known(String?, until: NIODeadline)
        case pending(EventLoopFuture<String?>)
    }

    private let pool: NIOThreadPool
    private let lookup: @Sendable (UInt32) -> Answer
    private let lifetime: TimeAmount
    private let waitLimit: TimeAmount
    /// The operators' names, fixed at start.
    private let operators: [UInt32: String?]
    private let entries = NIOLockedValueBox<[UInt32: Entry]>([:])

    /// - Parameters:
    ///   - pool: where lookups run (started).
    ///   - lookup: the password database's answer for a uid (``Caller/loginName(of:)``); tests
    ///     count its calls.
    init(
        pool: NIOThreadPool = .singleton, lifetime: TimeAmount = .seconds(60), waitLimit: TimeAmount = .seconds(5),
        lookup: @escaping @Sendable (UInt32) -> Answer = { Caller.lookUpLoginName(of: $0) }
    ) {
        self.pool = pool
        self.lookup = lookup
        self.lifetime = lifetime
        self.waitLimit = waitLimit
        var operators: [UInt32: String?] = [:]
        for uid in Set([0, geteuid()]) {
            if case .found(let name) = lookup(uid) { operators[uid] = name } else { operators[uid] = .some(nil) }
        }
        self.operators = operators
    }

    /// The login name of `uid` (nil when the password database has none), on `eventLoop`.
    func name(of uid: UInt32, on eventLoop: any EventLoop) -> EventLoopFuture<String?> {
        if let name = operators[uid] { return eventLoop.makeSucceededFuture(name) }
        let now = NIODeadline.now()
        enum Step {
            case answered(EventLoopFuture<String?>)
            case lookUp(EventLoopPromise<String?>)
        }
        let step: Step = entries.withLockedValue { entries in
            switch entries[uid] {
            case .known(let name, let until)? where until > now:
                return .answered(eventLoop.makeSucceededFuture(name))
            case .pending(let future)?:
                return .answered(self.bounded(future, on: eventLoop))
            default:
                if entries.count >= 4_096 {
                    // Bounded: forget the answers that have lapsed (a lookup in flight stays).
                    entries = entries.filter { if case .known(_, let until) = $0.value { until > now } else { true } }
                }
                let promise = eventLoop.makePromise(of: String?.self)
                entries[uid] = .pending(promise.futureResult)
                return .lookUp(promise)
            }
        }
        switch step {
        case .answered(let future):
            return future
        case .lookUp(let promise):
            let lookup = self.lookup
            let lifetime = self.lifetime
            pool.runIfActive(eventLoop: eventLoop) { lookup(uid) }.whenComplete { result in
                let name: String?
                if case .success(.found(let found)) = result { name = found } else { name = nil }
                self.entries.withLockedValue { entries in
                    if case .success(.found) = result {
                        entries[uid] = .known(name, until: .now() + lifetime)
                    } else {
                        entries[uid] = nil  // a failure is asked again by the next connection
                    }
                }
                promise.succeed(name)
            }
            return bounded(promise.futureResult, on: eventLoop)
        }
    }

    /// `future` on `eventLoop`, or nil once `waitLimit` has passed, whichever comes first.
    private func bounded(_ future: EventLoopFuture<String?>, on eventLoop: any EventLoop) -> EventLoopFuture<String?> {
        let promise = eventLoop.makePromise(of: String?.self)
        let settled = NIOLockedValueBox(false)
        let settle: @Sendable (String?) -> Void = { name in
            if settled.withLockedValue({ done in
                defer { done = true }
                return !done
            }) {
                promise.succeed(name)
            }
        }
        let timer = eventLoop.scheduleTask(in: waitLimit) { settle(nil) }
        future.whenComplete { result in
            timer.cancel()
            if case .success(let name) = result { settle(name) } else { settle(nil) }
        }
        return promise.futureResult
    }
}
