import Foundation
import MamoriCore
import Testing

/// The examples in docs/policy.md are a policy, its test cases, and a broken policy with its
/// errors: they must stay true.
@Suite("docs/policy.md examples")
struct PolicyDocumentationTests {
    /// The blocks of the page whose first line is `# file: PATH`, by path; and the text blocks.
    static func blocks() throws -> (files: [String: String], text: [String]) {
        let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/policy.md")
        let lines = try String(contentsOf: page, encoding: .utf8).components(separatedBy: "\n")
        var files: [String: String] = [:]
        var texts: [String] = []
        var current: [String]?
        var language = ""
        for line in lines {
            if current == nil, line.hasPrefix("```") {
                current = []
                language = String(line.dropFirst(3))
            } else if current != nil, line == "```" {
                let body = current ?? []
                if language == "yaml", let first = body.first, first.hasPrefix("# file: ") {
                    files[String(first.dropFirst("# file: ".count))] = body.dropFirst().joined(separator: "\n") + "\n"
                } else if language == "text" {
                    texts.append(body.joined(separator: "\n"))
                }
                current = nil
            } else if current != nil {
                current?.append(line)
            }
        }
        return (files, texts)
    }

    @Test("the example policy loads, and its test cases pass and exercise every rule")
    func examplePolicy() throws {
        let (files, _) = try Self.blocks()
        let policyFiles = files.filter { $0.key.hasPrefix("example/") && !$0.key.hasPrefix("example/tests/") }
        #expect(policyFiles.count == 5)
        let policy = try PolicyLoader.load(files: policyFiles.map { (name: $0.key, text: $0.value) })
        #expect(policy.warnings.isEmpty)
        let cases = try PolicyTestRunner.loadCases(
            files: files.filter { $0.key.hasPrefix("example/tests/") }.map { (name: $0.key, text: $0.value) }
        )
        let report = PolicyTestRunner.run(cases, on: PolicyEngine(policy: policy))
        #expect(cases.count == 5)
        #expect(report.failed.isEmpty, "\(report.failed.map(\.failures))")
        #expect(report.unexercisedRules.isEmpty)
        // The example's settings are the defaults, as the page says, but for the roles it lets
        // log in offline.
        var expected = PolicySettings.defaults
        expected.offline = OfflineSettings(
            roles: ["staff"], windowHours: expected.offline.windowHours,
            maximumAgeDays: expected.offline.maximumAgeDays, failures: expected.offline.failures)
        #expect(policy.settings == expected)
        #expect(PolicyEngine(policy: policy).offlineLogin(roles: ["clerk"], zone: "mynumber") == .tags)
    }

    @Test("the broken example fails with exactly the errors shown")
    func brokenExample() throws {
        let (files, texts) = try Self.blocks()
        let broken = files.filter { $0.key.hasPrefix("broken/") }.map { (name: $0.key, text: $0.value) }
        let expected = try #require(texts.first { $0.hasPrefix("broken/") })
        let error = try #require(throws: PolicyLoadError.self) { try PolicyLoader.load(files: broken) }
        #expect(error.description == expected)
    }
}
