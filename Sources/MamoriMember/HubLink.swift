public import Foundation
public import Logging
public import MamoriCore
public import MamoriProtocol
public import MamoriServer
public import MamoriStore
public import MamoriTown
import NIOConcurrencyHelpers
public import NIOCore
import NIOSSL
public import ServiceLifecycle

/// A member terminal's link to its hub (docs/town.md, "Member mode"), over mutual TLS with the
/// terminal's certificate:
///
/// - forwarded requests each take a connection from a small pool (the hub answers one request
///   per connection at a time, and a login's Argon2 run must not hold up the next login). One
///   caller (uid) holds at most ``perCaller`` of them at once, except root, whose requests are
///   PAM's for every user; a request waits for a free one no longer than its deadline allows,
///   and never more than ``poolWait``;
/// - reads of users for the mirror have connections of their own, so that a queue of logins
///   never holds up a revocation;
/// - as a `Service`, it keeps one watching connection: on each connect it reads every user into
///   the ``SubjectMirror``, then watches the change feed from that point and reads each changed
///   user again. Beside it, every ``pollInterval`` it asks for the changes after the newest it
///   has (`terminal.changes`): what the watch missed is applied, and a watch that did not bring
///   by the next poll what the poll found is taken for dead and connected anew (a connection
///   cut without a FIN or RST is otherwise silent for ever). When the connection drops it
///   reconnects after a pause that doubles up to ``maximumPause``, with jitter, so that a
///   town's terminals do not return to a restarted hub all at once.
public final class HubLink: TownHub, Service {
    /// The longest pause between two attempts to reach the hub.
    public static let maximumPause: Double = 30
    /// How often the feed is polled beside the watch.
    public static let pollInterval: Duration = .seconds(10)
    /// Connections one caller other than root may hold at once.
    public static let perCaller = 2
    /// The longest a request waits for a free connection.
    public static let poolWait: Duration = .seconds(5)

    let address: HubAddress
    /// The terminal's key and certificate and the hub's CA; replaced when the certificate is renewed.
    let tls: NIOLockedValueBox<TLSConfiguration>
    let stateDirectory: String
    /// A certificate with this long or less left is renewed.
    public static let renewBefore: TimeInterval = 30 * 86_400
    /// The users and assignments the link keeps current.
    public let mirror: SubjectMirror
    let logger: Logger
    let pool: HubConnectionPool
    /// For the mirror's reads: never behind a queue of logins.
    let mirrorPool: HubConnectionPool
    let callTimeout: TimeAmount
    /// When the terminal joined its town (its membership's date; now, if that cannot be read).
    public let joinedAt: Date
    /// Adopts a policy the hub published, and says which revision is in force here.
    private let policy = NIOLockedValueBox<PolicyHandler?>(nil)
    /// One connection for the audit stream.
    let auditPool: HubConnectionPool
    /// Whether the hub was reached lately: forwarded requests fail at once while it was not.
    let reach = HubReach()
    /// The mirror as last saved in the state folder.
    let mirrorFile: MirrorFile
    /// A policy reload the feed announced: read the hub's policy, on a task of its own, so that
    /// the changes after it are not held up (its reads may wait for the hub to put it in force).
    private let policyReloads = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    /// Sends this terminal's audit chain to the hub, once ``streamAudit(of:publicKey:)`` was called.
    private let streamer = NIOLockedValueBox<AuditStreamer?>(nil)
    /// What the daemon did offline, and what it does with the hub's answer, once
    /// ``reportOfflineUses(with:)`` was called.
    private let offline = NIOLockedValueBox<OfflineReporter?>(nil)
    /// A report asked for out of turn (the feed announced a conflict).
    private let offlineReports = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    /// Nothing heard on the watch for this long: the hub is taken for unreachable.
    public static let silenceLimit: Duration = .seconds(3)
    /// The connect time-out of the watch's reconnections while the hub is unreachable: short,
    /// so that a new attempt (a new SYN) goes out about twice a second and the link's return is
    /// seen at once; but four times what the last connection took when that is longer, so that
    /// a hub reached over a slow link is still found.
    public static let cutConnectTimeout: Duration = .milliseconds(500)
    /// How long the last connection of the watch took to be made (TCP and TLS).
    private let lastConnect = NIOLockedValueBox(Duration.zero)
    /// When the watch last heard from the hub (nil: no watch yet, or it ended).
    private let lastHeard = NIOLockedValueBox<ContinuousClock.Instant?>(nil)

