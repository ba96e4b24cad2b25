public import Foundation
internal import Crypto

/// A signed statement "the audit chain's entry N has hash H", made every so many entries and at
/// shutdown with an Ed25519 key kept in the state folder. Whoever rewrites the whole chain
/// without the key cannot make checkpoints that match; whoever cuts entries off the end leaves a
/// checkpoint that names an entry no longer there.
public struct AuditCheckpoint: Sendable, Hashable {
    /// The sequence number of the last entry covered.
    public let sequence: Int64
    /// That entry's hash.
    public let headHash: [UInt8]
    public let time: Date
    /// Ed25519 over ``message``.
    public let signature: [UInt8]

    public init(sequence: Int64, headHash: [UInt8], time: Date, signature: [UInt8]) {
        self.sequence = sequence
        self.headHash = headHash
        self.time = time
        self.signature = signature
    }

    /// The bytes signed: a fixed label, the sequence, the head hash in hex and the time in ms.
    public var message: [UInt8] { Self.message(sequence: sequence, headHash: headHash, time: time) }

    static func message(sequence: Int64, headHash: [UInt8], time: Date) -> [UInt8] {
        let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded())
        let hex = headHash.map { String(format: "%02x", $0) }.joined()
        return Array("mamori-audit-checkpoint-v1\n\(sequence)\n\(hex)\n\(milliseconds)".utf8)
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

    public func sign(sequence: Int64, headHash: [UInt8], time: Date) -> AuditCheckpoint {
        let message = AuditCheckpoint.message(sequence: sequence, headHash: headHash, time: time)
        let signature = (try? key.signature(for: message)).map { Array($0) } ?? []
        return AuditCheckpoint(sequence: sequence, headHash: headHash, time: time, signature: signature)
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
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return .failure(BadKey()) }
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
