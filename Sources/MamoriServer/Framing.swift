import MamoriProtocol
public import NIOCore

/// What the line decoder passes on: a complete line, or the news that one was too long.
public enum LineEvent: Equatable {
    /// One line, without its `\n` (and without a `\r` just before it).
    case line(ByteBuffer)
    /// A line was longer than the limit: reported once, its bytes dropped up to its newline.
    case tooLong
}

/// Splits the byte stream into `\n`-terminated lines of at most `maximumLength` bytes (a `\r`
/// before the `\n` is dropped). A longer line is reported once as ``LineEvent/tooLong`` and its
/// bytes are discarded up to the next newline, so one bad line never costs more than the limit in
/// memory and the connection goes on.
///
/// Public for the fuzz target (`Fuzz/Line`), which checks it against a plain split of the stream.
public struct LineDecoder: ByteToMessageDecoder {
    /// Each complete line, or the news that one was too long.
    public typealias InboundOut = LineEvent

    /// The longest line passed on, in bytes, without its newline.
    public let maximumLength: Int
    private var discarding = false

    /// A decoder for lines of at most `maximumLength` bytes; the daemon passes
    /// ``WireLimits/maximumLineLength``.
    public init(maximumLength: Int) {
        self.maximumLength = maximumLength
    }

    /// Passes on each complete line; reports a line as too long as soon as it outgrows the limit,
    /// without waiting for its newline, then drops its bytes up to that newline.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - buffer.readerIndex
            if discarding || length > maximumLength {
                if !discarding { context.fireChannelRead(wrapInboundOut(.tooLong)) }
                discarding = false
                buffer.moveReaderIndex(forwardBy: length + 1)
                return .continue
            }
            guard var line = buffer.readSlice(length: length) else { return .needMoreData }
            buffer.moveReaderIndex(forwardBy: 1)
            if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
            context.fireChannelRead(wrapInboundOut(.line(line)))
            return .continue
        }
        if buffer.readableBytes > maximumLength {
            if !discarding { context.fireChannelRead(wrapInboundOut(.tooLong)) }
            discarding = true
            buffer.moveReaderIndex(to: buffer.writerIndex)
        }
        return .needMoreData
    }

    /// At end of stream, passes on what is left, so that a last request without its newline is
    /// still answered (unless it was too long).
    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        // A last line without its newline is still a request.
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 && !discarding, let line = buffer.readSlice(length: buffer.readableBytes) {
            context.fireChannelRead(wrapInboundOut(.line(line)))
        }
        return .needMoreData
    }
}

/// Cuts off a connection whose request line has started but not arrived whole within `timeout`
/// (a slow sender holding a connection open a byte at a time). Sits before the line decoder and
/// only looks for newlines in what arrives.
final class LineDeadlineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let view = bytes.readableBytesView
        if let last = view.lastIndex(of: UInt8(ascii: "\n")) {
            // A line ended: the clock restarts for whatever follows it.
            deadline?.cancel()
            deadline = nil
            if last < view.endIndex - 1 { start(context) }
        } else if deadline == nil, !view.isEmpty {
            start(context)
        }
        context.fireChannelRead(data)
    }

    private func start(_ context: ChannelHandlerContext) {
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) { bound.value.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}

/// Answers each line of one connection with one reply line, in the order the requests came,
/// even when later requests finish first. Closes the connection after the idle timeout, unless a
/// request is still being worked on. The rules (order, the bound on requests in flight,
/// back-pressure, flushing) are ``ReplyFlow``'s; this handler carries out what it says.
///
/// Back-pressure: at most `maximumInFlight` requests of the connection are being answered at
/// once; lines beyond that wait (at most one read's worth), and while they do, or while the
/// channel is not writable because the peer is not reading its replies, no more is read from
/// the socket. So a client that pipelines without reading costs a bounded amount of memory.
///
/// Replies answered at once (the in-memory `authorize` path) are written without a flush and
/// flushed together when the read burst ends, so a pipelined batch costs one write system call.
final class RequestHandler: ChannelDuplexHandler {
    typealias InboundIn = LineEvent
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let service: MamoriService
    private let caller: Caller
    private let inFlight: InFlightCounter
    private let admission: Admission
    private var flow: ReplyFlow<LineEvent>
    /// Completes when every earlier reply of this connection has been written.
    private var tail: EventLoopFuture<Void>?

