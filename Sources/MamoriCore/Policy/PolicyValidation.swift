import Foundation

/// Validating the policy as a whole, once every file is read: duplicate ids, references between
/// sections, inheritance cycles, constraints, and rules that can never match. Each finding is a
/// diagnostic at its `file:line:column`.
extension PolicyAssembler {

    mutating func error(_ location: SourceLocation, _ message: String) {
        diagnostics.append(PolicyDiagnostic(.error, at: location, message))
    }

    mutating func warning(_ location: SourceLocation, _ message: String) {
        diagnostics.append(PolicyDiagnostic(.warning, at: location, message))
    }

    /// Reports ids declared twice; returns the first declaration of each id.
    mutating func unique(_ kind: String, _ entries: [(String, SourceLocation)]) -> [String: SourceLocation] {
        var first: [String: SourceLocation] = [:]
        for (id, location) in entries {
            if let earlier = first[id] {
                error(location, "The \(kind) '\(id)' is declared twice; the first is at \(earlier).")
            } else {
                first[id] = location
            }
        }
        return first
    }

    mutating func check(_ reference: Located<String>, isA kind: String, in known: [String: SourceLocation]) {
        guard known[reference.value] == nil else { return }
        let hint = closest(to: reference.value, in: known.keys).map { " Did you mean '\($0)'?" } ?? ""
        error(reference.location, "Unknown \(kind) '\(reference.value)'.\(hint)")
    }

