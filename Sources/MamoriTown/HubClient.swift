import Foundation
public import MamoriProtocol
public import NIOCore
public import NIOPosix
public import NIOSSL
import NIOTLS
import Synchronization

/// Where a hub listens: `host:port`, `[v6]:port`, or a host alone (port ``defaultPort``).
public struct HubAddress: Sendable, Hashable, CustomStringConvertible {
    /// The port a hub listens on for terminals unless told otherwise.
    public static let defaultPort = 7443

    /// The host name or IP address.
    public let host: String
    /// The TCP port.
    public let port: Int

    /// Reads `host:port`; nil for anything else.
    public init?(_ text: String) {
        var host = Substring(text)
        var port = Self.defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let number = Int(rest.dropFirst()) else { return nil }
                port = number
            }
        } else if let colon = host.lastIndex(of: ":"), !host[..<colon].contains(":") {
            guard let number = Int(host[host.index(after: colon)...]) else { return nil }
            port = number
            host = host[..<colon]
        }
        guard !host.isEmpty, (1...65_535).contains(port),
            host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:".contains($0)) })
        else { return nil }
        self.host = String(host)
        self.port = port
    }

    /// An address from its parts.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 host in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether `host` is an IP address: TLS names it in no SNI, and checks it against the
    /// certificate's IP addresses.
    var isIPAddress: Bool {
        (try? SocketAddress(ipAddress: host, port: port)) != nil
    }
}

/// A hub refused a request, or could not be reached or trusted; `message` is for the operator and
/// holds no secret.
public struct HubClientError: Error, CustomStringConvertible, Sendable {
    /// The hub's error code when it answered one (`denied`, `invalid`, …), or the joining side's own
    /// (`conflict`: joined already; `untrusted`: not the pinned hub; `storage`); nil when the hub
    /// could not be reached or did not answer.
    public let code: String?
    /// A sentence for the operator.
    public let message: String

    /// An error with its code, when there is one.
    public init(code: String? = nil, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// One TLS connection to a hub's terminal port, carrying request lines and their replies in turn.
/// Opened by ``HubClient/connect(to:tls:group:timeout:verify:)``; close it when done.
public final class HubClient: Sendable {
    let channel: any Channel
    /// A line the hub sent before any request: its refusal of the connection, written just before
    /// it closed it (a removed terminal's certificate, a register it could not read).
    let unasked: UnaskedReply

    /// The longest reply line a client reads: a member's full read of the town's users
    /// (`terminal.subjects`) is one line, a few hundred bytes a user, so 16 MiB holds some
    /// 50,000 users. (Reading them in pages would lift the bound; a town is far below it.)
    static let maximumReplyLength = 16 << 20

    init(channel: any Channel, unasked: UnaskedReply) {
        self.channel = channel
        self.unasked = unasked
    }

    /// Connects and completes the TLS handshake with `tls` (a client configuration); throws when
    /// the hub cannot be reached within `timeout` or the handshake fails. `verify`, when given,
    /// replaces the usual check of the hub's certificate (the join's first look at an unknown hub).
    public static func connect(
        to address: HubAddress, tls: TLSConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: TimeAmount = .seconds(10),
        verify: (@Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResult>) -> Void)? = nil
    ) async throws -> HubClient {
        let context = try NIOSSLContext(configuration: tls)
        let hostname = address.isIPAddress ? nil : address.host
        let handshake = group.next().makePromise(of: Void.self)
        let unasked = UnaskedReply()
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls =
                        if let verify {
                            try NIOSSLClientHandler(
                                context: context, serverHostname: hostname, customVerificationCallback: verify)
                        } else {
                            try NIOSSLClientHandler(context: context, serverHostname: hostname)
                        }
                    try channel.pipeline.syncOperations.addHandlers([
                        tls,
                        ByteToMessageHandler(ReplyLineDecoder(maximumLength: maximumReplyLength)),
                        ReplyMatcher(handshake: handshake, unasked: unasked),
                    ])
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: address.host, port: address.port).get()
        } catch {
            handshake.fail(error)
            throw HubClientError("The hub at \(address) cannot be reached: \(error)")
        }
        do {
            // Within the same time-out: a listener that never completes the handshake is a dead hub.
            let deadline = channel.eventLoop.scheduleTask(in: timeout) {
                handshake.fail(HubClientError("The hub at \(address) did not complete the TLS handshake in time."))
            }
            defer { deadline.cancel() }
            try await handshake.futureResult.get()
        } catch {
            channel.close(promise: nil)
            throw error
        }
        return HubClient(channel: channel, unasked: unasked)
    }

    /// Sends one request and reads its reply's fields. A refusal throws ``HubClientError`` with the
    /// hub's code and message.
    public func call(_ op: String, _ body: some WireRequestBody, timeout: TimeAmount = .seconds(30)) async throws
        -> [String: JSONValue]
    {
        var fields = try body.fields()
        fields["op"] = .string(op)
        let reply = try await exchange(fields, timeout: timeout)
        guard let object = WireReply.parse(reply.dropLast()) else {
            throw HubClientError("The hub sent a reply that is not JSON.")
        }
        if case .bool(true)? = object["ok"] { return object }
        if case .object(let error)? = object["error"], case .string(let code)? = error["code"],
            case .string(let message)? = error["message"]
        {
            throw HubClientError(code: code, message)
        }
        throw HubClientError("The hub refused the request without saying why.")
    }

    /// Sends one request line made of `fields` (its `op` among them) and returns the reply line as
    /// the hub wrote it, newline included, whatever it says. Throws ``HubClientError`` when the
    /// connection fails or no reply comes within `timeout` (the connection is closed then).
    public func exchange(_ fields: [String: JSONValue], timeout: TimeAmount = .seconds(30)) async throws -> [UInt8] {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        // A hub that stops answering must not hold the caller for ever: the connection is given up.
        let deadline = channel.eventLoop.scheduleTask(in: timeout) { [channel] in
            promise.fail(HubClientError("The hub did not answer within \(timeout.nanoseconds / 1_000_000_000) s."))
            channel.close(promise: nil)
        }
        channel.writeAndFlush(ReplyMatcher.Outbound(line: WireReply.encodeRequest(fields), reply: promise))
            .whenFailure { promise.fail($0) }
        defer { deadline.cancel() }
        var reply: [UInt8]
        do {
            reply = Array(try await promise.futureResult.get().readableBytesView)
        } catch {
            // Refused before it could ask: the hub's own words, rather than "closed channel".
            guard let refusal = unasked.line else { throw error }
            reply = refusal
        }
        reply.append(UInt8(ascii: "\n"))
        return reply
    }

    /// Whether the connection is still open.
    public var isOpen: Bool { channel.isActive }

    /// ``call(_:_:)`` read as `Reply`.
    public func call<Reply: WireReplyBody>(_ op: String, _ body: some WireRequestBody, reading: Reply.Type)
        async throws -> Reply
    {
        try Reply(reply: try await call(op, body))
    }

    /// Asks for the change feed after `since` and then for every change as it commits: returns the
    /// backlog, then calls `onChanges` (on an event loop thread, in order) with each batch the hub
    /// pushes, until the connection closes. The connection carries nothing else from then on.
    public func watch(since: Int64, onChanges: @escaping @Sendable (TerminalChangesReply) -> Void) async throws
        -> TerminalChangesReply
    {
        unasked.onPush { line in
            guard let fields = WireReply.parse(line), fields["event"] == .string(TerminalChangesReply.pushEvent),
                let pushed = try? TerminalChangesReply(reply: fields.filter { $0.key != "event" })
            else { return }
            onChanges(pushed)
        }
        return try await call(
            HubOperation.watch.rawValue, TerminalChangesRequest(since: since), reading: TerminalChangesReply.self)
    }

    /// Closes the connection.
    public func close() {
        channel.close(promise: nil)
    }

    /// Completes when the connection has closed (the hub closed it, or ``close()``).
    public var closed: EventLoopFuture<Void> { channel.closeFuture }
}

