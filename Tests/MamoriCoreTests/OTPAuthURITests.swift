import MamoriCore
import Testing

@Suite("otpauth:// key URIs")
struct OTPAuthURITests {
    let secret = Array("12345678901234567890".utf8)

    @Test("the URI has the label, the unpadded secret and every parameter")
    func format() throws {
        let uri = try OTPAuthURI(issuer: "Mamori", account: "tanaka", secret: secret)
        #expect(
            uri.uri == "otpauth://totp/Mamori:tanaka?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                + "&issuer=Mamori&algorithm=SHA1&digits=6&period=30"
        )
    }

    @Test("spaces, reserved characters and Japanese are percent-encoded as UTF-8")
    func percentEncoding() throws {
        let uri = try OTPAuthURI(
            issuer: "徳之島町 IT&Sec", account: "a+b@x.jp/1?",
            secret: secret, parameters: OTPParameters(algorithm: .sha512, digits: 8, period: 60)
        )
        #expect(
            uri.uri == "otpauth://totp/%E5%BE%B3%E4%B9%8B%E5%B3%B6%E7%94%BA%20IT%26Sec:a%2Bb%40x.jp%2F1%3F"
                + "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=%E5%BE%B3%E4%B9%8B%E5%B3%B6%E7%94%BA%20IT%26Sec"
                + "&algorithm=SHA512&digits=8&period=60"
        )
        #expect(try OTPAuthURI(parsing: uri.uri) == uri)
    }

    @Test("a colon in the issuer or account is refused", arguments: [("a:b", "c"), ("a", "b:c"), ("", "c"), ("a", "")])
    func colon(issuer: String, account: String) {
        #expect(throws: OTPError.self) { try OTPAuthURI(issuer: issuer, account: account, secret: secret) }
    }

    @Test("defaults apply when algorithm, digits and period are missing")
    func defaults() throws {
        let parsed = try OTPAuthURI(parsing: "otpauth://totp/ACME%20Co:john?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        #expect(parsed.issuer == "ACME Co")
        #expect(parsed.account == "john")
        #expect(parsed.parameters == .default)
    }

    @Test(
        "malformed URIs are errors",
        arguments: [
            "", "otpauth://hotp/A:b?secret=GEZDGNBV", "http://totp/A:b?secret=GEZDGNBV",
            "otpauth://totp/A:b", "otpauth://totp/A:b?secret=GEZ1", "otpauth://totp/A:b?secret=GEZDGNBV&issuer=B",
            "otpauth://totp/A:b?secret=GEZDGNBV&algorithm=MD5", "otpauth://totp/A:b?secret=GEZDGNBV&digits=10",
            "otpauth://totp/A:b?secret=GEZDGNBV&secret=GEZDGNBV", "otpauth://totp/A%ZZ:b?secret=GEZDGNBV",
            "otpauth://totp/b?secret=GEZDGNBV", "otpauth://totp/A:b?secret=GEZDGNBV&period=x",
        ]
    )
    func malformed(text: String) {
        #expect(throws: OTPError.self) { try OTPAuthURI(parsing: text) }
    }
}
