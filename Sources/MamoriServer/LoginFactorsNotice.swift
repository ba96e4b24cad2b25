import Foundation
import MamoriCore
import MamoriProtocol

/// The zone's login factors, published beside the socket as `<socket>.factors` for
/// pam_mamori.so: one JSON line, `{"login_factors":["password","totp"],"policy_revision":…,"zone":…}`.
///
/// Why a file: the module must know whether to ask for a code before it sends `authenticate`, and
/// it never holds a connection while the user types (through `su` or `sudo` its connections come
/// from root, which has no per-uid limit, so held ones would let any account fill the daemon).
/// Asking `status` first costs a second connection; reading this file costs none. The module
/// trusts the file only when root or the daemon's user owns it and nobody else may write it, and
/// falls back to `status` when it is missing or untrusted. It decides only what is asked:
/// `authenticate` still checks every factor the zone needs.
struct LoginFactorsNotice: Sendable {
    /// Where the notice is written.
    let path: String

    init(socketPath: String) {
        path = socketPath + ".factors"
    }

    /// Writes the notice for `zone` of `policy` whole (a temporary file renamed over the old
    /// one), mode 0644 whatever the umask.
    func publish(policy: Policy, zone: String) throws {
        let factors = policy.zones.first { $0.id == zone }?.loginFactors ?? [.password, .totp]
        let line =
            JSONValue.object([
                "zone": .string(zone), "policy_revision": .string(policy.revision),
                "login_factors": .array(factors.sorted().map { .string($0.rawValue) }),
            ]).text + "\n"
        let temporary = path + ".new"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw NoticeError(path: temporary, errno: errno) }
        let bytes = Array(line.utf8)
        var failure: Int32 = 0
        if bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) != bytes.count {
            failure = errno == 0 ? EIO : errno
        } else if fchmod(descriptor, 0o644) != 0 {
            failure = errno
        }
        close(descriptor)
        if failure == 0, rename(temporary, path) != 0 { failure = errno }
        guard failure == 0 else {
            unlink(temporary)
            throw NoticeError(path: path, errno: failure)
        }
    }

    /// Removes the notice (and any half-written one), so that a stopped daemon leaves no answer behind.
    func withdraw() {
        unlink(path)
        unlink(path + ".new")
    }

    struct NoticeError: Error, CustomStringConvertible {
        let path: String
        let errno: Int32
        var description: String { "\(path): \(String(cString: strerror(errno)))" }
    }
}
