import Foundation
import Testing

@testable import MamoriCore

/// Cheap parameters for tests that exercise logic rather than cost.
let testParameters = Argon2Parameters(memoryKiB: 256, iterations: 2, parallelism: 1)

@Suite("Argon2id hashing")
struct Argon2Tests {
    static func bytes(_ value: UInt8, _ count: Int) -> [UInt8] { Array(repeating: value, count: count) }

    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).compactMap { UInt8(String(digits[$0...$0 + 1]), radix: 16) }
    }

    /// RFC 9106 section 5: m = 32 KiB, t = 3, p = 4, password 32 × 0x01, salt 16 × 0x02,
    /// secret 8 × 0x03, associated data 12 × 0x04, version 0x13, 32-byte tag.
    @Test(
        "RFC 9106 test vectors through libargon2's context API",
        arguments: [
            (
                Argon2.Kind.argon2id,
                "0d 64 0d f5 8d 78 76 6c 08 c0 37 a3 4a 8b 53 c9 d0 1e f0 45 2d 75 b6 5e b5 25 20 e9 6b 01 e6 59"
            ),
            (
                .argon2i,
                "c8 14 d9 d1 dc 7f 37 aa 13 f0 d7 7f 24 94 bd a1 c8 de 6b 01 6d d3 88 d2 99 52 a4 c4 67 2b 6c e8"
            ),
            (
                .argon2d,
                "51 2b 39 1b 6f 11 62 97 53 71 d3 09 19 73 42 94 f8 68 e3 be 39 84 f3 c1 a1 3a 4d b9 fa be 4a cb"
            ),
        ]
    )
    func rfc9106(kind: Argon2.Kind, expected: String) throws {
        let tag = try Argon2.hash(
            kind: kind, password: Self.bytes(1, 32), salt: Self.bytes(2, 16), secret: Self.bytes(3, 8),
            associatedData: Self.bytes(4, 12), memoryKiB: 32, iterations: 3, parallelism: 4, tagLength: 32
        )
        #expect(tag == Self.hex(expected))
    }

    @Test("the default parameters are RFC 9106's second recommendation, and a hash says so")
    func defaults() throws {
        #expect(Argon2Parameters.default == Argon2Parameters(memoryKiB: 65_536, iterations: 3, parallelism: 4))
        let hasher = try PasswordHasher()
        let hash = try hasher.hash("correct horse battery staple")
        #expect(hash.hasPrefix("$argon2id$v=19$m=65536,t=3,p=4$"))
        let parsed = try PHCString(parsing: hash)
        #expect(parsed.salt.count == 16)
        #expect(parsed.tag.count == 32)
        #expect(try hasher.verify("correct horse battery staple", against: hash))
        #expect(try !hasher.verify("correct horse battery stapler", against: hash))
    }

    @Test("each hash has a fresh salt")
    func freshSalt() throws {
        let hasher = try PasswordHasher(parameters: testParameters)
        #expect(try hasher.hash("same") != hasher.hash("same"))
    }

    @Test("a password is its bytes: non-ASCII and binary passwords round-trip")
    func bytesAsGiven() throws {
        let hasher = try PasswordHasher(parameters: testParameters)
        for password in [Array("パスワード".utf8), [0xFF, 0x00, 0x80], Array(repeating: 0x61, count: 1024)] {
            let hash = try hasher.hash(password)
            #expect(try hasher.verify(password, against: hash))
            #expect(try !hasher.verify(password.dropLast() + [0x62], against: hash))
        }
    }

    @Test("an empty password and one over the maximum are refused with their own errors")
    func lengthLimits() throws {
        let hasher = try PasswordHasher(parameters: testParameters)
        let valid = try hasher.hash("x")
        for attempt in [{ try hasher.hash([UInt8]()) }, { try hasher.hash(Array(repeating: 0x61, count: 1025)) }] {
            #expect(throws: PasswordError.self) { _ = try attempt() }
        }
        #expect(throws: PasswordError(.emptyPassword, "The password is empty.")) {
            try hasher.verify("", against: valid)
        }
        let tooLong = try #require(throws: PasswordError.self) {
            try hasher.verify(Array(repeating: 0x61, count: 1025), against: valid)
        }
        #expect(tooLong.code == .passwordTooLong)
        #expect(throws: PasswordError.self) { try hasher.dummyVerify([]) }
    }

    @Test("the dummy verification answers no (its cost is measured by make bench, not asserted)")
    func dummy() throws {
        let hasher = try PasswordHasher(parameters: testParameters)
        #expect(try !hasher.dummyVerify(Array("anything".utf8)))
    }

    @Test("parameters outside libargon2's range or Mamori's ceilings are refused")
    func invalidParameters() {
        let invalid = [
            Argon2Parameters(memoryKiB: 7, iterations: 1, parallelism: 1),
            Argon2Parameters(memoryKiB: 16, iterations: 1, parallelism: 4),
            Argon2Parameters(memoryKiB: 1024, iterations: 0, parallelism: 1),
            Argon2Parameters(memoryKiB: 1024, iterations: 1, parallelism: 0),
            Argon2Parameters(memoryKiB: 1024, iterations: 65, parallelism: 1),
            Argon2Parameters(memoryKiB: 5 * 1_048_576, iterations: 1, parallelism: 1),
            Argon2Parameters(memoryKiB: 1024, iterations: 1, parallelism: 1, saltLength: 8),
            Argon2Parameters(memoryKiB: 1024, iterations: 1, parallelism: 1, tagLength: 4),
        ]
        for parameters in invalid {
            #expect(throws: PasswordError.self, "\(parameters)") { try PasswordHasher(parameters: parameters) }
        }
    }
}

