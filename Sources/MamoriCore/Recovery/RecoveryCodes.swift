internal import Crypto
public import Foundation

/// Single-use recovery codes, for a staff member who has lost the phone with their TOTP key.
///
/// A code is 16 characters of Crockford's base32 (`0–9`, `A–Z` without I, L, O and U), shown as
/// `XXXX-XXXX-XXXX-XXXX`: 80 random bits. Typing is forgiving: case, hyphens and spaces are ignored
/// and the look-alikes I, L (for 1) and O (for 0) are read as the digits they resemble.
///
/// Only a SHA-256 digest of each code is stored. A fast hash is enough here, unlike for passwords:
/// 80 random bits cannot be guessed offline, and a slow hash would make checking a set of ten cost
/// ten Argon2 runs.
public enum RecoveryCodes {
    /// The characters codes are made of.
    public static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    /// Characters in one code (5 bits each).
    public static let length = 16
    /// Codes in a set unless the caller asks otherwise.
    public static let defaultCount = 10

    /// Makes `count` new codes. Show them once; store only ``IssuedRecoveryCode/stored``.
    public static func generate(
        count: Int = defaultCount, using random: any RandomByteSource = SystemRandomBytes()
    ) -> [IssuedRecoveryCode] {
        (0..<max(0, count)).map { _ in
            // 32 symbols: the low five bits of each random byte pick one without bias.
            let symbols = random.bytes(length).map { alphabet[Int($0 & 0x1F)] }
            let code = String(symbols)
            return IssuedRecoveryCode(code: code, stored: StoredRecoveryCode(digest: digest(canonical: code)))
        }
    }

    /// The canonical form of a typed code (upper case, no separators, look-alikes mapped), or nil
    /// when it cannot be a code.
    public static func canonical(_ typed: String) -> String? {
        var symbols: [Character] = []
        for character in typed.uppercased() where character != "-" && character != " " {
            let mapped: Character =
                switch character {
                case "I", "L": "1"
                case "O": "0"
                default: character
                }
            guard alphabet.contains(mapped), symbols.count < length else { return nil }
            symbols.append(mapped)
        }
        return symbols.count == length ? String(symbols) : nil
    }

    /// Finds the unused stored code that `typed` matches, and returns the set with it marked used
    /// at `time`. Every unused digest is compared in constant time, with no early exit.
    ///
    /// - Returns: nil when nothing matches (or the text cannot be a code); the set is then unchanged.
    public static func consume(
        _ typed: String, from stored: [StoredRecoveryCode], at time: Date
    ) -> RecoveryCodeConsumption? {
        guard let code = canonical(typed) else { return nil }
        let candidate = digest(canonical: code)
        var matched: Int?
        for (index, entry) in stored.enumerated() {
            let equal = constantTimeEquals(entry.digest, candidate)
            if equal && entry.usedAt == nil && matched == nil { matched = index }
        }
        guard let matched else { return nil }
        var updated = stored
        updated[matched].usedAt = time
        return RecoveryCodeConsumption(index: matched, codes: updated)
    }

    /// The digest stored for `typed` (read as ``canonical(_:)`` reads it), or nil when it cannot be a code.
    public static func digest(of typed: String) -> [UInt8]? {
        canonical(typed).map(digest(canonical:))
    }

    static func digest(canonical code: String) -> [UInt8] {
        // The prefix keeps these digests from ever equalling a digest made for another purpose.
        Array(SHA256.hash(data: Array("mamori-recovery-code-v1:\(code)".utf8)))
    }
}

/// A code as issued: the text to show once, and what to store.
public struct IssuedRecoveryCode: Sendable {
    /// The code in canonical form (16 characters).
    public let code: String
    /// What the store keeps.
    public let stored: StoredRecoveryCode

    /// The code as shown to a person: `XXXX-XXXX-XXXX-XXXX`.
    public var formatted: String {
        stride(from: 0, to: code.count, by: 4).map { start in
            let begin = code.index(code.startIndex, offsetBy: start)
            return String(code[begin..<code.index(begin, offsetBy: 4)])
        }.joined(separator: "-")
    }
}

/// A recovery code as stored: its digest and when it was used, if it was.
public struct StoredRecoveryCode: Sendable, Hashable {
    /// SHA-256 of the domain-separated canonical code.
    public var digest: [UInt8]
    /// When it was consumed; nil while unused.
    public var usedAt: Date?

    /// A stored code as a store keeps it; a newly issued one is unused.
    public init(digest: [UInt8], usedAt: Date? = nil) {
        self.digest = digest
        self.usedAt = usedAt
    }
}

/// Which stored code a typed code matched, and the set with that one marked used.
public struct RecoveryCodeConsumption: Sendable, Hashable {
    /// The position of the matched code in the set.
    public let index: Int
    /// The whole set after consumption; store it in place of the old one.
    public let codes: [StoredRecoveryCode]
}