    /// What a member daemon gives the link to report its logins through a cut: the uses the hub
    /// has not acknowledged (oldest first, at most the count asked), and what to do with the
    /// hub's answer (forget what it kept, record the conflicts it found).
    public struct OfflineReporter: Sendable {
        let pending: @Sendable (Int) -> [(user: String, event: OfflineEvent)]
        let acknowledge: @Sendable ([(user: String, event: OfflineEvent)], [OfflineConflict]) async -> Void

        /// A reporter from its parts.
        public init(
            pending: @escaping @Sendable (Int) -> [(user: String, event: OfflineEvent)],
            acknowledge: @escaping @Sendable ([(user: String, event: OfflineEvent)], [OfflineConflict]) async -> Void
        ) {
            self.pending = pending
            self.acknowledge = acknowledge
        }
    }

    /// From now on, what the terminal did offline is reported on every connection to the hub,
    /// before anything else, and at every poll.
    public func reportOfflineUses(with reporter: OfflineReporter) {
        offline.withLockedValue { $0 = reporter }
    }

    /// Reports what is pending over the mirror's connections; a failure is logged (the next poll
    /// tries again).
    func reportOfflineUses(onlyPending: Bool = false) async {
        // While cut, the reconnection reports first; a pooled connection would only wait out its time-out.
        guard !reach.isCut else { return }
        if onlyPending, offline.withLockedValue({ $0 })?.pending(1).isEmpty ?? true { return }
        do {
            try await sendOfflineUses(over: nil)
        } catch {
            logger.notice(
                "what this terminal did offline could not be reported yet",
                metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
    }

    /// Reports what is pending over `client`, or over the mirror's connections when nil.
    func sendOfflineUses(over client: HubClient?) async throws {
        guard let reporter = offline.withLockedValue({ $0 }) else { return }
        while true {
            let batch = reporter.pending(TerminalOfflineRequest.maximumUses)
            let request = TerminalOfflineRequest(
                uses: batch.map { item in
                    OfflineUseLine(
                        sequence: item.event.sequence, user: item.user, kind: item.event.kind,
                        at: AuditEntry.milliseconds(item.event.at), step: item.event.step,
                        recoveryCode: item.event.recoveryCode, reason: item.event.reason,
                        onlineAt: AuditEntry.milliseconds(item.event.onlineAt))
                })
            let reply: TerminalOfflineReply
            if let client {
                reply = try await client.call(
                    HubOperation.offline.rawValue, request, reading: TerminalOfflineReply.self)
            } else {
                reply = try await mirrorPool.withClient(for: nil, waiting: Self.poolWait) { client in
                    try await client.call(HubOperation.offline.rawValue, request, reading: TerminalOfflineReply.self)
                }
            }
            await reporter.acknowledge(
                batch,
                reply.conflicts.map { OfflineConflict(user: $0.user, step: $0.step, terminals: $0.terminals) })
            if !batch.isEmpty {
                logger.notice(
                    "what this terminal did offline was reported to the hub",
                    metadata: metadata.merging(["uses": "\(batch.count)", "new": "\(reply.kept)"]) { $1 })
            }
            if batch.count < TerminalOfflineRequest.maximumUses { return }
        }
    }

    /// What the daemon does with the hub's policy: `adopt` validates and swaps it in (or keeps
    /// the old one) and returns the revision in force after; `current` is the one in force now.
    public struct PolicyHandler: Sendable {
        let adopt: @Sendable ([(name: String, text: String)]) async -> String
        let current: @Sendable () -> String

        /// A handler from its parts.
        public init(
            adopt: @escaping @Sendable ([(name: String, text: String)]) async -> String,
            current: @escaping @Sendable () -> String
        ) {
            self.adopt = adopt
            self.current = current
        }
    }

    /// From now on, the hub's policy is read on every connection and after every `policy.reload`
    /// at the hub, and handed to `handler` when its revision is not the one in force here.
    public func adoptPolicies(with handler: PolicyHandler) {
        policy.withLockedValue { $0 = handler }
    }

    /// From ``run()`` on, this terminal's audit chain (`trail`, signed with the key whose public
    /// half is `publicKey`) is sent to the hub as it grows, and the hub acknowledges what it holds.
    public func streamAudit(of trail: any AuditTrail, publicKey: [UInt8]) {
        streamer.withLockedValue {
            $0 = AuditStreamer(trail: trail, publicKey: publicKey, pool: auditPool, logger: logger)
        }
    }

    /// Whether the watch is up, when the last full read was, and the last failure to connect.
    private let link = NIOLockedValueBox((connected: false, readAt: Date?.none, error: String?.none))

    /// The link's state, for `status`.
    public var state: StatusReply.HubLinkState {
        let link = self.link.withLockedValue { $0 }
        let audit = streamer.withLockedValue { $0 }?.status
        return StatusReply.HubLinkState(
            address: "\(address)", connected: link.connected, change: mirror.latest,
            readAt: link.readAt?.formatted(.iso8601), error: link.connected ? nil : link.error,
            auditAcknowledged: audit?.acknowledged, auditError: audit?.error, offline: reach.isCut)
    }

    /// The newest change the watching connection brought, and the newest a poll found.
    private let feed = NIOLockedValueBox((watched: Int64(0), polled: Int64(0)))

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
        tls = NIOLockedValueBox(try TerminalMembership.clientTLS(stateDirectory: stateDirectory))
        self.stateDirectory = stateDirectory
        mirrorFile = MirrorFile(
            path: TerminalMembership.folder(in: stateDirectory) + "/mirror.json", terminal: membership.terminal,
            hub: membership.hub)
        if let saved = mirrorFile.load() {
            // Decisions until the hub answers are made on what it last said, as if this
            // terminal had kept running; `status` says when that was.
            mirror.replaceAll(saved.subjects, latest: saved.latest)
            link.withLockedValue { $0.readAt = saved.savedAt }
            logger.notice(
                "the users last read from the hub were loaded; the hub will be asked anew",
                metadata: ["users": "\(saved.subjects.count)", "saved": "\(saved.savedAt.formatted(.iso8601))"])
        }
        self.mirror = mirror
        self.logger = logger
        self.callTimeout = callTimeout
        joinedAt = ISO8601DateFormatter().date(from: membership.joinedAt) ?? Date()
        let limit = Duration.nanoseconds(connectTimeout.nanoseconds)
        let connect: @Sendable () async throws -> HubClient = { [address, tls, reach] in
            let started = ContinuousClock.now
            do {
                let client = try await HubClient.connect(
                    to: address, tls: tls.withLockedValue { $0 }, timeout: connectTimeout)
                reach.reached()
                return client
            } catch {
                reach.failed(started: started, waited: ContinuousClock.now - started, limit: limit)
                // No connection: the hub cannot be reached, and has done nothing with the request.
                throw HubUnreachable("\(error)")
            }
        }
        pool = HubConnectionPool(limit: connections, perCaller: Self.perCaller, connect: connect)
        mirrorPool = HubConnectionPool(limit: 2, perCaller: 2, connect: connect)
        auditPool = HubConnectionPool(limit: 1, perCaller: 1, connect: connect)
    }

    // MARK: TownHub

    /// Sends `request` with the caller in its `caller` field; returns the hub's reply line. A
    /// request with a `deadline` (Unix milliseconds, the client's) waits for a connection and
    /// for the reply no longer than it leaves; one past it is not sent. (The hub checks the
    /// deadline again by its own clock: the town's clocks agree, as TOTP needs them to.)
    public func forward(_ request: WireRequest, uid: UInt32, pid: Int32, name: String?) async throws -> [UInt8] {
        var fields = request.fields
        fields["op"] = .string(request.op)
        if let id = request.id { fields["id"] = id }
        fields[ForwardedCaller.field] = try JSONValue(encoding: ForwardedCaller(uid: uid, pid: pid, name: name))
        let line = fields
        var timeout = callTimeout
        var wait = Self.poolWait
        if case .number(let milliseconds)? = request.fields["deadline"] {
            let left = milliseconds / 1000 - Date().timeIntervalSince1970
            guard left > 0 else { throw WireError(.busy, "The request's deadline passed before it was sent.") }
            timeout = min(timeout, .milliseconds(Int64(left * 1000)))
            wait = min(wait, .milliseconds(Int64(left * 1000)))
        }
        if let since = reach.refusal() {
            throw WireError(
                .busy,
                "The hub cannot be reached (for \(Int(since.components.seconds)) s); this terminal tries again every "
                    + "\(Int(HubReach.probeInterval.components.seconds)) s.")
        }
        let limit = timeout
        let reach = self.reach
        // A request out when the stream falls silent is given up then, not at its time-out.
        let watching = !reach.isCut
        let reply: [UInt8]
        do {
            reply = try await pool.withClient(for: uid == 0 ? nil : uid, waiting: wait) { client in
                try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
                    group.addTask { try await client.exchange(line, timeout: limit) }
                    if watching {
                        group.addTask {
                            while !reach.isCut { try await Task.sleep(for: .milliseconds(50)) }
                            return nil
                        }
                    }
                    defer { group.cancelAll() }
                    guard let first = try await group.next(), let bytes = first else {
                        client.close()
                        throw HubUnreachable("the hub's stream fell silent while the request was out")
                    }
                    return bytes
                }
            }
        }
        // Anything else thrown came after the request was sent (a time-out, a closed connection):
        // the hub may have acted on it, so it is not taken for unreachable.
        reach.reached()
        return reply
    }

