public import Foundation
internal import Crypto
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
            throw PolicyLoadError(diagnostics: [PolicyDiagnostic(.error, at: folder, "The policy folder cannot be read.")])
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
                problems.append(PolicyDiagnostic(.error, at: start, "The file is larger than \(maximumFileSize) bytes."))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                problems.append(PolicyDiagnostic(.error, at: start, "The file is not UTF-8 text."))
                continue
            }
            files.append((path, text))
        }
        guard !problems.isEmpty || !files.isEmpty else {
            throw PolicyLoadError(diagnostics: [PolicyDiagnostic(.error, at: folder, "The folder holds no .yaml policy files.")])
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
            let fallback = PolicyDiagnostic(.error, at: SourceLocation(file: files.first?.name ?? "policy", line: 1, column: 1), "The policy could not be loaded.")
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
    private var diagnostics: [PolicyDiagnostic] = []
    private var files: [String] = []
    private var zones: [(Zone, SourceLocation)] = []
    private var axes: [(ClassificationAxis, SourceLocation)] = []
    private var organisations: [(Organisation, SourceLocation)] = []
    private var assets: [RawAsset] = []
    private var roles: [RawRole] = []
    private var actions: [(PolicyAction, SourceLocation)] = []
    private var rules: [RawRule] = []
    private var constraints: [RawSeparation] = []
    private var settings: PolicySettings?
    /// Files that were not even YAML: cross-file checks would only repeat their consequences.
    private var unparsedFiles = 0

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

    private func title(_ fields: [String: (key: Node, value: Node)], _ reader: inout YAMLReader) -> String? {
        fields["title"].flatMap { reader.string($0.value, what: "The title")?.value }
    }

    private mutating func readZone(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(node, what: "a zone", allowed: ["id", "title", "login-factors"], required: ["id", "login-factors"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "A zone id") })
        else { return }
        let factors = fields["login-factors"].map { readFactors($0.value, &reader) } ?? []
        if let node = fields["login-factors"]?.value, factors.isEmpty {
            reader.error(node, "A zone needs at least one login factor.")
        }
        zones.append((Zone(id: id.value, title: title(fields, &reader) ?? id.value, loginFactors: factors), id.location))
    }

    private func readFactors(_ node: Node, _ reader: inout YAMLReader) -> Set<Factor> {
        Set(reader.list(node, what: "Factors").compactMap { item -> Factor? in
            guard let name = reader.string(item, what: "A factor") else { return nil }
            guard let factor = Factor(rawValue: name.value) else {
                let hint = closest(to: name.value, in: Factor.allCases.map(\.rawValue)).map { " Did you mean '\($0)'?" } ?? ""
                reader.error(item, "Unknown factor '\(name.value)'; factors are password, totp and recovery-code.\(hint)")
                return nil
            }
            return factor
        })
    }

    private mutating func readAxis(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(node, what: "a classification axis", allowed: ["axis", "title", "levels"], required: ["axis", "levels"]),
            let id = fields["axis"].flatMap({ reader.identifier($0.value, what: "An axis id") }),
            let levelsNode = fields["levels"]?.value
        else { return }
        let levels = reader.list(levelsNode, what: "Levels").compactMap { reader.identifier($0, what: "A level") }
        if levels.isEmpty { reader.error(levelsNode, "An axis needs at least one level.") }
        var seen: Set<String> = []
        for level in levels where !seen.insert(level.value).inserted {
            diagnostics.append(PolicyDiagnostic(.error, at: level.location, "The level '\(level.value)' appears twice on the axis '\(id.value)'."))
        }
        axes.append((ClassificationAxis(id: id.value, title: title(fields, &reader) ?? id.value, levels: levels.map(\.value)), id.location))
    }

    private mutating func readOrganisation(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(node, what: "an organisation", allowed: ["id", "title"], required: ["id"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "An organisation id") })
        else { return }
        organisations.append((Organisation(id: id.value, title: title(fields, &reader) ?? id.value), id.location))
    }

    private mutating func readAsset(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(
                node, what: "an asset", allowed: ["id", "title", "zone", "owner", "classification", "tags"],
                required: ["id", "zone", "owner", "classification"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "An asset id") })
        else { return }
        var levels: [(Located<String>, Located<String>)] = []
        if let classification = fields["classification"]?.value {
            if case .mapping(let mapping) = classification {
                for (key, value) in mapping {
                    if let axis = reader.identifier(key, what: "An axis id"), let level = reader.identifier(value, what: "A level") {
                        levels.append((axis, level))
                    }
                }
            } else {
                reader.error(classification, "An asset's classification maps each axis to a level, e.g. {confidentiality: 3, integrity: 2, availability: 2}.")
            }
        }
        assets.append(RawAsset(
            id: id, title: title(fields, &reader) ?? id.value,
            zone: fields["zone"].flatMap { reader.identifier($0.value, what: "A zone id") },
            owner: fields["owner"].flatMap { reader.identifier($0.value, what: "An organisation id") },
            levels: levels, tags: fields["tags"].map { reader.identifiers($0.value, what: "A tag").map(\.value) } ?? [],
            location: id.location
        ))
    }

    private mutating func readRole(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(
                node, what: "a role", allowed: ["id", "title", "inherits", "privileged", "max-holders", "zones"],
                required: ["id"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "A role id") })
        else { return }
        if id.value.contains("*") {
            diagnostics.append(PolicyDiagnostic(.error, at: id.location, "A role id may not contain '*', which rules use for any user."))
        }
        roles.append(RawRole(
            id: id, title: title(fields, &reader) ?? id.value,
            inherits: fields["inherits"].map { reader.identifiers($0.value, what: "A role id") } ?? [],
            privileged: fields["privileged"].flatMap { reader.bool($0.value, what: "privileged") } ?? false,
            maxHolders: fields["max-holders"].flatMap { reader.integer($0.value, what: "max-holders", in: 1...100_000) },
            zones: fields["zones"].map { reader.identifiers($0.value, what: "A zone id") }
        ))
    }

    private mutating func readAction(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(node, what: "an action", allowed: ["id", "title", "administrative"], required: ["id"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "An action id") })
        else { return }
        if id.value.contains("*") || id.value.contains("?") {
            diagnostics.append(PolicyDiagnostic(.error, at: id.location, "An action id may not contain '*' or '?', which rules use as patterns."))
        }
        let administrative = fields["administrative"].flatMap { reader.bool($0.value, what: "administrative") } ?? false
        actions.append((PolicyAction(id: id.value, title: title(fields, &reader) ?? id.value, administrative: administrative), id.location))
    }

    private mutating func readRule(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(
                node, what: "a rule",
                allowed: ["id", "effect", "description", "roles", "actions", "resources", "when", "unless"],
                required: ["id", "effect", "roles", "actions"]),
            let id = fields["id"].flatMap({ reader.identifier($0.value, what: "A rule id") }),
            let effectText = fields["effect"].flatMap({ reader.string($0.value, what: "The effect") })
        else { return }
        guard let effect = RuleEffect(rawValue: effectText.value) else {
            diagnostics.append(PolicyDiagnostic(.error, at: effectText.location, "The effect must be 'permit' or 'forbid', not '\(effectText.value)'."))
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
        if actionNames.isEmpty, let node = fields["actions"]?.value { reader.error(node, "A rule needs at least one action.") }

        var assetsListed: [Located<String>] = []
        var patterns: [String] = []
        var levels: [(Located<String>, LevelTest.Comparison, Located<String>)] = []
        var assetZones: [Located<String>]?
        var tags: [String] = []
        if let resources = fields["resources"]?.value,
            let selector = reader.mapping(resources, what: "a rule's resources", allowed: ["assets", "patterns", "where"])
        {
            assetsListed = selector["assets"].map { reader.identifiers($0.value, what: "An asset id") } ?? []
            patterns = selector["patterns"].map { reader.identifiers($0.value, what: "A resource pattern").map(\.value) } ?? []
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
                    reader.error(whereNode, "'where' maps attributes to tests, e.g. {confidentiality: \">= 3\", zone: [mynumber]}.")
                }
            }
        }
        rules.append(RawRule(
            id: id, effect: effect,
            description: fields["description"].flatMap { reader.string($0.value, what: "The description")?.value } ?? "",
            roles: anyUser ? nil : roleNames, actions: actionNames, assets: assetsListed, patterns: patterns,
            levels: levels, assetZones: assetZones, tags: tags,
            when: fields["when"].flatMap { readConditions($0.value, &reader) },
            unless: fields["unless"].flatMap { readConditions($0.value, &reader) },
            location: id.location
        ))
    }

    /// Reads `">= 3"`, `"<= 2"`, `"3A"` (equal) and the like.
    private func readLevelTest(_ node: Node, _ reader: inout YAMLReader) -> (LevelTest.Comparison, Located<String>)? {
        guard let text = reader.string(node, what: "A level test") else { return nil }
        let trimmed = text.value.trimmingCharacters(in: .whitespaces)
        let comparison = LevelTest.Comparison.allCases.filter { trimmed.hasPrefix($0.rawValue) }
            .max { $0.rawValue.count < $1.rawValue.count } ?? .equal
        let level = trimmed.dropFirst(trimmed.hasPrefix(comparison.rawValue) ? comparison.rawValue.count : 0)
            .trimmingCharacters(in: .whitespaces)
        guard !level.isEmpty else {
            reader.error(node, "A level test is an operator (=, >=, <=, >, <) and a level, e.g. \">= 3\".")
            return nil
        }
        return (comparison, Located(value: level, location: text.location))
    }

    private func readConditions(_ node: Node, _ reader: inout YAMLReader) -> RawConditions? {
        guard let fields = reader.mapping(
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
                if name.value == "weekdays" { weekdays.formUnion(1...5); continue }
                guard let index = Self.dayNames.firstIndex(of: name.value) else {
                    reader.error(item, "Days are mon, tue, wed, thu, fri, sat, sun or weekdays, not '\(name.value)'.")
                    continue
                }
                weekdays.insert(index + 1)
            }
            conditions.weekdays = weekdays
        }
        if let kinds = fields["user-kind"]?.value {
            conditions.userKinds = Set(reader.list(kinds, what: "user-kind").compactMap { item -> UserKind? in
                guard let name = reader.string(item, what: "A user kind") else { return nil }
                guard let kind = UserKind(rawValue: name.value) else {
                    reader.error(item, "User kinds are \(UserKind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name.value)'.")
                    return nil
                }
                return kind
            })
        }
        conditions.sameOrganisation = fields["same-organisation"].flatMap { reader.bool($0.value, what: "same-organisation") } ?? false
        return conditions
    }

    static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    static func timeWindow(_ text: String) -> TimeWindow? {
        let parts = text.split(separator: "-").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let start = minutes(parts[0]), let end = minutes(parts[1]), start != end else { return nil }
        return TimeWindow(start: start, end: end)
    }

    private static func minutes(_ text: String) -> Int? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts[1].count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]),
            (0...24).contains(hour), (0...59).contains(minute), hour * 60 + minute <= 24 * 60
        else { return nil }
        return hour * 60 + minute
    }

    private mutating func readSeparation(_ node: Node, _ reader: inout YAMLReader) {
        guard let fields = reader.mapping(
                node, what: "a separation-of-duty constraint", allowed: ["id", "separation-of-duty", "maximum", "reason"],
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
        constraints.append(RawSeparation(
            id: id, roles: roleNames, maximum: maximum,
            reason: fields["reason"].flatMap { reader.string($0.value, what: "The reason")?.value } ?? ""
        ))
    }

    private mutating func readSettings(_ key: Node, _ node: Node, _ reader: inout YAMLReader) {
        guard settings == nil else {
            reader.error(key, "Settings are given in more than one file; keep them in one.")
            return
        }
        let defaults = PolicySettings.defaults
        guard let fields = reader.mapping(
            node, what: "settings",
            allowed: ["time-zone", "password", "totp", "lockout", "privileged-lockout", "session", "audit", "accounts"])
        else { return }
        var timeZone = defaults.timeZone
        if let zoneNode = fields["time-zone"]?.value, let name = reader.string(zoneNode, what: "time-zone") {
            if let zone = TimeZone(identifier: name.value) { timeZone = zone } else {
                reader.error(zoneNode, "Unknown time zone '\(name.value)'; use an IANA name such as Asia/Tokyo.")
            }
        }
        var argon2 = defaults.argon2
        if let node = fields["password"]?.value,
            let password = reader.mapping(node, what: "password settings", allowed: ["memory-kib", "iterations", "parallelism"])
        {
            argon2 = Argon2Parameters(
                memoryKiB: password["memory-kib"].flatMap { reader.integer($0.value, what: "memory-kib", in: 8...4_194_304) }.map(UInt32.init) ?? argon2.memoryKiB,
                iterations: password["iterations"].flatMap { reader.integer($0.value, what: "iterations", in: 1...64) }.map(UInt32.init) ?? argon2.iterations,
                parallelism: password["parallelism"].flatMap { reader.integer($0.value, what: "parallelism", in: 1...64) }.map(UInt32.init) ?? argon2.parallelism
            )
            do { try argon2.validate() } catch { reader.error(node, error.message) }
        }
        var totp = defaults.totp
        var window = defaults.totpWindow
        if let node = fields["totp"]?.value,
            let fields = reader.mapping(node, what: "totp settings", allowed: ["algorithm", "digits", "period", "window"])
        {
            var algorithm = totp.algorithm
            if let text = fields["algorithm"].flatMap({ reader.string($0.value, what: "algorithm") }) {
                if let value = OTPAlgorithm(rawValue: text.value) { algorithm = value } else if let node = fields["algorithm"]?.value {
                    reader.error(node, "The TOTP algorithm is sha1, sha256 or sha512.")
                }
            }
            let digits = fields["digits"].flatMap { reader.integer($0.value, what: "digits", in: 6...8) } ?? totp.digits
            let period = fields["period"].flatMap { reader.integer($0.value, what: "period", in: 5...600) } ?? totp.period
            window = fields["window"].flatMap { reader.integer($0.value, what: "window", in: 0...TOTP.maximumWindow) } ?? window
            if let parameters = try? OTPParameters(algorithm: algorithm, digits: digits, period: period) { totp = parameters }
        }
        func lockout(_ name: String, _ fallback: LockoutSettings) -> LockoutSettings {
            guard let node = fields[name]?.value,
                let lock = reader.mapping(node, what: "\(name) settings", allowed: ["failures", "window-minutes", "lock-minutes"])
            else { return fallback }
            return LockoutSettings(
                failures: lock["failures"].flatMap { reader.integer($0.value, what: "failures", in: 1...1000) } ?? fallback.failures,
                windowMinutes: lock["window-minutes"].flatMap { reader.integer($0.value, what: "window-minutes", in: 1...10_080) } ?? fallback.windowMinutes,
                lockMinutes: lock["lock-minutes"].flatMap { reader.integer($0.value, what: "lock-minutes", in: 1...525_600) } ?? fallback.lockMinutes
            )
        }
        let ordinary = lockout("lockout", defaults.lockout)
        let privileged = lockout("privileged-lockout", defaults.privilegedLockout)
        if privileged.failures > ordinary.failures, let node = fields["privileged-lockout"]?.value {
            reader.warning(node, "Privileged accounts lock after more failures than ordinary ones; the guideline asks for stricter.")
        }
        var idle = defaults.sessionIdleMinutes
        var maximumHours = defaults.sessionMaximumHours
        if let node = fields["session"]?.value,
            let session = reader.mapping(node, what: "session settings", allowed: ["idle-minutes", "maximum-hours"])
        {
            idle = session["idle-minutes"].flatMap { reader.integer($0.value, what: "idle-minutes", in: 1...1440) } ?? idle
            maximumHours = session["maximum-hours"].flatMap { reader.integer($0.value, what: "maximum-hours", in: 1...168) } ?? maximumHours
        }
        var retention = defaults.auditRetentionYears
        var allowedDecisions = defaults.auditAllowedDecisions
        if let node = fields["audit"]?.value,
            let audit = reader.mapping(node, what: "audit settings", allowed: ["retention-years", "record-allowed-decisions"])
        {
            retention = audit["retention-years"].flatMap { reader.integer($0.value, what: "retention-years", in: 1...100) } ?? retention
            allowedDecisions = audit["record-allowed-decisions"].flatMap { reader.bool($0.value, what: "record-allowed-decisions") } ?? allowedDecisions
        }
        var idleDays = defaults.idleAccountDays
        var reviewDays = defaults.accessReviewDays
        if let node = fields["accounts"]?.value,
            let accounts = reader.mapping(node, what: "account settings", allowed: ["idle-days", "access-review-days"])
        {
            idleDays = accounts["idle-days"].flatMap { reader.integer($0.value, what: "idle-days", in: 1...3650) } ?? idleDays
            reviewDays = accounts["access-review-days"].flatMap { reader.integer($0.value, what: "access-review-days", in: 1...3650) } ?? reviewDays
        }
        settings = PolicySettings(
            timeZone: timeZone, argon2: argon2, totp: totp, totpWindow: window, lockout: ordinary,
            privilegedLockout: privileged, sessionIdleMinutes: idle, sessionMaximumHours: maximumHours,
            auditRetentionYears: retention, auditAllowedDecisions: allowedDecisions, idleAccountDays: idleDays,
            accessReviewDays: reviewDays
        )
    }

    // MARK: Validating the whole

    private mutating func error(_ location: SourceLocation, _ message: String) {
        diagnostics.append(PolicyDiagnostic(.error, at: location, message))
    }

    private mutating func warning(_ location: SourceLocation, _ message: String) {
        diagnostics.append(PolicyDiagnostic(.warning, at: location, message))
    }

    /// Reports ids declared twice; returns the first declaration of each id.
    private mutating func unique(_ kind: String, _ entries: [(String, SourceLocation)]) -> [String: SourceLocation] {
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

    private mutating func check(_ reference: Located<String>, isA kind: String, in known: [String: SourceLocation]) {
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
                error(level.location, "The level '\(level.value)' is not on the axis '\(axis.value)' (levels: \(levels.joined(separator: ", "))).")
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
            checkedAssets.append(Asset(
                id: asset.id.value, title: asset.title, zone: asset.zone?.value ?? "", owner: asset.owner?.value ?? "",
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
                    if matches.isEmpty { error(action.location, "The action pattern '\(action.value)' matches no declared action.") }
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
                    let hint = closest(to: axis.value, in: Array(axisIds.keys) + ["zone", "tags"]).map { " Did you mean '\($0)'?" } ?? ""
                    error(axis.location, "Unknown 'where' key '\(axis.value)': it is neither a classification axis nor zone or tags.\(hint)")
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
                error(when.location, "A forbid rule cannot require factors in 'when'; say which factors lift it with 'unless: {factors: …}'.")
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
                error(role.location, "The role '\(role.value)' appears twice in the constraint '\(constraint.id.value)'.")
            }
        }
        // A role whose inherited roles already break a constraint can never be granted.
        for role in roles {
            let closure = closures[role.id.value] ?? [role.id.value]
            for constraint in constraints {
                let held = constraint.roles.map(\.value).filter { closure.contains($0) }
                if held.count > constraint.maximum {
                    error(role.id.location, "The role '\(role.id.value)' includes \(held.joined(separator: " and ")) through inheritance, which the constraint '\(constraint.id.value)' forbids holding together.")
                }
            }
        }

        guard !diagnostics.contains(where: { $0.severity == .error }) else { return (nil, diagnostics) }
        let policy = Policy(
            revision: revision, files: files, zones: zones.map(\.0), axes: axes.map(\.0),
            organisations: organisations.map(\.0), assets: checkedAssets,
            roles: roles.map {
                Role(id: $0.id.value, title: $0.title, inherits: $0.inherits.map(\.value), privileged: $0.privileged,
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

    private static func conditions(_ raw: RawConditions?) -> RuleConditions {
        guard let raw else { return .none }
        return RuleConditions(
            zones: raw.zones?.map(\.value), factors: raw.factors, hours: raw.hours, weekdays: raw.weekdays,
            userKinds: raw.userKinds, sameOrganisation: raw.sameOrganisation
        )
    }

    /// Reports each inheritance cycle once; returns every role's closure (itself and every role it
    /// inherits from, directly or not). The walk keeps a visited set, so cycles cannot hang it.
    private mutating func checkInheritance() -> [String: Set<String>] {
        let parents = Dictionary(roles.map { ($0.id.value, $0.inherits.map(\.value)) }, uniquingKeysWith: { first, _ in first })
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
            error(role.id.location, "Roles inherit in a cycle: \(members.joined(separator: ", ")) each inherit from themselves through the others.")
        }
        return closures
    }

    private mutating func warnIfNeverMatches(_ rule: Rule, assets: [Asset]) {
        let selector = rule.resources
        if selector.namesNothing && selector.needsAsset {
            let any = assets.contains { ResourceMatcher.selects(selector, asset: $0) }
            if !any { warning(rule.location, "The rule '\(rule.id)' can never match: its 'where' selects no asset in the register.") }
        }
        if let zones = rule.when.zones, let roleIds = rule.roles {
            let usable = roleIds.contains { id in
                guard let role = roles.first(where: { $0.id.value == id }) else { return true }
                return role.zones.map { allowed in allowed.contains { zones.contains($0.value) } } ?? true
            }
            if !usable { warning(rule.location, "The rule '\(rule.id)' can never match: none of its roles is usable in its zones.") }
        }
    }
}
