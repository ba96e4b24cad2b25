import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriProtocol
import MamoriServer
import MamoriStore
import MamoriTown
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import SwiftASN1
import X509

/// Who is at the other end of a terminal connection.
enum TerminalPeer {
    /// No certificate: it may only join.
    case joining
    /// A terminal in service, by its certificate.
    case terminal(TerminalRecord)
}

/// Holds a connection until its TLS handshake is done and the peer is known (a joined terminal, or
/// a joiner without a certificate), then puts the request handler in its place.
///
/// - Until the peer is known to be a terminal, the connection counts against the listener's
///   anonymous limits, and it is closed ``TerminalListener/Limits/joinSeconds`` after it was
///   accepted, whatever it is doing then: a slow handshake, a join, or nothing.
/// - Bytes that arrive before the handler is in place wait here, up to one line's worth.
final class TerminalGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let listener: TerminalListener
    private let address: String
    private var held: [ByteBuffer] = []
    private var heldBytes = 0
    private var deadline: Scheduled<Void>?

    init(listener: TerminalListener, address: String) {
        self.listener = listener
        self.address = address
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: .seconds(listener.limits.joinSeconds)) {
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        heldBytes += bytes.readableBytes
        guard heldBytes <= WireLimits.maximumLineLength else {
            context.close(promise: nil)
            return
        }
        held.append(bytes)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
        guard let presented = tls?.peerCertificate else {
            install(context: context, peer: .joining)
            return
        }
        guard let der = try? presented.toDERBytes() else {
            context.close(promise: nil)
            return
        }
        let registry = listener.registry
        let digest = HubAuthority.digest(der: der)
        // The register also accepts the certificate a renewal replaced: the record this connection
        // carries names the serial it presented, so that only the current one renews.
        let serial = (try? Certificate(derEncoded: der))?.serialNumber.bytes.map { String(format: "%02x", $0) }
            .joined()
        // Read before the lookup: a removal acted on meanwhile refuses this connection (below).
        let removals = listener.connections.removals
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { try await registry.joinedTerminal(certificateDigest: digest) }
            .whenComplete { result in
                let (gate, context) = bound.value
                switch result {
                case .success(var terminal?):
                    terminal.certificateSerial = serial
                    switch gate.listener.connections.add(
                        context.channel, terminal: terminal.name, ifNoRemovalSince: removals,
                        limit: gate.listener.limits.connectionsPerTerminal)
                    {
                    case .added: break
                    case .removedMeanwhile:
                        gate.refuse(
                            context: context, WireError(.busy, "A terminal was removed meanwhile; connect again."))
                        return
                    case .tooMany:
                        gate.listener.logger.warning(
                            "a terminal opened more connections than it may",
                            metadata: ["terminal": "\(terminal.name)", "peer": "\(gate.address)"])
                        gate.refuse(
                            context: context,
                            WireError(.busy, "This terminal holds as many connections as it may; close one first."))
                        return
                    }
                    gate.becameTerminal(context.channel)
                    gate.install(context: context, peer: .terminal(terminal))
                case .success(nil):
                    gate.listener.logger.notice(
                        "a terminal certificate not in service was refused", metadata: ["peer": "\(gate.address)"])
                    gate.refuse(
                        context: context,
                        WireError(
                            .denied,
                            "This terminal's certificate is not in service: the terminal was removed, or joined again since."
                        ))
                case .failure:
                    gate.refuse(context: context, WireError(.busy, "The hub cannot read its register now; try again."))
                }
            }
    }

    /// A terminal's connection is its stream for as long as it runs: no deadline, and it no longer
    /// counts as anonymous.
    private func becameTerminal(_ channel: any Channel) {
        deadline?.cancel()
        deadline = nil
        listener.anonymous.leave(channel)
    }

    private func refuse(context: ChannelHandlerContext, _ error: WireError) {
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: WireReply.failure(error))))
            .assumeIsolated().whenComplete { _ in bound.value.close(promise: nil) }
    }

    private func install(context: ChannelHandlerContext, peer: TerminalPeer) {
        do {
            try context.pipeline.syncOperations.addHandlers(
                [
                    ByteToMessageHandler(LineDecoder(maximumLength: WireLimits.maximumLineLength)),
                    TerminalRequestHandler(listener: listener, peer: peer, address: address),
                ], position: .after(self))
        } catch {
            context.close(promise: nil)
            return
        }
        let waiting = held
        held = []
        for bytes in waiting { context.fireChannelRead(wrapInboundOut(bytes)) }
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A failed handshake (no certificate of the CA, an expired one): the peer learns it from TLS.
        listener.logger.info(
            "a terminal connection failed", metadata: ["peer": "\(address)", "error": "\(type(of: error))"])
        context.close(promise: nil)
    }
}

