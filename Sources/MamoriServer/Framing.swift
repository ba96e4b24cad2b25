import MamoriProtocol
import NIOCore

/// What the line decoder passes on: a complete line, or the news that one was too long.
enum LineEvent {
    case line(ByteBuffer)
    case tooLong
}

/// Splits the byte stream into `\n`-terminated lines of at most `maximumLength` bytes (a `\r`
/// before the `\n` is dropped). A longer line is reported once as ``LineEvent/tooLong`` and its
/// bytes are discarded up to the next newline, so one bad line never costs more than the limit in
/// memory and the connection goes on.
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = LineEvent

    let maximumLength: Int
    private var discarding = false

    init(maximumLength: Int) {
        self.maximumLength = maximumLength
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
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

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A last line without its newline is still a request.
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 && !discarding, let line = buffer.readSlice(length: buffer.readableBytes) {
            context.fireChannelRead(wrapInboundOut(.line(line)))
        }
        return .needMoreData
    }
}

/// Answers each line of one connection with one reply line, in the order the requests came,
/// even when later requests finish first. Closes the connection after the idle timeout, unless a
/// request is still being worked on.
///
/// Replies answered at once (the in-memory `authorize` path) are written without a flush and
/// flushed together when the read burst ends, so a pipelined batch costs one write system call.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = LineEvent
    typealias OutboundOut = ByteBuffer

    private let service: MamoriService
    private let caller: Caller
    private let inFlight: InFlightCounter
    /// Completes when every earlier reply of this connection has been written.
    private var tail: EventLoopFuture<Void>?
    /// Replies still being worked on off the event loop; while any is, later ones queue behind.
    private var pending = 0
    private var needsFlush = false

    init(service: MamoriService, caller: Caller, inFlight: InFlightCounter) {
        self.service = service
        self.caller = caller
        self.inFlight = inFlight
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let immediate: [UInt8]?
        var work: (@Sendable () async -> [UInt8])?
        switch unwrapInboundIn(data) {
        case .tooLong:
            immediate = WireReply.failure(WireError(
                .lineTooLong, "The request line is longer than \(WireLimits.maximumLineLength) bytes; it was discarded."
            ))
        case .line(let buffer):
            // Parsed once, here: a malformed line is answered at once, without a task.
            do {
                let request = try WireRequest(line: buffer.readableBytesView)
                immediate = service.answerQuickly(request, caller: caller)
                if immediate == nil {
                    let service = self.service
                    let caller = self.caller
                    work = { await service.handle(request, caller: caller) }
                }
            } catch {
                immediate = WireReply.failure(error)
            }
        }
        if let immediate, pending == 0 {
            context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: immediate)), promise: nil)
            needsFlush = true
            return
        }
        let reply: EventLoopFuture<[UInt8]>
        if let work {
            inFlight.enter()
            let counter = inFlight
            reply = context.eventLoop.makeFutureWithTask {
                defer { counter.leave() }
                return await work()
            }
        } else {
            reply = context.eventLoop.makeSucceededFuture(immediate ?? [])
        }
        pending += 1
        let bound = NIOLoopBound((context, self), eventLoop: context.eventLoop)
        let previous = tail ?? context.eventLoop.makeSucceededVoidFuture()
        tail = previous.flatMap { reply }.map { bytes in
            let (context, handler) = bound.value
            handler.pending -= 1
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // Silent, not waiting: a caller whose request is still being worked on (verifying a
            // long audit trail takes minutes) is not idle.
            if pending == 0 { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
