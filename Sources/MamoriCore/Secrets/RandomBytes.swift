/// A source of random bytes for salts, TOTP seeds and recovery codes.
///
/// Production code uses ``SystemRandomBytes``; tests may pass a fixed source to compare output with
/// a peer byte for byte. Anything that makes secrets must be a cryptographically secure source.
public protocol RandomByteSource: Sendable {
    /// Returns `count` random bytes.
    func bytes(_ count: Int) -> [UInt8]
}

/// The operating system's CSPRNG (`getrandom(2)` on Linux, through the standard library's
/// `SystemRandomNumberGenerator`, which is documented as cryptographically secure).
public struct SystemRandomBytes: RandomByteSource {
    /// The system source; it holds no state, so make one wherever it is needed.
    public init() {}

    /// Returns `count` bytes from the operating system's CSPRNG; none when `count` is not positive.
    public func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<max(0, count)).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
