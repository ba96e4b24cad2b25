/// Hashes and verifies passwords with Argon2id (libargon2), in PHC string form.
///
/// Passwords are bytes, hashed exactly as given (PAM hands over the terminal's bytes; Mamori does
/// not guess an encoding or normalise). Every call blocks its thread for the full Argon2 cost:
/// servers must run it on a bounded worker pool, never on an event loop.
///
/// For an unknown user, call ``dummyVerify(_:)`` so that the reply takes as long as for a known one.
public struct PasswordHasher: Sendable {
    /// The longest password accepted, in bytes (UTF-8 for typed text). Long enough for any
    /// passphrase; short enough that nobody can make the daemon copy megabytes per attempt.
    public static let maximumPasswordLength = 1024

    /// Parameters for new hashes, and the standard that older hashes are compared against.
    public let parameters: Argon2Parameters
    /// Ceilings applied to stored hashes before they are verified.
    public let limits: Argon2Limits
    private let random: any RandomByteSource

    /// Creates a hasher; throws when `parameters` are outside `limits` or libargon2's range.
    public init(
        parameters: Argon2Parameters = .default, limits: Argon2Limits = .default,
        random: any RandomByteSource = SystemRandomBytes()
    ) throws(PasswordError) {
        try parameters.validate(within: limits)
        self.parameters = parameters
        self.limits = limits
        self.random = random
    }

    /// Hashes a password with a new random salt into a PHC string (`$argon2id$v=19$…`).
    public func hash(_ password: [UInt8]) throws(PasswordError) -> String {
        try hash(password, salt: random.bytes(parameters.saltLength))
    }

    /// Hashes a password with the given salt. Only tests and peers' cross-checks choose a salt.
    package func hash(_ password: [UInt8], salt: [UInt8]) throws(PasswordError) -> String {
        try Self.checkLength(of: password)
        let tag = try Argon2.hash(
            kind: .argon2id, password: password, salt: salt, memoryKiB: parameters.memoryKiB,
            iterations: parameters.iterations, parallelism: parameters.parallelism, tagLength: parameters.tagLength
        )
        return PHCString(
            variant: .argon2id, memoryKiB: parameters.memoryKiB, iterations: parameters.iterations,
            parallelism: parameters.parallelism, salt: salt, tag: tag
        ).encoded
    }

    /// Checks a password against a stored argon2id or argon2i PHC string, whatever its parameters
    /// (within ``limits``). The tags are compared in constant time.
    ///
    /// - Returns: whether the password matches.
    /// - Throws: ``PasswordError`` for an empty or over-long password, or a malformed or
    ///   unsupported hash: a fault to report, not a wrong password.
    public func verify(_ password: [UInt8], against storedHash: String) throws(PasswordError) -> Bool {
        try Self.checkLength(of: password)
        let stored = try PHCString(parsing: storedHash, limits: limits)
        let computed = try Argon2.hash(
            kind: stored.variant == .argon2id ? .argon2id : .argon2i, version: stored.version,
            password: password, salt: stored.salt, memoryKiB: stored.memoryKiB, iterations: stored.iterations,
            parallelism: stored.parallelism, tagLength: stored.tag.count
        )
        return constantTimeEquals(computed, stored.tag)
    }

    /// Spends the time and memory of a real verification at the current parameters, and returns
    /// `false`. Use it when the user does not exist, so that timing does not tell who does.
    ///
    /// It applies the same input checks as ``verify(_:against:)``, so the same inputs throw.
    public func dummyVerify(_ password: [UInt8]) throws(PasswordError) -> Bool {
        try Self.checkLength(of: password)
        let computed = try Argon2.hash(
            kind: .argon2id, password: password, salt: random.bytes(parameters.saltLength),
            memoryKiB: parameters.memoryKiB, iterations: parameters.iterations,
            parallelism: parameters.parallelism, tagLength: parameters.tagLength
        )
        // Compare with a tag nobody knows, exactly as verify would, and discard the answer.
        _ = constantTimeEquals(computed, random.bytes(parameters.tagLength))
        return false
    }

    /// Lists the ways a stored hash is weaker than the current parameters; empty means it is as
    /// strong. After a successful login, a non-empty answer means: rehash the password now.
    ///
    /// A different lane count alone is not a weakness: it changes how the work is spread, not how
    /// much there is.
    public func weaknesses(of storedHash: String) throws(PasswordError) -> [HashWeakness] {
        let stored = try PHCString(parsing: storedHash, limits: limits)
        var found: [HashWeakness] = []
        if stored.variant != .argon2id { found.append(.algorithm) }
        if stored.version != 0x13 { found.append(.version) }
        if stored.memoryKiB < parameters.memoryKiB { found.append(.memory) }
        if stored.iterations < parameters.iterations { found.append(.iterations) }
        if stored.salt.count < parameters.saltLength { found.append(.saltLength) }
        if stored.tag.count < parameters.tagLength { found.append(.tagLength) }
        return found
    }

    /// Whether a stored hash should be replaced at the next successful login.
    public func needsRehash(_ storedHash: String) throws(PasswordError) -> Bool {
        try !weaknesses(of: storedHash).isEmpty
    }

    private static func checkLength(of password: [UInt8]) throws(PasswordError) {
        guard !password.isEmpty else {
            throw PasswordError(.emptyPassword, "The password is empty.")
        }
        guard password.count <= maximumPasswordLength else {
            throw PasswordError(
                .passwordTooLong, "The password is longer than \(maximumPasswordLength) bytes."
            )
        }
    }
}

extension PasswordHasher {
    /// Hashes the UTF-8 bytes of `password`.
    public func hash(_ password: String) throws(PasswordError) -> String { try hash(Array(password.utf8)) }

    /// Verifies the UTF-8 bytes of `password`.
    public func verify(_ password: String, against storedHash: String) throws(PasswordError) -> Bool {
        try verify(Array(password.utf8), against: storedHash)
    }
}

/// One way a stored hash falls short of the current parameters.
public enum HashWeakness: String, Sendable, Hashable, CaseIterable {
    /// argon2i rather than argon2id.
    case algorithm
    /// Argon2 version 0x10 rather than 0x13.
    case version
    /// Less memory than configured.
    case memory
    /// Fewer passes than configured.
    case iterations
    /// A shorter salt than configured.
    case saltLength = "salt-length"
    /// A shorter tag than configured.
    case tagLength = "tag-length"
}
