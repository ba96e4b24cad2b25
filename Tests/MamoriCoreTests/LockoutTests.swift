import Foundation
import MamoriCore
import Testing

/// The lockout's arithmetic on values, as every store runs it inside its transactions.
@Suite("lockout arithmetic")
struct LockoutTests {
    let start = Date(timeIntervalSince1970: 1_790_000_000)
    let window: TimeInterval = 15 * 60
    let lockFor: TimeInterval = 30 * 60

    func reserve(_ state: FailureState?, at time: Date, threshold: Int = 3) -> (FailureState?, PasswordAttempt?) {
        let (next, reservation) = Lockout.reserve(state, user: "mori", at: time, threshold: threshold, window: window)
        if case .reserved(let attempt) = reservation { return (next, attempt) }
        return (next, nil)
    }

    @Test("the threshold of failures in the window locks; the lock lasts lock-for")
    func locks() throws {
        var state: FailureState?
        for index in 0..<3 {
            let time = start.addingTimeInterval(Double(index) * 60)
            let (reserved, attempt) = reserve(state, at: time)
            let held = try #require(attempt)
            state = Lockout.fail(reserved, attempt: held, at: time, threshold: 3, window: window, lockFor: lockFor)
        }
        let locked = try #require(state)
        #expect(locked.count == 3 && locked.inFlight == 0)
        #expect(locked.lockedUntil == start.addingTimeInterval(120 + lockFor))
        #expect(
            Lockout.reserve(locked, user: "mori", at: start.addingTimeInterval(121), threshold: 3, window: window)
                .reservation
                == .refused(locked: true))
        // At the lock's end the account may be tried again, and the old count is outside the window.
        let (after, attempt) = reserve(locked, at: start.addingTimeInterval(120 + lockFor))
        #expect(attempt?.failuresBefore == 0)
        #expect(after?.lockedUntil == nil)
    }

    @Test("failures outside the window start a new count")
    func newWindow() throws {
        let first = Lockout.fail(nil, attempt: nil, at: start, threshold: 3, window: window, lockFor: lockFor)
        let second = Lockout.fail(
            first, attempt: nil, at: start.addingTimeInterval(60), threshold: 3, window: window, lockFor: lockFor)
        #expect(second.count == 2 && second.firstFailureAt == start)
        let later = Lockout.fail(
            second, attempt: nil, at: start.addingTimeInterval(window), threshold: 3, window: window, lockFor: lockFor)
        #expect(
            later.count == 1 && later.firstFailureAt == start.addingTimeInterval(window) && later.lockedUntil == nil)
    }

    @Test("attempts in flight count against the threshold, so parallel guesses cannot pass it")
    func inFlight() {
        var state: FailureState?
        var reserved = 0
        for _ in 0..<10 {
            let (next, attempt) = reserve(state, at: start)
            state = next
            if attempt != nil { reserved += 1 }
        }
        #expect(reserved == 3)
        #expect(
            Lockout.reserve(state, user: "mori", at: start, threshold: 3, window: window).reservation
                == .refused(locked: false))
        #expect(Lockout.release(Lockout.release(Lockout.release(state))) == nil, "all released: nothing kept")
    }

    @Test("a success forgives only the failures counted before it was reserved")
    func success() throws {
        let failed = Lockout.fail(nil, attempt: nil, at: start, threshold: 5, window: window, lockFor: lockFor)
        let (reservedState, attempt) = reserve(failed, at: start.addingTimeInterval(1), threshold: 5)
        let held = try #require(attempt)
        #expect(held.failuresBefore == 1)
        // A guess that fails while the success is being evaluated still counts.
        let meanwhile = Lockout.fail(
            reservedState, attempt: nil, at: start.addingTimeInterval(2), threshold: 5, window: window, lockFor: lockFor
        )
        let settled = try #require(Lockout.succeed(meanwhile, attempt: held))
        #expect(settled.count == 1 && settled.inFlight == 0)
        #expect(
            Lockout.succeed(
                Lockout.fail(nil, attempt: nil, at: start, threshold: 5, window: window, lockFor: lockFor),
                attempt: held) == nil)
    }

    @Test("unlock forgives and lifts the lock but keeps reservations; a restart drops them")
    func unlockAndRestart() {
        let locked = FailureState(
            count: 10, firstFailureAt: start, lockedUntil: start.addingTimeInterval(lockFor), inFlight: 1)
        #expect(Lockout.unlock(locked) == FailureState(count: 0, firstFailureAt: start, lockedUntil: nil, inFlight: 1))
        #expect(Lockout.restart(FailureState(count: 0, firstFailureAt: start, inFlight: 2)) == nil)
        #expect(Lockout.restart(locked)?.inFlight == 0)
    }
}
