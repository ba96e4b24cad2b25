import MamoriFuzzSupport
// mamori-fuzz-line: the socket's line decoder and request parsing, against a model.
//
// Built with `make fuzz` (-sanitize=fuzzer,address, -D MAMORI_FUZZ) it runs libFuzzer; in
// an ordinary build it replays the files and folders given on its command line (the seeds in
// Fuzz/corpus/line and any crash kept there), so `make test` keeps every finding fixed.
//
// An input is a chunk size (its first byte) and a byte stream. The stream goes into a real
// channel pipeline (NIO's EmbeddedChannel with the daemon's LineDecoder, at a small line limit)
// in chunks of that size, then the channel ends. What comes out must be exactly what a plain
// split of the stream predicts: one event per line, `tooLong` for a line over the limit, a `\r`
// before the `\n` dropped, a last line without a newline still delivered. Every line then goes
// through WireRequest(line:): a parsed request encodes and parses back to the same fields, and
// a refused one gets a failure reply that is itself one valid JSON line.
import MamoriProtocol
import MamoriServer
import NIOCore
import NIOEmbedded

/// A decoder event as plain bytes, to compare with the model.
enum Shape: Equatable {
    case line([UInt8])
    case tooLong
}

extension LineEvent {
    var shape: Shape {
        switch self {
        case .line(let buffer): .line(Array(buffer.readableBytesView))
        case .tooLong: .tooLong
        }
    }
}

/// The line limit in this target: small, so that the limit's edges are reached often.
let maximumLength = 48

/// What the decoder should produce for `stream`: a plain split at each newline.
func expectedEvents(_ stream: ArraySlice<UInt8>) -> [Shape] {
    var events: [Shape] = []
    var segments = stream.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    let last = segments.removeLast()  // after the final newline (or the whole stream without one)
    for segment in segments {
        if segment.count > maximumLength {
            events.append(.tooLong)
        } else {
            events.append(.line(Array(segment.last == UInt8(ascii: "\r") ? segment.dropLast() : segment)))
        }
    }
    if !last.isEmpty {
        events.append(last.count > maximumLength ? .tooLong : .line(Array(last)))
    }
    return events
}

func check(_ data: UnsafeRawBufferPointer) {
    guard let first = data.first else { return }
    let chunk = Int(first % 64) + 1
    let stream = Array(data.dropFirst())[...]

    let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineDecoder(maximumLength: maximumLength)))
    var events: [Shape] = []
    func drain() {
        while let event = try! channel.readInbound(as: LineEvent.self) { events.append(event.shape) }
    }
    var offset = stream.startIndex
    while offset < stream.endIndex {
        let end = min(offset + chunk, stream.endIndex)
        var buffer = channel.allocator.buffer(capacity: end - offset)
        buffer.writeBytes(stream[offset..<end])
        try! channel.writeInbound(buffer)
        drain()
        offset = end
    }
    _ = try! channel.finish(acceptAlreadyClosed: false)
    drain()
    let expected = expectedEvents(stream)
    precondition(events == expected, "the decoder gave \(events), a plain split \(expected)")

    for case .line(let line) in events {
        precondition(line.count <= maximumLength && !line.contains(UInt8(ascii: "\n")))
        do {
            let request = try WireRequest(line: line)
            let again = try WireRequest(line: WireReply.encodeRequest(request.fields).dropLast())
            precondition(again.fields == request.fields, "\(request.fields) came back as \(again.fields)")
            precondition(again.op == request.op && again.id == request.id)
        } catch {
            let reply = WireReply.failure(error)
            precondition(reply.last == UInt8(ascii: "\n") && reply.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") })
            guard let parsed = WireReply.parse(reply.dropLast()), parsed["ok"] == .bool(false) else {
                preconditionFailure("the failure reply \(String(decoding: reply, as: UTF8.self)) is not a JSON object")
            }
        }
    }
}

@main
enum Main {
    static func main() throws {
        try runFuzzTarget("mamori-fuzz-line", check)
    }
}
