import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A network namespace made for a test, joined to the test's own namespace by a veth pair: the
/// host side is `hostAddress`, the namespace side `address` (a /30 of 10.77.0.0/16 of its own).
/// A program started in it (`ip netns exec`) reaches the host only over the pair, so the test can
/// cut it the ways a counter's network fails (docs/town.md): ``blackHole()`` (an nftables rule
/// in the namespace drops every packet to the host: connections stall), ``linkDown()`` (the
/// namespace's end goes down: connections are refused at once), and ``restore()``. Everything is
/// deleted with ``remove()``. Needs root, `ip` and `nft`.
public final class NetworkNamespace: @unchecked Sendable {
    /// The namespace's name (`ip netns`).
    public let name: String
    /// The host's end of the pair, as the namespace reaches it.
    public let hostAddress: String
    /// The namespace's end.
    public let address: String
    private let hostDevice: String
    private let device: String

    /// Whether namespaces can be made here (root, with `ip` and `nft`).
    public static var available: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft")
    }

    /// Makes the namespace and the pair; throws, leaving nothing behind, when that fails.
    public init() throws {
        let tag = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        name = "mamori-\(getpid())-\(tag)"
        hostDevice = "mh\(tag)"
        device = "mn\(tag)"
        // One /30 per namespace: 10.77.X.Y with Y a multiple of 4.
        let block = Int.random(in: 0..<16_000) * 4
        let base = "10.77.\(block / 256)."
        hostAddress = base + "\(block % 256 + 1)"
        address = base + "\(block % 256 + 2)"
        try Self.ip(["netns", "add", name])
        do {
            try Self.ip(["link", "add", hostDevice, "type", "veth", "peer", "name", device])
            try Self.ip(["link", "set", device, "netns", name])
            try Self.ip(["addr", "add", hostAddress + "/30", "dev", hostDevice])
            try Self.ip(["link", "set", hostDevice, "up"])
            try inside(["ip", "addr", "add", address + "/30", "dev", device])
            try inside(["ip", "link", "set", device, "up"])
            try inside(["ip", "link", "set", "lo", "up"])
        } catch {
            remove()
            throw error
        }
    }

    /// The command line that runs `program` with `arguments` in the namespace.
    public func command(_ program: String, _ arguments: [String]) -> (String, [String]) {
        ("/usr/sbin/ip", ["netns", "exec", name, program] + arguments)
    }

    /// Every packet from the namespace to the host dropped: a black hole.
    public func blackHole() throws {
        try inside(["nft", "add", "table", "inet", "mamori_cut"])
        try inside([
            "nft", "add", "chain", "inet", "mamori_cut", "out", "{ type filter hook output priority 0; }",
        ])
        try inside(["nft", "add", "rule", "inet", "mamori_cut", "out", "ip", "daddr", hostAddress, "drop"])
    }

    /// The namespace's end of the pair down: connections to the host are refused at once.
    public func linkDown() throws {
        try inside(["ip", "link", "set", device, "down"])
    }

    /// The link up and no rule: as before the cut.
    public func restore() throws {
        _ = try? Subprocess.run(
            "/usr/sbin/ip", ["netns", "exec", name, "nft", "delete", "table", "inet", "mamori_cut"])
        try inside(["ip", "link", "set", device, "up"])
    }

    /// Deletes the namespace and the pair.
    public func remove() {
        _ = try? Subprocess.run("/usr/sbin/ip", ["link", "del", hostDevice])
        _ = try? Subprocess.run("/usr/sbin/ip", ["netns", "del", name])
    }

    private func inside(_ command: [String]) throws {
        let result = try Subprocess.run("/usr/sbin/ip", ["netns", "exec", name] + command)
        guard result.status == 0 else {
            throw SubprocessError(description: "\(command.joined(separator: " ")) in \(name): \(result.stderr)")
        }
    }

    private static func ip(_ arguments: [String]) throws {
        let result = try Subprocess.run("/usr/sbin/ip", arguments)
        guard result.status == 0 else {
            throw SubprocessError(description: "ip \(arguments.joined(separator: " ")): \(result.stderr)")
        }
    }
}
