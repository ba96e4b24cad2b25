public import Foundation
internal import Yams

/// One test case of a policy: a request and the decision it must get.
public struct PolicyTestCase: Sendable {
    /// The case's name, printed when it fails.
    public let name: String
    /// The request the engine decides.
    public let request: AuthorizationRequest
    /// The effect the decision must have: allow, deny or step-up.
    public let expected: Decision.Effect
    /// When given, the deciding rules must be exactly these (in any order).
    public let expectedRules: [String]?
    /// When given, the missing factors of a step-up must be exactly these.
    public let expectedMissing: [Factor]?
    /// Where the case's name is in its file, so that a failure points at it.
    public let location: SourceLocation
}

/// The outcome of one case.
public struct PolicyTestResult: Sendable {
    /// The case that was run.
    public let testCase: PolicyTestCase
    /// What the engine decided, with its reasons, for the failure report.
    public let decision: Decision
    /// Sentences saying how the decision differs from the expectation; empty when it passed.
    public let failures: [String]

    /// Whether the decision met every expectation of the case.
    public var passed: Bool { failures.isEmpty }
}

/// The outcome of a policy's whole test suite.
public struct PolicyTestReport: Sendable {
    /// One result per case, in the order the cases were given.
    public let results: [PolicyTestResult]
    /// Rules that no case made apply: untested, so a change to them would go unnoticed.
    public let unexercisedRules: [String]

    /// The results that did not pass; any makes `mamori policy test` exit 1.
    public var failed: [PolicyTestResult] { results.filter { !$0.passed } }
}

