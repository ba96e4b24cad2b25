import ArgumentParser
import Foundation
import MamoriCore
import MamoriProtocol

/// `mamori policy`: the policy, offline on files.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check, test, explain and draw a policy folder offline; reload it in mamorid and show its status.",
        subcommands: [Check.self, Test.self, Explain.self, Graph.self, Reload.self, Status.self]
    )

    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Make mamorid read its policy folder again: the whole new policy, or the old one kept on any error."
        )
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            guard let reloaded = try connection.call(.policyReload, reading: PolicyReloadReply.self) else { return }
            print("Reloaded the policy: \(reloaded.previousRevision) → \(reloaded.revision)")
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the policy mamorid is using.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            guard let status = try connection.call(.policyStatus, reading: PolicyStatusReply.self) else { return }
            func count(_ key: String) -> Int { status.counts[key] ?? 0 }
            print(
                Terminal.fields([
                    ("revision", status.revision), ("folder", status.directory), ("files", "\(status.files.count)"),
                    (
                        "contents",
                        "\(count("zones")) zones, \(count("assets")) assets, \(count("roles")) roles, \(count("rules")) rules"
                    ),
                ]))
            for warning in status.warnings { print("warning: \(warning)") }
        }
    }

    /// The policy folder argument and the --json flag, shared by every policy command.
    struct Folder: ParsableArguments {
        @Argument(help: "The policy folder.")
        var directory = "policies"

        @Flag(help: "Print JSON for scripts instead of text.")
        var json = false

        var url: URL { URL(fileURLWithPath: directory, isDirectory: true) }

        /// Loads the policy, or prints every diagnostic and fails with status 1.
        func load() throws -> Policy {
            do {
                return try PolicyLoader.load(directory: url)
            } catch {
                if json {
                    Terminal.printJSON(["valid": false, "diagnostics": .array(error.diagnostics.map(diagnosticJSON))])
                } else {
                    error.diagnostics.forEach { standardError($0.description) }
                    standardError(
                        "mamori: the policy in \(directory) has \(error.errors.count) error(s); nothing was loaded.")
                }
                throw ExitCode.answeredNo
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy folder and summarise it.",
            discussion:
                "Every problem is listed as file:line:column: error|warning: message. Exit 0 when valid, 1 when not."
        )

        @OptionGroup var folder: Folder

        func run() throws {
            let policy = try folder.load()
            if folder.json {
                Terminal.printJSON([
                    "valid": true, "revision": .string(policy.revision), "files": .strings(policy.files),
                    "counts": .object([
                        "zones": .integer(policy.zones.count), "assets": .integer(policy.assets.count),
                        "roles": .integer(policy.roles.count), "actions": .integer(policy.actions.count),
                        "rules": .integer(policy.rules.count), "constraints": .integer(policy.separationOfDuty.count),
                    ]),
                    "diagnostics": .array(policy.warnings.map(diagnosticJSON)),
                ])
                return
            }
            policy.warnings.forEach { print($0.description) }
            print("The policy in \(folder.directory) is valid.")
            print("  revision     \(policy.revision)")
            print("  files        \(policy.files.count)")
            print("  zones        \(policy.zones.map(\.id).joined(separator: ", "))")
            print("  assets       \(policy.assets.count)")
            print("  roles        \(policy.roles.count)")
            print("  actions      \(policy.actions.count)")
            print("  rules        \(policy.rules.count)")
            print("  constraints  \(policy.separationOfDuty.count)")
            if !policy.warnings.isEmpty { print("  warnings     \(policy.warnings.count)") }
        }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the policy's test cases (DIRECTORY/tests/*.yaml).",
            discussion:
                "Prints each failing case with the decision's reasons and lists rules no case exercised. Exit 0 when all pass, 1 otherwise."
        )

        @OptionGroup var folder: Folder

        @Option(help: "The folder of test cases (default: DIRECTORY/tests).")
        var cases: String?

        func run() throws {
            let policy = try folder.load()
            let engine = PolicyEngine(policy: policy)
            let casesURL =
                cases.map { URL(fileURLWithPath: $0, isDirectory: true) }
                ?? folder.url.appendingPathComponent("tests", isDirectory: true)
            let loaded: [PolicyTestCase]
            do {
                loaded = try PolicyTestRunner.loadCases(directory: casesURL)
            } catch {
                error.diagnostics.forEach { standardError($0.description) }
                throw CommandFailure("The test cases in \(casesURL.path) cannot be read.")
            }
            let report = PolicyTestRunner.run(loaded, on: engine)
            if folder.json {
                Terminal.printJSON([
                    "revision": .string(policy.revision), "cases": .integer(report.results.count),
                    "passed": .integer(report.results.count - report.failed.count),
                    "failed": .array(
                        report.failed.map { result in
                            .object([
                                "name": .string(result.testCase.name),
                                "location": .string(result.testCase.location.description),
                                "failures": .strings(result.failures), "reasons": .strings(result.decision.reasons),
                            ])
                        }),
                    "unexercised_rules": .strings(report.unexercisedRules),
                ])
            } else {
                for result in report.failed {
                    print("FAIL \(result.testCase.location): \(result.testCase.name)")
                    result.failures.forEach { print("     \($0)") }
                    result.decision.reasons.forEach { print("     reason: \($0)") }
                }
                if !report.unexercisedRules.isEmpty {
                    print("Rules no case exercised: \(report.unexercisedRules.joined(separator: ", "))")
                }
                print("\(report.results.count - report.failed.count) passed, \(report.failed.count) failed")
            }
            if !report.failed.isEmpty { throw ExitCode.answeredNo }
        }
    }

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decide one request against the policy files and say why.",
            discussion: """
                Example:
                  mamori policy explain --user tanaka --role staff --organisation planning \\
                    --zone mynumber --factors password,totp --action asset.read --resource point.participants
                Exit 0 when allowed, 1 when denied or a step-up is needed.
                """
        )

        @OptionGroup var folder: Folder

        @Option(help: "The user's login name.")
        var user = "someone"

        @Option(name: .customLong("role"), help: "A role the user holds (repeat for several).")
        var roles: [String] = []

        @Option(help: "staff, fiscal-year-staff, contractor or service.")
        var kind: String?

        @Option(help: "The user's organisation.")
        var organisation: String?

        @Option(help: "The session's zone.")
        var zone: String?

        @Option(help: "Factors the session used, comma-separated: password,totp,recovery-code.")
        var factors = ""

        @Option(help: "When, as ISO 8601 with offset (default: now).")
        var time: String?

        @Option(help: "The action, e.g. asset.read.")
        var action: String

        @Option(help: "The resource, e.g. point.participants or mamori:users/tanaka.")
        var resource: String

        func validate() throws {
            if let kind, UserKind(rawValue: kind) == nil {
                throw ValidationError(
                    "The kind must be one of \(UserKind.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            for factor in factors.split(separator: ",") where Factor(rawValue: String(factor)) == nil {
                throw ValidationError("Unknown factor '\(factor)'; factors are password, totp and recovery-code.")
            }
            if let time, ISO8601DateFormatter().date(from: time) == nil {
                throw ValidationError("Please give --time as ISO 8601 with an offset, e.g. 2026-04-01T10:00:00+09:00.")
            }
        }

        func run() throws {
            let engine = PolicyEngine(policy: try folder.load())
            let request = AuthorizationRequest(
                user: user, roles: roles, kind: kind.flatMap(UserKind.init(rawValue:)), organisation: organisation,
                zone: zone, factors: Set(factors.split(separator: ",").compactMap { Factor(rawValue: String($0)) }),
                time: time.flatMap { ISO8601DateFormatter().date(from: $0) } ?? Date(), action: action,
                resource: resource
            )
            let decision = engine.evaluate(request)
            // The socket's shape, so that scripts read `policy explain` and `check` alike.
            let reply = DecisionReply(
                effect: decision.effect.rawValue, rules: decision.decidingRules, reasons: decision.reasons,
                missingFactors: decision.missingFactors.map(\.rawValue), policyRevision: decision.policyRevision,
                assignmentGeneration: nil
            )
            if folder.json {
                Terminal.printJSON(reply.fields)
            } else {
                reply.lines.forEach { print($0) }
            }
            if !decision.isAllowed { throw ExitCode.answeredNo }
        }
    }

    struct Graph: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Draw the role hierarchy as Graphviz DOT or Mermaid.",
            discussion: "Example: mamori policy graph --format dot | dot -Tsvg > roles.svg"
        )

        @OptionGroup var folder: Folder

        @Option(help: "dot or mermaid.")
        var format = "dot"

        func validate() throws {
            guard PolicyGraph.Format(rawValue: format) != nil else {
                throw ValidationError("The format must be dot or mermaid.")
            }
        }

        func run() throws {
            let policy = try folder.load()
            let text = PolicyGraph.render(policy, as: PolicyGraph.Format(rawValue: format) ?? .dot)
            if folder.json {
                Terminal.printJSON([
                    "format": .string(format), "graph": .string(text),
                    "roles": .array(
                        policy.roles.map {
                            .object([
                                "id": .string($0.id), "title": .string($0.title), "inherits": .strings($0.inherits),
                                "privileged": .bool($0.privileged),
                            ])
                        }),
                ])
            } else {
                print(text, terminator: "")
            }
        }
    }
}

/// A diagnostic as `--json` prints it: where, how bad, and what is wrong.
func diagnosticJSON(_ diagnostic: PolicyDiagnostic) -> JSONValue {
    .object([
        "file": .string(diagnostic.location.file), "line": .integer(diagnostic.location.line),
        "column": .integer(diagnostic.location.column), "severity": .string(diagnostic.severity.rawValue),
        "message": .string(diagnostic.message),
    ])
}

extension JSONValue {
    /// A whole number.
    static func integer(_ value: Int) -> JSONValue { .number(Double(value)) }
    /// A list of strings.
    static func strings(_ values: [String]) -> JSONValue { .array(values.map { .string($0) }) }
}
