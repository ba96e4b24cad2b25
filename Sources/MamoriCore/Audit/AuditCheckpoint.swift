internal import Crypto
public import Foundation

/// A signed statement "the audit chain's entry N has hash H", made every so many entries and at
/// shutdown with an Ed25519 key kept in the state folder. Whoever rewrites the whole chain
/// without the key cannot make checkpoints that match; whoever cuts entries off the end leaves a
/// checkpoint that names an entry no longer there.
///
/// Each checkpoint also names the one before it (``previous``, the digest of that checkpoint), so
/// the checkpoints form a chain of their own: one deleted from the middle is seen. The newest one
/// is also kept outside the database (the witness), which is what shows a trail cut off at its
/// end together with its last checkpoints.
public struct AuditCheckpoint: Sendable, Hashable {
    /// The sequence number of the last entry covered.
    public let sequence: Int64
    /// That entry's hash.
    public let headHash: [UInt8]
    /// When it was signed; the signature covers it to the millisecond.
    public let time: Date
    /// The ``digest`` of the checkpoint made before this one (32 zero bytes for the first); nil
    /// for checkpoints of the first format, which named none.
    public let previous: [UInt8]?
    /// Ed25519 over ``message``.
    public let signature: [UInt8]

    /// A checkpoint as stored or read back; its signature is not checked here. New checkpoints
    /// come from ``AuditSigner/sign(sequence:headHash:time:previous:)``.
    public init(sequence: Int64, headHash: [UInt8], time: Date, previous: [UInt8]? = nil, signature: [UInt8]) {
        self.sequence = sequence
        self.headHash = headHash
        self.time = time
        self.previous = previous
        self.signature = signature
    }

    /// The bytes signed: a fixed label, the sequence, the head hash in hex, the time in ms and,
    /// from the second format on, the previous checkpoint's digest in hex.
    public var message: [UInt8] { Self.message(sequence: sequence, headHash: headHash, time: time, previous: previous) }

    /// SHA-256 of the signed message and the signature: what the next checkpoint names.
    public var digest: [UInt8] { Array(SHA256.hash(data: message + signature)) }

    /// What the first checkpoint of a trail names as its previous one.
    public static let genesis = [UInt8](repeating: 0, count: 32)

    static func message(sequence: Int64, headHash: [UInt8], time: Date, previous: [UInt8]?) -> [UInt8] {
        let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded())
        let hex = headHash.map { String(format: "%02x", $0) }.joined()
        guard let previous else {
            return Array("mamori-audit-checkpoint-v1\n\(sequence)\n\(hex)\n\(milliseconds)".utf8)
        }
        let previousHex = previous.map { String(format: "%02x", $0) }.joined()
        return Array("mamori-audit-checkpoint-v2\n\(sequence)\n\(hex)\n\(milliseconds)\n\(previousHex)".utf8)
    }
}

/// Signs checkpoints with the daemon's Ed25519 key.
public struct AuditSigner: Sendable {
    private let key: Curve25519.Signing.PrivateKey

    /// Wraps a 32-byte raw Ed25519 private key.
    public init(rawKey: [UInt8]) throws(OTPError) {
        do {
            key = try Curve25519.Signing.PrivateKey(rawRepresentation: rawKey)
        } catch {
            throw OTPError(.invalidSecret, "The audit signing key must be a 32-byte Ed25519 key.")
        }
    }

    /// The verifying key (32 bytes) auditors use.
    public var publicKey: [UInt8] { Array(key.publicKey.rawRepresentation) }

    /// Signs "entry `sequence` has hash `headHash`", naming the checkpoint made before it
    /// (``AuditCheckpoint/genesis`` for the first).
    public func sign(sequence: Int64, headHash: [UInt8], time: Date, previous: [UInt8]) -> AuditCheckpoint {
        let message = AuditCheckpoint.message(sequence: sequence, headHash: headHash, time: time, previous: previous)
        return AuditCheckpoint(
            sequence: sequence, headHash: headHash, time: time, previous: previous, signature: signature(for: message))
    }

    /// Ed25519 over `message` (empty only if the platform's signer fails, which no verifier accepts).
    func signature(for message: [UInt8]) -> [UInt8] {
        (try? key.signature(for: message)).map { Array($0) } ?? []
    }
}

extension AuditCheckpoint {
    /// Checkpoints split by whether their signature holds under `publicKey`.
    struct Validation {
        let valid: [AuditCheckpoint]
        let forged: [AuditCheckpoint]
    }

    struct BadKey: Error {}

    static func validating(_ checkpoints: [AuditCheckpoint], publicKey: [UInt8]) -> Result<Validation, BadKey> {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else {
            return .failure(BadKey())
        }
        var valid: [AuditCheckpoint] = []
        var forged: [AuditCheckpoint] = []
        for checkpoint in checkpoints {
            if key.isValidSignature(checkpoint.signature, for: checkpoint.message) {
                valid.append(checkpoint)
            } else {
                forged.append(checkpoint)
            }
        }
        return .success(Validation(valid: valid, forged: forged))
    }
}