    /// A login was decided here because the hub could not be reached: logins stay here until the
    /// watch has reconnected and reported what was done meanwhile.
    public func markUnreachable() { reach.lost() }

    /// Whether the watch heard from the hub within ``silenceLimit``.
    public var watchIsAlive: Bool {
        guard let heard = lastHeard.withLockedValue({ $0 }) else { return false }
        return ContinuousClock.now - heard <= Self.silenceLimit
    }

    /// Whether logins are decided on this terminal now (``HubReach/isCut``).
    public var isCut: Bool { reach.isCut }

    /// Reads `users` from the hub into the mirror (a name the hub no longer has is dropped).
    public func refresh(users: [String]) async throws {
        // The hub reads at most 100 names per request.
        var remaining = users[...]
        while !remaining.isEmpty {
            let chunk = Array(remaining.prefix(100))
            remaining = remaining.dropFirst(chunk.count)
            let reply = try await mirrorPool.withClient(for: nil, waiting: Self.poolWait) { client in
                try await client.call(
                    HubOperation.subjects.rawValue, TerminalSubjectsRequest(users: chunk),
                    reading: TerminalSubjectsReply.self)
            }
            mirror.update(Set(chunk), with: reply.subjects.compactMap(Self.mirrored), readAt: reply.latest)
        }
    }

