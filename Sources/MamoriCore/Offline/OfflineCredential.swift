internal import Crypto
public import Foundation

/// What a member terminal keeps so that one user can log in there while the hub cannot be reached
/// (docs/town.md, "Logins through a network cut"). It is made at that user's online login on this
/// terminal, from the password the user typed and what the hub's reply sent, and holds no seed,
/// no code and nothing a password can be guessed against without the terminal's own key:
///
/// - `verifier`: HMAC-SHA-256 under the terminal key of the password's Argon2id output (the
///   policy's parameters, a salt of its own). Without the terminal key a copied credential
///   cannot even be tried.
/// - `tags`: for each coming TOTP step, the first 16 bytes of HMAC-SHA-256(tag key, step ‖ code),
///   in step order from `firstStep`. The tag key is derived (HKDF-SHA-256) from the Argon2id
///   output and the terminal key, so checking a code needs both the password and the terminal.
/// - `recovery`: the user's unused recovery codes the same way: HMAC of each code's stored
///   digest under a second derived key, with the hub's identifier, to consume it at the hub later.
///
/// Everything a login through the cut does to it (steps used, codes consumed, failures, a local
/// lock) is recorded in it until the hub has heard of it (``pending``).
public struct OfflineCredential: Codable, Sendable, Hashable {
    /// The user's login name.
    public var user: String
    /// What the zone accepted when it was made: ``OfflineLogin/tags`` or ``OfflineLogin/passwordOnly``.
    public var mode: String
    /// The Argon2id salt (16 random bytes, this credential's own).
    public var salt: Data
    /// The Argon2id parameters it was made with: checks use these, whatever the policy says now.
    public var memoryKiB: UInt32
    /// The Argon2id iterations it was made with.
    public var iterations: UInt32
    /// The Argon2id lanes it was made with.
    public var parallelism: UInt32
    /// HMAC-SHA-256(terminal key, "mamori-offline-verifier-v1" ‖ Argon2id output).
    public var verifier: Data
    /// The first step ``tags`` cover, the TOTP period and digits the codes had.
    public var firstStep: UInt64
    /// The TOTP period, in seconds.
    public var period: Int
    /// The number of digits of each code.
    public var digits: Int
    /// ``tagLength`` bytes per step from ``firstStep``.
    public var tags: Data
    /// The user's unused recovery codes, keyed.
    public var recovery: [RecoveryTag]
    /// The newest step accepted for this user, online or here: a code for it or any earlier step
    /// is a replay.
    public var lastUsedStep: UInt64?
    /// When the user last logged in online on this terminal: offline logins stop
    /// `maximum-age-days` after it.
    public var onlineAt: Date
    /// Offline failures since the last success or the last online login.
    public var failures: Int
    /// When the offline failures reached the policy's limit: no offline login until the hub is back.
    public var lockedAt: Date?
    /// What happened here offline that the hub has not acknowledged yet.
    public var pending: [OfflineEvent]

    /// One recovery code as kept: the hub's identifier and the keyed digest; `usedAt` once consumed here.
    public struct RecoveryTag: Codable, Sendable, Hashable {
        /// The hub's identifier of the code.
        public var id: Int64
        /// HMAC-SHA-256 of the code's stored digest under the recovery key.
        public var tag: Data
        /// When a login through a cut used it here; nil while unused.
        public var usedAt: Date?
    }

    /// Bytes kept per TOTP step.
    public static let tagLength = 16

    /// Whether a code for `step` is among the tags.
    public func covers(step: UInt64) -> Bool {
        step >= firstStep && step - firstStep < UInt64(tags.count / Self.tagLength)
    }

    /// The steps the tags cover, as a closed range; nil when there are none.
    public var lastStep: UInt64? {
        let count = tags.count / Self.tagLength
        return count == 0 ? nil : firstStep + UInt64(count - 1)
    }
}

