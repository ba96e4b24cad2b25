/// Why a password could not be hashed or checked.
///
/// Messages are safe to show and to log: they never contain the password, the salt or the tag.
public struct PasswordError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case emptyPassword = "empty-password"
            case passwordTooLong = "password-too-long"
            case malformedHash = "malformed-hash"
            case unsupportedAlgorithm = "unsupported-algorithm"
            case parametersOutOfRange = "parameters-out-of-range"
            case libraryFailure = "library-failure"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The password was empty; Mamori never hashes or accepts an empty password.
        public static let emptyPassword = Code(.emptyPassword)
        /// The password is longer than ``PasswordHasher/maximumPasswordLength`` bytes.
        public static let passwordTooLong = Code(.passwordTooLong)
        /// The stored string is not a well-formed PHC string.
        public static let malformedHash = Code(.malformedHash)
        /// The PHC string names an algorithm other than argon2id or argon2i.
        public static let unsupportedAlgorithm = Code(.unsupportedAlgorithm)
        /// Parameters are outside what libargon2 accepts or above Mamori's resource ceilings.
        public static let parametersOutOfRange = Code(.parametersOutOfRange)
        /// libargon2 itself reported an error (for example, memory could not be allocated).
        public static let libraryFailure = Code(.libraryFailure)

        /// The stable name, e.g. `malformed-hash`, for logs and machine-readable output.
        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public let code: Code
    /// A whole sentence a person can act on.
    public let message: String

    /// An error of kind `code`; `message` must not contain the password, the salt or the tag.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, so that printing the error prints the sentence.
    public var description: String { message }
}
