import Foundation

/// Reads a terminal's PAM configuration (`/etc/pam.d`) to see whether a service's `auth` stack
/// runs `pam_mamori.so` and whether anything before it can let a login through without it.
///
/// Written by hand: no library reads Linux-PAM's configuration syntax, and Linux-PAM itself only
/// exposes it by running a stack. Follows `@include`, `include` and `substack` as Linux-PAM
/// does (`pam.conf(5)`); a line that starts with `-` is a module that may be missing.
public struct PAMStack: Sendable {
    /// One `auth` line after includes were expanded.
    public struct Line: Sendable, Hashable {
        /// The control field as written: `required`, `sufficient`, `optional`, … or a `[value=action …]` list.
        public let control: String
        /// The module as written, a name such as `pam_unix.so` or an absolute path.
        public let module: String
        /// The file and line it came from, for the report.
        public let origin: String
    }

    /// The `auth` lines of a service, in the order Linux-PAM runs them.
    public let auth: [Line]

    /// Reads `service` from `directory`; nil when the file does not exist.
    public init?(service: String, directory: String) {
        var lines: [Line] = []
        var visited: Set<String> = []
        guard Self.read(service, directory: directory, into: &lines, visited: &visited) else { return nil }
        auth = lines
    }

    @discardableResult
    private static func read(_ name: String, directory: String, into lines: inout [Line], visited: inout Set<String>)
        -> Bool
    {
        let path = name.hasPrefix("/") ? name : directory + "/" + name
        // An include cycle would recurse forever; Linux-PAM gives up on one too.
        guard !visited.contains(path), let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return false
        }
        visited.insert(path)
        // Continuation lines (ending in a backslash) are joined first.
        let joined = text.replacingOccurrences(of: "\\\n", with: " ")
        for (number, raw) in joined.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = tokens(String(content))
            guard let first = words.first else { continue }
            if first == "@include", words.count > 1 {
                read(words[1], directory: directory, into: &lines, visited: &visited)
                continue
            }
            guard words.count >= 3 else { continue }
            let type = first.hasPrefix("-") ? String(first.dropFirst()) : first
            guard type.lowercased() == "auth" else { continue }
            let control = words[1]
            if control == "include" || control == "substack" {
                read(words[2], directory: directory, into: &lines, visited: &visited)
                continue
            }
            lines.append(Line(control: control, module: words[2], origin: "\(path):\(number + 1)"))
        }
        return true
    }

    /// Splits a line into words; a `[...]` control (which may hold spaces) is one word.
    static func tokens(_ line: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inBrackets = false
        for character in line {
            if character == "[" { inBrackets = true }
            if character == "]" { inBrackets = false }
            if !inBrackets && (character == " " || character == "\t") {
                if !current.isEmpty { words.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// What the stack means for Mamori.
    public enum Verdict: Sendable, Hashable {
        /// `pam_mamori.so` runs as a required step and nothing before it can end the stack in success.
        case enforced
        /// `pam_mamori.so` is not in the `auth` stack.
        case absent
        /// It is there only as `optional` (its answer does not count).
        case optional(origin: String)
        /// A line before it can end the stack in success on its own: a bypass.
        case bypass(origin: String, module: String)
    }

    /// Whether a login through this service must pass Mamori; anything but ``Verdict/enforced`` is a finding.
    public var verdict: Verdict {
        guard let index = auth.firstIndex(where: { Self.isMamori($0.module) }) else { return .absent }
        let mamori = auth[index]
        if mamori.control == "optional" { return .optional(origin: mamori.origin) }
        for (position, earlier) in auth[..<index].enumerated()
        where Self.canSkip(earlier.control, linesAhead: index - position) {
            return .bypass(origin: earlier.origin, module: earlier.module)
        }
        return .enforced
    }

    static func isMamori(_ module: String) -> Bool {
        (module as NSString).lastPathComponent == "pam_mamori.so"
    }

    /// Whether a line `linesAhead` lines before `pam_mamori.so` can keep it from running: a
    /// `sufficient` line or a `done` action ends the stack in success, and a jump of at least
    /// `linesAhead` lines lands past it. (Jumps are counted over the expanded stack; inside a
    /// `substack` Linux-PAM counts them within the substack, which this can only overstate.)
    static func canSkip(_ control: String, linesAhead: Int) -> Bool {
        if control == "sufficient" { return true }
        guard control.hasPrefix("[") else { return false }
        for pair in control.dropFirst().dropLast().split(separator: " ") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].lowercased()
            if parts[0].lowercased() == "success" && value == "done" { return true }
            if let jump = Int(value), jump >= linesAhead { return true }
        }
        return false
    }
}