/// Answers a terminal connection's request lines one at a time, in order. Lines that arrive while
/// one is being answered wait, up to ``maximumWaiting``; past that the connection is closed, so a
/// peer that sends without reading costs the hub a bounded amount. A joiner's connection is closed
/// after its first answer.
final class TerminalRequestHandler: ChannelInboundHandler {
    typealias InboundIn = LineEvent
    typealias OutboundOut = ByteBuffer

    static let maximumWaiting = 16

    private let listener: TerminalListener
    private let peer: TerminalPeer
    private let address: String
    private var waiting: [LineEvent] = []
    private var busy = false
    /// Set by `terminal.watch`: from then on the connection carries pushed changes only.
    private var watching = false

    init(listener: TerminalListener, peer: TerminalPeer, address: String) {
        self.listener = listener
        self.peer = peer
        self.address = address
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        waiting.append(unwrapInboundIn(data))
        guard waiting.count <= Self.maximumWaiting, !watching else {
            context.close(promise: nil)
            return
        }
        next(context: context)
    }

    private func next(context: ChannelHandlerContext) {
        guard !busy, !waiting.isEmpty else { return }
        busy = true
        let event = waiting.removeFirst()
        let reply: EventLoopFuture<[UInt8]>
        switch event {
        case .tooLong:
            reply = context.eventLoop.makeSucceededFuture(
                WireReply.failure(WireError(.lineTooLong, "The line is longer than the hub reads.")))
        case .line(let line):
            reply = answer(line, context: context)
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        reply.whenSuccess { bytes in
            let (handler, context) = bound.value
            let written = context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)))
            if case .joining = handler.peer {
                written.whenComplete { _ in bound.value.1.close(promise: nil) }
                return
            }
            handler.busy = false
            handler.next(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func answer(_ line: ByteBuffer, context: ChannelHandlerContext) -> EventLoopFuture<[UInt8]> {
        let request: WireRequest
        do {
            request = try WireRequest(line: line.readableBytesView)
        } catch {
            return context.eventLoop.makeSucceededFuture(WireReply.failure(error))
        }
        switch (peer, HubOperation(rawValue: request.op)) {
        case (.joining, .join?):
            let listener = self.listener
            let address = self.address
            return context.eventLoop.makeFutureWithTask { await Self.join(request, listener: listener, peer: address) }
        case (.joining, _):
            return context.eventLoop.makeSucceededFuture(
                WireReply.failure(
                    WireError(
                        .denied, "This connection presents no terminal certificate: it may only join (terminal.join).",
                        id: request.id)))
        case (.terminal(let terminal), .hello?):
            let reply = TerminalHelloReply(
                terminal: terminal.name, zone: terminal.zone, hubVersion: MamoriVersion.current)
            return context.eventLoop.makeSucceededFuture(Self.encode(reply, id: request.id))
        case (.terminal(let terminal), nil):
            return forwarded(request, from: terminal, context: context)
        case (.terminal, .changes?):
            return changes(request, watch: false, context: context)
        case (.terminal, .watch?):
            return changes(request, watch: true, context: context)
        case (.terminal, .subjects?):
            return subjects(request, context: context)
        case (.terminal, .policy?):
            guard let source = listener.policy else {
                return context.eventLoop.makeSucceededFuture(
                    WireReply.failure(WireError(.unknownOperation, "This hub publishes no policy.", id: request.id)))
            }
            let id = request.id
            // Reading the folder is file I/O: off the event loop.
            return context.eventLoop.makeFutureWithTask {
                do {
                    return Self.encode(try source(), id: id)
                } catch let error as WireError {
                    return WireReply.failure(WireError(error.code, error.message, id: id))
                } catch {
                    return WireReply.failure(WireError(.internal, "The hub's policy cannot be read now.", id: id))
                }
            }
        case (.terminal(let terminal), .renew?):
            let listener = self.listener
            let address = self.address
            return context.eventLoop.makeFutureWithTask {
                await Self.renew(request, terminal: terminal, listener: listener, peer: address)
            }
        case (.terminal(let terminal), .audit?):
            let listener = self.listener
            return context.eventLoop.makeFutureWithTask {
                await TerminalAuditReceipt.answer(request, from: terminal, listener: listener)
            }
        case (.terminal(let terminal), .offline?):
            let listener = self.listener
            return context.eventLoop.makeFutureWithTask {
                await TerminalOfflineReceipt.answer(request, from: terminal, listener: listener)
            }
        case (.terminal, _):
            return context.eventLoop.makeSucceededFuture(
                WireReply.failure(
                    WireError(
                        .unknownOperation, "The hub does not serve \"\(request.op)\" to terminals.", id: request.id)))
        }
    }

    /// A request a member terminal forwards for the caller at its socket (the `caller` field). The
    /// terminal's register entry, not the request, says which terminal and zone it comes from.
    /// The hub's own terminal operations are not served to terminals: they are administered at
    /// the hub.
    private func forwarded(_ request: WireRequest, from terminal: TerminalRecord, context: ChannelHandlerContext)
        -> EventLoopFuture<[UInt8]>
    {
        guard let forward = listener.forward, let operation = WireOperation(rawValue: request.op),
            !Self.hubOnly.contains(operation)
        else {
            return context.eventLoop.makeSucceededFuture(
                WireReply.failure(
                    WireError(
                        .unknownOperation, "The hub does not serve \"\(request.op)\" to terminals.", id: request.id)))
        }
        guard let value = request.fields[ForwardedCaller.field], let caller = try? value.decode(ForwardedCaller.self),
            caller.name.map({ $0.utf8.count <= 64 }) ?? true
        else {
            return context.eventLoop.makeSucceededFuture(
                WireReply.failure(
                    WireError(
                        .badRequest, "A forwarded request names its caller: \"caller\": {uid, pid, name}.",
                        id: request.id)))
        }
        var fields = request.fields
        fields[ForwardedCaller.field] = nil
        let inner = WireRequest(op: request.op, id: request.id, fields: fields)
        let origin = CallerOrigin(terminal: terminal.name, zone: terminal.zone)
        return context.eventLoop.makeFutureWithTask { await forward(inner, caller, origin) }
    }

    /// `terminal.changes`: up to 1000 changes after `since`. `terminal.watch`: the same, and then
    /// every change pushed as it commits; the watcher is registered before the backlog is read.
    private func changes(_ request: WireRequest, watch: Bool, context: ChannelHandlerContext)
        -> EventLoopFuture<[UInt8]>
    {
        guard let feed = listener.feed, let broadcast = listener.broadcast else {
            return context.eventLoop.makeSucceededFuture(
                WireReply.failure(WireError(.unknownOperation, "This hub keeps no change feed.", id: request.id)))
        }
        guard case .number(let number)? = request.fields["since"], number >= 0, number == number.rounded(),
            number < 9e15
        else {
            return context.eventLoop.makeSucceededFuture(
                WireReply.failure(WireError(.badRequest, "\"since\" is a change number, 0 or more.", id: request.id)))
        }
        let since = Int64(number)
        let watcher = watch ? ChangeWatcher(channel: context.channel) : nil
        if let watcher {
            watching = true
            broadcast.add(watcher)
        }
        let id = request.id
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        return context.eventLoop.makeFutureWithTask { () -> (TerminalChangesReply?, [UInt8]) in
            do {
                let latest = try await feed.latestChangeNumber()
                if since < (try await feed.changesPrunedThrough()) {
                    // Changes after `since` were deleted: the terminal reads everything anew.
                    let reply = TerminalChangesReply(changes: [], latest: latest, more: false, resync: true)
                    return (reply, Self.encode(reply, id: id))
                }
                let page = try await feed.changes(after: since, limit: 1000)
                let reply = TerminalChangesReply(
                    changes: page.map(ChangeBroadcast.describe), latest: latest, more: page.count == 1000)
                return (reply, Self.encode(reply, id: id))
            } catch {
                return (nil, WireReply.failure(WireError(.busy, "The hub cannot read its change feed now.", id: id)))
            }
        }.map { reply, bytes in
            if let watcher {
                guard let reply else {
                    bound.value.close(promise: nil)
                    return bytes
                }
                // Written by the caller right after this returns, on this loop; pushes queued
                // meanwhile follow it.
                bound.value.eventLoop.execute { watcher.goLive(sent: reply.changes.last?.number ?? since) }
            }
            return bytes
        }
    }

    /// `terminal.subjects`: users and assignments without secrets, for a terminal's mirror. The
    /// change number is read first, so a terminal that watches from it misses nothing made after.
    private func subjects(_ request: WireRequest, context: ChannelHandlerContext) -> EventLoopFuture<[UInt8]> {
        guard let store = listener.feed else {
            return context.eventLoop.makeSucceededFuture(
                WireReply.failure(WireError(.unknownOperation, "This hub keeps no store.", id: request.id)))
        }
        var wanted: Set<String>?
        if let value = request.fields["users"], value != .null {
            guard let names = try? value.decode([String].self), names.count <= 100,
                names.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 64 })
            else {
                return context.eventLoop.makeSucceededFuture(
                    WireReply.failure(
                        WireError(.badRequest, "\"users\" is a list of at most 100 login names.", id: request.id)))
            }
            wanted = Set(names)
        }
        let id = request.id
        let now = listener.clock.now()
        let chosen = wanted
        return context.eventLoop.makeFutureWithTask {
            do {
                let latest = try await store.latestChangeNumber()
                // A terminal's read-back of a few users reads just those; its full read, everything.
                var users: [UserRecord] = []
                var assignments: [String: [AssignmentRecord]] = [:]
                if let chosen {
                    for name in chosen.sorted() {
                        guard let user = try await store.user(named: name) else { continue }
                        users.append(user)
                        assignments[name] = try await store.assignments(of: name)
                    }
                } else {
                    users = try await store.users()
                    assignments = Dictionary(grouping: try await store.allAssignments(), by: \.user)
                }
                var subjects: [SubjectDescription] = []
                for user in users {
                    let lock = try await store.failures(of: user.name).flatMap {
                        $0.isLocked(at: now) ? $0.lockedUntil : nil
                    }
                    subjects.append(
                        SubjectDescription(user, assignments: assignments[user.name] ?? [], lockedUntil: lock))
                }
                return Self.encode(TerminalSubjectsReply(subjects: subjects, latest: latest), id: id)
            } catch {
                return WireReply.failure(WireError(.busy, "The hub cannot read its users now.", id: id))
            }
        }
    }

    /// What the hub answers only at its own socket.
    static let hubOnly: Set<WireOperation> = [.terminalAdd, .terminalList, .terminalRemove]

    static func encode(_ reply: some WireReplyBody, id: JSONValue?) -> [UInt8] {
        do {
            return WireReply.success(try reply.replyFields(), id: id)
        } catch {
            return WireReply.failure(WireError(.internal, "The reply could not be written.", id: id))
        }
    }

    /// `terminal.renew`: a new certificate for the connected terminal's new key, issued like a
    /// join's and recorded in the hub's chain. Worked on like a join: at most
    /// ``TerminalListener/Limits/concurrentJoins`` at once.
    static func renew(_ request: WireRequest, terminal: TerminalRecord, listener: TerminalListener, peer: String)
        async -> [UInt8]
    {
        guard case .string(let csr)? = request.fields["csr"], csr.utf8.count <= 16_384 else {
            return WireReply.failure(
                WireError(.badRequest, "terminal.renew takes \"csr\" (PEM), at most 16 KiB.", id: request.id))
        }
        let signingRequest: CertificateSigningRequest
        do {
            signingRequest = try HubAuthority.checkRequest(csr)
        } catch {
            return WireReply.failure(WireError(.invalid, "\(error)", id: request.id))
        }
        let admitted = listener.joins.withLockedValue { joins -> Bool in
            guard joins < listener.limits.concurrentJoins else { return false }
            joins += 1
            return true
        }
        guard admitted else {
            return WireReply.failure(
                WireError(.busy, "The hub is busy with other renewals; try again.", id: request.id))
        }
        defer { listener.joins.withLockedValue { $0 -= 1 } }
        let authority = listener.authority
        let now = listener.clock.now()
        let validity = listener.certificateValidity
        let context = listener.auditContext
        let serial = terminal.certificateSerial ?? ""
        let keyDigest = HubAuthority.digest(der: Array(signingRequest.publicKey.subjectPublicKeyInfoBytes))
        do {
            let outcome = try await listener.registry.renewTerminal(
                named: terminal.name, serial: serial, keyDigest: keyDigest, now: now,
                dueWithin: Self.renewalWindow,
                issue: { terminal in
                    try authority.issueTerminalCertificate(
                        request: signingRequest, terminal: terminal, now: now, validity: validity)
                },
                audit: { terminal, certificate in
                    AuditEntry(
                        time: now, actorUID: nil, actor: "terminal:\(terminal.name)", event: .terminalRenew,
                        target: terminal.name, outcome: .success,
                        detail: [
                            "serial": certificate.serial, "previous_serial": terminal.certificateSerial ?? "",
                            "expires": certificate.expiresAt.formatted(.iso8601), "peer": peer,
                        ],
                        terminal: context.terminal, zone: context.zone, policyRevision: context.policyRevision())
                })
            switch outcome {
            case .renewed(let renewed, let certificate):
                listener.logger.notice(
                    "a terminal renewed its certificate",
                    metadata: ["terminal": "\(renewed.name)", "serial": "\(certificate.serial)"])
                return encode(
                    TerminalJoinReply(
                        terminal: renewed.name, zone: renewed.zone, certificate: certificate.pem,
                        ca: authority.certificatePEM),
                    id: request.id)
            case .notDue(let expires):
                return WireReply.failure(
                    WireError(
                        .invalid,
                        "This terminal's certificate is valid until \(expires.formatted(.iso8601)); it renews in its last "
                            + "\(Int(Self.renewalWindow / 86_400)) days.", id: request.id))
            case .replaced:
                // The terminal renewed with another key since: whoever asks holds an old key of it.
                listener.logger.critical(
                    "a terminal certificate a renewal replaced asked to renew: someone else may hold the terminal's key",
                    metadata: ["terminal": "\(terminal.name)", "serial": "\(serial)", "peer": "\(peer)"])
                return WireReply.failure(
                    WireError(
                        .denied, "This connection's certificate was replaced by a renewal; it renews nothing.",
                        id: request.id))
            case .notInService:
                return WireReply.failure(WireError(.denied, "This terminal is not in service.", id: request.id))
            }
        } catch {
            return WireReply.failure(
                WireError(.busy, "The hub cannot renew the certificate now; try again.", id: request.id))
        }
    }

    /// A certificate is renewed only this close to its expiry (a day more than a member waits
    /// for, against clocks that differ): a terminal's root cannot renew over and over.
    static let renewalWindow: TimeInterval = 31 * 86_400

    /// `terminal.join`. Every refusal of the token reads alike, whatever was wrong with it; at most
    /// ``TerminalListener/Limits/concurrentJoins`` are worked on at once.
    static func join(_ request: WireRequest, listener: TerminalListener, peer: String) async -> [UInt8] {
        let refused = WireError(
            .denied, "The join token is not accepted: it is unknown, used or expired, or its terminal was removed.",
            id: request.id)
        guard case .string(let tokenText)? = request.fields["token"], case .string(let csr)? = request.fields["csr"],
            csr.utf8.count <= 16_384
        else {
            return WireReply.failure(
                WireError(.badRequest, "terminal.join takes \"token\" and \"csr\" (PEM) strings.", id: request.id))
        }
        guard let token = JoinToken(tokenText) else { return WireReply.failure(refused) }
        let signingRequest: CertificateSigningRequest
        do {
            signingRequest = try HubAuthority.checkRequest(csr)
        } catch {
            return WireReply.failure(WireError(.invalid, "\(error)", id: request.id))
        }
        let limit = listener.limits.concurrentJoins
        let admitted = listener.joins.withLockedValue { joins -> Bool in
            guard joins < limit else { return false }
            joins += 1
            return true
        }
        guard admitted else {
            return WireReply.failure(WireError(.busy, "The hub is busy with other joins; try again.", id: request.id))
        }
        defer { listener.joins.withLockedValue { $0 -= 1 } }
        let authority = listener.authority
        let now = listener.clock.now()
        do {
            let joined = try await listener.registry.joinTerminal(
                tokenDigest: token.secretDigest(key: listener.tokenKey), now: now,
                issue: { terminal in
                    try authority.issueTerminalCertificate(
                        request: signingRequest, terminal: terminal, now: now, validity: listener.certificateValidity)
                },
                audit: { terminal in
                    listener.joinEntry(terminal, serial: terminal.certificateSerial ?? "", peer: peer)
                })
            guard let (terminal, certificate) = joined else {
                listener.logger.notice("a join token was refused", metadata: ["peer": "\(peer)"])
                return WireReply.failure(refused)
            }
            listener.logger.notice(
                "a terminal joined", metadata: ["terminal": "\(terminal.name)", "serial": "\(certificate.serial)"])
            return encode(
                TerminalJoinReply(
                    terminal: terminal.name, zone: terminal.zone, certificate: certificate.pem,
                    ca: authority.certificatePEM),
                id: request.id)
        } catch {
            return WireReply.failure(
                WireError(.busy, "The hub cannot complete the join now; try again.", id: request.id))
        }
    }
}
