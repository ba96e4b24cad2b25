internal import CArgon2

/// The raw Argon2 function of libargon2's context API, with every input RFC 9106 defines.
///
/// It blocks the calling thread for the whole computation (about 0.1 s at the default parameters):
/// servers must call it from a bounded worker pool, never from an event loop. Parameters are
/// checked by libargon2; callers check them against ``Argon2Limits`` first.
package enum Argon2 {
    /// The three Argon2 types; argon2d exists here only for RFC 9106's test vectors.
    package enum Kind: Sendable {
        case argon2d, argon2i, argon2id

        var cType: argon2_type {
            switch self {
            case .argon2d: Argon2_d
            case .argon2i: Argon2_i
            case .argon2id: Argon2_id
            }
        }
    }

    /// Computes an Argon2 tag of `tagLength` bytes.
    ///
    /// `threads` is how many threads libargon2 may start for this one hash (at most `parallelism`).
    package static func hash(
        kind: Kind, version: UInt32 = 0x13, password: [UInt8], salt: [UInt8], secret: [UInt8] = [],
        associatedData: [UInt8] = [], memoryKiB: UInt32, iterations: UInt32, parallelism: UInt32,
        threads: UInt32? = nil, tagLength: Int
    ) throws(PasswordError) -> [UInt8] {
        var tag = [UInt8](repeating: 0, count: tagLength)
        var password = password
        var salt = salt
        var secret = secret
        var associatedData = associatedData
        let status = tag.withUnsafeMutableBufferPointer { out in
            password.withUnsafeMutableBufferPointer { pwd in
                salt.withUnsafeMutableBufferPointer { saltBuffer in
                    secret.withUnsafeMutableBufferPointer { secretBuffer in
                        associatedData.withUnsafeMutableBufferPointer { adBuffer in
                            var context = argon2_context(
                                out: out.baseAddress, outlen: UInt32(out.count),
                                pwd: pwd.baseAddress, pwdlen: UInt32(pwd.count),
                                salt: saltBuffer.baseAddress, saltlen: UInt32(saltBuffer.count),
                                secret: secretBuffer.baseAddress, secretlen: UInt32(secretBuffer.count),
                                ad: adBuffer.baseAddress, adlen: UInt32(adBuffer.count),
                                t_cost: iterations, m_cost: memoryKiB, lanes: parallelism,
                                threads: min(threads ?? parallelism, parallelism), version: version,
                                allocate_cbk: nil, free_cbk: nil,
                                // Wipe libargon2's copies of the password and secret once absorbed.
                                flags: mamori_argon2_flag_clear_password | mamori_argon2_flag_clear_secret
                            )
                            return argon2_ctx(&context, kind.cType)
                        }
                    }
                }
            }
        }
        guard status == ARGON2_OK.rawValue else {
            let reason = argon2_error_message(status).map { String(cString: $0) } ?? "error \(status)"
            throw PasswordError(.libraryFailure, "libargon2 could not compute the hash: \(reason).")
        }
        return tag
    }
}
