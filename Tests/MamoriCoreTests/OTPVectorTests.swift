import Foundation
import Testing

@testable import MamoriCore

/// Published vectors: RFC 4226 Appendix D (HOTP) and RFC 6238 Appendix B (TOTP).
@Suite("HOTP and TOTP published vectors")
struct OTPVectorTests {
    static let rfc4226Secret = Array("12345678901234567890".utf8)

    /// RFC 4226 Appendix D: counter, truncated 31-bit value, 6-digit code.
    static let rfc4226: [(UInt64, UInt32, String)] = [
        (0, 1_284_755_224, "755224"), (1, 1_094_287_082, "287082"), (2, 137_359_152, "359152"),
        (3, 1_726_969_429, "969429"), (4, 1_640_338_314, "338314"), (5, 868_254_676, "254676"),
        (6, 1_918_287_922, "287922"), (7, 82_162_583, "162583"), (8, 673_399_871, "399871"),
        (9, 645_520_489, "520489"),
    ]

    @Test("RFC 4226 Appendix D", arguments: rfc4226)
    func hotp(counter: UInt64, truncated: UInt32, code: String) {
        #expect(HOTP.truncatedValue(secret: Self.rfc4226Secret, counter: counter, algorithm: .sha1) == truncated)
        #expect(HOTP.code(secret: Self.rfc4226Secret, counter: counter) == code)
    }

    /// RFC 6238 Appendix B: time, then the 8-digit codes for SHA-1, SHA-256 and SHA-512.
    static let rfc6238: [(Int64, String, String, String)] = [
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ]

    /// The Appendix B seeds: the ASCII digits repeated to 20, 32 and 64 bytes.
    static func rfc6238Seed(_ algorithm: OTPAlgorithm) -> [UInt8] {
        Array(String(repeating: "1234567890", count: 7).utf8.prefix(algorithm.secretLength))
    }

    @Test("RFC 6238 Appendix B", arguments: rfc6238)
    func totp(time: Int64, sha1: String, sha256: String, sha512: String) throws {
        for (algorithm, expected) in [(OTPAlgorithm.sha1, sha1), (.sha256, sha256), (.sha512, sha512)] {
            let totp = try TOTP(
                secret: Self.rfc6238Seed(algorithm), parameters: OTPParameters(algorithm: algorithm, digits: 8)
            )
            let moment = Date(timeIntervalSince1970: TimeInterval(time))
            #expect(totp.code(at: moment) == expected, "\(algorithm) at \(time)")
            #expect(totp.verify(expected, at: moment) == .accepted(step: UInt64(time) / 30))
        }
    }
}
