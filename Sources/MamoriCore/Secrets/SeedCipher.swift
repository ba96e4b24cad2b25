internal import Crypto
import Foundation

/// Encrypts TOTP seeds for storage with AES-256-GCM under a key kept in its own file.
///
/// The user's name is bound in as associated data, so a sealed seed copied to another user's row
/// does not open. A stolen database without the key file yields no seed.
public struct SeedCipher: Sendable {
    /// Key length in bytes.
    public static let keyLength = 32
    private let key: [UInt8]

    /// Wraps a 32-byte key; throws for any other length.
    public init(key: [UInt8]) throws(OTPError) {
        guard key.count == Self.keyLength else {
            throw OTPError(.invalidSecret, "The seed key must be \(Self.keyLength) bytes long.")
        }
        self.key = key
    }

    /// Seals `seed` for `user`: nonce, ciphertext and tag, as one byte string.
    public func seal(_ seed: [UInt8], for user: String) throws(OTPError) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(seed, using: SymmetricKey(data: key), authenticating: Array(user.utf8))
            guard let combined = box.combined else { throw OTPError(.invalidSecret, "The seed could not be sealed.") }
            return Array(combined)
        } catch let error as OTPError {
            throw error
        } catch {
            throw OTPError(.invalidSecret, "The seed could not be sealed.")
        }
    }

    /// Opens a sealed seed of `user`; throws when the key, the user or the bytes are wrong.
    public func open(_ sealed: [UInt8], for user: String) throws(OTPError) -> [UInt8] {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return Array(try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: Array(user.utf8)))
        } catch {
            throw OTPError(.invalidSecret, "The stored seed cannot be opened with this key.")
        }
    }
}
