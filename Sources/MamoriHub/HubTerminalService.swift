import Foundation
public import Logging
public import MamoriPostgres
public import MamoriTown
import NIOCore
public import ServiceLifecycle

/// The hub's side towards its terminals, as a `Service`: the terminal port, and the watch on the
/// change feed that closes a removed terminal's connections as soon as the removal commits, on
/// whichever hub it was made.
public final class HubTerminalService: Service, Sendable {
    let listener: TerminalListener
    let store: PostgresStore
    let connections: TerminalConnections
    let broadcast: ChangeBroadcast
    let address: HubAddress
    let logger: Logger
    /// How long the change feed keeps a change; older ones are deleted every hour.
    let changeRetention: Duration

    /// The service from its parts: the listener, the store whose change feed it watches, the
    /// connections it closes, the address it binds.
    public init(
        listener: TerminalListener, store: PostgresStore, connections: TerminalConnections,
        broadcast: ChangeBroadcast, address: HubAddress, changeRetention: Duration = .seconds(30 * 86_400),
        logger: Logger
    ) {
        self.changeRetention = changeRetention
        self.broadcast = broadcast
        self.listener = listener
        self.store = store
        self.connections = connections
        self.address = address
        self.logger = logger
    }

    /// Serves until graceful shutdown.
    public func run() async throws {
        // From the newest change on: a terminal removed before this start is refused at its
        // handshake, by the register.
        let start = try await store.latestChangeNumber()
        let channel = try await listener.bind(host: address.host, port: address.port)
        logger.notice("mamori-hub serving terminals", metadata: ["address": "\(address)"])
        let connections = self.connections
        let logger = self.logger
        let watch = Task {
            await store.watchChanges(after: start) { [broadcast] changes in
                broadcast.publish(changes)
                for change in changes where change.kind == "terminal.remove" {
                    let closed = connections.close(terminal: change.subject)
                    logger.notice(
                        "a removed terminal's connections were closed",
                        metadata: ["terminal": "\(change.subject)", "connections": "\(closed)"])
                }
            }
        }
        let pruning = Task { await prune() }
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        watch.cancel()
        pruning.cancel()
        await watch.value
        await pruning.value
    }

    /// Every hour from the start: the changes older than ``changeRetention`` deleted. A terminal
    /// behind them reads everything anew (``TerminalChangesReply/resync``).
    private func prune() async {
        let (seconds, _) = changeRetention.components
        while !Task.isCancelled {
            do {
                let removed = try await store.pruneChanges(before: Date().addingTimeInterval(-Double(seconds)))
                if removed > 0 {
                    logger.info("old changes deleted from the feed", metadata: ["changes": "\(removed)"])
                }
            } catch {
                logger.warning("the change feed could not be pruned", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(3600))
        }
    }
}
