import Foundation
internal import Yams

/// Reading the `rules` section: each rule's effect, roles, actions, resources, classification
/// tests and its `when`/`unless` conditions, located for diagnostics.
extension PolicyAssembler {
    mutating func readRule(_ node: Node, _ reader: inout YAMLReader) {
        guard
            let fields = reader.mapping(
                node, what: "a rule",
                allowed: ["id", "effect", "description", "roles", "actions", "resources", "when", "unless"],
                required: ["id", "effect", "roles", "actions"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "A rule id") }),
            let effectText = fields["effect"].flatMap({ reader.string($0.value, what: "The effect") })
        else { return }
        guard let effect = RuleEffect(rawValue: effectText.value) else {
            diagnostics.append(
                PolicyDiagnostic(
                    .error, at: effectText.location,
                    "The effect must be 'permit' or 'forbid', not '\(effectText.value)'."))
            return
        }
        let roleNames = fields["roles"].map { reader.identifiers($0.value, what: "A role id") } ?? []
        let anyUser = roleNames.contains { $0.value == "*" }
        if anyUser && roleNames.count > 1, let node = fields["roles"]?.value {
            reader.error(node, "'*' (any user) stands alone in a rule's roles.")
        }
        if roleNames.isEmpty, let node = fields["roles"]?.value {
            reader.error(node, "A rule needs at least one role, or '*' for any user.")
        }
        let actionNames = fields["actions"].map { reader.identifiers($0.value, what: "An action") } ?? []
        if actionNames.isEmpty, let node = fields["actions"]?.value {
            reader.error(node, "A rule needs at least one action.")
        }

        var assetsListed: [Located<String>] = []
        var patterns: [String] = []
        var levels: [(Located<String>, LevelTest.Comparison, Located<String>)] = []
        var assetZones: [Located<String>]?
        var tags: [String] = []
        if let resources = fields["resources"]?.value,
            let selector = reader.mapping(
                resources, what: "a rule's resources", allowed: ["assets", "patterns", "where"])
        {
            assetsListed = selector["assets"].map { reader.identifiers($0.value, what: "An asset id") } ?? []
            patterns =
                selector["patterns"].map { reader.identifiers($0.value, what: "A resource pattern").map(\.value) } ?? []
            if let whereNode = selector["where"]?.value {
                if case .mapping(let mapping) = whereNode {
                    for (key, value) in mapping {
                        guard let name = reader.identifier(key, what: "A 'where' key") else { continue }
                        switch name.value {
                        case "zone": assetZones = reader.identifiers(value, what: "A zone id")
                        case "tags": tags = reader.identifiers(value, what: "A tag").map(\.value)
                        default:
                            if let test = readLevelTest(value, &reader) { levels.append((name, test.0, test.1)) }
                        }
                    }
                } else {
                    reader.error(
                        whereNode,
                        "'where' maps attributes to tests, e.g. {confidentiality: \">= 3\", zone: [mynumber]}.")
                }
            }
        }
        rules.append(
            RawRule(
                id: id, effect: effect,
                description: fields["description"].flatMap { reader.string($0.value, what: "The description")?.value }
                    ?? "",
                roles: anyUser ? nil : roleNames, actions: actionNames, assets: assetsListed, patterns: patterns,
                levels: levels, assetZones: assetZones, tags: tags,
                when: fields["when"].flatMap { readConditions($0.value, &reader) },
                unless: fields["unless"].flatMap { readConditions($0.value, &reader) },
                location: id.location
            ))
    }

    /// Reads `">= 3"`, `"<= 2"`, `"3A"` (equal) and the like.
    func readLevelTest(_ node: Node, _ reader: inout YAMLReader) -> (LevelTest.Comparison, Located<String>)? {
        guard let text = reader.string(node, what: "A level test") else { return nil }
        let trimmed = text.value.trimmingCharacters(in: .whitespaces)
        let comparison =
            LevelTest.Comparison.allCases.filter { trimmed.hasPrefix($0.rawValue) }
            .max { $0.rawValue.count < $1.rawValue.count } ?? .equal
        let level = trimmed.dropFirst(trimmed.hasPrefix(comparison.rawValue) ? comparison.rawValue.count : 0)
            .trimmingCharacters(in: .whitespaces)
        guard !level.isEmpty else {
            reader.error(node, "A level test is an operator (=, >=, <=, >, <) and a level, e.g. \">= 3\".")
            return nil
        }
        return (comparison, Located(value: level, location: text.location))
    }

    func readConditions(_ node: Node, _ reader: inout YAMLReader) -> RawConditions? {
        guard
            let fields = reader.mapping(
                node, what: "conditions",
                allowed: ["zone", "factors", "hours", "days", "user-kind", "same-organisation"])
        else { return nil }
        var conditions = RawConditions(location: reader.location(of: node))
        conditions.zones = fields["zone"].map { reader.identifiers($0.value, what: "A zone id") }
        conditions.factors = fields["factors"].map { readFactors($0.value, &reader) }
        if let hours = fields["hours"]?.value, let text = reader.string(hours, what: "hours") {
            conditions.hours = Self.timeWindow(text.value)
            if conditions.hours == nil {
                reader.error(hours, "hours must be a local time window such as \"08:30-17:15\" (24-hour clock).")
            }
        }
        if let days = fields["days"]?.value {
            var weekdays: Set<Int> = []
            for item in reader.list(days, what: "days") {
                guard let name = reader.string(item, what: "A day") else { continue }
                if name.value == "weekdays" {
                    weekdays.formUnion(1...5)
                    continue
                }
                guard let index = Self.dayNames.firstIndex(of: name.value) else {
                    reader.error(item, "Days are mon, tue, wed, thu, fri, sat, sun or weekdays, not '\(name.value)'.")
                    continue
                }
                weekdays.insert(index + 1)
            }
            conditions.weekdays = weekdays
        }
        if let kinds = fields["user-kind"]?.value {
            conditions.userKinds = Set(
                reader.list(kinds, what: "user-kind").compactMap { item -> UserKind? in
                    guard let name = reader.string(item, what: "A user kind") else { return nil }
                    guard let kind = UserKind(rawValue: name.value) else {
                        reader.error(
                            item,
                            "User kinds are \(UserKind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name.value)'."
                        )
                        return nil
                    }
                    return kind
                })
        }
        conditions.sameOrganisation =
            fields["same-organisation"].flatMap { reader.bool($0.value, what: "same-organisation") } ?? false
        return conditions
    }

    static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    static func timeWindow(_ text: String) -> TimeWindow? {
        let parts = text.split(separator: "-").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let start = minutes(parts[0]), let end = minutes(parts[1]), start != end else {
            return nil
        }
        return TimeWindow(start: start, end: end)
    }

    static func minutes(_ text: String) -> Int? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts[1].count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]),
            (0...24).contains(hour), (0...59).contains(minute), hour * 60 + minute <= 24 * 60
        else { return nil }
        return hour * 60 + minute
    }
}
