import Foundation
import MamoriCore

/// The authorization engine's benchmark: decision time on the town policy and on a generated large
/// one, load-and-validate time, and the same requests against Cedar (cedarpy) in the same run.
enum PolicyBench {
    static func run(python: String) throws {
        let townFolder = URL(fileURLWithPath: ProcessInfo.processInfo.environment["MAMORI_POLICIES"] ?? "policies")
        let town = try PolicyLoader.load(directory: townFolder)
        let townCases = try PolicyTestRunner.loadCases(directory: townFolder.appendingPathComponent("tests"))
        let townRequests = townCases.map(\.request)
        print(
            "Authorization: the town policy (\(town.rules.count) rules, \(townRequests.count) requests from policies/tests)"
        )
        let townEngine = PolicyEngine(policy: town)
        let townTiming = measure(townEngine, townRequests)
        report(townTiming)
        try compareWithCedar(town, townEngine, townRequests, mamori: townTiming, python: python, repetitions: 200)
        print()

        let loadClock = ContinuousClock()
        var large: Policy?
        let loadTime = try loadClock.measure { large = try PolicyLoader.load(files: LargePolicy.files()) }
        guard let large else { return }
        var largeEngine: PolicyEngine?
        let compileTime = loadClock.measure { largeEngine = PolicyEngine(policy: large) }
        guard let largeEngine else { return }
        print(
            "Authorization: generated policy (\(large.roles.count) roles in chains of \(LargePolicy.chainDepth), "
                + "\(large.rules.count) rules, \(large.assets.count) assets)")
        print("  load and validate  \(human(duration(loadTime)))   compile  \(human(duration(compileTime)))")
        let requests = LargePolicy.requests(count: 1_000, time: Date(timeIntervalSince1970: 1_775_005_200))
        let timing = measure(largeEngine, requests)
        report(timing)
        let allowed = requests.filter { largeEngine.evaluate($0).isAllowed }.count
        print("  allowed \(allowed) of \(requests.count) requests")
        // Growth: the same generator with a tenth of the rules.
        let small = PolicyEngine(
            policy: try PolicyLoader.load(files: LargePolicy.files(ruleCount: LargePolicy.ruleCount / 10)))
        let smallTiming = measure(small, requests)
        print(
            String(
                format: "  growth: median with %d rules %@, with %d rules %@ (ratio %.2f)",
                LargePolicy.ruleCount / 10, human(smallTiming.median), LargePolicy.ruleCount, human(timing.median),
                timing.median / smallTiming.median))
        try compareWithCedar(
            large, largeEngine, Array(requests.prefix(100)), mamori: timing, python: python, repetitions: 3)
        print()
    }

    /// Per-decision times: each request evaluated in a batch, the batch's time divided; several rounds.
    static func measure(_ engine: PolicyEngine, _ requests: [AuthorizationRequest]) -> Timing {
        let prepared = requests
        let batch = 200
        var samples: [Double] = []
        var sink = 0
        for _ in 0..<5 {
            for request in prepared {
                samples.append(
                    mamori_bench.seconds {
                        for _ in 0..<batch where engine.evaluate(request).isAllowed { sink += 1 }
                    } / Double(batch))
            }
        }
        if sink == -1 { print(sink) }
        return Timing(samples: samples)
    }

    static func report(_ timing: Timing) {
        print(
            "  Mamori  median \(human(timing.median))   p99 \(human(timing.p99))   "
                + String(format: "%.0f decisions/s", 1 / (timing.samples.reduce(0, +) / Double(timing.samples.count))))
    }

    static func duration(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func compareWithCedar(
        _ policy: Policy, _ engine: PolicyEngine, _ requests: [AuthorizationRequest], mamori: Timing, python: String,
        repetitions: Int
    ) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mamori-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let policiesURL = folder.appendingPathComponent("policies.cedar")
        let entitiesURL = folder.appendingPathComponent("entities.json")
        let requestsURL = folder.appendingPathComponent("requests.json")
        try CedarTranslation.policies(policy).write(to: policiesURL, atomically: true, encoding: .utf8)
        try JSONSerialization.data(withJSONObject: CedarTranslation.entities(policy, requests: requests)).write(
            to: entitiesURL)
        try JSONSerialization.data(
            withJSONObject: CedarTranslation.requests(requests, timeZone: policy.settings.timeZone)
        )
        .write(to: requestsURL)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "cedar_bench.py"
        ).path
        let result = try runProgram(
            python, [script, policiesURL.path, entitiesURL.path, requestsURL.path, "\(repetitions)"],
            captureOutput: true
        )
        guard result.status == 0,
            let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any],
            let times = object["times"] as? [Double], let baseline = object["baseline"] as? [Double],
            let decisions = object["decisions"] as? [String]
        else {
            print("  Cedar: cedarpy did not run (make bench installs it); no ratio")
            return
        }
        let net = Timing(samples: zip(times, baseline).map { max(0, $0 - $1) })
        let fixed = Timing(samples: baseline)
        let agree = zip(requests, decisions).filter { request, cedar in
            engine.evaluate(request).isAllowed == (cedar == "allow")
        }.count
        print(
            "  Cedar   median \(human(Timing(samples: times).median)) a call, of which the binding's fixed cost "
                + "\(human(fixed.median)); engine alone median \(human(net.median))   p99 \(human(net.p99))")
        print(
            String(
                format: "  ratio Cedar engine / Mamori (medians): %.1f×   decisions agree on %d of %d requests",
                net.median / mamori.median, agree, requests.count))
        if agree < requests.count {
            print("  (where they differ, a rule could not be evaluated: Mamori denies, failing closed; Cedar skips it)")
        }
    }
}
