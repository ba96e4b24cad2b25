import MamoriServer
import NIOCore
import NIOTestUtils
import Testing

/// The socket's line decoder under NIO's verifier, which feeds every input whole, all together,
/// and one byte at a time (among other splits) and expects the same events each way.
@Suite("the line decoder")
struct LineDecoderTests {
    static func line(_ text: String) -> LineEvent { .line(ByteBuffer(string: text)) }

    @Test("lines, CR-LF, empty lines, a line at the limit and one over it, however the bytes arrive")
    func verifier() throws {
        let limit = 16
        let atLimit = String(repeating: "a", count: limit)
        let overLimit = String(repeating: "b", count: limit + 1)
        let muchLonger = String(repeating: "c", count: limit * 5)
        try ByteToMessageDecoderVerifier.verifyDecoder(
            stringInputOutputPairs: [
                ("{\"op\":\"status\"}\n", [Self.line("{\"op\":\"status\"}")]),
                ("crlf\r\n", [Self.line("crlf")]),
                ("\n", [Self.line("")]),
                ("\r\n", [Self.line("")]),
                ("長い\n", [Self.line("長い")]),
                (atLimit + "\n", [Self.line(atLimit)]),
                (overLimit + "\n", [.tooLong]),
                (muchLonger + "\n", [.tooLong]),
            ],
            decoderFactory: { LineDecoder(maximumLength: limit) }
        )
    }
}
