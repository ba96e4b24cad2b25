import Foundation
import MamoriCore

/// Reads one secret (a password) from standard input: without echo, with a prompt on stderr,
/// when stdin is a terminal; otherwise the first line of whatever is piped in.
///
/// Secrets are never taken from arguments, where every local user could read them in the process
/// list. The bytes are returned as typed: no trimming beyond the line ending.
enum SecretInput {
    /// Reads a secret, bounded at `maximumLength` bytes.
    ///
    /// - Parameter pipeFlag: for commands where a piped secret must be asked for explicitly, the
    ///   name of the flag that does so (`--password-stdin`); nil where stdin may always be used.
    ///   With the flag given (`fromStandardInput`), stdin is read even at a terminal.
    static func read(
        prompt: String, confirm: Bool = false, maximumLength: Int, pipeFlag: String? = nil,
        fromStandardInput: Bool = false
    ) throws(CommandFailure) -> [UInt8] {
        if fromStandardInput {
            return try readLine(from: STDIN_FILENO, maximumLength: maximumLength)
        }
        if isatty(STDIN_FILENO) != 1, let pipeFlag {
            throw CommandFailure("There is no terminal to ask for the password on; pipe it in with \(pipeFlag).")
        }
        if isatty(STDIN_FILENO) == 1 {
            let first = try readFromTerminal(prompt: prompt, maximumLength: maximumLength)
            if confirm {
                let second = try readFromTerminal(prompt: "Again: ", maximumLength: maximumLength)
                guard constantTimeEquals(first, second) else {
                    throw CommandFailure("The two entries differ; nothing was done.")
                }
            }
            return first
        }
        return try readLine(from: STDIN_FILENO, maximumLength: maximumLength)
    }

    private static func readFromTerminal(prompt: String, maximumLength: Int) throws(CommandFailure) -> [UInt8] {
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else {
            throw CommandFailure("Cannot read the terminal's settings to turn echo off.")
        }
        var silent = saved
        silent.c_lflag &= ~tcflag_t(ECHO)
        guard tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent) == 0 else {
            throw CommandFailure("Cannot turn the terminal's echo off.")
        }
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return try readLine(from: STDIN_FILENO, maximumLength: maximumLength)
    }

    /// Reads up to the first newline (or end of input), refusing more than `maximumLength` bytes
    /// before it. A trailing carriage return is dropped with the newline.
    private static func readLine(from descriptor: Int32, maximumLength: Int) throws(CommandFailure) -> [UInt8] {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = Foundation.read(descriptor, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw CommandFailure("Cannot read standard input.") }
            if count == 0 || byte == UInt8(ascii: "\n") { break }
            line.append(byte)
            // One byte of slack for a carriage return before the newline.
            guard line.count <= maximumLength + 1 else {
                throw CommandFailure("The input is longer than \(maximumLength) bytes.")
            }
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        guard line.count <= maximumLength else {
            throw CommandFailure("The input is longer than \(maximumLength) bytes.")
        }
        return line
    }
}
