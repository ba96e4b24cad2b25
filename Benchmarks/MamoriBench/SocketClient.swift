import MamoriProtocol

/// The load generator's client: the one line client (``LineConnection``), one per thread.
final class SocketClient {
    private let connection: LineConnection

    init?(path: String) {
        guard let connected = try? LineConnection(path: path) else { return nil }
        connection = connected
    }

    func send(_ bytes: [UInt8]) -> Bool { connection.send(bytes) }

    /// Reads `count` reply lines, or nil on error.
    func readReplies(_ count: Int) -> [String]? {
        var lines: [String] = []
        while lines.count < count {
            guard let line = connection.readLine() else { return nil }
            lines.append(String(decoding: line, as: UTF8.self))
        }
        return lines
    }

    func call(_ line: String) -> String? {
        guard let reply = connection.exchange(Array((line + "\n").utf8)) else { return nil }
        return String(decoding: reply, as: UTF8.self)
    }
}
