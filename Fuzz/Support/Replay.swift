import Foundation

/// Runs `check` on every file named in `paths` (folders are read one level deep, in name order)
/// and returns how many inputs it ran: the ordinary build of a fuzz target replays its corpus
/// this way, so that `make test` keeps every kept input (seeds and fixed crashes) passing.
/// A missing path is an error rather than an empty run, so a moved corpus cannot pass silently.
public func replay(_ paths: some Sequence<String>, _ check: ([UInt8]) -> Void) throws -> Int {
    var count = 0
    for path in paths {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        let files = isFolder.boolValue
            ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
            : [path]
        for file in files {
            check(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            count += 1
        }
    }
    return count
}
