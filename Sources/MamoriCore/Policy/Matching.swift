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

/// A set of roles as bits over the policy's role indices.
struct RoleSet: Sendable, Hashable {
    private(set) var words: [UInt64]

    init(capacity: Int) {
        words = Array(repeating: 0, count: max(1, (capacity + 63) / 64))
    }

    mutating func insert(_ index: Int) {
        words[index >> 6] |= 1 << UInt64(index & 63)
    }

    func contains(_ index: Int) -> Bool {
        words[index >> 6] & (1 << UInt64(index & 63)) != 0
    }

    mutating func formUnion(_ other: RoleSet) {
        for index in words.indices { words[index] |= other.words[index] }
    }

    mutating func formIntersection(_ other: RoleSet) {
        for index in words.indices { words[index] &= other.words[index] }
    }

    func intersects(_ other: RoleSet) -> Bool {
        for index in words.indices where words[index] & other.words[index] != 0 { return true }
        return false
    }

    /// Calls `body` with each member's index, in ascending order.
    func forEach(_ body: (Int) -> Void) {
        for (wordIndex, word) in words.enumerated() {
            var remaining = word
            while remaining != 0 {
                let bit = remaining.trailingZeroBitCount
                body(wordIndex << 6 | bit)
                remaining &= remaining - 1
            }
        }
    }
}
