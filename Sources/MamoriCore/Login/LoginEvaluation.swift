public import Foundation

/// Why a login failed. It goes to the audit trail and never to the reply: every failure answers
/// alike, so that a caller cannot tell an unknown user from a wrong password or a locked account.
public enum LoginFailure: String, Sendable, Hashable, CaseIterable {
    case unknownUser = "unknown-user"
    case disabled
    case locked
    case noPassword = "no-password"
    /// As many attempts as the lockout has left were already in flight: refused before evaluation.
    case attemptsInFlight = "attempts-in-flight"
    case password
    /// The zone wants a second factor and the user has neither a confirmed device nor recovery codes.
    case noSecondFactor = "no-second-factor"
    case code
    /// The code's step was used already, or was taken by a parallel login.
    case replay
}

/// What the password step found. Gathered by the caller (the store's one read, the reservation,
/// one Argon2 run); ``failure`` is the verdict.
public struct PasswordFacts: Sendable, Hashable {
    /// The login name has an account. The caller runs Argon2 even when it has none, so that timing cannot tell.
    public var userExists: Bool
    /// An administrator disabled the account.
    public var disabled: Bool
    /// The account was locked when the attempt was to be reserved.
    public var locked: Bool
    /// The account has a password hash stored.
    public var hasPassword: Bool
    /// The lockout let this attempt through (``AttemptReservation/reserved(_:)``).
    public var attemptReserved: Bool
    /// The password was neither empty nor longer than the hasher takes.
    public var usable: Bool
    /// Argon2 matched it against the stored hash.
    public var verified: Bool

    /// The facts of one attempt; ``failure`` is the verdict.
    public init(
        userExists: Bool, disabled: Bool, locked: Bool, hasPassword: Bool, attemptReserved: Bool, usable: Bool,
        verified: Bool
    ) {
        self.userExists = userExists
        self.disabled = disabled
        self.locked = locked
        self.hasPassword = hasPassword
        self.attemptReserved = attemptReserved
        self.usable = usable
        self.verified = verified
    }

    /// The first reason these facts fail a login, in the order the trail names them; nil when the
    /// password lets the caller in.
    public var failure: LoginFailure? {
        if !userExists { return .unknownUser }
        if disabled { return .disabled }
        if locked { return .locked }
        if !hasPassword { return .noPassword }
        if !attemptReserved { return .attemptsInFlight }
        if !usable || !verified { return .password }
        return nil
    }
}

/// The second factor of a login: the device's TOTP code, or an unused recovery code in its place.
public enum SecondFactor {
    /// What the typed code proved.
    public enum Result: Sendable, Hashable {
        /// The device's code for this step, later than the last accepted one: store the step.
        case totp(step: UInt64)
        /// The recovery code at this index of the stored ones: mark it used.
        case recoveryCode(index: Int)
        /// Neither: the reason for the trail.
        case failed(LoginFailure)
    }

    /// Decides the typed code, from values only.
    ///
    /// - Parameters:
    ///   - device: the confirmed device's generator, opened by the caller when a code was typed;
    ///     nil when there is none or nothing was typed.
    ///   - deviceConfirmed: whether a confirmed device exists (it decides `code` against
    ///     `no-second-factor` when nothing matched).
    ///   - lastAcceptedStep: the device's last accepted step: that step and earlier are replays.
    ///   - recoveryCodes: the user's stored recovery codes, used and unused (compared in constant time).
    public static func evaluate(
        _ typed: String, device: TOTP?, deviceConfirmed: Bool, lastAcceptedStep: UInt64?, window: Int,
        recoveryCodes: [StoredRecoveryCode], at now: Date
    ) -> Result {
        if let device, !typed.isEmpty {
            switch device.verify(typed, at: now, window: window, lastAcceptedStep: lastAcceptedStep) {
            case .accepted(let step): return .totp(step: step)
            case .replayed: return .failed(.replay)
            case .rejected, .malformed: break
            }
        }
        // A recovery code stands in for the device, also when none is enrolled (after a reset).
        let candidates = typed.isEmpty ? [] : recoveryCodes
        if let match = RecoveryCodes.consume(typed, from: candidates, at: now) {
            return .recoveryCode(index: match.index)
        }
        return .failed(deviceConfirmed || !candidates.isEmpty ? .code : .noSecondFactor)
    }
}
