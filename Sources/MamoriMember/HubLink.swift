import Foundation
public import Logging
import MamoriCore
public import MamoriProtocol
public import MamoriServer
import MamoriStore
public import MamoriTown
public import NIOCore
import NIOSSL
public import ServiceLifecycle

/// A member terminal's link to its hub (docs/town.md, "Member mode"), over mutual TLS with the
/// terminal's certificate:
///
/// - forwarded requests each take a connection from a small pool (the hub answers one request
///   per connection at a time, and a login's Argon2 run must not hold up the next login);
/// - as a `Service`, it keeps one watching connection: on each connect it reads every user into
///   the ``SubjectMirror``, then watches the change feed from that point and reads each changed
///   user again. When the connection drops it reconnects after a pause that doubles up to
///   ``maximumPause``, with jitter, so that a town's terminals do not return to a restarted hub
///   all at once.
public final class HubLink: TownHub, Service {
    /// The longest pause between two attempts to reach the hub.
    public static let maximumPause: Double = 30

    let address: HubAddress
    let tls: TLSConfiguration
    /// The users and assignments the link keeps current.
    public let mirror: SubjectMirror
    let logger: Logger
    let pool: HubConnectionPool
    let callTimeout: TimeAmount

    /// A link for the membership recorded in `stateDirectory`'s `town/` folder.
    ///
    /// - Parameters:
    ///   - connectTimeout: how long reaching the hub may take before a request is answered `busy`.
    ///   - callTimeout: how long the hub may take to answer one request.
    public init(
        membership: TerminalMembership, stateDirectory: String, mirror: SubjectMirror, logger: Logger,
        connections: Int = 8, connectTimeout: TimeAmount = .seconds(5), callTimeout: TimeAmount = .seconds(30)
    ) throws {
        guard let address = HubAddress(membership.hub) else {
            throw HubClientError("The membership names no usable hub address: \(membership.hub)")
        }
        self.address = address
        tls = try TerminalMembership.clientTLS(stateDirectory: stateDirectory)
        self.mirror = mirror
        self.logger = logger
        self.callTimeout = callTimeout
        pool = HubConnectionPool(limit: connections) { [address, tls] in
            try await HubClient.connect(to: address, tls: tls, timeout: connectTimeout)
        }
    }

    // MARK: TownHub

    /// Sends `request` with the caller in its `caller` field; returns the hub's reply line.
    public func forward(_ request: WireRequest, uid: UInt32, pid: Int32, name: String?) async throws -> [UInt8] {
        var fields = request.fields
        fields["op"] = .string(request.op)
        if let id = request.id { fields["id"] = id }
        fields[ForwardedCaller.field] = try JSONValue(encoding: ForwardedCaller(uid: uid, pid: pid, name: name))
        let line = fields
        let timeout = callTimeout
        return try await pool.withClient { client in try await client.exchange(line, timeout: timeout) }
    }

    /// Reads `users` from the hub into the mirror (a name the hub no longer has is dropped).
    public func refresh(users: [String]) async throws {
        // The hub reads at most 100 names per request.
        var remaining = users[...]
        while !remaining.isEmpty {
            let chunk = Array(remaining.prefix(100))
            remaining = remaining.dropFirst(chunk.count)
            let reply = try await pool.withClient { client in
                try await client.call(
                    HubOperation.subjects.rawValue, TerminalSubjectsRequest(users: chunk),
                    reading: TerminalSubjectsReply.self)
            }
            mirror.update(Set(chunk), with: reply.subjects.compactMap(Self.mirrored))
        }
    }

    // MARK: Service

