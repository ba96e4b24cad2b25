import Foundation
public import MamoriPostgres
import MamoriProtocol
import MamoriTown
import NIOConcurrencyHelpers
public import NIOCore

/// Pushes the change feed to every terminal connection that asked to watch it
/// (`terminal.watch`), as the hub's LISTEN delivers it.
///
/// A watcher is registered before its backlog is read, so nothing committed in between is lost;
/// until the backlog reply is written, pushes wait in the watcher, and those the backlog already
/// held are dropped then. A watcher whose connection stops taking data is closed rather than
/// buffered for: the terminal reconnects and asks again after the last number it has.
public final class ChangeBroadcast: Sendable {
    private let watchers = NIOLockedValueBox<[ObjectIdentifier: ChangeWatcher]>([:])

    /// Nobody watching yet.
    public init() {}

    /// Pushes `changes` to every watcher. The line is encoded once for all of them; a watcher whose
    /// backlog already held some of the changes encodes its own.
    public func publish(_ changes: [StoreChange]) {
        guard let newest = changes.last else { return }
        let line = Self.line(changes, latest: newest.number)
        for watcher in watchers.withLockedValue({ Array($0.values) }) { watcher.deliver(changes, line: line) }
    }

    /// How many connections watch.
    public var count: Int { watchers.withLockedValue { $0.count } }

    /// How often a watcher hears from the hub when nothing changes: an empty batch, by which the
    /// terminal knows its stream is alive (and, hearing nothing for a few of these, that the hub
    /// cannot be reached, without waiting for TCP to say so).
    public static let heartbeat: TimeAmount = .seconds(1)

    func add(_ watcher: ChangeWatcher) {
        let key = ObjectIdentifier(watcher.channel)
        watchers.withLockedValue { $0[key] = watcher }
        let beating = watcher.channel.eventLoop.scheduleRepeatedTask(
            initialDelay: Self.heartbeat, delay: Self.heartbeat
        ) { _ in watcher.beat() }
        watcher.channel.closeFuture.whenComplete { [watchers] _ in
            beating.cancel()
            watchers.withLockedValue { $0[key] = nil }
        }
    }

    /// One pushed line.
    static func line(_ changes: [StoreChange], latest: Int64) -> [UInt8] {
        var fields =
            (try? TerminalChangesReply(changes: changes.map(describe), latest: latest, more: false).replyFields())
            ?? [:]
        fields["event"] = .string(TerminalChangesReply.pushEvent)
        return WireReply.encodeRequest(fields)
    }

    static func describe(_ change: StoreChange) -> ChangeDescription {
        ChangeDescription(
            number: change.number, time: change.time.formatted(.iso8601), kind: change.kind, subject: change.subject)
    }
}

/// One watching connection; its state lives on the channel's event loop.
final class ChangeWatcher: Sendable {
    /// Past this many bytes the terminal has not read, the watcher is closed.
    static let maximumUnread = 1 << 20

    let channel: any Channel
    private let state: NIOLoopBoundBox<State>

    struct State {
        /// Nil until the backlog reply is written: what is pushed meanwhile waits here.
        var waiting: [StoreChange]? = []
        /// The newest number written to the terminal.
        var sent: Int64 = 0
    }

    init(channel: any Channel) {
        self.channel = channel
        state = NIOLoopBoundBox(State(), eventLoop: channel.eventLoop)
    }

    /// From any thread: the changes go to the terminal, in order, once; `line` is their encoding.
    func deliver(_ changes: [StoreChange], line: [UInt8]) {
        channel.eventLoop.execute { [self] in
            if state.value.waiting != nil {
                state.value.waiting?.append(contentsOf: changes)
                return
            }
            write(changes, line: line)
        }
    }

    /// On the event loop, after the backlog reply up to `sent`: what waited, past it, goes now.
    func goLive(sent: Int64) {
        state.value.sent = sent
        let waiting = state.value.waiting ?? []
        state.value.waiting = nil
        write(waiting)
    }

    /// On the event loop: an empty batch at the newest number sent, once the backlog is written.
    func beat() {
        guard state.value.waiting == nil, channel.isWritable else { return }
        channel.writeAndFlush(
            channel.allocator.buffer(bytes: ChangeBroadcast.line([], latest: state.value.sent)), promise: nil)
    }

    private func write(_ changes: [StoreChange], line: [UInt8]? = nil) {
        let fresh = changes.filter { $0.number > state.value.sent }
        guard let newest = fresh.last else { return }
        let line = fresh.count == changes.count ? line : nil
        state.value.sent = newest.number
        guard channel.isWritable else {
            // The terminal does not read: it will ask again after the last number it has.
            channel.close(promise: nil)
            return
        }
        channel.writeAndFlush(
            channel.allocator.buffer(bytes: line ?? ChangeBroadcast.line(fresh, latest: newest.number)), promise: nil)
    }
}