/// Reads test cases from YAML files (`cases:` lists) and runs them against an engine.
public enum PolicyTestRunner {
    /// Reads every `*.yaml` file in `directory`.
    ///
    /// - Throws: ``PolicyLoadError`` with every malformed case, located.
    public static func loadCases(directory: URL) throws(PolicyLoadError) -> [PolicyTestCase] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        guard !names.isEmpty else {
            throw PolicyLoadError(diagnostics: [
                PolicyDiagnostic(
                    .error, at: SourceLocation(file: directory.path, line: 1, column: 1),
                    "The folder holds no .yaml test files.")
            ])
        }
        var files: [(String, String)] = []
        for name in names {
            let path = directory.appendingPathComponent(name).path
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw PolicyLoadError(diagnostics: [
                    PolicyDiagnostic(
                        .error, at: SourceLocation(file: path, line: 1, column: 1),
                        "The file cannot be read as UTF-8 text.")
                ])
            }
            files.append((path, text))
        }
        return try loadCases(files: files)
    }

    /// Reads cases from files' names and texts.
    public static func loadCases(files: [(name: String, text: String)]) throws(PolicyLoadError) -> [PolicyTestCase] {
        var cases: [PolicyTestCase] = []
        var diagnostics: [PolicyDiagnostic] = []
        for file in files {
            var reader = YAMLReader(file: file.name)
            if let root = reader.parse(file.text),
                let top = reader.mapping(root, what: "a policy test file", allowed: ["cases"], required: ["cases"]),
                let list = top["cases"]
            {
                for node in reader.list(list.value, what: "'cases'") {
                    if let testCase = readCase(node, &reader) { cases.append(testCase) }
                }
            }
            diagnostics += reader.diagnostics
        }
        guard diagnostics.isEmpty else { throw PolicyLoadError(diagnostics: diagnostics) }
        return cases
    }

    private static func readCase(_ node: Node, _ reader: inout YAMLReader) -> PolicyTestCase? {
        guard
            let fields = reader.mapping(
                node, what: "a test case", allowed: ["name", "request", "expect", "rules", "missing"],
                required: ["name", "request", "expect"]),
            let name = fields["name"].flatMap({ reader.string($0.value, what: "The name") }),
            let expectText = fields["expect"].flatMap({ reader.string($0.value, what: "expect") }),
            let requestNode = fields["request"]?.value,
            let request = readRequest(requestNode, &reader)
        else { return nil }
        guard let expected = Decision.Effect(rawValue: expectText.value) else {
            if let node = fields["expect"]?.value { reader.error(node, "expect is allow, deny or step-up.") }
            return nil
        }
        let missing = fields["missing"].map { node in
            reader.list(node.value, what: "missing").compactMap { item -> Factor? in
                guard let text = reader.string(item, what: "A factor") else { return nil }
                guard let factor = Factor(rawValue: text.value) else {
                    reader.error(item, "Unknown factor '\(text.value)'.")
                    return nil
                }
                return factor
            }
        }
        return PolicyTestCase(
            name: name.value, request: request, expected: expected,
            expectedRules: fields["rules"].map { reader.identifiers($0.value, what: "A rule id").map(\.value) },
            expectedMissing: missing, location: name.location
        )
    }

    private static func readRequest(_ node: Node, _ reader: inout YAMLReader) -> AuthorizationRequest? {
        guard
            let fields = reader.mapping(
                node, what: "a request",
                allowed: ["user", "roles", "kind", "organisation", "zone", "factors", "time", "action", "resource"],
                required: ["user", "action", "resource"]),
            let user = fields["user"].flatMap({ reader.string($0.value, what: "user") }),
            let action = fields["action"].flatMap({ reader.string($0.value, what: "action") }),
            let resource = fields["resource"].flatMap({ reader.string($0.value, what: "resource") })
        else { return nil }
        var kind: UserKind?
        if let node = fields["kind"]?.value, let text = reader.string(node, what: "kind") {
            kind = UserKind(rawValue: text.value)
            if kind == nil { reader.error(node, "Unknown user kind '\(text.value)'.") }
        }
        var factors: Set<Factor> = []
        if let node = fields["factors"]?.value {
            for item in reader.list(node, what: "factors") {
                guard let text = reader.string(item, what: "A factor") else { continue }
                if let factor = Factor(rawValue: text.value) {
                    factors.insert(factor)
                } else {
                    reader.error(item, "Unknown factor '\(text.value)'.")
                }
            }
        }
        var time: Date?
        if let node = fields["time"]?.value, let text = reader.string(node, what: "time") {
            time = ISO8601DateFormatter().date(from: text.value)
            if time == nil {
                reader.error(node, "time is an ISO 8601 date and time with offset, e.g. 2026-04-01T10:00:00+09:00.")
            }
        }
        return AuthorizationRequest(
            user: user.value,
            roles: fields["roles"].map { reader.identifiers($0.value, what: "A role id").map(\.value) } ?? [],
            kind: kind,
            organisation: fields["organisation"].flatMap { reader.string($0.value, what: "organisation")?.value },
            zone: fields["zone"].flatMap { reader.string($0.value, what: "zone")?.value }, factors: factors, time: time,
            action: action.value, resource: resource.value
        )
    }

    /// Runs every case and reports failures and rules no case exercised.
    public static func run(_ cases: [PolicyTestCase], on engine: PolicyEngine) -> PolicyTestReport {
        var exercised: Set<String> = []
        let results = cases.map { testCase in
            let decision = engine.evaluate(testCase.request)
            exercised.formUnion(decision.matchedRules)
            var failures: [String] = []
            if decision.effect != testCase.expected {
                failures.append("expected \(testCase.expected.rawValue), got \(decision.effect.rawValue)")
            }
            if let rules = testCase.expectedRules, Set(rules) != Set(decision.decidingRules) {
                failures.append(
                    "expected deciding rules [\(rules.sorted().joined(separator: ", "))], "
                        + "got [\(decision.decidingRules.sorted().joined(separator: ", "))]"
                )
            }
            if let missing = testCase.expectedMissing, Set(missing) != Set(decision.missingFactors) {
                failures.append(
                    "expected missing factors [\(missing.map(\.rawValue).sorted().joined(separator: ", "))], "
                        + "got [\(decision.missingFactors.map(\.rawValue).joined(separator: ", "))]"
                )
            }
            return PolicyTestResult(testCase: testCase, decision: decision, failures: failures)
        }
        let unexercised = engine.policy.rules.map(\.id).filter { !exercised.contains($0) }
        return PolicyTestReport(results: results, unexercisedRules: unexercised)
    }
}
