import Foundation
import MamoriCore
import MamoriTestSupport
import Testing

/// Codes and key URIs checked against independent implementations: `oathtool` (liboath) and
/// Python's `pyotp`.
@Suite("TOTP against oathtool and pyotp")
struct OTPPeerTests {
    static let times: [Int64] = [0, 59, 1_111_111_109, 1_234_567_890, 1_700_000_000, 2_000_000_000, 4_102_444_800]

    @Test(
        "codes equal oathtool's for every algorithm, digit count and several periods", arguments: OTPAlgorithm.allCases)
    func oathtool(algorithm: OTPAlgorithm) throws {
        let secret = TOTP.generateSecret(for: algorithm)
        let encoded = Base32.encode(secret)
        for digits in OTPParameters.digitRange {
            for period in [30, 60] {
                let totp = try TOTP(
                    secret: secret, parameters: OTPParameters(algorithm: algorithm, digits: digits, period: period)
                )
                for time in Self.times {
                    let peer = try Subprocess.run(
                        "oathtool",
                        [
                            "--totp=\(algorithm.rawValue)", "-b", "-d", "\(digits)", "-s", "\(period)s", "-N",
                            "@\(time)",
                            encoded,
                        ]
                    )
                    try #require(peer.status == 0, "oathtool failed: \(peer.stderr)")
                    let ours = totp.code(at: Date(timeIntervalSince1970: TimeInterval(time)))
                    #expect(
                        ours == peer.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                        "\(algorithm) digits=\(digits) period=\(period) time=\(time)")
                }
            }
        }
    }

    @Test(
        "the key URI parses in pyotp to the same parameters, and pyotp's codes match", arguments: OTPAlgorithm.allCases)
    func pyotp(algorithm: OTPAlgorithm) throws {
        let secret = TOTP.generateSecret(for: algorithm)
        let parameters = try OTPParameters(algorithm: algorithm, digits: 8, period: 60)
        let uri = try OTPAuthURI(
            issuer: "徳之島町 Mamori", account: "tanaka.hanako@example.jp", secret: secret, parameters: parameters)
        let script = """
            import sys, pyotp
            t = pyotp.parse_uri(sys.argv[1])
            print(t.issuer); print(t.name); print(t.secret); print(t.digest().name)
            print(t.digits); print(t.interval); print(t.at(int(sys.argv[2])))
            """
        let time: Int64 = 1_700_000_000
        let result = try Subprocess.python(script, [uri.uri, "\(time)"])
        try #require(result.status == 0, "pyotp failed: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 7)
        #expect(lines[0] == "徳之島町 Mamori")
        #expect(lines[1] == "tanaka.hanako@example.jp")
        #expect(try Base32.decode(lines[2]) == secret)
        #expect(lines[3] == algorithm.rawValue)
        #expect(lines[4] == "8")
        #expect(lines[5] == "60")
        let totp = try TOTP(secret: secret, parameters: parameters)
        #expect(lines[6] == totp.code(at: Date(timeIntervalSince1970: TimeInterval(time))))
    }

    @Test("a URI that pyotp writes parses in Mamori")
    func pyotpWrites() throws {
        let script = """
            import pyotp, hashlib
            secret = pyotp.random_base32(32)
            print(pyotp.TOTP(secret, digits=7, interval=45, digest=hashlib.sha256)
                  .provisioning_uri(name="sato@example.jp", issuer_name="Board of Education"))
            print(secret)
            """
        let result = try Subprocess.python(script)
        try #require(result.status == 0, "pyotp failed: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let parsed = try OTPAuthURI(parsing: lines[0])
        #expect(parsed.issuer == "Board of Education")
        #expect(parsed.account == "sato@example.jp")
        #expect(parsed.secret == (try Base32.decode(lines[1])))
        #expect(parsed.parameters == (try OTPParameters(algorithm: .sha256, digits: 7, period: 45)))
    }
}
