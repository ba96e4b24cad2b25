import Foundation
import MamoriCore
import MamoriTestSupport
import Testing

/// The offline credential (docs/town.md, "Logins through a network cut"): made from a window of
/// codes and checked as a login through a cut checks it; its construction recomputed by a peer
/// (Python's argon2-cffi, and hmac for HMAC and RFC 5869's HKDF) from the formulas the documentation gives.
@Suite("offline credentials: tags, verifier and recovery codes")
struct OfflineCredentialTests {
    /// RFC 6238's SHA-1 test seed.
    static let seed = Array("12345678901234567890".utf8)
    static let terminalKey = Array(repeating: UInt8(7), count: 32)
    static let salt = Array("sixteen byte slt".utf8)
    static let argon2 = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)

    static func stretch(_ password: String) throws -> [UInt8] {
        try OfflineKeys.stretch(
            Array(password.utf8), salt: salt, memoryKiB: argon2.memoryKiB, iterations: argon2.iterations,
            parallelism: argon2.parallelism)
    }

    /// A credential for the 20 steps from `first`, with one recovery code.
    static func credential(first: UInt64, lastUsed: UInt64? = nil, recovery: String? = nil) throws -> OfflineCredential
    {
        let device = try TOTP(secret: seed)
        let digests =
            try recovery.map { code in
                [(id: Int64(41), digest: try #require(RecoveryCodes.digest(of: code)))]
            } ?? []
        return OfflineKeys.credential(
            user: "sato", mode: .tags, stretched: try stretch("sato's passphrase"), salt: salt, argon2: argon2,
            terminalKey: terminalKey, firstStep: first, period: 30, digits: 6,
            codes: device.codes(from: first, count: 20),
            recoveryDigests: digests, lastUsedStep: lastUsed, onlineAt: Date(timeIntervalSince1970: Double(first) * 30))
    }

    @Test("a window's codes, concatenated, are the codes oathtool gives for each step")
    func codesOfAWindow() throws {
        let device = try TOTP(secret: Self.seed)
        let first: UInt64 = 59_000_000
        let codes = device.codes(from: first, count: 5)
        for index in 0..<5 {
            let step = first + UInt64(index)
            let peer = try Subprocess.run(
                "oathtool", ["--totp", "-N", "@\(step * 30)", Self.seed.map { String(format: "%02x", $0) }.joined()])
            #expect(
                String(decoding: codes[(index * 6)..<(index * 6 + 6)], as: UTF8.self)
                    == peer.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    @Test("each code is accepted at its step with the password, once; anything else is refused, and why")
    func checks() throws {
        let first: UInt64 = 59_000_000
        let device = try TOTP(secret: Self.seed)
        let code = "ABCD-EFGH-JKMN-PQRS"
        let credential = try Self.credential(first: first, recovery: code)
        func check(
            _ credential: OfflineCredential, _ typed: String?, step: UInt64, key: [UInt8] = Self.terminalKey,
            stretched: [UInt8]? = nil
        ) -> OfflineCheck {
            OfflineKeys.check(
                credential, stretched: stretched ?? Self.stretchedOK, terminalKey: key, code: typed,
                at: Date(timeIntervalSince1970: Double(step * 30 + 10)), window: 1)
        }
        let at = first + 5
        #expect(check(credential, device.code(forStep: at), step: at) == .totp(step: at))
        // The neighbouring steps, as online (window 1); not two steps away.
        #expect(check(credential, device.code(forStep: at + 1), step: at) == .totp(step: at + 1))
        #expect(check(credential, device.code(forStep: at + 2), step: at) == .failed(.code))
        // Outside the tags: refused, even when the code is right for the time.
        #expect(check(credential, device.code(forStep: first + 25), step: first + 25) == .failed(.code))
        // A used step, and an earlier one, are replays.
        var used = credential
        used.lastUsedStep = at
        #expect(check(used, device.code(forStep: at), step: at) == .failed(.replay))
        // A wrong password, another terminal's key: the password does not match.
        #expect(
            check(credential, device.code(forStep: at), step: at, stretched: try Self.stretch("wrong"))
                == .failed(.password))
        #expect(
            check(credential, device.code(forStep: at), step: at, key: Array(repeating: 8, count: 32))
                == .failed(.password))
        // No code, a wrong one.
        #expect(check(credential, nil, step: at) == .failed(.code))
        let wrong = String(format: "%06d", (Int(device.code(forStep: at))! + 1) % 1_000_000)
        #expect(check(credential, wrong, step: at) == .failed(.code))
        // A recovery code, as typed, once.
        #expect(check(credential, code.lowercased(), step: at) == .recoveryCode(index: 0))
        var spent = credential
        spent.recovery[0].usedAt = Date()
        #expect(check(spent, code, step: at) == .failed(.code))
    }

    static let stretchedOK = (try? stretch("sato's passphrase")) ?? []

    @Test("the credential holds no code and no seed")
    func holdsNoSecret() throws {
        let first: UInt64 = 59_000_000
        let credential = try Self.credential(first: first)
        let encoded = String(decoding: try JSONEncoder().encode(credential), as: UTF8.self)
        let device = try TOTP(secret: Self.seed)
        for step in first..<(first + 20) { #expect(!encoded.contains(device.code(forStep: step))) }
        #expect(!encoded.contains("12345678901234567890"))
        #expect(!encoded.contains(Data(Self.seed).base64EncodedString()))
        #expect(credential.tags.count == 20 * OfflineCredential.tagLength)
    }

    @Test(
        "argon2-cffi and hmac (with RFC 5869 HKDF) in Python compute the same verifier and tags from the documented formulas"
    )
    func peer() throws {
        let step: UInt64 = 59_000_007
        let device = try TOTP(secret: Self.seed)
        let credential = try Self.credential(first: 59_000_000)
        let script = """
            import sys, hmac, hashlib
            from argon2.low_level import hash_secret_raw, Type
            password, salt, key, step, code = sys.argv[1].encode(), sys.argv[2].encode(), bytes.fromhex(sys.argv[3]), int(sys.argv[4]), sys.argv[5].encode()
            stretched = hash_secret_raw(password, salt, time_cost=1, memory_cost=64, parallelism=1, hash_len=32, type=Type.ID)
            verifier = hmac.new(key, b"mamori-offline-verifier-v1" + stretched, hashlib.sha256).digest()
            # HKDF-SHA-256 as RFC 5869 defines it (one block of output).
            prk = hmac.new(key, stretched, hashlib.sha256).digest()
            tag_key = hmac.new(prk, b"mamori-offline-tags-v1" + b"\\x01", hashlib.sha256).digest()
            tag = hmac.new(tag_key, step.to_bytes(8, "big") + code, hashlib.sha256).digest()[:16]
            print(verifier.hex()); print(tag.hex())
            """
        let result = try Subprocess.python(
            script,
            [
                "sato's passphrase", String(decoding: Self.salt, as: UTF8.self),
                Self.terminalKey.map { String(format: "%02x", $0) }.joined(), "\(step)", device.code(forStep: step),
            ])
        try #require(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == credential.verifier.map { String(format: "%02x", $0) }.joined())
        let offset = Int(step - credential.firstStep) * OfflineCredential.tagLength
        #expect(
            lines.last
                == credential.tags[offset..<(offset + OfflineCredential.tagLength)].map { String(format: "%02x", $0) }
                .joined())
    }
}
