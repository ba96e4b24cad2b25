import Foundation
import MamoriCore
import MamoriStore
import NIOConcurrencyHelpers

/// What a decision needs about users and sessions, kept in memory so that `authorize` does not
/// read the database: the store is read once per user or session until a write changes it.
///
/// Every write that changes users or assignments calls ``invalidate()``; a snapshot read from the
/// store while a write happened is not kept (the epoch check), so the cache never serves stale
/// roles after a grant, revoke, disable or removal returns. The cache is this daemon's own: when
/// several daemons share one store (the planned PostgreSQL move), invalidation must come from the
/// store, for example by comparing the assignment generation.
final class SubjectCache: Sendable {
    /// A user as decisions see them, with every assignment (expiry is checked at use).
    struct Snapshot: Sendable {
        let user: UserRecord?
        let assignments: [AssignmentRecord]

        func currentRoles(at time: Date) -> [String] {
            guard let user, !user.disabled else { return [] }
            return assignments.filter { $0.isCurrent(at: time) }.map(\.role)
        }
    }

    private struct State {
        var epoch = 0
        var users: [String: Snapshot] = [:]
        var sessions: [String: SessionRecord] = [:]
        var generation: Int64
        /// When each session was last used, and each user last authenticated, since start.
        var sessionActivity: [String: Date] = [:]
        var userActivity: [String: Date] = [:]
    }

    /// Sessions kept at most; past this, closed and expired ones are dropped, then the cache resets.
    static let sessionLimit = 50_000

    private let state: NIOLockedValueBox<State>
    private let clock: any WallClock

    init(generation: Int64, clock: any WallClock) {
        self.clock = clock
        state = NIOLockedValueBox(State(generation: generation))
    }

    var generation: Int64 { state.withLockedValue { $0.generation } }
    var epoch: Int { state.withLockedValue { $0.epoch } }

    func user(_ name: String) -> Snapshot? { state.withLockedValue { $0.users[name] } }
    func session(_ id: String) -> SessionRecord? { state.withLockedValue { $0.sessions[id] } }

    /// Keeps a snapshot read when the cache was at `epoch`, unless a write has happened since.
    func keep(_ snapshot: Snapshot, for name: String, readAt epoch: Int) {
        state.withLockedValue { state in
            if state.epoch == epoch { state.users[name] = snapshot }
        }
    }

    /// Keeps a session read from the store when the cache was at `epoch`, unless a write to users
    /// or assignments has happened since: a read that raced `user.remove` must not put back a
    /// session the removal closed.
    func keep(_ session: SessionRecord, readAt epoch: Int) {
        state.withLockedValue { state in
            guard state.epoch == epoch else { return }
            if state.sessions.count >= Self.sessionLimit {
                let now = clock.now()
                state.sessions = state.sessions.filter { $0.value.isOpen(at: now) }
                if state.sessions.count >= Self.sessionLimit { state.sessions = [:] }
            }
            state.sessions[session.id] = session
        }
    }

    /// Forgets every cached session of `user` (removed: the store has closed them).
    func forgetSessions(of user: String) {
        state.withLockedValue { state in
            for (id, session) in state.sessions where session.user == user {
                state.sessions.removeValue(forKey: id)
                state.sessionActivity.removeValue(forKey: id)
            }
        }
    }

    func forgetSession(_ id: String) {
        state.withLockedValue { state in
            state.sessions.removeValue(forKey: id)
            state.sessionActivity.removeValue(forKey: id)
        }
    }

    // MARK: Session activity (idle time-out)

    /// Uses `session` at `time` if its last sign of life (``lastActivity(of:in:)``) is less than
    /// `idle` seconds before; returns false, changing nothing, when it has lapsed. One lock.
    func use(_ session: SessionRecord, at time: Date, idle: TimeInterval) -> Bool {
        state.withLockedValue { state in
            let last = Self.lastActivity(of: session, in: state)
            guard time.timeIntervalSince(last) < idle else { return false }
            if state.sessionActivity.count >= Self.sessionLimit { state.sessionActivity = [:] }
            state.sessionActivity[session.id] = time
            return true
        }
    }

    /// Notes that `user` authenticated at `time` (a screen unlock): their sessions count as used.
    func touch(user: String, at time: Date) {
        state.withLockedValue { state in
            if state.userActivity.count >= Self.sessionLimit { state.userActivity = [:] }
            state.userActivity[user] = time
        }
    }

    /// The last sign of life of `session`: its opening, its last use (this run or saved at the
    /// last stop), or its user's last authentication. Forgotten activity makes a session look
    /// older, never younger: the time-out fails closed.
    private static func lastActivity(of session: SessionRecord, in state: State) -> Date {
        [session.openedAt, session.lastActiveAt, state.sessionActivity[session.id], state.userActivity[session.user]]
            .compactMap { $0 }.max() ?? session.openedAt
    }

    /// Every session's last use this run, to save at shutdown.
    var sessionActivity: [String: Date] { state.withLockedValue { $0.sessionActivity } }

    /// Drops every user snapshot; `assignmentsChanged` also advances the generation.
    func invalidate(assignmentsChanged: Bool) {
        state.withLockedValue { state in
            state.epoch += 1
            state.users = [:]
            if assignmentsChanged { state.generation += 1 }
        }
    }
}
