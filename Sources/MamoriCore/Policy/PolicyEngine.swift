import Foundation

/// The compiled policy: ids interned to indices, role closures precomputed as bit sets, and rules
/// indexed by action, then by listed asset or by role, so that a decision looks only at the
/// rules that could apply. Shared, immutable, safe to use from any thread.
final class CompiledPolicy: Sendable {
    let revision: String
    let rules: [Rule]
    let settings: PolicySettings
    let roleIndex: [String: Int]
    let roleIds: [String]
    /// Each role and every role it inherits from.
    let closures: [RoleSet]
    /// Per zone index: the roles that take effect there. `usableWithoutZone` for a request with none.
    let usableInZone: [RoleSet]
    let usableWithoutZone: RoleSet
    let zoneIndex: [String: Int]
    let assetIndex: [String: Int]
    let assets: [CompiledAsset]
    let actionIndex: [String: Int]
    let byAction: [ActionRules]
    /// The rules in evaluation form, in the policy's order (indices match `rules`).
    let compiledRules: [CompiledRule]

    struct ActionRules: Sendable {
        /// Rules that list the asset explicitly, by asset index.
        var byAsset: [Int: [Int32]] = [:]
        /// Rules that name no asset (patterns or `where` only), by role index.
        var byRole: [Int: [Int32]] = [:]
        /// Rules that name no asset and apply to any user.
        var anyUser: [Int32] = []
    }

