internal import Crypto
internal import Foundation

/// HOTP (RFC 4226): a code from a shared secret and a counter.
public enum HOTP {
    /// The code for `counter`, left-padded with zeros to `parameters.digits`.
    ///
    /// TOTP (RFC 6238) is this function with the time step as the counter; it uses the algorithm
    /// in `parameters` (RFC 4226 itself defines only SHA-1).
    public static func code(secret: [UInt8], counter: UInt64, parameters: OTPParameters = .default) -> String {
        let value = Generator(secret: secret, algorithm: parameters.algorithm, digits: parameters.digits).value(
            counter: counter)
        let number = String(value)
        return String(repeating: "0", count: parameters.digits - number.count) + number
    }

    /// RFC 4226 section 5.3: HMAC over the big-endian counter, then dynamic truncation to 31 bits.
    static func truncatedValue(secret: [UInt8], counter: UInt64, algorithm: OTPAlgorithm) -> UInt32 {
        Generator(secret: secret, algorithm: algorithm, digits: 6).truncated(counter: counter)
    }

    /// Computes codes for one secret: the key is prepared once and codes stay integers, so that a
    /// verifier checking a window of steps allocates nothing per step.
    struct Generator {
        /// The HMAC with the key already absorbed: copying it skips the key schedule per step.
        private enum PreparedMAC {
            case sha1(HMAC<Insecure.SHA1>)
            case sha256(HMAC<SHA256>)
            case sha512(HMAC<SHA512>)
        }

        private let prepared: PreparedMAC
        /// 10^digits.
        let modulus: UInt32

        init(secret: [UInt8], algorithm: OTPAlgorithm, digits: Int) {
            let key = SymmetricKey(data: secret)
            prepared =
                switch algorithm {
                case .sha1: .sha1(HMAC(key: key))
                case .sha256: .sha256(HMAC(key: key))
                case .sha512: .sha512(HMAC(key: key))
                }
            modulus = (0..<digits).reduce(UInt32(1)) { result, _ in result * 10 }
        }

        /// The code for `counter` as a number below ``modulus``.
        func value(counter: UInt64) -> UInt32 {
            truncated(counter: counter) % modulus
        }

        func truncated(counter: UInt64) -> UInt32 {
            withUnsafeBytes(of: counter.bigEndian) { message in
                switch prepared {
                case .sha1(let mac): Self.truncate(Self.finish(mac, message))
                case .sha256(let mac): Self.truncate(Self.finish(mac, message))
                case .sha512(let mac): Self.truncate(Self.finish(mac, message))
                }
            }
        }

        private static func finish<H: HashFunction>(_ mac: HMAC<H>, _ message: UnsafeRawBufferPointer)
            -> HashedAuthenticationCode<H>
        {
            var copy = mac
            copy.update(data: message)
            return copy.finalize()
        }

        private static func truncate(_ mac: some MessageAuthenticationCode) -> UInt32 {
            mac.withUnsafeBytes { bytes in
                let offset = Int(bytes[bytes.count - 1] & 0x0F)
                return (UInt32(bytes[offset] & 0x7F) << 24) | (UInt32(bytes[offset + 1]) << 16)
                    | (UInt32(bytes[offset + 2]) << 8) | UInt32(bytes[offset + 3])
            }
        }
    }
}
