/// The HMAC hash behind HOTP and TOTP codes.
public enum OTPAlgorithm: String, Sendable, Hashable, CaseIterable {
    case sha1, sha256, sha512

    /// The secret length RFC 6238's reference vectors use, and what Mamori generates: the hash's
    /// own block-size-independent output size (20, 32, 64 bytes).
    public var secretLength: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha512: 64
        }
    }

    /// The name in a key URI's `algorithm=` (`SHA1`, `SHA256`, `SHA512`).
    public var uriName: String { rawValue.uppercased() }
}

/// How codes are made: algorithm, number of digits, time step. The defaults are RFC 6238's and
/// every authenticator app's: SHA-1, 6 digits, 30 seconds.
public struct OTPParameters: Sendable, Hashable {
    /// The HMAC hash.
    public let algorithm: OTPAlgorithm
    /// Digits in a code: 6, 7 or 8.
    public let digits: Int
    /// Seconds in one TOTP time step.
    public let period: Int

    /// Accepted digit counts. RFC 4226 requires at least 6; 8 is the most a 31-bit value gives
    /// without bias worth mentioning.
    public static let digitRange = 6...8
    /// Accepted periods in seconds.
    public static let periodRange = 5...600

    /// Checked parameters; the defaults are SHA-1, 6 digits, 30 seconds.
    ///
    /// - Throws: ``OTPError`` with code `invalid-parameters` when `digits` or `period` is out of range.
    public init(algorithm: OTPAlgorithm = .sha1, digits: Int = 6, period: Int = 30) throws(OTPError) {
        guard Self.digitRange.contains(digits) else {
            throw OTPError(.invalidParameters, "A one-time code has 6, 7 or 8 digits, not \(digits).")
        }
        guard Self.periodRange.contains(period) else {
            throw OTPError(
                .invalidParameters,
                "The time step must be from \(Self.periodRange.lowerBound) to \(Self.periodRange.upperBound) "
                    + "seconds, not \(period)."
            )
        }
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
    }

    /// SHA-1, 6 digits, 30 seconds.
    public static let `default` = Self(uncheckedAlgorithm: .sha1, digits: 6, period: 30)

    private init(uncheckedAlgorithm: OTPAlgorithm, digits: Int, period: Int) {
        self.algorithm = uncheckedAlgorithm
        self.digits = digits
        self.period = period
    }
}