    /// Keeps the mirror current until graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var pause = 0.5
            while !Task.isCancelled {
                do {
                    try await self.watchOnce { pause = 0.5 }
                    self.logger.warning("the connection to the hub closed; reconnecting", metadata: self.metadata)
                } catch is CancellationError {
                    return
                } catch {
                    self.logger.warning(
                        "the hub cannot be reached; decisions use the users last read from it",
                        metadata: self.metadata.merging(["error": "\(error)"]) { $1 })
                }
                // Full jitter: anywhere up to the pause, so that terminals spread out.
                try? await Task.sleep(for: .milliseconds(Int(Double.random(in: 0.1...1) * pause * 1000)))
                pause = min(pause * 2, Self.maximumPause)
            }
        }
        await pool.closeAll()
    }

    private var metadata: Logger.Metadata { ["hub": "\(address)"] }

    /// One watching connection, from its first read to its close. `connected` is called once
    /// the mirror holds everything the hub had.
    func watchOnce(connected: () -> Void) async throws {
        let client = try await HubClient.connect(to: address, tls: tls, timeout: .seconds(10))
        defer { client.close() }
        let all = try await client.call(
            HubOperation.subjects.rawValue, TerminalSubjectsRequest(), reading: TerminalSubjectsReply.self)
        mirror.replaceAll(all.subjects.compactMap(Self.mirrored), latest: all.latest)
        logger.notice(
            "the users of the town were read from the hub",
            metadata: metadata.merging(["users": "\(all.subjects.count)", "change": "\(all.latest)"]) { $1 })
        connected()
        let (batches, continuation) = AsyncStream.makeStream(of: TerminalChangesReply.self)
        client.closed.whenComplete { _ in continuation.finish() }
        let backlog = try await client.watch(since: all.latest) { continuation.yield($0) }
        try await apply(backlog)
        for await batch in batches {
            try Task.checkCancellation()
            try await apply(batch)
        }
    }

    /// Reads again every user a batch of changes concerns.
    func apply(_ batch: TerminalChangesReply) async throws {
        var users: [String] = []
        for change in batch.changes {
            switch change.kind {
            case AuditEvent.policyReload.rawValue:
                logger.notice(
                    "the hub's policy was reloaded; this terminal keeps its own policy folder",
                    metadata: ["change": "\(change.number)"])
            case AuditEvent.terminalRemove.rawValue:
                break
            default:
                if !users.contains(change.subject) { users.append(change.subject) }
            }
        }
        if !users.isEmpty { try await refresh(users: users) }
        if let last = batch.changes.last?.number { mirror.advance(to: last) }
    }

    /// A user as the mirror keeps it; nil for a description the terminal cannot read.
    static func mirrored(_ subject: SubjectDescription) -> MirroredSubject? {
        guard let kind = UserKind(rawValue: subject.kind) else { return nil }
        let dates = ISO8601DateFormatter()
        var assignments: [AssignmentRecord] = []
        for assignment in subject.assignments {
            guard let granted = dates.date(from: assignment.grantedAt) else { return nil }
            var expires: Date?
            if let text = assignment.expiresAt {
                // An expiry that cannot be read is treated as past: fail closed.
                expires = dates.date(from: text) ?? .distantPast
            }
            assignments.append(
                AssignmentRecord(
                    user: subject.user, role: assignment.role, grantedBy: assignment.grantedBy, grantedAt: granted,
                    expiresAt: expires))
        }
        var lockedUntil: Date?
        if subject.locked {
            // A lock whose end cannot be read holds until the hub says otherwise.
            lockedUntil = subject.lockedUntil.flatMap(dates.date(from:)) ?? .distantFuture
        }
        let user = UserRecord(
            name: subject.user, displayName: subject.displayName, kind: kind, organisation: subject.organisation,
            disabled: subject.disabled, createdAt: subject.createdAt.flatMap(dates.date(from:)) ?? .distantPast,
            lastLoginAt: nil, mustChangePassword: subject.mustChangePassword, passwordHash: nil)
        return MirroredSubject(user: user, assignments: assignments, lockedUntil: lockedUntil)
    }
}

/// Up to `limit` open connections to the hub, each used by one request at a time; a request that
/// finds all of them busy waits for one. A connection that fails is dropped, and the next request
/// opens another.
actor HubConnectionPool {
    private let limit: Int
    private let connect: @Sendable () async throws -> HubClient
    private var idle: [HubClient] = []
    private var open = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int, connect: @escaping @Sendable () async throws -> HubClient) {
        self.limit = limit
        self.connect = connect
    }

    /// Runs `body` with a connection of its own.
    func withClient<T: Sendable>(_ body: @Sendable (HubClient) async throws -> T) async throws -> T {
        let client = try await acquire()
        do {
            let result = try await body(client)
            release(client)
            return result
        } catch {
            // The connection may be half-way through a reply: it is not reused.
            client.close()
            release(client)
            throw error
        }
    }

    private func acquire() async throws -> HubClient {
        while true {
            while let client = idle.popLast() {
                if client.isOpen { return client }
                open -= 1
            }
            if open < limit {
                open += 1
                do {
                    return try await connect()
                } catch {
                    open -= 1
                    wakeOne()
                    throw error
                }
            }
            await withCheckedContinuation { waiting.append($0) }
        }
    }

    private func release(_ client: HubClient) {
        if client.isOpen { idle.append(client) } else { open -= 1 }
        wakeOne()
    }

    private func wakeOne() {
        if !waiting.isEmpty { waiting.removeFirst().resume() }
    }

    /// Closes every idle connection (at shutdown).
    func closeAll() {
        for client in idle { client.close() }
        open -= idle.count
        idle.removeAll()
    }
}