    mutating func finish(revision: String) -> (Policy?, [PolicyDiagnostic]) {
        guard unparsedFiles == 0 else { return (nil, diagnostics) }
        if axes.isEmpty {
            // The guideline's usual levels, where a policy defines none.
            let origin = SourceLocation(file: files.first ?? "policy", line: 1, column: 1)
            axes = [
                (ClassificationAxis(id: "confidentiality", title: "機密性", levels: ["1", "2", "3"]), origin),
                (ClassificationAxis(id: "integrity", title: "完全性", levels: ["1", "2"]), origin),
                (ClassificationAxis(id: "availability", title: "可用性", levels: ["1", "2"]), origin),
            ]
        }
        let zoneIds = unique("zone", zones.map { ($0.0.id, $0.1) })
        let axisIds = unique("classification axis", axes.map { ($0.0.id, $0.1) })
        let organisationIds = unique("organisation", organisations.map { ($0.0.id, $0.1) })
        let assetIds = unique("asset", assets.map { ($0.id.value, $0.location) })
        let roleIds = unique("role", roles.map { ($0.id.value, $0.id.location) })
        let actionIds = unique("action", actions.map { ($0.0.id, $0.1) })
        _ = unique("rule", rules.map { ($0.id.value, $0.location) })
        _ = unique("constraint", constraints.map { ($0.id.value, $0.id.location) })
        if zones.isEmpty {
            error(SourceLocation(file: files.first ?? "policy", line: 1, column: 1), "The policy declares no zones.")
        }
        let axisLevels = Dictionary(axes.map { ($0.0.id, $0.0.levels) }, uniquingKeysWith: { first, _ in first })

        func levelIndex(_ axis: Located<String>, _ level: Located<String>) -> Int? {
            guard let levels = axisLevels[axis.value] else { return nil }
            guard let index = levels.firstIndex(of: level.value) else {
                error(
                    level.location,
                    "The level '\(level.value)' is not on the axis '\(axis.value)' (levels: \(levels.joined(separator: ", ")))."
                )
                return nil
            }
            return index
        }

        var checkedAssets: [Asset] = []
        for asset in assets {
            asset.zone.map { check($0, isA: "zone", in: zoneIds) }
            asset.owner.map { check($0, isA: "organisation", in: organisationIds) }
            var levels: [String: Int] = [:]
            for (axis, level) in asset.levels {
                check(axis, isA: "classification axis", in: axisIds)
                if levels[axis.value] != nil { error(axis.location, "The axis '\(axis.value)' is given twice.") }
                if let index = levelIndex(axis, level) { levels[axis.value] = index }
            }
            for axis in axes.map(\.0.id) where !asset.levels.contains(where: { $0.axis.value == axis }) {
                error(asset.location, "The asset '\(asset.id.value)' has no level on the axis '\(axis)'.")
            }
            checkedAssets.append(
                Asset(
                    id: asset.id.value, title: asset.title, zone: asset.zone?.value ?? "",
                    owner: asset.owner?.value ?? "",
                    levels: levels, tags: asset.tags
                ))
        }

        for role in roles {
            role.inherits.forEach { check($0, isA: "role", in: roleIds) }
            role.zones?.forEach { check($0, isA: "zone", in: zoneIds) }
        }
        let closures = checkInheritance()

        let declaredActions = actions.map(\.0.id)
        var checkedRules: [Rule] = []
        for rule in rules {
            rule.roles?.forEach { check($0, isA: "role", in: roleIds) }
            var expanded: [String] = []
            for action in rule.actions {
                if action.value.contains("*") || action.value.contains("?") {
                    let pattern = GlobPattern(action.value)
                    let matches = declaredActions.filter { pattern.matches($0) }
                    if matches.isEmpty {
                        error(action.location, "The action pattern '\(action.value)' matches no declared action.")
                    }
                    expanded += matches
                } else {
                    check(action, isA: "action", in: actionIds)
                    expanded.append(action.value)
                }
            }
            rule.assets.forEach { check($0, isA: "asset", in: assetIds) }
            rule.assetZones?.forEach { check($0, isA: "zone", in: zoneIds) }
            var tests: [LevelTest] = []
            for (axis, comparison, level) in rule.levels {
                guard axisIds[axis.value] != nil else {
                    let hint =
                        closest(to: axis.value, in: Array(axisIds.keys) + ["zone", "tags"]).map {
                            " Did you mean '\($0)'?"
                        } ?? ""
                    error(
                        axis.location,
                        "Unknown 'where' key '\(axis.value)': it is neither a classification axis nor zone or tags.\(hint)"
                    )
                    continue
                }
                if let index = levelIndex(axis, level) {
                    tests.append(LevelTest(axis: axis.value, comparison: comparison, level: index))
                }
            }
            for conditions in [rule.when, rule.unless].compactMap({ $0 }) {
                conditions.zones?.forEach { check($0, isA: "zone", in: zoneIds) }
            }
            if rule.effect == .forbid, rule.when?.factors != nil, let when = rule.when {
                error(
                    when.location,
                    "A forbid rule cannot require factors in 'when'; say which factors lift it with 'unless: {factors: …}'."
                )
            }
            let selector = ResourceSelector(
                assets: rule.assets.map(\.value), patterns: rule.patterns, levels: tests,
                assetZones: rule.assetZones?.map(\.value), tags: rule.tags
            )
            let checked = Rule(
                id: rule.id.value, effect: rule.effect, description: rule.description, roles: rule.roles?.map(\.value),
                actions: Array(Set(expanded)).sorted(), resources: selector, when: Self.conditions(rule.when),
                unless: rule.unless.map { Self.conditions($0) }, location: rule.location
            )
            warnIfNeverMatches(checked, assets: checkedAssets)
            checkedRules.append(checked)
        }

        for constraint in constraints {
            constraint.roles.forEach { check($0, isA: "role", in: roleIds) }
            var seen: Set<String> = []
            for role in constraint.roles where !seen.insert(role.value).inserted {
                error(
                    role.location, "The role '\(role.value)' appears twice in the constraint '\(constraint.id.value)'.")
            }
        }
        // Who may log in offline: declared roles; a privileged one is warned about, since an
        // offline login is checked against what the terminal last heard.
        offlineRoles.forEach { check($0, isA: "role", in: roleIds) }
        // A privileged role counts only when named itself (not through a role it inherits).
        for role in offlineRoles where roles.contains(where: { $0.id.value == role.value && $0.privileged }) {
            warning(
                role.location,
                "The privileged role '\(role.value)' may log in offline: a revocation made during the cut reaches the "
                    + "terminal only when the link is back.")
        }
        if !offlineRoles.isEmpty, !zones.contains(where: { $0.0.offlineLogin != .deny }), let offlineLocation {
            warning(offlineLocation, "Roles may log in offline, but no zone has an offline-login other than deny.")
        }
        // A role whose inherited roles already break a constraint can never be granted.
        for role in roles {
            let closure = closures[role.id.value] ?? [role.id.value]
            for constraint in constraints {
                let held = constraint.roles.map(\.value).filter { closure.contains($0) }
                if held.count > constraint.maximum {
                    error(
                        role.id.location,
                        "The role '\(role.id.value)' includes \(held.joined(separator: " and ")) through inheritance, which the constraint '\(constraint.id.value)' forbids holding together."
                    )
                }
            }
        }

        guard !diagnostics.contains(where: { $0.severity == .error }) else { return (nil, diagnostics) }
        let policy = Policy(
            revision: revision, files: files, zones: zones.map(\.0), axes: axes.map(\.0),
            organisations: organisations.map(\.0), assets: checkedAssets,
            roles: roles.map {
                Role(
                    id: $0.id.value, title: $0.title, inherits: $0.inherits.map(\.value), privileged: $0.privileged,
                    maxHolders: $0.maxHolders, zones: $0.zones?.map(\.value))
            },
            actions: actions.map(\.0), rules: checkedRules,
            separationOfDuty: constraints.map {
                SeparationOfDuty(id: $0.id.value, roles: $0.roles.map(\.value), maximum: $0.maximum, reason: $0.reason)
            },
            settings: settings ?? .defaults,
            warnings: diagnostics.filter { $0.severity == .warning }
        )
        return (policy, diagnostics)
    }

