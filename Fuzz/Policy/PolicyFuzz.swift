// mamori-fuzz-policy: the policy loader, from YAML text to a validated policy or diagnostics.
//
// Built with `make fuzz` (-sanitize=fuzzer,address, -D MAMORI_FUZZ) it runs libFuzzer; in
// an ordinary build it replays the files and folders given on its command line (the seeds in
// Fuzz/corpus/policy), so `make test` keeps every finding fixed.
//
// An input replaces one file of the bundled policy: its first byte chooses which, the rest is
// that file's text, so that the other files stay valid and the fuzzer reaches the checks that
// need a whole policy (references, separation of duty, zones). The loader must return a policy
// or throw diagnostics, each naming a file of the input at a line and column inside it (the
// `file:line:column: what is wrong` every administrator reads), never crash or hang.
import Foundation
import MamoriCore
import MamoriFuzzSupport

/// The bundled policy's files, read once: the inputs vary one of them.
let bundled: [(name: String, text: String)] = {
    // Fuzz/Policy/PolicyFuzz.swift -> the repository's policies/.
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("policies")
    let names = ["actions.yaml", "assets.yaml", "roles.yaml", "rules.yaml", "settings.yaml", "zones.yaml"]
    return names.map { name in
        guard let text = try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8) else {
            fatalError("mamori-fuzz-policy: cannot read \(folder.path)/\(name)")
        }
        return (name, text)
    }
}()

func check(_ data: UnsafeRawBufferPointer) {
    guard let first = data.first else { return }
    let index = Int(first) % bundled.count
    var files = bundled
    files[index].text = String(decoding: data.dropFirst(), as: UTF8.self)
    let lineCounts = Dictionary(
        uniqueKeysWithValues: files.map {
            ($0.name, $0.text.split(separator: "\n", omittingEmptySubsequences: false).count)
        })
    do {
        let policy = try PolicyLoader.load(files: files)
        precondition(!policy.revision.isEmpty)
    } catch {
        precondition(error.diagnostics.contains { $0.severity == .error }, "a refused policy without an error")
        for diagnostic in error.diagnostics {
            let location = diagnostic.location
            guard let lines = lineCounts[location.file] else {
                preconditionFailure("\(diagnostic) names no file of the input")
            }
            precondition(
                location.line >= 1 && location.line <= lines + 1 && location.column >= 1,
                "\(diagnostic) is outside \(location.file) (\(lines) lines)")
            precondition(!diagnostic.description.isEmpty)
        }
    }
}

@main
enum Main {
    static func main() throws {
        try runFuzzTarget("mamori-fuzz-policy", check)
    }
}