@Suite("PHC strings and rehash decisions")
struct PHCStringTests {
    let hasher: PasswordHasher
    init() throws { hasher = try PasswordHasher(parameters: testParameters) }

    @Test("a parsed string encodes back to itself")
    func roundTrip() throws {
        let hash = try hasher.hash("pw")
        #expect(try PHCString(parsing: hash).encoded == hash)
    }

    @Test("a hash without v= is version 16, as libargon2 reads it")
    func versionDefault() throws {
        let parsed = try PHCString(parsing: "$argon2i$m=256,t=2,p=1$c29tZXNhbHQ$3pbJ6bVSK5mP3m0hd4HLOw")
        #expect(parsed.version == 0x10)
        #expect(parsed.variant == .argon2i)
    }

    static let valid = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHRzYWx0$OTM5eGdZbGNrZ3d4OTZxcWxnU1RmZw"

    @Test(
        "malformed strings are errors, never crashes",
        arguments: [
            "", "$", "$$", "argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$AAAA", "$argon2id",
            "$argon2id$v=19", "$argon2id$v=19$m=256,t=2,p=1", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$AAAA$", "$argon2id$v=18$m=256,t=2,p=1$c29tZXNhbHQ$AAAAAA",
            "$argon2id$v=19$t=2,m=256,p=1$c29tZXNhbHQ$AAAAAA", "$argon2id$v=19$m=0256,t=2,p=1$c29tZXNhbHQ$AAAAAA",
            "$argon2id$v=19$m=+256,t=2,p=1$c29tZXNhbHQ$AAAAAA", "$argon2id$v=19$m=256,t=2$c29tZXNhbHQ$AAAAAA",
            "$argon2id$v=19$m=256,t=2,p=1,k=1$c29tZXNhbHQ$AAAAAA",
            "$argon2id$v=19$m=99999999999,t=2,p=1$c29tZXNhbHQ$AAAAAA",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ=$AAAAAA", "$argon2id$v=19$m=256,t=2,p=1$c29t*XNhbHQ$AAAAAA",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHR$AAAAAA", "$argon2id$v=19$m=256,t=2,p=1$c2$AAAAAA",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$AA", "$argon2id$v=19$m=256,t=0,p=1$c29tZXNhbHQ$AAAAAA",
            "$argon2id$v=19$m=256,t=2,p=0$c29tZXNhbHQ$AAAAAA", "$argon2id$v=19$m=4,t=2,p=1$c29tZXNhbHQ$AAAAAA",
            "$argon2id$v=19$m=8388608,t=2,p=1$c29tZXNhbHQ$AAAAAA", "$argon2id$v=19$m=256,t=1000,p=1$c29tZXNhbHQ$AAAAAA",
            "$argon2d$v=19$m=256,t=2,p=1$c29tZXNhbHQ$AAAAAA", "$2b$12$abcdefghijklmnopqrstuu",
            "$ARGON2ID$v=19$m=256,t=2,p=1$c29tZXNhbHQ$AAAAAA", "$argon2id$v=19$m=２５６,t=2,p=1$c29tZXNhbHQ$AAAAAA",
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$" + String(repeating: "A", count: 600),
        ]
    )
    func malformed(text: String) throws {
        #expect(throws: PasswordError.self) { _ = try hasher.verify("pw", against: text) }
    }

    @Test("a well-formed hash parses (the malformed list above is near it)")
    func nearMiss() throws {
        #expect(try !hasher.verify("pw", against: Self.valid))
    }

    @Test("error messages never quote the salt or tag")
    func safeMessages() {
        let hash = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$" + "SECRETTAG1"
        let error = #expect(throws: PasswordError.self) { _ = try hasher.verify("pw", against: hash) }
        #expect(error?.message.contains("SECRETTAG") == false)
        #expect(error?.message.contains("c29tZXNhbHQ") == false)
    }

    @Test("weaker hashes are named for what is weaker; equal or stronger ones are not")
    func weaknesses() throws {
        let current = try PasswordHasher(parameters: Argon2Parameters(memoryKiB: 1024, iterations: 3, parallelism: 2))
        let cases: [(Argon2Parameters, [HashWeakness])] = [
            (Argon2Parameters(memoryKiB: 1024, iterations: 3, parallelism: 2), []),
            (Argon2Parameters(memoryKiB: 2048, iterations: 4, parallelism: 2), []),
            (Argon2Parameters(memoryKiB: 1024, iterations: 3, parallelism: 1), []),
            (Argon2Parameters(memoryKiB: 512, iterations: 3, parallelism: 2), [.memory]),
            (Argon2Parameters(memoryKiB: 1024, iterations: 2, parallelism: 2), [.iterations]),
            (
                Argon2Parameters(memoryKiB: 512, iterations: 1, parallelism: 2, tagLength: 16),
                [.memory, .iterations, .tagLength]
            ),
        ]
        for (parameters, expected) in cases {
            let hash = try PasswordHasher(parameters: parameters).hash("pw")
            #expect(try current.weaknesses(of: hash) == expected, "\(parameters)")
            #expect(try current.needsRehash(hash) == !expected.isEmpty)
        }
        let argon2i =
            "$argon2i$m=1024,t=3,p=2$" + PHCString.unpaddedBase64(Array(repeating: 1, count: 16))
            + "$" + PHCString.unpaddedBase64(Array(repeating: 7, count: 32))
        #expect(try current.weaknesses(of: argon2i) == [.algorithm, .version])
    }
}
