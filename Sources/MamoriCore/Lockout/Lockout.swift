public import Foundation

/// One account's failed password attempts as a store keeps them.
///
/// Times are compared at the stores' precision, milliseconds: a state read back from a store is
/// the state that was written, to the millisecond.
public struct FailureState: Sendable, Hashable {
    /// Failures counted in the window that began at `firstFailureAt`.
    public var count: Int
    /// When the first failure of the current window happened; the window runs from here.
    public var firstFailureAt: Date
    /// When the lock ends; nil when none was set. A time already past means the lock has lapsed.
    public var lockedUntil: Date?
    /// Attempts reserved and not yet settled (each is an Argon2 run in progress).
    public var inFlight: Int

    /// A state with the given counts; a store rebuilds what it kept with this.
    public init(count: Int, firstFailureAt: Date, lockedUntil: Date? = nil, inFlight: Int = 0) {
        self.count = count
        self.firstFailureAt = firstFailureAt
        self.lockedUntil = lockedUntil
        self.inFlight = inFlight
    }

    /// True while a lock is in force.
    public func isLocked(at time: Date) -> Bool { lockedUntil.map { time < $0 } ?? false }

    /// Nothing left worth keeping: a store deletes such a state rather than writing it.
    public var isEmpty: Bool { count == 0 && inFlight == 0 && lockedUntil == nil }
}

/// A password attempt reserved before its Argon2 run (see ``Lockout/reserve(_:user:at:threshold:window:)``);
/// settle it exactly once: with ``Lockout/fail(_:attempt:at:threshold:window:lockFor:)``,
/// ``Lockout/succeed(_:attempt:)`` or ``Lockout/release(_:)``.
public struct PasswordAttempt: Sendable, Hashable {
    /// The login name the attempt is for.
    public let user: String
    /// The lockout threshold and window it was reserved against.
    public let threshold: Int
    /// The window's length, in seconds.
    public let window: TimeInterval
    /// Failures within the window when it was reserved: a success forgives only these.
    public let failuresBefore: Int
    /// Where that window started.
    public let windowStart: Date

    /// An attempt with the given terms; real ones come from ``Lockout/reserve(_:user:at:threshold:window:)``.
    public init(user: String, threshold: Int, window: TimeInterval, failuresBefore: Int, windowStart: Date) {
        self.user = user
        self.threshold = threshold
        self.window = window
        self.failuresBefore = failuresBefore
        self.windowStart = windowStart
    }
}

/// Whether a password attempt may be evaluated.
public enum AttemptReservation: Sendable, Hashable {
    /// Evaluate it, then settle the attempt.
    case reserved(PasswordAttempt)
    /// Do not evaluate it: the account is locked (`locked`), or the attempts already in flight
    /// would reach the threshold.
    case refused(locked: Bool)
}

/// The lockout's arithmetic, as pure functions from the stored state to the next one: a store
/// reads an account's ``FailureState``, calls one of these and writes the result in the same
/// transaction (nil or an empty state: delete it), so that every store counts alike.
///
/// The rules: failures count within a window that starts at the first of them; reaching the
/// threshold locks the account for `lockFor`; an attempt is reserved before its Argon2 run, and
/// none is reserved once the failures in the window plus the attempts in flight reach the
/// threshold, so that parallel guesses cannot pass it; a success forgives only the failures
/// counted before it was reserved.
public enum Lockout {
    /// Reserves one attempt at `time`, or refuses (changing nothing) when locked or when the
    /// attempts in flight would reach the threshold.
    public static func reserve(
        _ state: FailureState?, user: String, at time: Date, threshold: Int, window: TimeInterval
    ) -> (state: FailureState?, reservation: AttemptReservation) {
        if let state, state.isLocked(at: time) { return (state, .refused(locked: true)) }
        var count = 0
        var first = time
        if let state, time.timeIntervalSince(state.firstFailureAt) < window {
            count = state.count
            first = state.firstFailureAt
        }
        let inFlight = state?.inFlight ?? 0
        guard count + inFlight < threshold else { return (state, .refused(locked: false)) }
        let attempt = PasswordAttempt(
            user: user, threshold: threshold, window: window, failuresBefore: count, windowStart: first
        )
        return (
            FailureState(count: count, firstFailureAt: first, lockedUntil: nil, inFlight: inFlight + 1),
            .reserved(attempt)
        )
    }

    /// Counts a failure at `time` (settling `attempt` when it was reserved). Failures outside the
    /// window start a new count; a lock in force stays; reaching the threshold sets one.
    public static func fail(
        _ state: FailureState?, attempt: PasswordAttempt?, at time: Date, threshold: Int, window: TimeInterval,
        lockFor: TimeInterval
    ) -> FailureState {
        var count = 1
        var first = time
        if let state, state.count > 0, time.timeIntervalSince(state.firstFailureAt) < window {
            count = state.count + 1
            first = state.firstFailureAt
        }
        let inFlight = max(0, (state?.inFlight ?? 0) - (attempt == nil ? 0 : 1))
        let standing = state?.lockedUntil.flatMap { $0 > time ? $0 : nil }
        let lockedUntil = count >= threshold ? time.addingTimeInterval(lockFor) : standing
        return FailureState(count: count, firstFailureAt: first, lockedUntil: lockedUntil, inFlight: inFlight)
    }

    /// Settles a successful attempt: its reservation is released, and only the failures counted
    /// before it was reserved are forgiven (guesses that failed while it ran still count). Nil:
    /// nothing is left to keep.
    public static func succeed(_ state: FailureState?, attempt: PasswordAttempt) -> FailureState? {
        guard var state else { return nil }
        if sameMillisecond(attempt.windowStart, state.firstFailureAt) {
            state.count = max(0, state.count - attempt.failuresBefore)
        }
        state.inFlight = max(0, state.inFlight - 1)
        return state.isEmpty ? nil : state
    }

    /// Gives back an attempt that was not evaluated, counting nothing.
    public static func release(_ state: FailureState?) -> FailureState? {
        guard var state else { return nil }
        state.inFlight = max(0, state.inFlight - 1)
        return state.isEmpty ? nil : state
    }

    /// Forgives every failure and lifts the lock; attempts in flight stay reserved.
    public static func unlock(_ state: FailureState?) -> FailureState? {
        guard var state else { return nil }
        state.count = 0
        state.lockedUntil = nil
        return state.isEmpty ? nil : state
    }

    /// A restart forgets the attempts in flight: they belonged to the process that reserved them.
    public static func restart(_ state: FailureState) -> FailureState? {
        var state = state
        state.inFlight = 0
        return state.isEmpty ? nil : state
    }

    private static func sameMillisecond(_ a: Date, _ b: Date) -> Bool {
        (a.timeIntervalSince1970 * 1000).rounded() == (b.timeIntervalSince1970 * 1000).rounded()
    }
}