    // MARK: Service

    /// Keeps the mirror current until graceful shutdown.
    public func run() async throws {
        let streaming = streamer.withLockedValue { $0 }.map { streamer in Task { await streamer.run() } }
        let renewing = Task { await renewWhenDue() }
        let adopting = Task { for await _ in policyReloads.stream { await syncPolicy() } }
        let saving = Task { await keepMirrorSaved() }
        let reporting = Task { for await _ in offlineReports.stream { await reportOfflineUses() } }
        await cancelWhenGracefulShutdown {
            var pause = 0.5
            var failures = 0
            while !Task.isCancelled {
                do {
                    try await self.watchOnce {
                        pause = 0.5
                        failures = 0
                    }
                    self.link.withLockedValue { $0.connected = false }
                    self.logger.warning("the connection to the hub closed; reconnecting", metadata: self.metadata)
                } catch is CancellationError {
                    return
                } catch {
                    self.link.withLockedValue {
                        $0.connected = false
                        $0.error = "\(error)"
                    }
                    failures += 1
                    // Once, then once a minute or so: a cut can last hours.
                    if failures == 1 || failures % 60 == 0 {
                        self.logger.warning(
                            "the hub cannot be reached; decisions use the users last read from it",
                            metadata: self.metadata.merging(["error": "\(error)", "attempts": "\(failures)"]) { $1 })
                    }
                }
                if self.reach.isCut {
                    // Logins are decided here until the hub is back: it is tried again about twice
                    // a second (each try waits ``cutConnectTimeout`` at most), so that a
                    // revocation made meanwhile applies soon after the link returns. With jitter,
                    // so that a town's terminals do not all come back in step.
                    try? await Task.sleep(for: .milliseconds(Int.random(in: 50...250)))
                } else {
                    // Full jitter: anywhere up to the pause, so that terminals spread out.
                    try? await Task.sleep(for: .milliseconds(Int(Double.random(in: 0.1...1) * pause * 1000)))
                    pause = min(pause * 2, Self.maximumPause)
                }
            }
        }
        offlineReports.continuation.finish()
        reporting.cancel()
        await reporting.value
        streaming?.cancel()
        renewing.cancel()
        policyReloads.continuation.finish()
        saving.cancel()
        await saving.value
        adopting.cancel()
        await adopting.value
        await streaming?.value
        await renewing.value
        await pool.closeAll()
        await mirrorPool.closeAll()
        await auditPool.closeAll()
    }

