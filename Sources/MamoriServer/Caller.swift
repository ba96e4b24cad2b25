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

/// Where a forwarded request's caller is: the member terminal that saw it at its socket.
public struct CallerOrigin: Sendable, Hashable {
    /// The terminal's name in the town, from its certificate's record.
    public let terminal: String
    /// The terminal's zone.
    public let zone: String

    /// An origin from its parts.
    public init(terminal: String, zone: String) {
        self.terminal = terminal
        self.zone = zone
    }
}

/// Who is on the other end of a connection, from the kernel's peer credentials; or, on a hub, the
/// caller a member terminal saw at its socket (``origin``).
struct Caller: Sendable {
    let uid: UInt32
    let pid: Int32
    /// The Unix login name of `uid`, or nil when the password database has none.
    let name: String?
    /// The member terminal that forwarded the request; nil for a caller at this daemon's own socket.
    let origin: CallerOrigin?
    /// What this connection has done that is recorded once per connection.
    let connection = ConnectionLedger()

    /// Root, or the daemon's own user, at this daemon's own socket: the break-glass operators,
    /// always allowed and always logged. The daemon's user owns the state folder and its key, so
    /// it could change anything directly; letting it act through the socket adds no power, and
    /// makes `make run` usable by a developer. A terminal's root is never one on the hub: root on
    /// one terminal must not administer the town.
    var isOperator: Bool { origin == nil && Self.isOperator(uid: uid) }

    /// May ask about any user's login (authenticate, account, sessions, password change): the
    /// operators, and root on a member terminal, where the PAM module runs as root.
    var actsForUsers: Bool { isOperator || (origin != nil && uid == 0) }

    static func isOperator(uid: UInt32) -> Bool { uid == 0 || uid == geteuid() }

    /// Whose share of a bounded resource a caller uses: a uid at this daemon's socket, or a uid at
    /// one member terminal's (uid 1000 on two terminals is two people).
    struct ShareKey: Hashable {
        let terminal: String?
        let uid: UInt32
    }

    var shareKey: ShareKey { ShareKey(terminal: origin?.terminal, uid: uid) }

    /// Names the caller for logs and audit entries.
    var label: String { name ?? "uid:\(uid)" }

    /// The caller of a connection, with the name ``loginName(of:)`` found for its uid.
    init(credentials: PeerCredentials, name: String?) {
        uid = credentials.uid
        pid = credentials.pid
        self.name = name
        origin = nil
    }

    /// A caller whose name is already known (tests that run the service in-process), or one a
    /// member terminal forwarded (`origin`).
    init(uid: UInt32, pid: Int32, name: String?, origin: CallerOrigin? = nil) {
        self.uid = uid
        self.pid = pid
        self.name = name
        self.origin = origin
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