/// One thing a terminal did with a user's offline credential, kept until the hub acknowledges it.
public struct OfflineEvent: Codable, Sendable, Hashable {
    /// `login`, `failure` or `lock`.
    public var kind: String
    /// When.
    public var at: Date
    /// For a login with a TOTP code: its step.
    public var step: UInt64?
    /// For a login with a recovery code: the hub's identifier of the code.
    public var recoveryCode: Int64?
    /// For a failure: why (a ``LoginFailure`` raw value).
    public var reason: String?
    /// A number of its own, so that an acknowledgement names exactly what the hub took.
    public var sequence: Int64
    /// The user's last online login on this terminal when it happened.
    public var onlineAt: Date

    /// An event from its parts.
    public init(
        kind: String, at: Date, step: UInt64? = nil, recoveryCode: Int64? = nil, reason: String? = nil,
        sequence: Int64, onlineAt: Date
    ) {
        self.onlineAt = onlineAt
        self.kind = kind
        self.at = at
        self.step = step
        self.recoveryCode = recoveryCode
        self.reason = reason
        self.sequence = sequence
    }
}

/// What a check of a password and a second factor against an ``OfflineCredential`` found.
public enum OfflineCheck: Sendable, Hashable {
    /// The password matched and so did a TOTP code, for this step.
    case totp(step: UInt64)
    /// The password matched and so did the unused recovery code at this position.
    case recoveryCode(index: Int)
    /// The password matched, and the zone asks for nothing else offline.
    case passwordOnly
    /// It did not let the user in, for this reason (for the record, never for the reply).
    case failed(LoginFailure)
}

/// The keys and the checks behind ``OfflineCredential``; the Argon2id run itself is the caller's
/// (on its bounded pool), through ``stretch(_:salt:memoryKiB:iterations:parallelism:)``.
public enum OfflineKeys {
    /// Bytes of the Argon2id output.
    public static let stretchedLength = 32

    /// The password's Argon2id output, the secret everything else is derived from.
    public static func stretch(
        _ password: [UInt8], salt: [UInt8], memoryKiB: UInt32, iterations: UInt32, parallelism: UInt32
    ) throws -> [UInt8] {
        try Argon2.hash(
            kind: .argon2id, password: password, salt: salt, memoryKiB: memoryKiB, iterations: iterations,
            parallelism: parallelism, tagLength: stretchedLength)
    }