    private var metadata: Logger.Metadata { ["hub": "\(address)"] }

    /// Every second, and once more at the end: the mirror saved when it changed since.
    func keepMirrorSaved() async {
        var saved = mirror.generation
        while true {
            let stopping = Task.isCancelled
            if !stopping { try? await Task.sleep(for: .seconds(1)) }
            let generation = mirror.generation
            if generation != saved, mirror.latest != nil {
                do {
                    try mirrorFile.save(mirror, at: Date())
                    saved = generation
                } catch {
                    logger.warning(
                        "the users read from the hub could not be saved", metadata: ["error": "\(error)"])
                }
            }
            if stopping || Task.isCancelled { return }
        }
    }

    /// At the start and every 12 hours: the terminal's certificate renewed when ``renewBefore`` or
    /// less is left (an hour later again after a failure). New connections use the new one; those
    /// open go on with the old, which the hub accepts until it expires.
    func renewWhenDue() async {
        while !Task.isCancelled {
            var pause: Duration = .seconds(12 * 3600)
            do {
                let expiry = try TerminalJoin.certificateExpiry(stateDirectory: stateDirectory)
                if expiry.timeIntervalSinceNow <= Self.renewBefore {
                    // On a connection of its own, closed after: the hub knows a connection by the
                    // certificate it was made with, and a pooled one would carry the old.
                    let client = try await HubClient.connect(
                        to: address, tls: tls.withLockedValue { $0 }, timeout: .seconds(10))
                    defer { client.close() }
                    let renewed = try await TerminalJoin.renew(using: client, stateDirectory: stateDirectory)
                    let fresh = try TerminalMembership.clientTLS(stateDirectory: stateDirectory)
                    tls.withLockedValue { $0 = fresh }
                    logger.notice(
                        "the terminal's certificate was renewed",
                        metadata: metadata.merging(
                            ["was": "\(expiry.formatted(.iso8601))", "expires": "\(renewed.formatted(.iso8601))"]
                        ) { $1 })
                }
            } catch is CancellationError {
                return
            } catch let error as HubClientError where error.code == ErrorCode.denied.rawValue {
                pause = .seconds(3600)
                logger.critical(
                    "the hub refuses to renew this terminal's certificate: it was renewed with another key, so someone else may hold this terminal's key; remove the terminal and join it again",
                    metadata: metadata.merging(["error": "\(error)"]) { $1 })
            } catch {
                pause = .seconds(3600)
                logger.warning(
                    "the terminal's certificate could not be renewed; trying again in an hour",
                    metadata: metadata.merging(["error": "\(error)"]) { $1 })
            }
            try? await Task.sleep(for: pause)
        }
    }

