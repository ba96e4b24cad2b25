/// Where something stands in a policy file: the file's path as given, and a 1-based line and
/// column (columns count Unicode scalars, as libyaml does).
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The file's path as the loader was given it.
    public let file: String
    /// The line, counting from 1.
    public let line: Int
    /// The column, counting from 1 in Unicode scalars.
    public let column: Int

    /// A location from its parts; `line` and `column` count from 1.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, the form compilers use, so that editors and terminals can jump to it.
    public var description: String { "\(file):\(line):\(column)" }

    /// Orders by file, then line, then column, so that diagnostics read from the top of each file down.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.file, lhs.line, lhs.column) < (rhs.file, rhs.line, rhs.column)
    }
}

/// One problem found in a policy: `file:line:column: error: message`.
public struct PolicyDiagnostic: Sendable, Hashable, CustomStringConvertible {
    /// Errors make a policy unusable; warnings are reported and the policy still loads.
    public enum Severity: String, Sendable, Hashable {
        case error, warning
    }

    /// Where the problem is.
    public let location: SourceLocation
    /// Whether the problem keeps the policy from loading.
    public let severity: Severity
    /// A whole sentence, possibly followed by a hint.
    public let message: String

    /// A diagnostic at `location`; `message` is a whole sentence, with a hint where one is obvious.
    public init(_ severity: Severity, at location: SourceLocation, _ message: String) {
        self.location = location
        self.severity = severity
        self.message = message
    }

    /// The diagnostic as `file:line:column: error: message` (or `warning:`).
    public var description: String { "\(location): \(severity.rawValue): \(message)" }
}

/// A policy folder that could not be loaded: every error found, in file order.
public struct PolicyLoadError: Error, Sendable, CustomStringConvertible {
    /// Every problem, errors and warnings, sorted by location.
    public let diagnostics: [PolicyDiagnostic]

    /// Just the errors: the diagnostics that kept the policy from loading.
    public var errors: [PolicyDiagnostic] { diagnostics.filter { $0.severity == .error } }

    /// Every diagnostic, one per line, in the form `mamori policy check` prints.
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Suggests the closest of `candidates` to a misspelt `word`, if one is close enough to be meant.
func closest(to word: String, in candidates: some Sequence<String>) -> String? {
    let scored = candidates.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= max(2, word.count / 3) }
    return scored.min { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }?.0
}

private func editDistance(_ left: String, _ right: String) -> Int {
    let a = Array(left)
    let b = Array(right)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
