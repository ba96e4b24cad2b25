import NIOConcurrencyHelpers

/// Fair admission per uid: every local account can reach the socket, so no one of them may
/// take all the connections or all the work. Operators (root, the daemon's user) have room kept
/// for them and no per-uid limits, so that root's break-glass login always gets through.
///
/// One lock, taken once per connection and once per request that leaves the event loop.
final class Admission: Sendable {
    struct Limits: Sendable {
        var maximumConnections: Int
        var operatorReservedConnections: Int
        var connectionsPerUID: Int
        var requestsPerUID: Int

        init(_ configuration: DaemonConfiguration) {
            maximumConnections = configuration.maximumConnections
            // Never more than half: ordinary users keep the other half.
            operatorReservedConnections = min(
                configuration.operatorReservedConnections, configuration.maximumConnections / 2)
            connectionsPerUID = configuration.connectionsPerUID
            requestsPerUID = configuration.requestsPerUID
        }
    }

    /// Why a connection or a request was not admitted, as the sentence its `busy` reply carries.
    enum Refusal: Error, Equatable {
        case daemonFull
        case uidConnections(Int)
        case uidRequests(Int)

        var message: String {
            switch self {
            case .daemonFull: "Too many connections; try again shortly."
            case .uidConnections(let limit):
                "Your user has \(limit) connections open already, the most one user may; close one."
            case .uidRequests(let limit):
                "Your user has \(limit) requests in progress already, the most one user may; wait for their answers."
            }
        }
    }

    private struct State {
        var connections = 0
        var connectionsByUID: [UInt32: Int] = [:]
        var requestsByUID: [UInt32: Int] = [:]
    }

    private let limits: Limits
    private let state = NIOLockedValueBox(State())

    init(limits: Limits) {
        self.limits = limits
    }

    /// Admits a new connection of `caller`, or says why not. Call ``leave(_:)`` when it closes.
    /// Decided on the kernel's credentials alone, before anything else is spent on the connection.
    func enter(_ caller: PeerCredentials) -> Refusal? {
        state.withLockedValue { state in
            if caller.isOperator {
                guard state.connections < limits.maximumConnections else { return .daemonFull }
            } else {
                guard state.connections < limits.maximumConnections - limits.operatorReservedConnections else {
                    return .daemonFull
                }
                let held = state.connectionsByUID[caller.uid, default: 0]
                guard held < limits.connectionsPerUID else { return .uidConnections(limits.connectionsPerUID) }
                state.connectionsByUID[caller.uid] = held + 1
            }
            state.connections += 1
            return nil
        }
    }

    func leave(_ caller: PeerCredentials) {
        state.withLockedValue { state in
            state.connections -= 1
            if !caller.isOperator { Self.decrement(&state.connectionsByUID, caller.uid) }
        }
    }

    /// Admits one request that leaves the event loop, or says why not. Call ``finish(_:)`` after.
    func begin(_ caller: Caller) -> Refusal? {
        if caller.isOperator { return nil }
        return state.withLockedValue { state in
            let running = state.requestsByUID[caller.uid, default: 0]
            guard running < limits.requestsPerUID else { return .uidRequests(limits.requestsPerUID) }
            state.requestsByUID[caller.uid] = running + 1
            return nil
        }
    }

    func finish(_ caller: Caller) {
        if caller.isOperator { return }
        state.withLockedValue { Self.decrement(&$0.requestsByUID, caller.uid) }
    }

    /// Connections open now, for `status`.
    var connections: Int { state.withLockedValue { $0.connections } }

    private static func decrement(_ counts: inout [UInt32: Int], _ uid: UInt32) {
        let left = counts[uid, default: 1] - 1
        counts[uid] = left > 0 ? left : nil
    }
}