    static func conditions(_ raw: RawConditions?) -> RuleConditions {
        guard let raw else { return .none }
        return RuleConditions(
            zones: raw.zones?.map(\.value), factors: raw.factors, hours: raw.hours, weekdays: raw.weekdays,
            userKinds: raw.userKinds, sameOrganisation: raw.sameOrganisation
        )
    }

    /// Reports each inheritance cycle once; returns every role's closure (itself and every role it
    /// inherits from, directly or not). The walk keeps a visited set, so cycles cannot hang it.
    mutating func checkInheritance() -> [String: Set<String>] {
        let parents = Dictionary(
            roles.map { ($0.id.value, $0.inherits.map(\.value)) }, uniquingKeysWith: { first, _ in first })
        var closures: [String: Set<String>] = [:]
        for role in roles {
            var closure: Set<String> = []
            var stack = [role.id.value]
            while let current = stack.popLast() {
                guard closure.insert(current).inserted else { continue }
                stack += parents[current] ?? []
            }
            closures[role.id.value] = closure
        }
        var reported: Set<[String]> = []
        for role in roles {
            let id = role.id.value
            // On a cycle: some parent reaches back to the role.
            guard (parents[id] ?? []).contains(where: { closures[$0]?.contains(id) == true }) else { continue }
            let members = (closures[id] ?? []).filter { closures[$0]?.contains(id) == true }.sorted()
            guard reported.insert(members).inserted else { continue }
            error(
                role.id.location,
                "Roles inherit in a cycle: \(members.joined(separator: ", ")) each inherit from themselves through the others."
            )
        }
        return closures
    }

    mutating func warnIfNeverMatches(_ rule: Rule, assets: [Asset]) {
        let selector = rule.resources
        if selector.namesNothing && selector.needsAsset {
            let any = assets.contains { ResourceMatcher.selects(selector, asset: $0) }
            if !any {
                warning(
                    rule.location,
                    "The rule '\(rule.id)' can never match: its 'where' selects no asset in the register.")
            }
        }
        if let zones = rule.when.zones, let roleIds = rule.roles {
            let usable = roleIds.contains { id in
                guard let role = roles.first(where: { $0.id.value == id }) else { return true }
                return role.zones.map { allowed in allowed.contains { zones.contains($0.value) } } ?? true
            }
            if !usable {
                warning(
                    rule.location, "The rule '\(rule.id)' can never match: none of its roles is usable in its zones.")
            }
        }
    }
}
