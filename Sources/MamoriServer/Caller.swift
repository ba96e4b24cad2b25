import Foundation
import NIOConcurrencyHelpers

/// `struct ucred` from <sys/socket.h>: Glibc hides it from Swift (it needs _GNU_SOURCE), so it is
/// mirrored here with the same layout (three 32-bit fields).
struct PeerCredentials: Sendable {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0

    /// Root, or the daemon's own user: the break-glass operators (see ``Caller/isOperator``).
    var isOperator: Bool { Caller.isOperator(uid: uid) }
}

/// Who is on the other end of a connection, from the kernel's peer credentials.
struct Caller: Sendable {
    let uid: UInt32
    let pid: Int32
    /// The Unix login name of `uid`, or nil when the password database has none.
    let name: String?
    /// What this connection has done that is recorded once per connection.
    let connection = ConnectionLedger()

    /// Root, or the daemon's own user: the break-glass operators, always allowed and always logged.
    /// The daemon's user owns the state folder and its key, so it could change anything directly;
    /// letting it act through the socket adds no power, and makes `make run` usable by a developer.
    var isOperator: Bool { Self.isOperator(uid: uid) }

    static func isOperator(uid: UInt32) -> Bool { uid == 0 || uid == geteuid() }

    /// Names the caller for logs and audit entries.
    var label: String { name ?? "uid:\(uid)" }

    /// The caller of a connection, with the name ``loginName(of:)`` found for its uid.
    init(credentials: PeerCredentials, name: String?) {
        uid = credentials.uid
        pid = credentials.pid
        self.name = name
    }

    /// A caller whose name is already known (tests that run the service in-process).
    init(uid: UInt32, pid: Int32, name: String?) {
        self.uid = uid
        self.pid = pid
        self.name = name
    }

    /// The login name of `uid` from the password database (getpwuid_r: thread-safe). It may ask a
    /// directory service (sssd, LDAP) and wait on it: call it off the event loop.
    static func loginName(of uid: uid_t) -> String? {
        if case .found(let name) = lookUpLoginName(of: uid) { return name }
        return nil
    }

    /// The password database's answer for `uid`, telling "no such uid" from a lookup that failed
    /// (a directory service down), which must not be remembered as "no name".
    static func lookUpLoginName(of uid: uid_t) -> LoginNames.Answer {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let status = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        guard status == 0 else { return .failed }
        guard result != nil, let name = entry.pw_name else { return .found(nil) }
        return .found(String(cString: name))
    }
}

/// Per-connection memory: reading the audit trail is recorded once per connection and purpose,
/// so that a follower polling over one connection (`audit tail -f`) or an export paging through
/// it does not fill the trail, while every new connection is recorded: the caller cannot opt out.
final class ConnectionLedger: Sendable {
    private let recordedReads = NIOLockedValueBox<Set<String>>([])

    /// True the first time `purpose` is read on this connection.
    func firstRead(_ purpose: String) -> Bool {
        recordedReads.withLockedValue { $0.insert(purpose).inserted }
    }
}