/// Matches each reply line to the request written before it (replies come in request order), and
/// reports the end of the TLS handshake.
final class ReplyMatcher: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Outbound
    typealias OutboundOut = ByteBuffer

    struct Outbound {
        let line: [UInt8]
        let reply: EventLoopPromise<ByteBuffer>
    }

    private let handshake: EventLoopPromise<Void>
    private let unasked: UnaskedReply
    private var waiting: [EventLoopPromise<ByteBuffer>] = []

    init(handshake: EventLoopPromise<Void>, unasked: UnaskedReply) {
        self.handshake = handshake
        self.unasked = unasked
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append(request.reply)
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: request.line)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        guard !waiting.isEmpty else {
            unasked.keep(Array(line.readableBytesView))
            return
        }
        if let push = unasked.push, let fields = WireReply.parse(line.readableBytesView), fields["event"] != nil {
            // A watch's first push can come before a later request's reply: it is never a reply.
            push(Array(line.readableBytesView))
            return
        }
        waiting.removeFirst().succeed(line)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { handshake.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake.fail(error)
        failAll(error)
        context.close(promise: nil)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // The requests out fail now, not when TLS has finished closing (which a dead hub never
        // answers): whoever closed the connection has given up on it.
        failAll(HubClientError("The connection to the hub was closed."))
        context.close(mode: mode, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let closed = HubClientError("The hub closed the connection.")
        handshake.fail(closed)
        failAll(closed)
        context.fireChannelInactive()
    }

    private func failAll(_ error: any Error) {
        let promises = waiting
        waiting.removeAll()
        for promise in promises { promise.fail(error) }
    }
}

/// The lines a hub sends unasked: the first, kept for the request that finds the connection
/// closed (a refusal written just before the hub closed it); or, on a watching connection, the
/// pushed changes, handed to the watcher.
final class UnaskedReply: Sendable {
    private let kept = Mutex<[UInt8]?>(nil)
    private let pushed = Mutex<(@Sendable ([UInt8]) -> Void)?>(nil)

    func keep(_ line: [UInt8]) {
        if let push { return push(line) }
        kept.withLock { $0 = $0 ?? line }
    }

    var line: [UInt8]? { kept.withLock { $0 } }

    func onPush(_ handler: @escaping @Sendable ([UInt8]) -> Void) { pushed.withLock { $0 = handler } }
    var push: (@Sendable ([UInt8]) -> Void)? { pushed.withLock { $0 } }
}

/// Splits replies at newlines; a reply longer than the limit fails the connection.
struct ReplyLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maximumLength: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > maximumLength { throw HubClientError("The hub sent an over-long reply.") }
            return .needMoreData
        }
        guard let line = buffer.readSlice(length: newline - buffer.readerIndex) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
