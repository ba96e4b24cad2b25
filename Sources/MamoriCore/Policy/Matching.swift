/// A glob over resource or action names: `*` matches any run of characters (also none), `?`
/// exactly one; everything else itself. Compiled once, matched over UTF-8 bytes.
struct GlobPattern: Sendable, Hashable {
    private enum Form: Sendable, Hashable {
        case exact([UInt8])
        case prefix([UInt8])
        case general([UInt8])
    }

    private let form: Form

    init(_ pattern: String) {
        let bytes = Array(pattern.utf8)
        let wildcards = bytes.filter { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") }
        if wildcards.isEmpty {
            form = .exact(bytes)
        } else if wildcards == [UInt8(ascii: "*")] && bytes.last == UInt8(ascii: "*") {
            form = .prefix(Array(bytes.dropLast()))
        } else {
            form = .general(bytes)
        }
    }

    func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            switch form {
            case .exact(let expected): bytes.elementsEqual(expected)
            case .prefix(let prefix): bytes.count >= prefix.count && bytes.prefix(prefix.count).elementsEqual(prefix)
            case .general(let pattern): Self.match(pattern, bytes)
            }
        }
    }

    /// Iterative wildcard matching with one backtrack point: linear in practice, never exponential.
    private static func match(_ pattern: [UInt8], _ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var p = 0
        var t = 0
        var star: Int?
        var resume = 0
        while t < text.count {
            if p < pattern.count && (pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t]) {
                p += 1
                t += 1
            } else if p < pattern.count && pattern[p] == UInt8(ascii: "*") {
                star = p
                resume = t
                p += 1
            } else if let starAt = star {
                p = starAt + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}

/// Whether a rule's resource selector covers a resource.
enum ResourceMatcher {
    /// Whether the `where` part of `selector` holds for `asset`.
    static func selects(_ selector: ResourceSelector, asset: Asset) -> Bool {
        if let zones = selector.assetZones, !zones.contains(asset.zone) { return false }
        for tag in selector.tags where !asset.tags.contains(tag) { return false }
        for test in selector.levels {
            guard let level = asset.levels[test.axis], test.holds(for: level) else { return false }
        }
        return true
    }
}

/// A set of roles as bits over the policy's role indices. The first 64 roles live inline, so that
/// a policy of town size decides without allocating for role sets; larger ones spill to an array.
struct RoleSet: Sendable, Hashable {
    private var first: UInt64 = 0
    private var rest: [UInt64]

    init(capacity: Int) {
        rest = capacity > 64 ? Array(repeating: 0, count: (capacity - 1) / 64) : []
    }

    mutating func insert(_ index: Int) {
        if index < 64 { first |= 1 << UInt64(index) } else { rest[(index >> 6) - 1] |= 1 << UInt64(index & 63) }
    }

    func contains(_ index: Int) -> Bool {
        index < 64 ? first & (1 << UInt64(index)) != 0 : rest[(index >> 6) - 1] & (1 << UInt64(index & 63)) != 0
    }

    mutating func formUnion(_ other: RoleSet) {
        first |= other.first
        for index in rest.indices { rest[index] |= other.rest[index] }
    }

    mutating func formIntersection(_ other: RoleSet) {
        first &= other.first
        for index in rest.indices { rest[index] &= other.rest[index] }
    }

    func intersects(_ other: RoleSet) -> Bool {
        if first & other.first != 0 { return true }
        for index in rest.indices where rest[index] & other.rest[index] != 0 { return true }
        return false
    }

    /// Calls `body` with each member's index, in ascending order.
    func forEach(_ body: (Int) -> Void) {
        Self.forEachBit(of: first, offset: 0, body)
        for (wordIndex, word) in rest.enumerated() { Self.forEachBit(of: word, offset: (wordIndex + 1) << 6, body) }
    }

    private static func forEachBit(of word: UInt64, offset: Int, _ body: (Int) -> Void) {
        var remaining = word
        while remaining != 0 {
            body(offset | remaining.trailingZeroBitCount)
            remaining &= remaining - 1
        }
    }
}
