/// The Argon2 algorithms Mamori can check. New hashes are always argon2id.
public enum Argon2Variant: String, Sendable, Hashable, CaseIterable {
    /// Data-independent memory access; accepted for verification of older hashes.
    case argon2i
    /// The hybrid RFC 9106 recommends for password hashing; every new hash uses it.
    case argon2id
}

/// Cost parameters for new Argon2id hashes.
///
/// `memoryKiB` is in kibibytes (1024 bytes), as in the PHC string's `m=`. The default is RFC 9106's
/// second recommended option (64 MiB, 3 passes, 4 lanes), which takes about 0.1 s here.
public struct Argon2Parameters: Sendable, Hashable, CustomStringConvertible {
    /// Memory in KiB (`m=`).
    public var memoryKiB: UInt32
    /// Number of passes over memory (`t=`).
    public var iterations: UInt32
    /// Number of lanes (`p=`); libargon2 also uses this many threads per hash.
    public var parallelism: UInt32
    /// Salt length in bytes for new hashes; at least 16.
    public var saltLength: Int
    /// Tag (output) length in bytes for new hashes; at least 16.
    public var tagLength: Int

    /// Parameters as given, unchecked; ``PasswordHasher`` refuses them unless ``validate(within:)`` passes.
    public init(memoryKiB: UInt32, iterations: UInt32, parallelism: UInt32, saltLength: Int = 16, tagLength: Int = 32) {
        self.memoryKiB = memoryKiB
        self.iterations = iterations
        self.parallelism = parallelism
        self.saltLength = saltLength
        self.tagLength = tagLength
    }

    /// RFC 9106 section 4, second recommended option: m = 64 MiB, t = 3, p = 4, 16-byte salt,
    /// 32-byte tag. Mamori's default where the policy sets nothing else.
    public static let rfc9106SecondRecommendation = Argon2Parameters(memoryKiB: 65_536, iterations: 3, parallelism: 4)

    /// RFC 9106 section 4, first recommended option: m = 2 GiB, t = 1, p = 4. Too large for a
    /// daemon that hashes several logins at once on a small machine; listed for completeness.
    public static let rfc9106FirstRecommendation = Argon2Parameters(memoryKiB: 2_097_152, iterations: 1, parallelism: 4)

    /// The parameters Mamori uses when nothing else is configured.
    public static let `default` = rfc9106SecondRecommendation

    /// The PHC string's parameter field, `m=…,t=…,p=…`, for logs and messages.
    public var description: String { "m=\(memoryKiB),t=\(iterations),p=\(parallelism)" }

    /// Checks that new hashes could be made with these parameters within `limits`.
    public func validate(within limits: Argon2Limits = .default) throws(PasswordError) {
        guard saltLength >= 16, saltLength <= limits.maximumSaltLength else {
            throw PasswordError(
                .parametersOutOfRange,
                "The salt length must be from 16 to \(limits.maximumSaltLength) bytes; it is \(saltLength)."
            )
        }
        guard tagLength >= 16, tagLength <= limits.maximumTagLength else {
            throw PasswordError(
                .parametersOutOfRange,
                "The tag length must be from 16 to \(limits.maximumTagLength) bytes; it is \(tagLength)."
            )
        }
        try limits.check(memoryKiB: memoryKiB, iterations: iterations, parallelism: parallelism)
    }
}

/// Ceilings on the work one verification may cost, so that a hostile or corrupted PHC string cannot
/// pin a core for minutes or exhaust memory. The floors are libargon2's own.
public struct Argon2Limits: Sendable, Hashable {
    /// Largest `m=` accepted, in KiB.
    public var maximumMemoryKiB: UInt32
    /// Largest `t=` accepted.
    public var maximumIterations: UInt32
    /// Largest `p=` accepted.
    public var maximumParallelism: UInt32
    /// Largest salt accepted, in bytes.
    public var maximumSaltLength: Int
    /// Largest tag accepted, in bytes.
    public var maximumTagLength: Int

    /// Ceilings of one's own; most callers want ``default``.
    public init(
        maximumMemoryKiB: UInt32, maximumIterations: UInt32, maximumParallelism: UInt32,
        maximumSaltLength: Int, maximumTagLength: Int
    ) {
        self.maximumMemoryKiB = maximumMemoryKiB
        self.maximumIterations = maximumIterations
        self.maximumParallelism = maximumParallelism
        self.maximumSaltLength = maximumSaltLength
        self.maximumTagLength = maximumTagLength
    }

    /// 4 GiB of memory, 64 passes, 64 lanes, 64-byte salts and tags: far above any sensible
    /// setting, far below what would take a terminal down.
    public static let `default` = Argon2Limits(
        maximumMemoryKiB: 4 * 1_048_576, maximumIterations: 64, maximumParallelism: 64,
        maximumSaltLength: 64, maximumTagLength: 64
    )

    func check(memoryKiB: UInt32, iterations: UInt32, parallelism: UInt32) throws(PasswordError) {
        guard parallelism >= 1, parallelism <= maximumParallelism else {
            throw PasswordError(
                .parametersOutOfRange, "Parallelism (p) must be from 1 to \(maximumParallelism); it is \(parallelism)."
            )
        }
        guard iterations >= 1, iterations <= maximumIterations else {
            throw PasswordError(
                .parametersOutOfRange, "Iterations (t) must be from 1 to \(maximumIterations); it is \(iterations)."
            )
        }
        // libargon2 needs at least 8 KiB for every lane (two blocks in each of four slices).
        let minimumMemory = 8 * parallelism
        guard memoryKiB >= minimumMemory, memoryKiB <= maximumMemoryKiB else {
            throw PasswordError(
                .parametersOutOfRange,
                "Memory (m) must be from \(minimumMemory) to \(maximumMemoryKiB) KiB for p=\(parallelism); "
                    + "it is \(memoryKiB)."
            )
        }
    }
}