    /// One watching connection, from its first read to its close. `connected` is called once
    /// the mirror holds everything the hub had.
    func watchOnce(connected: () -> Void) async throws {
        let client: HubClient
        let started = ContinuousClock.now
        var limit: TimeAmount = .seconds(10)
        if reach.isCut {
            let cut = max(Self.cutConnectTimeout, lastConnect.withLockedValue { $0 } * 4)
            limit = .nanoseconds(
                Int64(cut.components.seconds) * 1_000_000_000 + cut.components.attoseconds / 1_000_000_000)
        }
        do {
            client = try await HubClient.connect(to: address, tls: tls.withLockedValue { $0 }, timeout: limit)
            let took = ContinuousClock.now - started
            lastConnect.withLockedValue { $0 = took }
            reach.reached()
        } catch {
            reach.failed(
                started: started, waited: ContinuousClock.now - started, limit: .nanoseconds(limit.nanoseconds))
            throw error
        }
        defer { client.close() }
        // Before anything else: what this terminal did while it could not reach the hub, so that
        // the steps and codes it used are spent town-wide before it reads the town again.
        try await sendOfflineUses(over: client)
        let all = try await client.call(
            HubOperation.subjects.rawValue, TerminalSubjectsRequest(), reading: TerminalSubjectsReply.self)
        mirror.replaceAll(all.subjects.compactMap(Self.mirrored), latest: all.latest)
        logger.notice(
            "the users of the town were read from the hub",
            metadata: metadata.merging(["users": "\(all.subjects.count)", "change": "\(all.latest)"]) { $1 })
        connected()
        link.withLockedValue { $0 = (true, Date(), nil) }
        await syncPolicy()
        feed.withLockedValue { $0 = (all.latest, 0) }
        // Past this many unapplied batches the terminal is too far behind: it connects anew,
        // and the full read brings it level.
        let (batches, continuation) = AsyncStream.makeStream(
            of: TerminalChangesReply.self, bufferingPolicy: .bufferingNewest(1000))
        client.closed.whenComplete { _ in continuation.finish() }
        let heard = lastHeard
        heard.withLockedValue { $0 = ContinuousClock.now }
        defer { heard.withLockedValue { $0 = nil } }
        let backlog = try await client.watch(since: all.latest) { batch in
            heard.withLockedValue { $0 = ContinuousClock.now }
            if case .dropped = continuation.yield(batch) { client.close() }
        }
        heard.withLockedValue { $0 = ContinuousClock.now }
        // The hub is back and knows what happened meanwhile: logins go to it again. What was
        // decided here during the reconnection is reported at once, on a connection of the mirror's.
        reach.reconciled()
        offlineReports.continuation.yield()
        try await apply(backlog, watched: true)
        let poller = Task { await self.poll(closing: client) }
        defer { poller.cancel() }
        // The hub sends something every second (ChangeBroadcast.heartbeat): nothing for
        // ``silenceLimit`` means it cannot be reached, whatever TCP says yet.
        let reach = self.reach
        let logger = self.logger
        let metadata = self.metadata
        let watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                let silent = ContinuousClock.now - (heard.withLockedValue { $0 } ?? .now)
                if silent > Self.silenceLimit, !Task.isCancelled {
                    reach.lost()
                    logger.warning(
                        "the hub has not been heard from; logins are decided on this terminal until it is back",
                        metadata: metadata.merging([
                            "silent_ms":
                                "\(silent.components.seconds * 1000 + silent.components.attoseconds / 1_000_000_000_000_000)"
                        ]) { $1 })
                    client.close()
                    return
                }
            }
        }
        defer { watchdog.cancel() }
        for await batch in batches {
            try Task.checkCancellation()
            try await apply(batch, watched: true)
        }
    }

    /// Every ``pollInterval``: the changes after the newest the mirror has, applied; and when the
    /// watch has not brought what the last poll found, `client` is closed, to connect anew.
    func poll(closing client: HubClient) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.pollInterval)
            if Task.isCancelled { return }
            let (watched, polled) = feed.withLockedValue { $0 }
            if polled > watched {
                logger.warning(
                    "the watch on the hub's change feed fell silent; connecting anew",
                    metadata: metadata.merging(["watched": "\(watched)", "polled": "\(polled)"]) { $1 })
                client.close()
                return
            }
            // Only with something to report: a conflict found later comes on the feed, which asks.
            await reportOfflineUses(onlyPending: true)
            do {
                var more = true
                while more {
                    let since = mirror.latest ?? 0
                    let page = try await mirrorPool.withClient(for: nil, waiting: Self.poolWait) { poller in
                        try await poller.call(
                            HubOperation.changes.rawValue, TerminalChangesRequest(since: since),
                            reading: TerminalChangesReply.self)
                    }
                    if page.resync == true {
                        // The feed no longer holds what came after the mirror's newest: read
                        // every user anew, on a new connection.
                        logger.warning(
                            "the hub's change feed no longer reaches back to this terminal's newest change; reading every user anew",
                            metadata: metadata.merging(["since": "\(since)"]) { $1 })
                        client.close()
                        return
                    }
                    try await apply(page, watched: false)
                    more = page.more && !page.changes.isEmpty
                }
            } catch {
                logger.notice(
                    "the hub's change feed could not be polled",
                    metadata: metadata.merging(["error": "\(error)"]) { $1 })
            }
        }
    }

    /// Reads the hub's policy and hands it to the daemon when it is not the one in force here.
    func syncPolicy() async {
        guard let handler = policy.withLockedValue({ $0 }) else { return }
        // A reload's change can arrive before the hub has put the new policy in force (or while
        // its folder is being edited again): it answers `busy` then. Asked again a few times,
        // a second apart, rather than waiting for the next reload.
        for attempt in 1...5 {
            do {
                let published = try await mirrorPool.withClient(for: nil, waiting: Self.poolWait) { client in
                    try await client.call(
                        HubOperation.policy.rawValue, EmptyRequest(), reading: TerminalPolicyReply.self)
                }
                guard published.revision != handler.current() else { return }
                let now = await handler.adopt(published.files.map { ($0.name, $0.text) })
                if now != published.revision {
                    logger.error(
                        "the hub's policy was not adopted; the old policy stays",
                        metadata: metadata.merging(["published": "\(published.revision)", "in_force": "\(now)"]) {
                            $1
                        })
                }
                return
            } catch let error as HubClientError where error.code == ErrorCode.busy.rawValue && attempt < 5 {
                try? await Task.sleep(for: .seconds(1))
            } catch {
                logger.warning(
                    "the hub's policy could not be read; the old policy stays",
                    metadata: metadata.merging(["error": "\(error)"]) { $1 })
                return
            }
        }
    }

    /// Reads again every user a batch of changes concerns. `watched`: the batch came on the watch
    /// (else from a poll, which notes what it found for the next poll's check).
    func apply(_ batch: TerminalChangesReply, watched: Bool) async throws {
        if let last = batch.changes.last?.number {
            feed.withLockedValue { feed in
                if watched { feed.watched = max(feed.watched, last) } else { feed.polled = max(feed.polled, last) }
            }
        } else if watched {
            feed.withLockedValue { $0.watched = max($0.watched, batch.latest) }
        }
        var users: [String] = []
        var policyChanged = false
        for change in batch.changes {
            switch change.kind {
            case AuditEvent.policyReload.rawValue:
                policyChanged = true
            case AuditEvent.terminalRemove.rawValue:
                break
            case AuditEvent.offlineConflict.rawValue:
                // Perhaps this terminal's: the hub says so in its reply to a report.
                offlineReports.continuation.yield()
            default:
                if !users.contains(change.subject) { users.append(change.subject) }
            }
        }
        if !users.isEmpty { try await refresh(users: users) }
        if policyChanged { policyReloads.continuation.yield() }
        if let last = batch.changes.last?.number { mirror.advance(to: last) }
    }

    /// A user as the mirror keeps it; nil for a description the terminal cannot read.
    static func mirrored(_ subject: SubjectDescription) -> MirroredSubject? {
        guard let kind = UserKind(rawValue: subject.kind) else { return nil }
        let precise = ISO8601DateFormatter()
        precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        // The hub writes milliseconds; a time without them is read too.
        let date = { (text: String) in precise.date(from: text) ?? plain.date(from: text) }
        var assignments: [AssignmentRecord] = []
        for assignment in subject.assignments {
            guard let granted = date(assignment.grantedAt) else { return nil }
            var expires: Date?
            if let text = assignment.expiresAt {
                // An expiry that cannot be read is treated as past: fail closed.
                expires = date(text) ?? .distantPast
            }
            assignments.append(
                AssignmentRecord(
                    user: subject.user, role: assignment.role, grantedBy: assignment.grantedBy, grantedAt: granted,
                    expiresAt: expires))
        }
        var lockedUntil: Date?
        if subject.locked {
            // A lock whose end cannot be read holds until the hub says otherwise.
            lockedUntil = subject.lockedUntil.flatMap(date) ?? .distantFuture
        }
        let user = UserRecord(
            name: subject.user, displayName: subject.displayName, kind: kind, organisation: subject.organisation,
            disabled: subject.disabled, createdAt: subject.createdAt.flatMap(date) ?? .distantPast,
            lastLoginAt: nil, mustChangePassword: subject.mustChangePassword, passwordHash: nil)
        return MirroredSubject(user: user, assignments: assignments, lockedUntil: lockedUntil)
    }
}