    init(service: MamoriService, caller: Caller, inFlight: InFlightCounter, admission: Admission, maximumInFlight: Int)
    {
        self.service = service
        self.caller = caller
        self.inFlight = inFlight
        self.admission = admission
        flow = ReplyFlow(maximumInFlight: maximumInFlight)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        flow.lineArrived(unwrapInboundIn(data))
        takeUp(context)
    }

    /// Answers waiting lines while there is room.
    private func takeUp(_ context: ChannelHandlerContext) {
        while let event = flow.nextLine(writable: context.channel.isWritable) {
            answer(event, context)
        }
    }

    /// The reply to a line when it is known at once (malformed, too long, the in-memory
    /// `authorize`, a caller cut off or over its share), or the work that makes it.
    private enum Answer {
        case ready([UInt8])
        case work(@Sendable () async -> [UInt8])
    }

    private func prepare(_ event: LineEvent) -> Answer {
        let buffer: ByteBuffer
        switch event {
        case .tooLong:
            return .ready(
                WireReply.failure(
                    WireError(
                        .lineTooLong,
                        "The request line is longer than \(WireLimits.maximumLineLength) bytes; it was discarded."
                    )))
        case .line(let line): buffer = line
        }
        // Parsed once, here: a malformed line is answered at once, without a task.
        let request: WireRequest
        do {
            request = try WireRequest(line: buffer.readableBytesView)
        } catch {
            return .ready(WireReply.failure(error))
        }
        if let quick = service.answerQuickly(request, caller: caller) ?? service.refuseIfCutOff(request, caller: caller)
        {
            return .ready(quick)
        }
        if let refusal = admission.begin(caller) {
            return .ready(WireReply.failure(WireError(.busy, refusal.message, id: request.id)))
        }
        let service = self.service
        let caller = self.caller
        let admission = self.admission
        return .work {
            defer { admission.finish(caller) }
            return await service.handle(request, caller: caller)
        }
    }

    private func answer(_ event: LineEvent, _ context: ChannelHandlerContext) {
        switch prepare(event) {
        case .ready(let bytes):
            if flow.writeAtOnce() {
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            } else {
                flow.queued()
                enqueue(context.eventLoop.makeSucceededFuture(bytes), context)
            }
        case .work(let work):
            flow.queued()
            inFlight.enter()
            let counter = inFlight
            enqueue(
                context.eventLoop.makeFutureWithTask {
                    defer { counter.leave() }
                    return await work()
                }, context)
        }
    }

    /// Writes `reply` after every earlier reply of the connection.
    private func enqueue(_ reply: EventLoopFuture<[UInt8]>, _ context: ChannelHandlerContext) {
        let bound = NIOLoopBound((context, self), eventLoop: context.eventLoop)
        let previous = tail ?? context.eventLoop.makeSucceededVoidFuture()
        tail = previous.flatMap { reply }.map { bytes in
            let (context, handler) = bound.value
            handler.flow.replyWritten()
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            handler.takeUp(context)
            // Lines taken up here and answered at once are outside any read burst: no
            // channelReadComplete will flush them.
            if handler.flow.takeFlush() { context.flush() }
            handler.readIfRoom(context)
        }
    }

    private func readIfRoom(_ context: ChannelHandlerContext) {
        if flow.resumeRead(writable: context.channel.isWritable) { context.read() }
    }

    func read(context: ChannelHandlerContext) {
        if flow.readRequested(writable: context.channel.isWritable) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            takeUp(context)
            if flow.takeFlush() { context.flush() }
            readIfRoom(context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if flow.takeFlush() { context.flush() }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if flow.mayCloseWhenIdle { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
