import MamoriCore
import NIOConcurrencyHelpers
import NIOPosix

/// Runs Argon2 on its own threads, never on an event loop, with a bounded queue shared fairly.
///
/// At most `workers` hashes run at once (each also uses libargon2's lane threads); at most
/// `queue` more wait. Past that, ``run(for:_:)`` refuses at once with ``Argon2Pool/Busy``, so memory
/// stays bounded at about (workers + queue) requests and `workers` × the Argon2 memory cost.
/// One uid other than an operator may hold at most `perUID` of those places, and never the last
/// eighth, which is kept for operators (root's logins through PAM, the administrators' tools). On
/// a hub, a forwarded caller's share is its terminal's uid's: each terminal's PAM logins (as root)
/// get their own share, and no terminal can take the others'.
final class Argon2Pool: Sendable {
    struct Busy: Error {}

    private struct State {
        var admitted = 0
        var byUID: [Caller.ShareKey: Int] = [:]
    }

    private let pool: NIOThreadPool
    private let capacity: Int
    private let perUID: Int
    private let operatorReserve: Int
    private let state = NIOLockedValueBox(State())

    init(workers: Int, queue: Int, perUID: Int) {
        pool = NIOThreadPool(numberOfThreads: workers)
        capacity = workers + queue
        self.perUID = perUID
        operatorReserve = capacity / 8
        pool.start()
    }

    /// Runs `body` on a worker for `caller`, or throws ``Busy`` when the pool and its queue are
    /// full, or when the caller holds its share.
    func run<T: Sendable>(for caller: Caller, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let entered = state.withLockedValue { state in
            if caller.isOperator {
                guard state.admitted < capacity else { return false }
            } else {
                let held = state.byUID[caller.shareKey, default: 0]
                guard state.admitted < capacity - operatorReserve, held < perUID else { return false }
                state.byUID[caller.shareKey] = held + 1
            }
            state.admitted += 1
            return true
        }
        guard entered else { throw Busy() }
        defer {
            state.withLockedValue { state in
                state.admitted -= 1
                if !caller.isOperator {
                    let left = state.byUID[caller.shareKey, default: 1] - 1
                    state.byUID[caller.shareKey] = left > 0 ? left : nil
                }
            }
        }
        return try await pool.runIfActive(body)
    }

    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
