import Foundation
import MamoriCore
import NIOConcurrencyHelpers

/// Keeps denials from flooding the audit trail while leaving none unrecorded.
///
/// Within one interval, the first denial of a caller (a uid here, or a uid at one member terminal
/// when this is a hub) for an action is recorded in full;
/// the repeats are counted, and when the interval ends one entry `decision.deny.repeated` says
/// how many more there were, with a few of the resources. A caller other than an operator
/// denied more than `perInterval` times in an interval is cut off: its requests are answered
/// `rate_limited` until the interval ends, and the cut-off is recorded once
/// (`caller.rate_limited`). So a million denied requests cost a handful of entries.
///
/// Memory is bounded: past `maximumKeys` distinct (uid, action) tallies in one interval, further
/// ones are counted under the caller's uid alone.
final class DenialLedger: Sendable {
    /// What to do with one denial.
    enum Verdict: Equatable {
        /// The first of its kind in this interval: write the entry in full.
        case record
        /// A repeat: counted, written later in the interval's summary.
        case counted
        /// The caller just passed the rate: write the entry and the cut-off notice.
        case cutOff
    }

    private struct Key: Hashable {
        let caller: Caller.ShareKey?
        let action: String
    }

    private struct Tally {
        var repeats = 0
        var resources: [String] = []
        var otherResources = 0
        /// The first entry in full, the template of the summary.
        let first: AuditEntry
    }

    private struct Offender {
        var denials = 0
        var cutOff = false
    }

    private struct State {
        var started: Date
        var tallies: [Key: Tally] = [:]
        var callers: [Caller.ShareKey: Offender] = [:]
    }

    let interval: TimeInterval
    let perInterval: Int
    static let maximumKeys = 4_096
    static let sampleResources = 5
    private let state: NIOLockedValueBox<State>

    init(interval: TimeInterval, perInterval: Int, now: Date) {
        self.interval = interval
        self.perInterval = perInterval
        state = NIOLockedValueBox(State(started: now))
    }

    /// Notes a denial of `caller` (a uid at this socket or at one member terminal; nil for
    /// operators, who are never cut off) for `action` on `resource`.
    func note(_ entry: AuditEntry, caller: Caller.ShareKey?, action: String, resource: String) -> Verdict {
        state.withLockedValue { state in
            let key = Key(caller: caller, action: state.tallies.count < Self.maximumKeys ? action : "*")
            var verdict = Verdict.counted
            if var tally = state.tallies[key] {
                tally.repeats += 1
                if tally.resources.count < Self.sampleResources, !tally.resources.contains(resource) {
                    tally.resources.append(resource)
                } else if !tally.resources.contains(resource) {
                    tally.otherResources += 1
                }
                state.tallies[key] = tally
            } else {
                state.tallies[key] = Tally(first: entry)
                verdict = .record
            }
            if let caller {
                var offender = state.callers[caller, default: Offender()]
                offender.denials += 1
                if offender.denials > perInterval && !offender.cutOff {
                    offender.cutOff = true
                    verdict = .cutOff
                }
                state.callers[caller] = offender
            }
            return verdict
        }
    }

    /// Whether `caller` is cut off now (until the interval it passed the rate in ends).
    func isCutOff(_ caller: Caller.ShareKey) -> Bool {
        state.withLockedValue { $0.callers[caller]?.cutOff == true }
    }

    /// Seconds left in the current interval, for the `rate_limited` message.
    func secondsLeft(at now: Date) -> Int {
        state.withLockedValue { max(1, Int((interval - now.timeIntervalSince($0.started)).rounded(.up))) }
    }

    /// Ends the interval if it is over (or, with `force`, at shutdown): returns the summary
    /// entries of the repeats it counted, and forgives every cut-off.
    func closeInterval(at now: Date, force: Bool = false) -> [AuditEntry] {
        state.withLockedValue { state in
            guard force || now.timeIntervalSince(state.started) >= interval else { return [] }
            let tallies = state.tallies
            let started = state.started
            state = State(started: now)
            return tallies.values.filter { $0.repeats > 0 }
                .sorted { $0.first.time < $1.first.time }
                .map { tally in
                    var summary = tally.first
                    summary.time = now
                    summary.event = AuditEvent.decisionDenyRepeated.rawValue
                    summary.detail["repeats"] = "\(tally.repeats)"
                    summary.detail["since"] = started.formatted(.iso8601)
                    summary.detail["resources"] = tally.resources.joined(separator: " ")
                    if tally.otherResources > 0 { summary.detail["other_resources"] = "\(tally.otherResources)" }
                    return summary
                }
        }
    }
}
