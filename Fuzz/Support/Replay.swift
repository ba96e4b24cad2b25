import Foundation

#if MAMORI_FUZZ
    import CFuzzer
#endif

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
        let files =
            isFolder.boolValue
            ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
            : [path]
        for file in files {
            check(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            count += 1
        }
    }
    return count
}

#if MAMORI_FUZZ
    /// The check libFuzzer runs, set once by ``runFuzzTarget(_:_:)`` before the driver starts.
    nonisolated(unsafe) private var fuzzCheck: ((UnsafeRawBufferPointer) -> Void)?

    /// libFuzzer's entry point. libFuzzer's runtime is linked whole and names it, whichever `main`
    /// the linker keeps (SwiftPM points `main` at each executable's own).
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        fuzzCheck?(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
#endif

/// A fuzz target's whole `main`: in the fuzz build (`make fuzz`, -D MAMORI_FUZZ) hands `check` to
/// libFuzzer's driver with the command line's options; in the ordinary build replays the files
/// and folders named on the command line through it and says how many held.
public func runFuzzTarget(_ name: String, _ check: @escaping (UnsafeRawBufferPointer) -> Void) throws {
    #if MAMORI_FUZZ
        fuzzCheck = check
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
    #else
        let replayed = try replay(CommandLine.arguments.dropFirst()) { bytes in bytes.withUnsafeBytes(check) }
        print("\(name): \(replayed) inputs replayed, all held")
    #endif
}
