internal import Yams

/// A value read from a policy file, with where it was written.
struct Located<Value> {
    let value: Value
    let location: SourceLocation
}

/// Reads Yams nodes into values while collecting diagnostics with their file, line and column.
///
/// Every reader reports what is wrong and carries on, so that one run lists every problem; a
/// caller gets nil (or an empty list) for a value that could not be read.
struct YAMLReader {
    let file: String
    var diagnostics: [PolicyDiagnostic] = []

    init(file: String) { self.file = file }

    func location(of node: Node) -> SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    mutating func error(_ node: Node, _ message: String) {
        diagnostics.append(PolicyDiagnostic(.error, at: location(of: node), message))
    }

    mutating func warning(_ node: Node, _ message: String) {
        diagnostics.append(PolicyDiagnostic(.warning, at: location(of: node), message))
    }

    /// Reads a mapping whose keys must come from `allowed`; reports unknown and repeated keys,
    /// and `required` keys that are missing.
    mutating func mapping(
        _ node: Node, what: String, allowed: [String], required: [String] = []
    ) -> [String: (key: Node, value: Node)]? {
        guard case .mapping(let mapping) = node else {
            error(node, "\(what) must be a mapping of keys to values.")
            return nil
        }
        var fields: [String: (key: Node, value: Node)] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                error(key, "Keys in \(what) must be plain words.")
                continue
            }
            let name = scalar.string
            guard allowed.contains(name) else {
                let hint = closest(to: name, in: allowed).map { " Did you mean '\($0)'?" } ?? ""
                error(key, "Unknown key '\(name)' in \(what).\(hint) Allowed: \(allowed.joined(separator: ", ")).")
                continue
            }
            guard fields[name] == nil else {
                error(key, "The key '\(name)' appears twice in \(what).")
                continue
            }
            fields[name] = (key, value)
        }
        for name in required where fields[name] == nil {
            error(node, "\(what) needs '\(name)'.")
        }
        return fields
    }

    /// Reads a scalar as text (numbers and words alike: `3` and `"3"` are the same level).
    mutating func string(_ node: Node, what: String) -> Located<String>? {
        guard case .scalar(let scalar) = node else {
            error(node, "\(what) must be a single value, not a list or mapping.")
            return nil
        }
        guard !scalar.string.isEmpty else {
            error(node, "\(what) must not be empty.")
            return nil
        }
        return Located(value: scalar.string, location: location(of: node))
    }

    /// Reads an identifier: letters, digits, `-`, `_`, `.`, `:`, `/` and `*` only.
    mutating func identifier(_ node: Node, what: String) -> Located<String>? {
        guard let text = string(node, what: what) else { return nil }
        let allowed = text.value.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil))
                || "-_.:/*?".unicodeScalars.contains($0)
        }
        guard allowed else {
            error(node, "\(what) '\(text.value)' may hold only ASCII letters, digits and - _ . : / * ?.")
            return nil
        }
        return text
    }

    /// Reads a list of values; a single value stands for a list of one.
    mutating func list(_ node: Node, what: String) -> [Node] {
        switch node {
        case .sequence(let sequence): return Array(sequence)
        case .scalar: return [node]
        default:
            error(node, "\(what) must be a list.")
            return []
        }
    }

    mutating func identifiers(_ node: Node, what: String) -> [Located<String>] {
        list(node, what: what).compactMap { identifier($0, what: what) }
    }

    mutating func bool(_ node: Node, what: String) -> Bool? {
        guard case .scalar = node, let value = node.bool else {
            error(node, "\(what) must be true or false.")
            return nil
        }
        return value
    }

    mutating func integer(_ node: Node, what: String, in range: ClosedRange<Int>) -> Int? {
        guard case .scalar = node, let value = node.int, range.contains(value) else {
            error(node, "\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound).")
            return nil
        }
        return value
    }

    /// Parses a file's text into its root node, reporting syntax errors with their position.
    mutating func parse(_ text: String) -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch let error as YamlError {
            let (mark, problem) = Self.describe(error)
            diagnostics.append(
                PolicyDiagnostic(
                    .error, at: SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1),
                    "This is not valid YAML: \(problem)."
                )
            )
        } catch {
            diagnostics.append(
                PolicyDiagnostic(.error, at: SourceLocation(file: file, line: 1, column: 1), "This is not valid YAML."))
        }
        return nil
    }

    private static func describe(_ error: YamlError) -> (Mark?, String) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return (mark, [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", "))
        case .reader(let problem, _, _, _):
            return (nil, problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return (context.mark, "duplicated keys \(duplicates.joined(separator: ", "))")
        default:
            return (nil, "\(error)")
        }
    }
}
