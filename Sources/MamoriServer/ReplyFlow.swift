import NIOCore

/// The rules of one connection's flow, without a channel: replies leave in the order the
/// requests came, at most `maximumInFlight` requests are being answered at once, and reading
/// stops while lines wait or the peer is not reading its replies. ``RequestHandler`` feeds it the
/// channel's events and carries out what it answers; the tests drive it directly.
///
/// A line is taken up only while fewer than `maximumInFlight` replies are outstanding and the
/// channel is writable; others wait here (at most one read's worth, since reading stops). An
/// answer ready at once goes straight out only when no earlier reply is outstanding, unflushed
/// (``takeFlush()`` at the end of the read burst writes the batch with one system call); any
/// other answer queues behind the outstanding ones.
struct ReplyFlow<Line> {
    /// The most requests of the connection being answered at once.
    let maximumInFlight: Int
    /// Replies accepted but not written yet; while any is, later replies queue behind it.
    private(set) var outstanding = 0
    /// Lines read but not taken up yet.
    private var waiting = CircularBuffer<Line>()
    /// A read the pipeline asked for that is held back until there is room again.
    private var readHeld = false
    /// Replies were written without a flush.
    private var unflushed = false

    init(maximumInFlight: Int) {
        self.maximumInFlight = maximumInFlight
    }

    /// Whether reading more now would only pile up lines or replies.
    private var full: Bool { !waiting.isEmpty || outstanding >= maximumInFlight }

    /// A line arrived; take it up with ``nextLine(writable:)``.
    mutating func lineArrived(_ line: Line) {
        waiting.append(line)
    }

    /// The next line to answer, if there is room for one more reply in flight.
    mutating func nextLine(writable: Bool) -> Line? {
        guard outstanding < maximumInFlight, writable else { return nil }
        return waiting.popFirst()
    }

    /// An answer is ready at once: true to write it now, without a flush (nothing is ahead of
    /// it; ``takeFlush()`` ends the burst), false to queue it with ``queued()``.
    mutating func writeAtOnce() -> Bool {
        guard outstanding == 0 else { return false }
        unflushed = true
        return true
    }

    /// A reply is chained behind the outstanding ones; call ``replyWritten()`` once it is written.
    mutating func queued() {
        outstanding += 1
    }

    /// A queued reply was written (and flushed). Take up waiting lines, then ``resumeRead(writable:)``.
    mutating func replyWritten() {
        precondition(outstanding > 0, "a reply was written that was not queued")
        outstanding -= 1
    }

    /// The pipeline asks to read: true to read now, false when the read is held back.
    mutating func readRequested(writable: Bool) -> Bool {
        if full || !writable {
            readHeld = true
            return false
        }
        return true
    }

    /// True when a held read should be issued now that there may be room.
    mutating func resumeRead(writable: Bool) -> Bool {
        guard readHeld, !full, writable else { return false }
        readHeld = false
        return true
    }

    /// True when replies were written without a flush since the last call.
    mutating func takeFlush() -> Bool {
        defer { unflushed = false }
        return unflushed
    }

    /// Whether an idle connection may be closed: not while a request is waiting or being answered
    /// (verifying a long audit trail takes minutes, and such a caller is not idle).
    var mayCloseWhenIdle: Bool { outstanding == 0 && waiting.isEmpty }
}
