import Foundation

/// Draws the role hierarchy for people: each arrow points from a role to a role it inherits.
public enum PolicyGraph {
    /// The output language: `dot` for Graphviz (`dot -Tsvg`), `mermaid` for Markdown viewers that draw Mermaid.
    public enum Format: String, Sendable, CaseIterable {
        case dot, mermaid
    }

    /// The hierarchy as Graphviz DOT or a Mermaid flowchart. Privileged roles are drawn bold,
    /// separation-of-duty constraints as dashed red edges.
    public static func render(_ policy: Policy, as format: Format) -> String {
        switch format {
        case .dot: dot(policy)
        case .mermaid: mermaid(policy)
        }
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    private static func label(_ role: Role) -> String {
        var text = role.title == role.id ? role.id : "\(role.title)\\n\(role.id)"
        if let limit = role.maxHolders { text += "\\n≤ \(limit)" }
        return text
    }

    private static func dot(_ policy: Policy) -> String {
        var lines = ["digraph roles {", "  rankdir=BT;", "  node [shape=box, fontname=\"sans-serif\"];"]
        for role in policy.roles {
            let style = role.privileged ? ", style=bold" : ""
            lines.append("  \(quoted(role.id)) [label=\(quoted(label(role)))\(style)];")
        }
        for role in policy.roles {
            for parent in role.inherits { lines.append("  \(quoted(role.id)) -> \(quoted(parent));") }
        }
        for constraint in policy.separationOfDuty {
            for (index, first) in constraint.roles.enumerated() {
                for second in constraint.roles[(index + 1)...] {
                    lines.append(
                        "  \(quoted(first)) -> \(quoted(second)) [dir=none, style=dashed, color=red, label=\(quoted(constraint.id))];"
                    )
                }
            }
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func mermaid(_ policy: Policy) -> String {
        var names: [String: String] = [:]
        for (index, role) in policy.roles.enumerated() { names[role.id] = "r\(index)" }
        var lines = ["flowchart BT"]
        for role in policy.roles {
            let text = label(role).replacingOccurrences(of: "\\n", with: "<br/>").replacingOccurrences(
                of: "\"", with: "#quot;")
            lines.append("  \(names[role.id] ?? role.id)[\"\(text)\"]")
        }
        for role in policy.roles {
            for parent in role.inherits {
                lines.append("  \(names[role.id] ?? role.id) --> \(names[parent] ?? parent)")
            }
        }
        for constraint in policy.separationOfDuty {
            for (index, first) in constraint.roles.enumerated() {
                for second in constraint.roles[(index + 1)...] {
                    lines.append("  \(names[first] ?? first) -. \(constraint.id) .- \(names[second] ?? second)")
                }
            }
        }
        let privileged = policy.roles.filter(\.privileged).compactMap { names[$0.id] }
        if !privileged.isEmpty {
            lines.append("  classDef privileged stroke-width:3px")
            lines.append("  class \(privileged.joined(separator: ",")) privileged")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