    /// The verifier a credential keeps for `stretched` on the terminal whose key is `terminalKey`.
    public static func verifier(_ stretched: [UInt8], terminalKey: [UInt8]) -> [UInt8] {
        var message = Array("mamori-offline-verifier-v1".utf8)
        message += stretched
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: terminalKey)))
    }

    /// A key for `purpose` (`tags`, `recovery`) from the password's output and the terminal's key.
    static func derived(_ stretched: [UInt8], terminalKey: [UInt8], purpose: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: stretched), salt: terminalKey,
            info: Array("mamori-offline-\(purpose)-v1".utf8), outputByteCount: 32)
    }

    /// The tag of `code` at `step` under `key`.
    static func tag(step: UInt64, code: some Collection<UInt8>, key: SymmetricKey) -> [UInt8] {
        var message = withUnsafeBytes(of: step.bigEndian) { Array($0) }
        message += code
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: key).prefix(OfflineCredential.tagLength))
    }

    /// Makes the credential for `user` from the password's output and what the hub sent: the
    /// codes of the steps from `firstStep` (each `digits` long, concatenated), which are dropped
    /// here once tagged, and the user's unused recovery codes' digests.
    public static func credential(
        user: String, mode: OfflineLogin, stretched: [UInt8], salt: [UInt8], argon2: Argon2Parameters,
        terminalKey: [UInt8], firstStep: UInt64, period: Int, digits: Int, codes: [UInt8],
        recoveryDigests: [(id: Int64, digest: [UInt8])], lastUsedStep: UInt64?, onlineAt: Date
    ) -> OfflineCredential {
        var tags = Data()
        if mode == .tags, digits > 0 {
            let key = derived(stretched, terminalKey: terminalKey, purpose: "tags")
            tags.reserveCapacity(codes.count / digits * OfflineCredential.tagLength)
            var step = firstStep
            var start = 0
            while start + digits <= codes.count {
                tags.append(contentsOf: tag(step: step, code: codes[start..<(start + digits)], key: key))
                step += 1
                start += digits
            }
        }
        let recoveryKey = derived(stretched, terminalKey: terminalKey, purpose: "recovery")
        let recovery =
            mode == .tags
            ? recoveryDigests.map { code in
                OfflineCredential.RecoveryTag(
                    id: code.id,
                    tag: Data(HMAC<SHA256>.authenticationCode(for: code.digest, using: recoveryKey)), usedAt: nil)
            } : []
        return OfflineCredential(
            user: user, mode: mode.rawValue, salt: Data(salt), memoryKiB: argon2.memoryKiB,
            iterations: argon2.iterations, parallelism: argon2.parallelism,
            verifier: Data(verifier(stretched, terminalKey: terminalKey)), firstStep: firstStep, period: period,
            digits: digits, tags: tags, recovery: recovery, lastUsedStep: lastUsedStep, onlineAt: onlineAt,
            failures: 0, lockedAt: nil, pending: [])
    }

    /// Checks the password's output and the typed second factor against `credential` at `time`.
    /// Every comparison is made in constant time, and every step in the window and every
    /// recovery code is compared, with no early exit. A code for a step at or before
    /// ``OfflineCredential/lastUsedStep`` is a replay; a code for a step the tags do not cover is
    /// wrong. `window`: steps accepted either side of the current one, as online.
    public static func check(
        _ credential: OfflineCredential, stretched: [UInt8], terminalKey: [UInt8], code typed: String?,
        at time: Date, window: Int
    ) -> OfflineCheck {
        let passwordMatches = constantTimeEquals(verifier(stretched, terminalKey: terminalKey), credential.verifier)
        guard passwordMatches else { return .failed(.password) }
        if credential.mode == OfflineLogin.passwordOnly.rawValue { return .passwordOnly }
        guard credential.mode == OfflineLogin.tags.rawValue else { return .failed(.password) }
        let typed = Array((typed ?? "").utf8.filter { $0 != UInt8(ascii: " ") })
        guard !typed.isEmpty else { return .failed(.code) }
        if typed.count == credential.digits, typed.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            credential.period > 0
        {
            let now = UInt64(max(0, time.timeIntervalSince1970)) / UInt64(credential.period)
            let key = derived(stretched, terminalKey: terminalKey, purpose: "tags")
            let spread = UInt64(min(max(window, 0), TOTP.maximumWindow))
            var fresh: UInt64?
            var replayed = false
            for step in (now >= spread ? now - spread : 0)...(now + spread) where credential.covers(step: step) {
                let offset = Int(step - credential.firstStep) * OfflineCredential.tagLength
                let stored = credential.tags[
                    credential.tags.startIndex + offset..<credential.tags.startIndex + offset
                        + OfflineCredential.tagLength]
                let matches = constantTimeEquals(tag(step: step, code: typed, key: key), stored)
                let isReplay = credential.lastUsedStep.map { step <= $0 } ?? false
                if matches && isReplay { replayed = true }
                if matches && !isReplay && fresh == nil { fresh = step }
            }
            if let fresh { return .totp(step: fresh) }
            return .failed(replayed ? .replay : .code)
        }
        // Not a TOTP code: perhaps a recovery code.
        guard let canonical = RecoveryCodes.canonical(String(decoding: typed, as: UTF8.self)) else {
            return .failed(.code)
        }
        let key = derived(stretched, terminalKey: terminalKey, purpose: "recovery")
        let candidate = Array(
            HMAC<SHA256>.authenticationCode(for: RecoveryCodes.digest(canonical: canonical), using: key))
        var matched: Int?
        for (index, code) in credential.recovery.enumerated() {
            let equal = constantTimeEquals(candidate, code.tag)
            if equal && code.usedAt == nil && matched == nil { matched = index }
        }
        return matched.map { .recoveryCode(index: $0) } ?? .failed(.code)
    }
}
