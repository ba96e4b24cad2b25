import Foundation

/// The `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…` key URI
/// that authenticator apps read from a QR code (Google Authenticator's "Key Uri Format").
///
/// The value holds the secret: the URI is shown once, at enrolment, and never logged.
public struct OTPAuthURI: Sendable, Hashable {
    /// Who issued the key (shown by the app above the code), e.g. `Tokunoshima Mamori`.
    public let issuer: String
    /// The account within the issuer, e.g. a login name.
    public let account: String
    /// The shared secret.
    public let secret: [UInt8]
    /// Algorithm, digits and period.
    public let parameters: OTPParameters

    /// Creates a key URI; issuer and account must be non-empty and contain no colon, since the
    /// label separates them with one.
    public init(issuer: String, account: String, secret: [UInt8], parameters: OTPParameters = .default)
        throws(OTPError)
    {
        for (name, value) in [("issuer", issuer), ("account", account)] {
            guard !value.isEmpty, !value.contains(":") else {
                throw OTPError(.malformedURI, "The \(name) of a key URI must be non-empty and contain no colon.")
            }
        }
        _ = try TOTP(secret: secret, parameters: parameters)
        self.issuer = issuer
        self.account = account
        self.secret = secret
        self.parameters = parameters
    }

    /// The URI text, every label and value percent-encoded except RFC 3986's unreserved
    /// characters (so a space is `%20`, never `+`, and non-ASCII names are UTF-8 escapes).
    public var uri: String {
        let label = Self.percentEncoded(issuer) + ":" + Self.percentEncoded(account)
        let query = [
            "secret=" + Base32.encode(secret),
            "issuer=" + Self.percentEncoded(issuer),
            "algorithm=" + parameters.algorithm.uriName,
            "digits=\(parameters.digits)",
            "period=\(parameters.period)",
        ]
        return "otpauth://totp/" + label + "?" + query.joined(separator: "&")
    }

    /// Reads a key URI. Missing `algorithm`, `digits` and `period` take their defaults; an
    /// `issuer=` must agree with the label's issuer prefix; unknown parameters (such as `image`)
    /// are ignored.
    public init(parsing text: String) throws(OTPError) {
        let prefix = "otpauth://totp/"
        guard text.count <= 2048, text.lowercased().hasPrefix(prefix) else {
            throw OTPError(.malformedURI, "A TOTP key URI starts with 'otpauth://totp/'.")
        }
        let rest = text.dropFirst(prefix.count)
        let encodedLabel = rest.prefix { $0 != "?" }
        let queryText = rest.dropFirst(encodedLabel.count + 1)
        guard let label = String(encodedLabel).removingPercentEncoding, !label.isEmpty else {
            throw OTPError(.malformedURI, "The label of the key URI is missing or badly percent-encoded.")
        }
        var query: [String: String] = [:]
        for pair in queryText.split(separator: "&") {
            let key = String(pair.prefix { $0 != "=" })
            guard let value = String(pair.dropFirst(key.count + 1)).removingPercentEncoding else {
                throw OTPError(.malformedURI, "The key URI parameter '\(key)' is badly percent-encoded.")
            }
            guard query.updateValue(value, forKey: key.lowercased()) == nil else {
                throw OTPError(.malformedURI, "The key URI gives the parameter '\(key)' twice.")
            }
        }
        let labelParts = label.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let account = String(labelParts.last ?? "").trimmingCharacters(in: .whitespaces)
        let labelIssuer = labelParts.count == 2 ? String(labelParts[0]) : nil
        if let labelIssuer, let queryIssuer = query["issuer"], labelIssuer != queryIssuer {
            throw OTPError(.malformedURI, "The issuer in the label and the issuer parameter differ.")
        }
        guard let issuer = labelIssuer ?? query["issuer"] else {
            throw OTPError(.malformedURI, "The key URI names no issuer.")
        }
        guard let encodedSecret = query["secret"] else {
            throw OTPError(.malformedURI, "The key URI has no secret parameter.")
        }
        let algorithmName = query["algorithm"] ?? "SHA1"
        guard let algorithm = OTPAlgorithm.allCases.first(where: { $0.uriName == algorithmName.uppercased() }) else {
            throw OTPError(.malformedURI, "The key URI's algorithm must be SHA1, SHA256 or SHA512.")
        }
        guard let digits = Int(query["digits"] ?? "6"), let period = Int(query["period"] ?? "30") else {
            throw OTPError(.malformedURI, "The key URI's digits and period must be whole numbers.")
        }
        try self.init(
            issuer: issuer, account: account, secret: Base32.decode(encodedSecret),
            parameters: OTPParameters(algorithm: algorithm, digits: digits, period: period)
        )
    }

    private static let unreserved = Set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8
    )

    private static func percentEncoded(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            if unreserved.contains(byte) {
                output.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                output += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return output
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: Swift.max(0, width - count)) + self
    }
}
