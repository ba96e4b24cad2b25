import Foundation
import MamoriCore
import MamoriTestSupport
import Testing

@Suite("mamori totp code")
struct TOTPCommandTests {
    @Test("prints oathtool's code for the same secret, time, algorithm, digits and period")
    func matchesOathtool() throws {
        for (algorithm, digits, period) in [("sha1", 6, 30), ("sha256", 8, 30), ("sha512", 7, 60)] {
            let secret = Base32.encode(SystemRandomBytes().bytes(20))
            let ours = try Subprocess.run(
                mamori,
                [
                    "totp", "code", "--secret", secret, "--time", "1700000000", "--algorithm", algorithm,
                    "--digits", "\(digits)", "--period", "\(period)",
                ]
            )
            let peer = try Subprocess.run(
                "oathtool",
                ["--totp=\(algorithm)", "-b", "-d", "\(digits)", "-s", "\(period)s", "-N", "@1700000000", secret]
            )
            try #require(ours.status == 0, "\(ours.stderr)")
            #expect(ours.stdout == peer.stdout, "\(algorithm)")
        }
    }

    @Test("the secret can come from stdin instead of the process list")
    func secretFromStdin() throws {
        let result = try Subprocess.run(
            mamori, ["totp", "code", "--secret-stdin", "--time", "59", "--digits", "8"],
            input: Array("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n".utf8)
        )
        #expect(result.stdout == "94287082\n", "\(result.stderr)")
    }

    @Test("without --time the code is the current one")
    func now() throws {
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        let result = try Subprocess.run(mamori, ["totp", "code", "--secret", secret])
        let totp = try TOTP(secret: Base32.decode(secret))
        let code = result.stdout.trimmingCharacters(in: .newlines)
        // The step may change between the two readings of the clock: accept either neighbour.
        #expect(totp.verify(code, at: Date()).isAccepted)
    }

    @Test("bad base32 exits 2; a missing or doubled secret and bad options are usage errors")
    func errors() throws {
        let bad = try Subprocess.run(mamori, ["totp", "code", "--secret", "NOT-BASE32!"])
        #expect(bad.status == 2)
        #expect(bad.stderr == "mamori: The base32 text may hold only the letters A–Z and the digits 2–7.\n")
        #expect(try Subprocess.run(mamori, ["totp", "code"]).status == 64)
        #expect(try Subprocess.run(mamori, ["totp", "code", "--secret", "AAAA", "--secret-stdin"]).status == 64)
        #expect(try Subprocess.run(mamori, ["totp", "code", "--secret", "GEZDGNBV", "--time", "-5"]).status == 64)
        #expect(
            try Subprocess.run(mamori, ["totp", "code", "--secret", "GEZDGNBV", "--algorithm", "md5"]).status == 64)
        let digits = try Subprocess.run(mamori, ["totp", "code", "--secret", "GEZDGNBV", "--digits", "9"])
        #expect(digits.status == 2)
        #expect(digits.stderr.contains("6, 7 or 8 digits"))
    }

    @Test("--help lists the commands")
    func help() throws {
        let result = try Subprocess.run(mamori, ["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("password"))
        #expect(result.stdout.contains("totp"))
    }
}
