import Foundation
import MamoriCore

/// Writes a Mamori policy as an equivalent Cedar policy set, entity store and requests, so that
/// the benchmark can ask Cedar the same questions. Cedar has no step-up: a Mamori step-up is a
/// Cedar deny. Cedar skips a policy that errors where Mamori denies; the translation avoids
/// errors by testing attributes with `has` first.
enum CedarTranslation {
    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func set(_ items: [String]) -> String {
        "[" + items.map(quoted).joined(separator: ", ") + "]"
    }

    static func policies(_ policy: Policy) -> String {
        var text = ""
        for rule in policy.rules {
            var conditions: [String] = []
            if let roles = rule.roles {
                conditions.append("principal in [" + roles.map { "Role::\(quoted($0))" }.joined(separator: ", ") + "]")
            }
            var resource: [String] = []
            let selector = rule.resources
            if !selector.assets.isEmpty || !selector.patterns.isEmpty {
                var alternatives = selector.assets.map { "resource == Resource::\(quoted($0))" }
                alternatives += selector.patterns.map { "resource.name like \(quoted($0))" }
                resource.append("(" + alternatives.joined(separator: " || ") + ")")
            }
            if let zones = selector.assetZones {
                resource.append("resource has zone && \(set(zones)).contains(resource.zone)")
            }
            for tag in selector.tags { resource.append("resource has tags && resource.tags.contains(\(quoted(tag)))") }
            for test in selector.levels {
                resource.append(
                    "resource has \(test.axis) && resource.\(test.axis) \(test.comparison.rawValue == "=" ? "==" : test.comparison.rawValue) \(test.level)"
                )
            }
            conditions += resource
            conditions += Self.conditions(rule.when)
            let actions = rule.actions.map { "Action::\(quoted($0))" }.joined(separator: ", ")
            text += "@id(\(quoted(rule.id)))\n\(rule.effect.rawValue)(principal, action in [\(actions)], resource)"
            if !conditions.isEmpty { text += "\nwhen { " + conditions.joined(separator: " && ") + " }" }
            if let unless = rule.unless {
                let parts = Self.conditions(unless)
                if !parts.isEmpty { text += "\nunless { " + parts.joined(separator: " && ") + " }" }
            }
            text += ";\n\n"
        }
        return text
    }

    private static func conditions(_ conditions: RuleConditions) -> [String] {
        var parts: [String] = []
        if let zones = conditions.zones { parts.append("\(set(zones)).contains(context.zone)") }
        if let factors = conditions.factors {
            parts.append("context.factors.containsAll(\(set(factors.map(\.rawValue).sorted())))")
        }
        if let hours = conditions.hours {
            parts.append(
                hours.start <= hours.end
                    ? "(context.minute >= \(hours.start) && context.minute < \(hours.end))"
                    : "(context.minute >= \(hours.start) || context.minute < \(hours.end))")
        }
        if let days = conditions.weekdays {
            parts.append("[\(days.sorted().map(String.init).joined(separator: ", "))].contains(context.weekday)")
        }
        if let kinds = conditions.userKinds {
            parts.append("principal has kind && \(set(kinds.map(\.rawValue).sorted())).contains(principal.kind)")
        }
        if conditions.sameOrganisation {
            parts.append("principal has organisation && resource has owner && principal.organisation == resource.owner")
        }
        return parts
    }

    /// The entity store: roles with their parents, every asset with its attributes, every other
    /// resource the requests name, and one user per request holding its roles.
    static func entities(_ policy: Policy, requests: [AuthorizationRequest]) -> [[String: Any]] {
        var entities: [[String: Any]] = policy.roles.map { role in
            [
                "uid": ["type": "Role", "id": role.id], "attrs": [String: Any](),
                "parents": role.inherits.map { ["type": "Role", "id": $0] },
            ]
        }
        var named = Set<String>()
        for asset in policy.assets {
            var attributes: [String: Any] = [
                "name": asset.id, "zone": asset.zone, "owner": asset.owner, "tags": asset.tags,
            ]
            for (axis, level) in asset.levels { attributes[axis] = level }
            entities.append(["uid": ["type": "Resource", "id": asset.id], "attrs": attributes, "parents": [Any]()])
            named.insert(asset.id)
        }
        for request in requests where !named.contains(request.resource) {
            named.insert(request.resource)
            entities.append([
                "uid": ["type": "Resource", "id": request.resource], "attrs": ["name": request.resource],
                "parents": [Any](),
            ])
        }
        for (index, request) in requests.enumerated() {
            var attributes: [String: Any] = [:]
            if let kind = request.kind { attributes["kind"] = kind.rawValue }
            if let organisation = request.organisation { attributes["organisation"] = organisation }
            entities.append([
                "uid": ["type": "User", "id": "request-\(index)"], "attrs": attributes,
                "parents": request.roles.map { ["type": "Role", "id": $0] },
            ])
        }
        return entities
    }

    /// The requests, with the local minute and weekday computed for Cedar (which has no clock).
    static func requests(_ requests: [AuthorizationRequest], timeZone: TimeZone) -> [[String: Any]] {
        requests.enumerated().map { index, request in
            var context: [String: Any] = [
                "zone": request.zone ?? "", "factors": request.factors.map(\.rawValue).sorted(),
            ]
            if let time = request.time {
                let seconds = Int(time.timeIntervalSince1970) + timeZone.secondsFromGMT(for: time)
                let days = seconds / 86_400
                context["minute"] = (seconds % 86_400) / 60
                context["weekday"] = (days + 3) % 7 + 1
            } else {
                context["minute"] = 0
                context["weekday"] = 0
            }
            return [
                "principal": "User::\"request-\(index)\"", "action": "Action::\(quoted(request.action))",
                "resource": "Resource::\(quoted(request.resource))", "context": context,
            ]
        }
    }
}
