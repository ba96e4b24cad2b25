import MamoriCore
import NIOConcurrencyHelpers
import NIOPosix

/// Runs Argon2 on its own threads, never on an event loop, with a bounded queue.
///
/// At most `workers` hashes run at once (each also uses libargon2's lane threads); at most
/// `queue` more wait. Past that, ``run(_:)`` refuses at once with ``Argon2Pool/Busy``, so memory
/// stays bounded at about (workers + queue) requests and `workers` × the Argon2 memory cost.
final class Argon2Pool: Sendable {
    struct Busy: Error {}

    private let pool: NIOThreadPool
    private let capacity: Int
    private let admitted = NIOLockedValueBox(0)

    init(workers: Int, queue: Int) {
        pool = NIOThreadPool(numberOfThreads: workers)
        capacity = workers + queue
        pool.start()
    }

    /// Runs `body` on a worker, or throws ``Busy`` when the pool and its queue are full.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let entered = admitted.withLockedValue { count in
            guard count < capacity else { return false }
            count += 1
            return true
        }
        guard entered else { throw Busy() }
        defer { admitted.withLockedValue { $0 -= 1 } }
        return try await pool.runIfActive(body)
    }

    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
