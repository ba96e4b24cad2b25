import Foundation
import MamoriProtocol
#if canImport(Glibc)
import Glibc
#endif

/// A blocking Unix-socket client for the load generator: one per thread.
final class SocketClient {
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)

    init?(path: String) {
        guard let connected = try? UnixSocket.connect(path: path) else { return nil }
        descriptor = connected
    }

    deinit { close(descriptor) }

    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// Reads `count` reply lines; returns how many of them said `"ok":true`, or nil on error.
    func readReplies(_ count: Int) -> [String]? {
        var lines: [String] = []
        while lines.count < count {
            if let newline = buffer.firstIndex(of: 10) {
                lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                buffer.removeSubrange(...newline)
                continue
            }
            let read = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            guard read > 0 else { return nil }
            buffer += chunk[..<read]
        }
        return lines
    }

    func call(_ line: String) -> String? {
        guard send(Array((line + "\n").utf8)) else { return nil }
        return readReplies(1)?.first
    }
}
