internal import Crypto
public import Foundation
internal import Yams

/// Reads a policy folder: every `*.yaml` file directly in it (not `tests/`), merged into one
/// policy, validated as a whole.
///
/// Every problem is reported at once as `file:line:column: error: message`; the loader never
/// crashes on a file's content. A policy with errors is not returned at all (fail closed).
public enum PolicyLoader {
    /// The largest policy file read, so that a runaway file cannot exhaust memory.
    public static let maximumFileSize = 4 * 1024 * 1024

    /// Loads and validates the policy in `directory`.
    ///
    /// - Throws: ``PolicyLoadError`` with every diagnostic when any error is found, or when the
    ///   folder cannot be read.
    public static func load(directory: URL) throws(PolicyLoadError) -> Policy {
        // Diagnostics name files as the caller named the folder (relative stays relative).
        let shown = directory.relativePath
        let folder = SourceLocation(file: shown, line: 1, column: 1)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        } catch {
            throw PolicyLoadError(diagnostics: [
                PolicyDiagnostic(.error, at: folder, "The policy folder cannot be read.")
            ])
        }
        var files: [(name: String, text: String)] = []
        var problems: [PolicyDiagnostic] = []
        for name in names {
            let url = directory.appendingPathComponent(name)
            let path = shown.hasSuffix("/") ? shown + name : shown + "/" + name
            let start = SourceLocation(file: path, line: 1, column: 1)
            guard let data = try? Data(contentsOf: url) else {
                problems.append(PolicyDiagnostic(.error, at: start, "The file cannot be read."))
                continue
            }
            guard data.count <= maximumFileSize else {
                problems.append(
                    PolicyDiagnostic(.error, at: start, "The file is larger than \(maximumFileSize) bytes."))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                problems.append(PolicyDiagnostic(.error, at: start, "The file is not UTF-8 text."))
                continue
            }
            files.append((path, text))
        }
        guard !problems.isEmpty || !files.isEmpty else {
            throw PolicyLoadError(diagnostics: [
                PolicyDiagnostic(.error, at: folder, "The folder holds no .yaml policy files.")
            ])
        }
        guard problems.isEmpty else { throw PolicyLoadError(diagnostics: problems) }
        return try load(files: files)
    }

    /// Loads and validates a policy from files' names and texts (names are used in diagnostics).
    public static func load(files: [(name: String, text: String)]) throws(PolicyLoadError) -> Policy {
        var assembler = PolicyAssembler()
        for file in files.sorted(by: { $0.name < $1.name }) {
            assembler.read(file: file.name, text: file.text)
        }
        let (policy, diagnostics) = assembler.finish(revision: revision(of: files))
        let sorted = diagnostics.sorted { $0.location < $1.location }
        guard let policy, !sorted.contains(where: { $0.severity == .error }) else {
            // Fail closed even if a path ever forgets to explain itself.
            let fallback = PolicyDiagnostic(
                .error, at: SourceLocation(file: files.first?.name ?? "policy", line: 1, column: 1),
                "The policy could not be loaded.")
            throw PolicyLoadError(diagnostics: sorted.contains { $0.severity == .error } ? sorted : sorted + [fallback])
        }
        return policy
    }

    /// `sha256:` and the digest of each file's base name and text, in name order.
    static func revision(of files: [(name: String, text: String)]) -> String {
        var hash = SHA256()
        for file in files.sorted(by: { $0.name < $1.name }) {
            let base = file.name.split(separator: "/").last.map(String.init) ?? file.name
            hash.update(data: Array(base.utf8) + [0] + Array(String(file.text.utf8.count).utf8) + [0])
            hash.update(data: Array(file.text.utf8))
        }
        return "sha256:" + hash.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// The raw, located declarations of every file, before cross-file validation.
struct PolicyAssembler {
    var diagnostics: [PolicyDiagnostic] = []
    var files: [String] = []
    var zones: [(Zone, SourceLocation)] = []
    var axes: [(ClassificationAxis, SourceLocation)] = []
    var organisations: [(Organisation, SourceLocation)] = []
    var assets: [RawAsset] = []
    var roles: [RawRole] = []
    var actions: [(PolicyAction, SourceLocation)] = []
    var rules: [RawRule] = []
    var constraints: [RawSeparation] = []
    var settings: PolicySettings?
    /// `settings.offline.roles` as written, checked against the roles once all are read.
    var offlineRoles: [Located<String>] = []
    /// Where `settings.offline` is, for warnings about it.
    var offlineLocation: SourceLocation?
    /// Files that were not even YAML: cross-file checks would only repeat their consequences.
    var unparsedFiles = 0

    struct RawAsset {
        let id: Located<String>
        let title: String
        let zone: Located<String>?
        let owner: Located<String>?
        let levels: [(axis: Located<String>, level: Located<String>)]
        let tags: [String]
        let location: SourceLocation
    }

    struct RawRole {
        let id: Located<String>
        let title: String
        let inherits: [Located<String>]
        let privileged: Bool
        let maxHolders: Int?
        let zones: [Located<String>]?
    }

    struct RawConditions {
        var zones: [Located<String>]?
        var factors: Set<Factor>?
        var hours: TimeWindow?
        var weekdays: Set<Int>?
        var userKinds: Set<UserKind>?
        var sameOrganisation = false
        var location: SourceLocation
    }

    struct RawRule {
        let id: Located<String>
        let effect: RuleEffect
        let description: String
        let roles: [Located<String>]?
        let actions: [Located<String>]
        let assets: [Located<String>]
        let patterns: [String]
        let levels: [(axis: Located<String>, comparison: LevelTest.Comparison, level: Located<String>)]
        let assetZones: [Located<String>]?
        let tags: [String]
        let when: RawConditions?
        let unless: RawConditions?
        let location: SourceLocation
    }

    struct RawSeparation {
        let id: Located<String>
        let roles: [Located<String>]
        let maximum: Int
        let reason: String
    }

    static let sections = [
        "zones", "classification", "organisations", "assets", "roles", "actions", "rules", "constraints", "settings",
    ]

    // MARK: Reading one file

    mutating func read(file: String, text: String) {
        files.append(file)
        var reader = YAMLReader(file: file)
        defer { diagnostics += reader.diagnostics }
        let before = reader.diagnostics.count
        guard let root = reader.parse(text) else {
            // An empty file (or one of comments only) is fine; one that is not YAML is not.
            if reader.diagnostics.count > before { unparsedFiles += 1 }
            return
        }
        guard let top = reader.mapping(root, what: "a policy file", allowed: Self.sections) else { return }
        for (name, entry) in top.sorted(by: { $0.key < $1.key }) {
            let items = name == "settings" ? [] : reader.list(entry.value, what: "'\(name)'")
            switch name {
            case "zones": items.forEach { readZone($0, &reader) }
            case "classification": items.forEach { readAxis($0, &reader) }
            case "organisations": items.forEach { readOrganisation($0, &reader) }
            case "assets": items.forEach { readAsset($0, &reader) }
            case "roles": items.forEach { readRole($0, &reader) }
            case "actions": items.forEach { readAction($0, &reader) }
            case "rules": items.forEach { readRule($0, &reader) }
            case "constraints": items.forEach { readSeparation($0, &reader) }
            default: readSettings(entry.key, entry.value, &reader)
            }
        }
    }

    func title(_ fields: [String: (key: Node, value: Node)], _ reader: inout YAMLReader) -> String? {
        fields["title"].flatMap { reader.string($0.value, what: "The title")?.value }
    }

    mutating func readZone(_ node: Node, _ reader: inout YAMLReader) {
        guard
            let fields = reader.mapping(
                node, what: "a zone", allowed: ["id", "title", "login-factors", "offline-login"],
                required: ["id", "login-factors"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "A zone id") })
        else { return }
        let factors = fields["login-factors"].map { readFactors($0.value, &reader) } ?? []
        if let node = fields["login-factors"]?.value, factors.isEmpty {
            reader.error(node, "A zone needs at least one login factor.")
        }
        var zone = Zone(id: id.value, title: title(fields, &reader) ?? id.value, loginFactors: factors)
        if let node = fields["offline-login"]?.value, let text = reader.string(node, what: "offline-login") {
            if let offline = OfflineLogin(rawValue: text.value) {
                zone.offlineLogin = offline
                if offline == .passwordOnly, factors.contains(.totp) {
                    reader.warning(
                        node,
                        "Offline logins in the zone '\(id.value)' would skip the TOTP code its online logins ask for; "
                            + "`tags` keeps the second factor.")
                }
            } else {
                reader.error(node, "offline-login is tags, password-only or deny.")
            }
        }
        zones.append((zone, id.location))
    }

    func readFactors(_ node: Node, _ reader: inout YAMLReader) -> Set<Factor> {
        Set(
            reader.list(node, what: "Factors").compactMap { item -> Factor? in
                guard let name = reader.string(item, what: "A factor") else { return nil }
                guard let factor = Factor(rawValue: name.value) else {
                    let hint =
                        closest(to: name.value, in: Factor.allCases.map(\.rawValue)).map { " Did you mean '\($0)'?" }
                        ?? ""
                    reader.error(
                        item, "Unknown factor '\(name.value)'; factors are password, totp and recovery-code.\(hint)")
                    return nil
                }
                return factor
            })
    }

    mutating func readAxis(_ node: Node, _ reader: inout YAMLReader) {
        guard
            let fields = reader.mapping(
                node, what: "a classification axis", allowed: ["axis", "title", "levels"], required: ["axis", "levels"]),
            let id = fields["axis"].flatMap({ reader.identifier($0.value, what: "An axis id") }),
            let levelsNode = fields["levels"]?.value
        else { return }
        let levels = reader.list(levelsNode, what: "Levels").compactMap { reader.identifier($0, what: "A level") }
        if levels.isEmpty { reader.error(levelsNode, "An axis needs at least one level.") }
        var seen: Set<String> = []
        for level in levels where !seen.insert(level.value).inserted {
            diagnostics.append(
                PolicyDiagnostic(
                    .error, at: level.location, "The level '\(level.value)' appears twice on the axis '\(id.value)'."))
        }
        axes.append(
            (
                ClassificationAxis(
                    id: id.value, title: title(fields, &reader) ?? id.value, levels: levels.map(\.value)), id.location
            ))
    }

    mutating func readOrganisation(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(node, what: "an organisation", allowed: ["id", "title"], required: ["id"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "An organisation id") })
        else { return }
        organisations.append((Organisation(id: id.value, title: title(fields, &reader) ?? id.value), id.location))
    }

    mutating func readAsset(_ node: Node, _ reader: inout YAMLReader) {
        guard
            let fields = reader.mapping(
                node, what: "an asset", allowed: ["id", "title", "zone", "owner", "classification", "tags"],
                required: ["id", "zone", "owner", "classification"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "An asset id") })
        else { return }
        var levels: [(Located<String>, Located<String>)] = []
        if let classification = fields["classification"]?.value {
            if case .mapping(let mapping) = classification {
                for (key, value) in mapping {
                    if let axis = reader.identifier(key, what: "An axis id"),
                        let level = reader.identifier(value, what: "A level")
                    {
                        levels.append((axis, level))
                    }
                }
            } else {
                reader.error(
                    classification,
                    "An asset's classification maps each axis to a level, e.g. {confidentiality: 3, integrity: 2, availability: 2}."
                )
            }
        }
        assets.append(
            RawAsset(
                id: id, title: title(fields, &reader) ?? id.value,
                zone: fields["zone"].flatMap { reader.identifier($0.value, what: "A zone id") },
                owner: fields["owner"].flatMap { reader.identifier($0.value, what: "An organisation id") },
                levels: levels,
                tags: fields["tags"].map { reader.identifiers($0.value, what: "A tag").map(\.value) } ?? [],
                location: id.location
            ))
    }

    mutating func readRole(_ node: Node, _ reader: inout YAMLReader) {
        guard
            let fields = reader.mapping(
                node, what: "a role", allowed: ["id", "title", "inherits", "privileged", "max-holders", "zones"],
                required: ["id"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "A role id") })
        else { return }
        if id.value.contains("*") {
            diagnostics.append(
                PolicyDiagnostic(
                    .error, at: id.location, "A role id may not contain '*', which rules use for any user."))
        }
        roles.append(
            RawRole(
                id: id, title: title(fields, &reader) ?? id.value,
                inherits: fields["inherits"].map { reader.identifiers($0.value, what: "A role id") } ?? [],
                privileged: fields["privileged"].flatMap { reader.bool($0.value, what: "privileged") } ?? false,
                maxHolders: fields["max-holders"].flatMap {
                    reader.integer($0.value, what: "max-holders", in: 1...100_000)
                },
                zones: fields["zones"].map { reader.identifiers($0.value, what: "A zone id") }
            ))
    }

    mutating func readAction(_ node: Node, _ reader: inout YAMLReader) {
        guard
            let fields = reader.mapping(
                node, what: "an action", allowed: ["id", "title", "administrative"], required: ["id"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "An action id") })
        else { return }
        if id.value.contains("*") || id.value.contains("?") {
            diagnostics.append(
                PolicyDiagnostic(
                    .error, at: id.location, "An action id may not contain '*' or '?', which rules use as patterns."))
        }
        let administrative = fields["administrative"].flatMap { reader.bool($0.value, what: "administrative") } ?? false
        actions.append(
            (
                PolicyAction(id: id.value, title: title(fields, &reader) ?? id.value, administrative: administrative),
                id.location
            ))
    }

    mutating func readSeparation(_ node: Node, _ reader: inout YAMLReader) {
        guard
            let fields = reader.mapping(
                node, what: "a separation-of-duty constraint",
                allowed: ["id", "separation-of-duty", "maximum", "reason"],
                required: ["id", "separation-of-duty"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "A constraint id") }),
            let rolesNode = fields["separation-of-duty"]?.value
        else { return }
        let roleNames = reader.identifiers(rolesNode, what: "A role id")
        if roleNames.count < 2 { reader.error(rolesNode, "Separation of duty needs at least two roles.") }
        let maximum = fields["maximum"].flatMap { reader.integer($0.value, what: "maximum", in: 1...1000) } ?? 1
        if maximum >= roleNames.count, roleNames.count >= 2 {
            reader.error(rolesNode, "A maximum of \(maximum) out of \(roleNames.count) roles can never be exceeded.")
        }
        constraints.append(
            RawSeparation(
                id: id, roles: roleNames, maximum: maximum,
                reason: fields["reason"].flatMap { reader.string($0.value, what: "The reason")?.value } ?? ""
            ))
    }
}
