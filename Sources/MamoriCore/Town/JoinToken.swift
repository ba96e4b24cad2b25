public import Crypto
public import Foundation

/// The one-time token that lets a terminal join a hub (docs/town.md), as one string to copy:
/// `mamori1.SECRET.PIN`.
///
/// - `SECRET` is 256 random bits. The hub keeps only an HMAC of it under a key of its state folder
///   (``secretDigest(key:)``): neither a copy of the hub's database nor someone who can write to it
///   can make a token the hub accepts.
/// - `PIN` is the SHA-256 of the hub's CA public key (its SubjectPublicKeyInfo DER). The joining
///   terminal trusts no hub yet; it takes the CA the hub presents only when that CA's key hashes to
///   the pin, so the secret is sent to the real hub and never to a machine in between.
///
/// Both parts are base64url without padding.
public struct JoinToken: Sendable, Hashable, CustomStringConvertible {
    /// The secret's bytes (32).
    public let secret: [UInt8]
    /// SHA-256 of the hub CA's SubjectPublicKeyInfo DER (32 bytes).
    public let caPin: [UInt8]

    static let prefix = "mamori1"

    /// A new token for the CA with this pin, its secret from `random`.
    public init(caPin: [UInt8], random: any RandomByteSource = SystemRandomBytes()) {
        self.secret = random.bytes(32)
        self.caPin = caPin
    }

    /// Reads a token; nil for anything that is not one (the caller says so without echoing it).
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(
            separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == Self.prefix,
            let secret = Self.decode(parts[1]), secret.count == 32,
            let pin = Self.decode(parts[2]), pin.count == 32
        else { return nil }
        self.secret = secret
        self.caPin = pin
    }

    /// The token as the hub prints it and the terminal sends it: a secret, so ask for it by name.
    public var text: String { "\(Self.prefix).\(Self.encode(secret)).\(Self.encode(caPin))" }

    /// Never the secret: a token interpolated into a log line or an error shows as redacted.
    public var description: String { "mamori1.<redacted>" }

    /// What the hub keeps and looks the token up by: HMAC-SHA256 of the secret under `key`.
    public func secretDigest(key: SymmetricKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: secret, using: key))
    }

    /// The pin of a CA public key, from its SubjectPublicKeyInfo DER.
    public static func pin(subjectPublicKeyInfo: some DataProtocol) -> [UInt8] {
        Array(SHA256.hash(data: subjectPublicKeyInfo))
    }

    /// base64url without padding (RFC 4648 §5).
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Reads base64url without padding; nil for any other character.
    public static func decode(_ text: Substring) -> [UInt8]? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            return nil
        }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
        return Data(base64Encoded: standard).map { Array($0) }
    }
}
