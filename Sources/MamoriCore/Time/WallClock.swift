public import Foundation

/// Where the service reads the time: every decision, lockout window, session expiry and audit
/// entry takes "now" from one of these, so that tests move time by moving a clock instead of
/// editing stored timestamps.
///
/// Named `WallClock`, not `Clock`: the standard library's `Clock` measures durations on
/// monotonic instants; this one gives calendar time, which is what is stored and compared.
public protocol WallClock: Sendable {
    /// The current time. Successive calls may go backwards when the system clock is set back;
    /// callers that store times must tolerate it (the audit chain does: order is by sequence).
    func now() -> Date
}

/// The system's real-time clock.
public struct SystemClock: WallClock {
    /// The real clock; it holds no state.
    public init() {}

    /// The system's current time, which jumps when the system clock is set.
    public func now() -> Date { Date() }
}
