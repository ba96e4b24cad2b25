/// Why a one-time-password setting, secret or key URI was refused.
///
/// Messages never contain a secret or a code.
public struct OTPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidParameters = "invalid-parameters"
            case invalidSecret = "invalid-secret"
            case malformedBase32 = "malformed-base32"
            case malformedURI = "malformed-uri"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Digits, period, window or algorithm out of range.
        public static let invalidParameters = Code(.invalidParameters)
        /// The secret is empty or too long.
        public static let invalidSecret = Code(.invalidSecret)
        /// The text is not RFC 4648 base32.
        public static let malformedBase32 = Code(.malformedBase32)
        /// The text is not an `otpauth://totp/` key URI Mamori can read.
        public static let malformedURI = Code(.malformedURI)

        /// The stable name, e.g. `malformed-base32`, for logs and machine-readable output.
        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public let code: Code
    /// A whole sentence a person can act on.
    public let message: String

    /// An error of kind `code`; `message` must not contain a secret or a code.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, so that printing the error prints the sentence.
    public var description: String { message }
}
