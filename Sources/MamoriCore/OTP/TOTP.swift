public import Foundation

/// TOTP (RFC 6238): HOTP over the number of time steps since the Unix epoch.
///
/// A value holds the shared secret: never log it or put it in a reply.
public struct TOTP: Sendable {
    /// The shared secret (the seed), as bytes.
    public let secret: [UInt8]
    /// Algorithm, digits and period.
    public let parameters: OTPParameters

    /// The longest secret accepted, in bytes.
    public static let maximumSecretLength = 128
    /// The widest verification window accepted, in steps either side of now.
    public static let maximumWindow = 10

    /// Wraps an existing secret. RFC 4226 asks for at least 128 bits; secrets Mamori makes
    /// (``generateSecret(for:using:)``) have the hash's output size, but secrets from elsewhere
    /// (a diagnostic of another app's key) are accepted from one byte up.
    public init(secret: [UInt8], parameters: OTPParameters = .default) throws(OTPError) {
        guard !secret.isEmpty, secret.count <= Self.maximumSecretLength else {
            throw OTPError(.invalidSecret, "A TOTP secret must be 1 to \(Self.maximumSecretLength) bytes long.")
        }
        self.secret = secret
        self.parameters = parameters
    }

    /// A new random secret of the length RFC 6238 uses for `algorithm` (20, 32 or 64 bytes).
    public static func generateSecret(
        for algorithm: OTPAlgorithm, using random: any RandomByteSource = SystemRandomBytes()
    ) -> [UInt8] {
        random.bytes(algorithm.secretLength)
    }

    /// The time step that `time` falls in, or nil before the Unix epoch.
    public func step(at time: Date) -> UInt64? {
        let seconds = time.timeIntervalSince1970.rounded(.down)
        guard seconds >= 0, seconds < 1e18 else { return nil }
        return UInt64(seconds) / UInt64(parameters.period)
    }

    /// The code for the time step `step`.
    public func code(forStep step: UInt64) -> String {
        HOTP.code(secret: secret, counter: step, parameters: parameters)
    }

    /// The codes of `count` steps from `first`, as ASCII digits, `digits` per step, concatenated:
    /// a hub's offline grant (the key is prepared once; nothing is allocated per step).
    public func codes(from first: UInt64, count: Int) -> [UInt8] {
        let generator = HOTP.Generator(secret: secret, algorithm: parameters.algorithm, digits: parameters.digits)
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: max(0, count) * parameters.digits)
        for index in 0..<max(0, count) {
            var value = generator.value(counter: first + UInt64(index))
            var position = (index + 1) * parameters.digits - 1
            while value > 0 {
                out[position] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
                position -= 1
            }
        }
        return out
    }

    /// The code valid at `time`, or nil before the Unix epoch.
    public func code(at time: Date) -> String? {
        step(at: time).map(code(forStep:))
    }

    /// Checks a code typed at `time` against the steps within `window` of it.
    ///
    /// Every candidate in the window is computed and compared in constant time, with no early
    /// exit, so timing does not tell which step (if any) matched. Spaces in the typed code are
    /// ignored. A code matching a step at or before `lastAcceptedStep` is a replay: each step is
    /// accepted once at most, so the caller must store the returned step.
    ///
    /// - Parameter window: steps accepted either side of the current one (default 1, RFC 6238's
    ///   recommended allowance for clock drift and typing time); at most ``maximumWindow``.
    public func verify(
        _ typedCode: String, at time: Date, window: Int = 1, lastAcceptedStep: UInt64? = nil
    ) -> TOTPVerification {
        let typed = typedCode.utf8.filter { $0 != UInt8(ascii: " ") }
        guard typed.count == parameters.digits,
            typed.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let now = step(at: time)
        else { return .malformed }
        // Codes are compared as numbers: with the digit count fixed, equal numbers are equal codes.
        let typedValue = typed.reduce(UInt32(0)) { $0 * 10 + UInt32($1 - UInt8(ascii: "0")) }
        let generator = HOTP.Generator(secret: secret, algorithm: parameters.algorithm, digits: parameters.digits)
        let window = UInt64(min(max(window, 0), Self.maximumWindow))
        let earliest = now >= window ? now - window : 0
        var fresh: UInt64?
        var replayed: UInt64?
        for candidate in earliest...(now + window) {
            // A whole-word XOR: no early exit on the first differing digit.
            let matches = (generator.value(counter: candidate) ^ typedValue) == 0
            let isReplay = lastAcceptedStep.map { candidate <= $0 } ?? false
            if matches && isReplay { replayed = candidate }
            if matches && !isReplay && fresh == nil { fresh = candidate }
        }
        if let fresh { return .accepted(step: fresh) }
        if let replayed { return .replayed(step: replayed) }
        return .rejected
    }
}

/// The outcome of checking a TOTP code. Only `accepted` lets a login through; the others exist so
/// the audit trail can say what went wrong, never so a reply can.
public enum TOTPVerification: Sendable, Hashable {
    /// The code matched this step, which is later than the last accepted one: store it.
    case accepted(step: UInt64)
    /// The code matched a step already used (at or before the last accepted step).
    case replayed(step: UInt64)
    /// The code matched no step in the window.
    case rejected
    /// The text was not a code of the expected number of digits (or the time was before 1970).
    case malformed

    /// Whether the login may proceed.
    public var isAccepted: Bool {
        if case .accepted = self { true } else { false }
    }
}
