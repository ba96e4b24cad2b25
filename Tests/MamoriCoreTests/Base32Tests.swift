import MamoriCore
import Testing

@Suite("RFC 4648 base32")
struct Base32Tests {
    /// RFC 4648 section 10.
    static let rfc4648 = [
        ("", ""), ("f", "MY======"), ("fo", "MZXQ===="), ("foo", "MZXW6==="), ("foob", "MZXW6YQ="),
        ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI======"),
    ]

    @Test("RFC 4648 section 10 vectors, both ways", arguments: rfc4648)
    func vectors(plain: String, encoded: String) throws {
        #expect(Base32.encode(Array(plain.utf8), padded: true) == encoded)
        let unpadded = String(encoded.prefix { $0 != "=" })
        #expect(Base32.encode(Array(plain.utf8)) == unpadded)
        #expect(try Base32.decode(encoded) == Array(plain.utf8))
        #expect(try Base32.decode(unpadded) == Array(plain.utf8))
        #expect(try Base32.decode(unpadded.lowercased()) == Array(plain.utf8))
    }

    @Test("spaces between groups are ignored")
    func spaces() throws {
        #expect(try Base32.decode("MZXW 6YTB OI") == Array("foobar".utf8))
    }

    @Test("random bytes survive a round trip")
    func roundTrip() throws {
        for length in 0...70 {
            let bytes = SystemRandomBytes().bytes(length)
            #expect(try Base32.decode(Base32.encode(bytes)) == bytes)
        }
    }

    @Test(
        "malformed text is an error, never a crash",
        arguments: [
            "M", "MZX", "MZXW6Y", "MZ1W", "MZ0W", "MY=====", "MY=======", "MZ", "MZXW6YR", "M=Y", "ÄÖ", "MZ\u{0}",
        ]
    )
    func malformed(text: String) {
        #expect(throws: OTPError.self) { try Base32.decode(text) }
    }
}