/// Whether the hub was reached lately. After a connection to it stalls for the whole connect
/// time-out (a black hole; a refused connection costs nothing and does not count), forwarded
/// requests fail at once (`busy`) instead of each waiting it out again and again. One request
/// every ``probeInterval`` tries again, and the link's own reconnections go on in the
/// background; any connection made or exchange answered after the stall began ends it.
final class HubReach: Sendable {
    /// How often a request may try the hub while it is found unreachable.
    static let probeInterval: Duration = .seconds(5)

    private struct State {
        var failedAt: ContinuousClock.Instant?
        var probedAt: ContinuousClock.Instant?
        var succeededAt: ContinuousClock.Instant?
        /// Set with `failedAt`, and by a silent stream; cleared only by ``reconciled()``.
        var cut = false
    }

    private let state = NIOLockedValueBox(State())

    /// Whether logins are decided on the terminal: the hub stalled a connection or fell silent,
    /// and the watch has not reconnected and reported since. Connections other requests make
    /// meanwhile do not end it: the hub must hear first what the terminal did offline.
    var isCut: Bool { state.withLockedValue { $0.cut } }

    /// The hub answered (a connection made, a request answered).
    func reached() {
        let now = ContinuousClock.now
        state.withLockedValue { $0 = State(succeededAt: now, cut: $0.cut) }
    }

