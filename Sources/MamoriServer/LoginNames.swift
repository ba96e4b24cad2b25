import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The login names of callers' uids, looked up off the event loop and kept a while.
///
/// `getpwuid_r` may ask a directory service (sssd, LDAP) that answers slowly or not at all, and a
/// local account can open many connections. So: the operators (root and the daemon's own user)
/// are named once, at start, and never wait on a lookup; one uid's connections share the one
/// lookup in flight, so an account queues at most one job on the pool however many connections
/// it opens; and an answer (a name, or none) is kept for `lifetime`, so a busy caller asks rarely.
final class LoginNames: Sendable {
    private enum Entry {
        case known(String?, until: NIODeadline)
        case pending(EventLoopFuture<String?>)
    }

    private let pool: NIOThreadPool
    private let lookup: @Sendable (UInt32) -> String?
    private let lifetime: TimeAmount
    /// The operators' names, fixed at start.
    private let operators: [UInt32: String?]
    private let entries = NIOLockedValueBox<[UInt32: Entry]>([:])

    /// - Parameters:
    ///   - pool: where lookups run (started).
    ///   - lookup: the password database's answer for a uid (``Caller/loginName(of:)``); tests
    ///     count its calls.
    init(
        pool: NIOThreadPool = .singleton, lifetime: TimeAmount = .seconds(60),
        lookup: @escaping @Sendable (UInt32) -> String? = { Caller.loginName(of: $0) }
    ) {
        self.pool = pool
        self.lookup = lookup
        self.lifetime = lifetime
        var operators: [UInt32: String?] = [:]
        for uid in Set([0, geteuid()]) { operators[uid] = lookup(uid) }
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
                return .answered(future.hop(to: eventLoop))
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
                self.entries.withLockedValue { entries in
                    if case .success(let name) = result {
                        entries[uid] = .known(name, until: .now() + lifetime)
                    } else {
                        entries[uid] = nil
                    }
                }
                promise.completeWith(result)
            }
            return promise.futureResult
        }
    }
}
