import Foundation

/// Connecting to mamorid's Unix socket, for every client in Swift (the CLI, tests, benchmarks).
public enum UnixSocket {
    /// Why a connection could not be made.
    public struct ConnectError: Error, Sendable, CustomStringConvertible {
        /// The system's reason, e.g. "No such file or directory".
        public let reason: String
        public var description: String { reason }
    }

    /// Connects a stream socket to `path`; returns the descriptor, which the caller closes.
    ///
    /// - Parameter receiveTimeout: seconds a read may wait (SO_RCVTIMEO); nil waits for ever.
    public static func connect(path: String, receiveTimeout: Int? = nil) throws(ConnectError) -> Int32 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ConnectError(reason: String(cString: strerror(errno))) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(descriptor)
            throw ConnectError(reason: "the path is too long for a Unix socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Foundation.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard status == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw ConnectError(reason: reason)
        }
        if let receiveTimeout {
            var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        return descriptor
    }

    /// The uid of the process at the other end of a connected Unix socket (SO_PEERCRED): the
    /// kernel's word, which the server cannot forge. Nil if it cannot be read.
    public static func peerUID(of descriptor: Int32) -> UInt32? {
        // `struct ucred` is hidden from Swift (it needs _GNU_SOURCE): pid, uid, gid, 32 bits each.
        var credentials = (pid_t(0), uid_t(0), gid_t(0))
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(descriptor, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
            length == socklen_t(MemoryLayout.size(ofValue: credentials))
        else { return nil }
        return credentials.1
    }
}
