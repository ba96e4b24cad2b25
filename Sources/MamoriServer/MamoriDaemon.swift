import Foundation
public import Logging
public import MamoriCore
public import MamoriProtocol
public import MamoriStore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import ServiceLifecycle
import UnixSignals

/// Counts requests being worked on, so that shutdown can wait for them.
final class InFlightCounter: Sendable {
    private let count = NIOLockedValueBox(0)
    func enter() { count.withLockedValue { $0 += 1 } }
    func leave() { count.withLockedValue { $0 -= 1 } }
    var value: Int { count.withLockedValue { $0 } }
}

/// Answers a connection that is not admitted with one `busy` line, once it is active, and closes it.
final class RefuseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let message: String

    init(message: String) {
        self.message = message
    }

    func channelActive(context: ChannelHandlerContext) {
        let reply = WireReply.failure(WireError(.busy, message))
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: reply))).whenComplete { _ in
            bound.value.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// mamorid as a `Service`: serves the Unix socket until graceful shutdown (SIGTERM, SIGINT),
/// reloads the policy on SIGHUP, then finishes requests in flight and removes the socket.
public final class MamoriDaemon: Service, Sendable {
    private let configuration: DaemonConfiguration
    private let service: MamoriService
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let inFlight = InFlightCounter()
    private let admission: Admission

    /// Prepares the state folder, opens the store with `openStore` and loads the policy; throws,
    /// with a sentence for the operator, when any of them is unusable. With `openHub`, the daemon
    /// is a hub's local socket: it also keeps the town's terminals. With `member`, it is a member
    /// terminal: its hub answers logins and administration, and its decisions read the hub's
    /// users from the mirror (docs/town.md).
    public init(
        configuration: DaemonConfiguration, logger: Logger, openHub: HubOpener? = nil, member: MemberRole? = nil,
        openStore: StoreOpener
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        service = try await ServiceFactory.make(
            configuration: configuration, logger: logger, openStore: openStore, openHub: openHub, member: member)
        admission = Admission(limits: Admission.Limits(configuration))
        group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
    }

    /// The revision of the policy in force, for entries written beside the daemon (a hub's joins).
    public var policyRevision: String { service.engine.revision }

    /// The policy's TOTP window: the steps accepted either side of the current one.
    public var totpWindow: Int { service.engine.policy.settings.totpWindow }

    /// The daemon's own audit chain (on a member terminal: the terminal's, which it streams to
    /// its hub) and the verifying key of its checkpoints.
    public var auditChain: (trail: any AuditTrail, publicKey: [UInt8]) {
        (service.store, service.auditSigner.publicKey)
    }

    /// On a member terminal: adopts the policy its hub published (`terminal.policy`), after
    /// validating it here; keeps the old one on any error. Returns the revision in force after.
    public func adoptHubPolicy(_ files: [(name: String, text: String)]) async -> String {
        await service.adoptHubPolicy(files)
    }

    /// On a member terminal: what it did through a network cut that its hub has not acknowledged
    /// yet, oldest first, at most `limit` (docs/town.md, "Logins through a network cut").
    public func pendingOfflineUses(limit: Int) -> [(user: String, event: OfflineEvent)] {
        service.pendingOfflineUses(limit: limit)
    }

    /// On a member terminal: the hub kept `sent`, and found `conflicts` concerning this terminal,
    /// which are recorded in its chain.
    public func acknowledgeOfflineUses(_ sent: [(user: String, event: OfflineEvent)], conflicts: [OfflineConflict])
        async
    {
        await service.acknowledgeOfflineUses(sent, conflicts: conflicts)
    }

    /// On a hub: answers a request a member terminal forwarded for the caller it saw at its own
    /// socket (`uid`, `pid`, `name`), as if that caller had asked here from `origin`'s terminal and
    /// zone. Entries name that terminal. The terminal's root may ask about any user's login (its
    /// PAM module runs as root), but is no operator here: administering the town takes a Mamori
    /// administrator's permission, whatever terminal asks.
    public func answerForwarded(
        _ request: WireRequest, uid: UInt32, pid: Int32, name: String?, origin: CallerOrigin
    ) async -> [UInt8] {
        let caller = Caller(uid: uid, pid: pid, name: name, origin: origin)
        // Cut off like a caller at this socket, but only that uid at that terminal.
        if let refusal = service.refuseIfCutOff(request, caller: caller) { return refusal }
        return await service.handle(request, caller: caller)
    }

    /// Serves until graceful shutdown. Meanwhile it verifies the audit chain once, reloads the policy on SIGHUP
    /// and signs the chain head every `checkpoint-seconds`; at shutdown it waits up to 5 seconds for requests
    /// in flight, then closes the store and removes the socket.
    public func run() async throws {
        let notice = LoginFactorsNotice(socketPath: configuration.socketPath)
        // An earlier run's notice goes first: if this start fails, none is left to prompt for a daemon that is not there.
        notice.withdraw()
        let channel = try await bind()
        let zone = configuration.zone
        let service = self.service
        // Serialised, and always of the policy in force then, so that two reloads finishing
        // together cannot leave the older policy's factors behind; nothing once stopped, so that
        // a reload finishing during the shutdown cannot bring the notice back.
        let publishing = NIOLockedValueBox(false)
        let publish: @Sendable () -> Void = { [logger] in
            publishing.withLockedValue { stopped in
                if stopped { return }
                do {
                    try notice.publish(policy: service.engine.policy, zone: zone)
                } catch {
                    // Without it pam_mamori.so asks `status` first: a second connection, nothing
                    // worse. A stale notice would prompt for the wrong factors, so none is left.
                    notice.withdraw()
                    logger.warning("the login factors could not be published", metadata: ["error": "\(error)"])
                }
            }
        }
        service.observePolicy { _ in publish() }
        publish()
        logger.notice(
            "mamorid serving",
            metadata: [
                "socket": "\(configuration.socketPath)", "zone": "\(configuration.zone)",
                "terminal": "\(configuration.terminal)", "policy": "\(service.engine.revision)",
            ]
        )
        let logger = self.logger
        // Check the whole chain once at start, beside serving: a trail altered while the daemon
        // was stopped is reported (critical log, `status`) without anyone asking.
        let startupCheck = Task {
            do {
                try await service.checkChain()
            } catch {
                logger.critical("the audit chain could not be read to verify it")
            }
        }
        let reloader = Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                do {
                    _ = try await service.reload(actor: nil)
                } catch {
                    logger.error("SIGHUP reload failed; the old policy stays")
                }
            }
        }
        // Entries written since the last checkpoint get one within checkpoint-seconds, so that
        // a quiet day's few entries cannot be cut off the end unseen until the next restart.
        let interval = Duration.seconds(configuration.checkpointSeconds)
        let checkpointer = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                await service.signChainHead()
            }
        }
        // Repeated denials are written as one counted entry when their interval ends.
        let denialInterval = Duration.seconds(configuration.denialIntervalSeconds)
        let denialCloser = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: denialInterval)
                if Task.isCancelled { break }
                await service.closeDenialInterval()
            }
        }
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        reloader.cancel()
        checkpointer.cancel()
        denialCloser.cancel()
        // Finish what is in flight (bounded), then stop.
        for _ in 0..<500 where inFlight.value > 0 { try? await Task.sleep(for: .milliseconds(10)) }
        try? await group.shutdownGracefully()
        // The last writes (the chain head's signature, the sessions' last use) wait on the store;
        // a database server that is gone would hold the stop for ever, so they get a bound.
        let finished = await Self.within(.seconds(Self.shutdownStoreSeconds)) {
            // The check reads through the store, which shutdown closes: let it finish first.
            await startupCheck.value
            await service.shutdown()
        }
        if !finished {
            logger.critical(
                "the store did not answer at shutdown: the chain's head was not signed; the next start verifies the chain",
                metadata: ["seconds": "\(Self.shutdownStoreSeconds)"])
        }
        publishing.withLockedValue { stopped in
            stopped = true
            notice.withdraw()
        }
        unlink(configuration.socketPath)
        logger.notice("mamorid stopped")
    }

    /// How long the last writes at shutdown may wait on the store.
    static let shutdownStoreSeconds: Int64 = 10

    /// Runs `work` and returns true when it finishes within `limit`; otherwise returns false and
    /// leaves it running (the process is about to exit).
    static func within(_ limit: Duration, _ work: @escaping @Sendable () async -> Void) async -> Bool {
        let outcome = AsyncStream.makeStream(of: Bool.self)
        let worker = Task {
            await work()
            outcome.continuation.yield(true)
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            outcome.continuation.yield(false)
        }
        var iterator = outcome.stream.makeAsyncIterator()
        let finished = await iterator.next() ?? false
        timer.cancel()
        if !finished { worker.cancel() }
        return finished
    }

    private func bind() async throws -> any Channel {
        let service = self.service
        let inFlight = self.inFlight
        let admission = self.admission
        let names = LoginNames()
        let idle = TimeAmount.seconds(Int64(configuration.idleTimeoutSeconds))
        let lineTimeout = TimeAmount.seconds(Int64(configuration.lineTimeoutSeconds))
        let requestsPerConnection = configuration.requestsPerConnection
        let logger = self.logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            // Past 64 KiB of replies the peer has not read, the channel is not writable and the
            // request handler stops taking up requests and reading.
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 16 * 1024, high: 64 * 1024))
            .childChannelInitializer { channel in
                Self.peerCredentials(of: channel).flatMap { credentials in
                    if let refusal = admission.enter(credentials) {
                        logger.info(
                            "connection refused",
                            metadata: ["uid": "\(credentials.uid)", "reason": "\(refusal.message)"]
                        )
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(RefuseHandler(message: refusal.message))
                        }
                    }
                    channel.closeFuture.whenComplete { _ in admission.leave(credentials) }
                    // The name comes off the event loop (see LoginNames): a slow password database
                    // holds up the connections of uids it has not answered for, never the event
                    // loop or the operators. Nothing is read until the handlers are in place.
                    return names.name(of: credentials.uid, on: channel.eventLoop).flatMapThrowing { name in
                        let caller = Caller(credentials: credentials, name: name)
                        logger.debug("connection", metadata: ["uid": "\(caller.uid)", "pid": "\(caller.pid)"])
                        try channel.pipeline.syncOperations.addHandlers([
                            IdleStateHandler(readTimeout: idle),
                            LineDeadlineHandler(timeout: lineTimeout),
                            ByteToMessageHandler(LineDecoder(maximumLength: WireLimits.maximumLineLength)),
                            RequestHandler(
                                service: service, caller: caller, inFlight: inFlight, admission: admission,
                                maximumInFlight: requestsPerConnection
                            ),
                        ])
                    }
                }
            }
        let socketPath = configuration.socketPath
        let channel = try await bootstrap.bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true).get()
        // Anyone may connect; what each caller may do is decided per request from its credentials.
        chmod(socketPath, 0o666)
        return channel
    }

    /// Reads SO_PEERCRED: the kernel's word for who connected, which the caller cannot forge.
    private static func peerCredentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        return provider.unsafeGetSocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_PEERCRED))
    }
}
