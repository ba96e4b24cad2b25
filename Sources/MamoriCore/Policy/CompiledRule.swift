/// Bit masks over small vocabularies (factors, user kinds, weekdays, zones), so that checking a
/// condition is an AND, not a set or string comparison.
enum Bits {
    static func factors(_ factors: Set<Factor>) -> UInt8 {
        factors.reduce(0) { mask, factor in mask | (1 << UInt8(Factor.allCases.firstIndex(of: factor) ?? 0)) }
    }

    static func factorSet(_ mask: UInt8) -> Set<Factor> {
        Set(Factor.allCases.enumerated().filter { mask & (1 << UInt8($0.offset)) != 0 }.map(\.element))
    }

    static func kind(_ kind: UserKind) -> UInt8 {
        1 << UInt8(UserKind.allCases.firstIndex(of: kind) ?? 0)
    }
}

/// A rule's conditions with ids resolved to indices and sets to masks.
struct CompiledConditions: Sendable {
    /// Zones allowed, one bit per zone index; nil for any zone.
    var zones: UInt64?
    /// Factors required (0: none).
    var factors: UInt8 = 0
    var hours: TimeWindow?
    /// Weekdays allowed, bit (weekday − 1); 0 for any day.
    var weekdays: UInt8 = 0
    /// User kinds allowed; 0 for any kind.
    var userKinds: UInt8 = 0
    var sameOrganisation = false
    let isEmpty: Bool

    init(_ conditions: RuleConditions, zoneIndex: [String: Int]) {
        isEmpty = conditions.isEmpty
        zones = conditions.zones.map { ids in
            ids.compactMap { zoneIndex[$0] }.filter { $0 < 64 }.reduce(UInt64(0)) { $0 | (1 << UInt64($1)) }
        }
        factors = conditions.factors.map(Bits.factors) ?? 0
        hours = conditions.hours
        weekdays = conditions.weekdays?.reduce(UInt8(0)) { $0 | (1 << UInt8($1 - 1)) } ?? 0
        userKinds = conditions.userKinds?.reduce(UInt8(0)) { $0 | Bits.kind($1) } ?? 0
        sameOrganisation = conditions.sameOrganisation
    }
}

/// An asset as the engine reads it: zone as an index, levels by axis index.
struct CompiledAsset: Sendable {
    let zone: Int
    let owner: String
    /// Level index per axis index; -1 where the asset has none.
    let levels: [Int]
    let tags: [String]
}

/// A rule as the engine evaluates it: nothing to resolve or copy at decision time.
struct CompiledRule: Sendable {
    let isForbid: Bool
    /// Roles named; nil for any user.
    let roles: RoleSet?
    let listedAssets: Set<Int>
    let patterns: [GlobPattern]
    let namesNothing: Bool
    let needsAsset: Bool
    let levels: [(axis: Int, test: LevelTest)]
    /// Asset zones allowed, by bit; nil for any.
    let assetZones: UInt64?
    let tags: [String]
    let when: CompiledConditions
    let unless: CompiledConditions?

    init(_ rule: Rule, roles: RoleSet?, assetIndex: [String: Int], zoneIndex: [String: Int], axisIndex: [String: Int]) {
        isForbid = rule.effect == .forbid
        self.roles = roles
        listedAssets = Set(rule.resources.assets.compactMap { assetIndex[$0] })
        patterns = rule.resources.patterns.map(GlobPattern.init)
        namesNothing = rule.resources.namesNothing
        needsAsset = rule.resources.needsAsset
        levels = rule.resources.levels.compactMap { test in axisIndex[test.axis].map { ($0, test) } }
        assetZones = rule.resources.assetZones.map { ids in
            ids.compactMap { zoneIndex[$0] }.filter { $0 < 64 }.reduce(UInt64(0)) { $0 | (1 << UInt64($1)) }
        }
        tags = rule.resources.tags
        when = CompiledConditions(rule.when, zoneIndex: zoneIndex)
        unless = rule.unless.map { CompiledConditions($0, zoneIndex: zoneIndex) }
    }

    /// Whether the rule's resource selector covers the resource (`asset` is its register index).
    func selects(_ resource: String, asset: Int?, assets: [CompiledAsset]) -> Bool {
        if !namesNothing {
            let listed = asset.map { listedAssets.contains($0) } ?? false
            guard listed || patterns.contains(where: { $0.matches(resource) }) else { return false }
        }
        guard needsAsset else { return true }
        // `where` tests describe registered assets; any other resource is simply not selected.
        guard let asset else { return false }
        let entry = assets[asset]
        if let assetZones, assetZones & (1 << UInt64(entry.zone)) == 0 { return false }
        for tag in tags where !entry.tags.contains(tag) { return false }
        for (axis, test) in levels {
            let level = entry.levels[axis]
            guard level >= 0, test.holds(for: level) else { return false }
        }
        return true
    }
}