    /// The watch heard nothing for ``HubLink/silenceLimit``.
    func lost() {
        let now = ContinuousClock.now
        state.withLockedValue { state in
            if state.failedAt == nil { state.failedAt = now }
            state.probedAt = now
            state.cut = true
        }
    }

    /// The watch reconnected and the hub took the terminal's report: logins go to the hub again.
    func reconciled() {
        state.withLockedValue { $0.cut = false }
    }

    /// A connection begun at `started` failed after `waited` of a time-out `limit`: it counts when
    /// it stalled (most of the time-out), and only if nothing succeeded since it began.
    func failed(started: ContinuousClock.Instant, waited: Duration, limit: Duration) {
        guard waited >= limit * 0.8 else { return }
        let now = ContinuousClock.now
        state.withLockedValue { state in
            if let succeeded = state.succeededAt, succeeded > started { return }
            if state.failedAt == nil { state.failedAt = now }
            state.probedAt = now
            state.cut = true
        }
    }

    /// Nil when a request may try the hub (it is reachable, or this request is the next probe);
    /// otherwise how long it has been unreachable.
    func refusal() -> Duration? {
        let now = ContinuousClock.now
        return state.withLockedValue { state in
            guard let failed = state.failedAt else { return nil }
            if let probed = state.probedAt, now - probed < Self.probeInterval { return now - failed }
            state.probedAt = now
            return nil
        }
    }
}

/// Up to `limit` open connections to the hub, each used by one request at a time; a request that
/// finds all of them busy waits for one, up to its own bound. One caller holds at most
/// `perCaller` at once (callers named nil, without limit). A connection that fails is dropped,
/// and the next request opens another.
actor HubConnectionPool {
    private let limit: Int
    private let perCaller: Int
    private let connect: @Sendable () async throws -> HubClient
    private var idle: [HubClient] = []
    private var open = 0
    private var held: [UInt32: Int] = [:]
    private var waiting: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
    private var nextWaiter = 0

    init(limit: Int, perCaller: Int, connect: @escaping @Sendable () async throws -> HubClient) {
        self.limit = limit
        self.perCaller = perCaller
        self.connect = connect
    }

    /// Runs `body` with a connection of its own, for `caller`. Throws `busy` when the caller
    /// holds its share already, or no connection comes free within `waiting`.
    func withClient<T: Sendable>(
        for caller: UInt32?, waiting bound: Duration, _ body: @Sendable (HubClient) async throws -> T
    ) async throws -> T {
        if let caller {
            guard held[caller, default: 0] < perCaller else {
                throw WireError(.busy, "Your user has as many requests with the hub as it may; try again shortly.")
            }
            held[caller, default: 0] += 1
        }
        defer {
            if let caller {
                held[caller, default: 1] -= 1
                if held[caller] == 0 { held[caller] = nil }
            }
        }
        let client = try await acquire(within: bound)
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

    private func acquire(within bound: Duration) async throws -> HubClient {
        let deadline = ContinuousClock.now + bound
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
            let left = deadline - ContinuousClock.now
            guard left > .zero, await waitForRelease(within: left) else {
                throw WireError(.busy, "Every connection to the hub is in use; try again shortly.")
            }
        }
    }

    /// Waits until a connection is given back (true) or `bound` passes (false).
    private func waitForRelease(within bound: Duration) async -> Bool {
        let id = nextWaiter
        nextWaiter += 1
        let timer = Task { [weak self] in
            try? await Task.sleep(for: bound)
            await self?.expire(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { waiting.append((id, $0)) }
    }

    private func expire(_ id: Int) {
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return }
        waiting.remove(at: index).continuation.resume(returning: false)
    }

    private func release(_ client: HubClient) {
        if client.isOpen { idle.append(client) } else { open -= 1 }
        wakeOne()
    }

    private func wakeOne() {
        if !waiting.isEmpty { waiting.removeFirst().continuation.resume(returning: true) }
    }

    /// Closes every idle connection (at shutdown); those in use close when their request ends.
    func closeAll() {
        for client in idle { client.close() }
        open -= idle.count
        idle.removeAll()
    }
}