    init(_ policy: Policy) {
        revision = policy.revision
        rules = policy.rules
        settings = policy.settings
        roleIds = policy.roles.map(\.id)
        let roleIndex = Dictionary(
            policy.roles.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.roleIndex = roleIndex
        let roleCount = policy.roles.count
        let parents = policy.roles.map { $0.inherits.compactMap { roleIndex[$0] } }
        closures = (0..<roleCount).map { start in
            var set = RoleSet(capacity: roleCount)
            var stack = [start]
            while let current = stack.popLast() {
                if set.contains(current) { continue }
                set.insert(current)
                stack += parents[current]
            }
            return set
        }
        zoneIndex = Dictionary(policy.zones.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        var withoutZone = RoleSet(capacity: roleCount)
        usableInZone = policy.zones.map { zone in
            var set = RoleSet(capacity: roleCount)
            for (index, role) in policy.roles.enumerated() where role.zones?.contains(zone.id) ?? true {
                set.insert(index)
            }
            return set
        }
        for (index, role) in policy.roles.enumerated() where role.zones == nil { withoutZone.insert(index) }
        usableWithoutZone = withoutZone
        let axisIndex = Dictionary(
            policy.axes.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        let zoneIndex = self.zoneIndex
        assets = policy.assets.map { asset in
            CompiledAsset(
                zone: zoneIndex[asset.zone] ?? 0, owner: asset.owner,
                levels: policy.axes.map { asset.levels[$0.id] ?? -1 }, tags: asset.tags
            )
        }
        let assetIndex = Dictionary(
            policy.assets.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        let actionIndex = Dictionary(
            policy.actions.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.assetIndex = assetIndex
        self.actionIndex = actionIndex

        var byAction = Array(repeating: ActionRules(), count: policy.actions.count)
        var compiledRules: [CompiledRule] = []
        for (ruleNumber, rule) in policy.rules.enumerated() {
            let number = Int32(ruleNumber)
            let roles: RoleSet? = rule.roles.map { ids in
                var set = RoleSet(capacity: roleCount)
                ids.compactMap { roleIndex[$0] }.forEach { set.insert($0) }
                return set
            }
            let compiledRule = CompiledRule(
                rule, roles: roles, assetIndex: assetIndex, zoneIndex: zoneIndex, axisIndex: axisIndex
            )
            compiledRules.append(compiledRule)
            let listedAssets = compiledRule.listedAssets
            for actionId in rule.actions {
                guard let action = actionIndex[actionId] else { continue }
                for asset in listedAssets { byAction[action].byAsset[asset, default: []].append(number) }
                // Rules that name no asset, or patterns besides assets, must be found by role too.
                guard listedAssets.isEmpty || !rule.resources.patterns.isEmpty else { continue }
                if let roles {
                    roles.forEach { byAction[action].byRole[$0, default: []].append(number) }
                } else {
                    byAction[action].anyUser.append(number)
                }
            }
        }
        self.byAction = byAction
        self.compiledRules = compiledRules
    }
}

/// Decides authorization requests against one validated policy.
///
/// Build it once per policy load (compilation indexes every rule); ``evaluate(_:)`` is then pure,
/// allocation-light and thread-safe. The rules of combination: default deny; forbid beats permit;
/// a rule that cannot be evaluated denies, naming the error; a permit whose only unmet condition
/// is a factor the session lacks answers step-up, naming the factors.
public struct PolicyEngine: Sendable {
    let compiled: CompiledPolicy

    /// The policy the engine was compiled from.
    public let policy: Policy

    /// Compiles `policy`. Compiling indexes every rule, so build one engine per policy load and share it.
    public init(policy: Policy) {
        self.policy = policy
        compiled = CompiledPolicy(policy)
    }

    /// The digest of the policy files.
    public var revision: String { compiled.revision }

    /// Decides a request.
    public func evaluate(_ request: AuthorizationRequest) -> Decision {
        let policy = compiled
        var notes: [Decision.Note] = []
        guard let action = policy.actionIndex[request.action] else {
            return decision(.deny, notes: [.unknownAction(request.action)])
        }
        var effective = RoleSet(capacity: policy.roleIds.count)
        for role in request.roles {
            if let index = policy.roleIndex[role] {
                effective.formUnion(policy.closures[index])
            } else {
                notes.append(.unknownRole(role))
            }
        }
        if let zone = request.zone, let index = policy.zoneIndex[zone] {
            effective.formIntersection(policy.usableInZone[index])
        } else {
            effective.formIntersection(policy.usableWithoutZone)
        }
        let asset = policy.assetIndex[request.resource]
        let rules = policy.byAction[action]

        var context = EvaluationContext(
            request: request, asset: asset.map { policy.assets[$0] },
            zone: request.zone.flatMap { policy.zoneIndex[$0] },
            settings: policy.settings
        )
        // Every rule that applied, with how; read back below to combine. Rules reachable through
        // several roles are evaluated again, harmlessly, but recorded once.
        var applied: [(rule: Int32, outcome: RuleOutcome)] = []
        func consider(_ number: Int32) {
            let rule = policy.compiledRules[Int(number)]
            if let roles = rule.roles, !roles.intersects(effective) { return }
            guard rule.selects(request.resource, asset: asset, assets: policy.assets) else { return }
            let outcome = outcome(of: rule, &context)
            if case .noMatch = outcome { return }
            if applied.contains(where: { $0.rule == number }) { return }
            applied.append((number, outcome))
        }
        if let asset, let listed = rules.byAsset[asset] { listed.forEach(consider) }
        rules.anyUser.forEach(consider)
        effective.forEach { role in rules.byRole[role]?.forEach(consider) }

        var forbids: [Int32] = []
        var permits: [Int32] = []
        var liftingForbids: [Int32] = []
        var liftingFactors: Set<Factor> = []
        var stepUps: [(Int32, Set<Factor>)] = []
        var errors: [Int32] = []
        for (number, outcome) in applied {
            switch outcome {
            case .noMatch: continue
            case .match:
                if policy.compiledRules[Int(number)].isForbid { forbids.append(number) } else { permits.append(number) }
            case .needsFactors(let missing): stepUps.append((number, Bits.factorSet(missing)))
            case .liftedBy(let factors):
                liftingForbids.append(number)
                liftingFactors.formUnion(Bits.factorSet(factors))
            case .error(let message):
                errors.append(number)
                notes.append(.ruleError(number, message))
            }
        }
        let matched = applied.map(\.rule)

        if !errors.isEmpty {
            return decision(.deny, deciding: errors, matched: matched, notes: notes)
        }
        if !forbids.isEmpty {
            return decision(.deny, deciding: forbids, matched: matched, notes: notes)
        }
        if !permits.isEmpty {
            if liftingFactors.isEmpty { return decision(.allow, deciding: permits, matched: matched, notes: notes) }
            return decision(.stepUp, deciding: liftingForbids, matched: matched, notes: notes, missing: liftingFactors)
        }
        if let (number, missing) = stepUps.min(by: { $0.1.count < $1.1.count }) {
            return decision(
                .stepUp, deciding: [number] + liftingForbids, matched: matched, notes: notes,
                missing: missing.union(liftingFactors)
            )
        }
        notes.append(.noPermit)
        return decision(.deny, deciding: liftingForbids, matched: matched, notes: notes)
    }

    private func decision(
        _ effect: Decision.Effect, deciding: [Int32] = [], matched: [Int32] = [], notes: [Decision.Note],
        missing: Set<Factor> = []
    ) -> Decision {
        Decision(
            effect: effect, missingFactors: missing.sorted(), policyRevision: compiled.revision, storage: compiled,
            deciding: deciding, matched: matched, notes: notes
        )
    }

    // MARK: Conditions

    private enum RuleOutcome {
        case noMatch, match
        /// A permit lacking these factors (a mask).
        case needsFactors(UInt8)
        /// A forbid that these factors (a mask) would lift.
        case liftedBy(UInt8)
        case error(String)
    }

    private enum ConditionOutcome {
        case holds, fails
        case lacksFactors(UInt8)
        case error(String)
    }

    private func outcome(of rule: CompiledRule, _ context: inout EvaluationContext) -> RuleOutcome {
        var missingForPermit: UInt8 = 0
        switch check(rule.when, &context) {
        case .fails: return .noMatch
        case .error(let message): return .error(message)
        case .lacksFactors(let missing): missingForPermit = missing
        case .holds: break
        }
        if let unless = rule.unless {
            switch check(unless, &context) {
            case .holds: return .noMatch
            case .fails: break
            case .error(let message): return .error(message)
            case .lacksFactors(let missing):
                if rule.isForbid { return .liftedBy(missing) }
            }
        }
        return missingForPermit == 0 ? .match : .needsFactors(missingForPermit)
    }

    /// Checks every condition given; a definite failure wins over an error, which wins over
    /// missing factors (a rule that fails on other grounds needs no step-up).
    private func check(_ conditions: CompiledConditions, _ context: inout EvaluationContext) -> ConditionOutcome {
        if conditions.isEmpty { return .holds }
        var error: String?
        if let zones = conditions.zones {
            if context.request.zone == nil {
                error = "the request names no zone"
            } else if let zone = context.zone, zone < 64, zones & (1 << UInt64(zone)) != 0 {
                // In one of the rule's zones.
            } else {
                return .fails
            }
        }
        if conditions.userKinds != 0 {
            if let kind = context.request.kind {
                if conditions.userKinds & Bits.kind(kind) == 0 { return .fails }
            } else {
                error = error ?? "the user's kind is not known"
            }
        }
        if conditions.hours != nil || conditions.weekdays != 0 {
            if let local = context.localTime() {
                if let hours = conditions.hours, !hours.contains(minute: local.minute) { return .fails }
                if conditions.weekdays != 0, conditions.weekdays & (1 << UInt8(local.weekday - 1)) == 0 {
                    return .fails
                }
            } else {
                error = error ?? "the request carries no time"
            }
        }
        if conditions.sameOrganisation {
            if let asset = context.asset, let organisation = context.request.organisation {
                if asset.owner != organisation { return .fails }
            } else {
                error =
                    error
                    ?? (context.asset == nil
                        ? "the resource is not in the asset register, so it has no owner"
                        : "the user has no organisation")
            }
        }
        if let error { return .error(error) }
        let missing = conditions.factors & ~context.factors
        return missing == 0 ? .holds : .lacksFactors(missing)
    }

    // MARK: Grants

    /// Checks whether `role` may be granted to a user who holds `heldRoles`, with `holders` users
    /// holding it already: separation of duty over inherited roles, and the role's holder limit.
    /// Pure: the caller supplies the counts from the store.
    public func checkGrant(role: String, to heldRoles: [String], holders: Int) -> [GrantViolation] {
        guard let index = compiled.roleIndex[role] else { return [.unknownRole(role)] }
        var violations: [GrantViolation] = []
        var after = compiled.closures[index]
        for held in heldRoles {
            if let heldIndex = compiled.roleIndex[held] { after.formUnion(compiled.closures[heldIndex]) }
        }
        for constraint in policy.separationOfDuty {
            let together = constraint.roles.filter { compiled.roleIndex[$0].map(after.contains) ?? false }
            if together.count > constraint.maximum {
                violations.append(
                    .separationOfDuty(constraint: constraint.id, roles: together, reason: constraint.reason))
            }
        }
        if let limit = policy.roles[index].maxHolders, holders >= limit, !heldRoles.contains(role) {
            violations.append(.holderLimit(role: role, limit: limit, holders: holders))
        }
        return violations
    }

    /// Those of `roles` (directly held, by id) that take effect in `zone`: the roles the role
    /// declares no zones for, or lists `zone` among them. Unknown roles and zones take no effect.
    public func roles(_ roles: [String], takingEffectIn zone: String) -> [String] {
        guard let zoneIndex = compiled.zoneIndex[zone] else { return [] }
        return roles.filter { role in compiled.roleIndex[role].map(compiled.usableInZone[zoneIndex].contains) ?? false }
    }

    /// What a login of a user holding `roles` may present on a terminal of `zone` while the terminal
    /// cannot reach its hub: the zone's `offline-login` when a held role that takes effect in
    /// `zone` is, or inherits, a role of `settings.offline.roles` that takes effect there too; a
    /// privileged role counts only when it is named itself. ``OfflineLogin/deny`` otherwise.
    public func offlineLogin(roles: [String], zone: String) -> OfflineLogin {
        guard let declared = policy.zones.first(where: { $0.id == zone }), declared.offlineLogin != .deny else {
            return .deny
        }
        let allowed = Set(self.roles(Array(policy.settings.offline.roles), takingEffectIn: zone))
        let privileged = Set(policy.roles.filter(\.privileged).map(\.id))
        let admitted = self.roles(roles, takingEffectIn: zone).contains { role in
            privileged.contains(role) ? allowed.contains(role) : closure(of: role).contains(where: allowed.contains)
        }
        return admitted ? declared.offlineLogin : .deny
    }

    /// Every role `role` includes (itself and all it inherits from), by id, sorted.
    public func closure(of role: String) -> [String] {
        guard let index = compiled.roleIndex[role] else { return [] }
        var ids: [String] = []
        compiled.closures[index].forEach { ids.append(compiled.roleIds[$0]) }
        return ids.sorted()
    }
}

/// Per-request facts computed at most once, and only when a rule asks for them.
private struct EvaluationContext {
    let request: AuthorizationRequest
    let asset: CompiledAsset?
    /// The request's zone as an index; nil when absent or not in the policy.
    let zone: Int?
    /// The session's factors as a mask.
    let factors: UInt8
    let settings: PolicySettings
    private var cachedLocalTime: (minute: Int, weekday: Int)??

    init(request: AuthorizationRequest, asset: CompiledAsset?, zone: Int?, settings: PolicySettings) {
        self.request = request
        self.asset = asset
        self.zone = zone
        self.factors = Bits.factors(request.factors)
        self.settings = settings
    }

    /// Minutes after local midnight and the ISO weekday (1 = Monday) at the terminal.
    mutating func localTime() -> (minute: Int, weekday: Int)? {
        if let cached = cachedLocalTime { return cached }
        let computed = request.time.map { time -> (minute: Int, weekday: Int) in
            let offset = settings.timeZone.secondsFromGMT(for: time)
            let seconds = Int((time.timeIntervalSince1970).rounded(.down)) + offset
            let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
            let secondOfDay = seconds - days * 86_400
            // 1970-01-01 was a Thursday (ISO weekday 4).
            let weekday = ((days + 3) % 7 + 7) % 7 + 1
            return (secondOfDay / 60, weekday)
        }
        cachedLocalTime = .some(computed)
        return computed
    }
}
