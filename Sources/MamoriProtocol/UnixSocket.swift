import Foundation

/// Connecting to mamorid's Unix socket, for every client in Swift (the CLI, tests, benchmarks).
public enum UnixSocket {
    /// Why a connection could not be made.
    public struct ConnectError: Error, Sendable, CustomStringConvertible {
        /// The system's reason, e.g. "No such file or directory".
        public let reason: String
        /// The system's reason, as it is.
        public var description: String { reason }
    }

    /// Connects a stream socket to `path`; returns the descriptor, which the caller closes.
    ///
    /// - Parameter receiveTimeout: seconds a read may wait (SO_RCVTIMEO); nil waits for ever.
    public static func connect(path: String, receiveTimeout: Int? = nil) throws(ConnectError) -> Int32 {
        // Close-on-exec: a process this one starts must not hold the connection open after it closes here.
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
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

/// A blocking connection to mamorid's socket: request lines out, reply lines back, in order. The
/// one line client of the CLI, the tests and the benchmarks; each wraps it with its own errors.
/// Use one per thread. The descriptor is closed when the connection is released.
public final class LineConnection {
    /// The connected socket.
    public let descriptor: Int32
    /// Bytes read past the last line returned (a reply line can arrive in pieces, or several at once).
    private var pending: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)

    /// Connects to `path`; `receiveTimeout` seconds bound each read (nil waits for ever).
    public init(path: String, receiveTimeout: Int? = nil) throws(UnixSocket.ConnectError) {
        descriptor = try UnixSocket.connect(path: path, receiveTimeout: receiveTimeout)
    }

    deinit { close(descriptor) }

    /// The server's uid (SO_PEERCRED), to check before anything secret is sent.
    public var peerUID: UInt32? { UnixSocket.peerUID(of: descriptor) }

    /// Writes all of `bytes`; false when the connection is closed.
    public func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Foundation.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// The next line, without its newline; nil when the connection closed or the read timed out.
    public func readLine() -> [UInt8]? {
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                return line
            }
            let count = chunk.withUnsafeMutableBytes { Foundation.read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return nil }
            pending += chunk[..<count]
        }
    }

    /// Sends `line` (which ends with its newline) and reads the reply line; nil when either fails.
    public func exchange(_ line: [UInt8]) -> [UInt8]? {
        guard send(line) else { return nil }
        return readLine()
    }
}
