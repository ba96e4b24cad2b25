import ArgumentParser
import Foundation
import MamoriCore

/// `mamori totp`: one-time codes, offline.
struct TOTPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "totp",
        abstract: "Time-based one-time codes (RFC 6238), offline.",
        subcommands: [Code.self]
    )

    struct Code: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the code for a secret at a time: a diagnostic for clock-skew problems.",
            discussion: """
                Compare the printed code with the one on the staff member's phone: if they differ now \
                but match at a --time a minute earlier or later, a clock is off. Other local users can \
                read a --secret argument in the process list: on a shared machine use --secret-stdin.
                """
        )

        @Option(help: "The shared secret in base32, as in the key URI.")
        var secret: String?

        @Flag(help: "Read the base32 secret from the first line of stdin instead.")
        var secretStdin = false

        @Option(help: "Unix time in seconds (default: now).")
        var time: Int64?

        @Option(help: "sha1, sha256 or sha512.", transform: parseAlgorithm)
        var algorithm: OTPAlgorithm = .sha1

        @Option(help: "Digits in the code: 6, 7 or 8.")
        var digits = 6

        @Option(help: "Seconds in a time step.")
        var period = 30

        func validate() throws {
            guard (secret == nil) != (!secretStdin) else {
                throw ValidationError("Please give the secret with exactly one of --secret and --secret-stdin.")
            }
            if let time, time < 0 {
                throw ValidationError("Please give a --time at or after 1970-01-01 (Unix time 0).")
            }
        }

        func run() throws {
            let text = try secret ?? String(decoding: SecretInput.read(prompt: "Secret: ", maximumLength: 512), as: UTF8.self)
            let totp = try TOTP(
                secret: Base32.decode(text),
                parameters: OTPParameters(algorithm: algorithm, digits: digits, period: period)
            )
            let moment = time.map { Date(timeIntervalSince1970: TimeInterval($0)) } ?? Date()
            guard let code = totp.code(at: moment) else {
                throw CommandFailure("The time is before 1970; there is no code for it.")
            }
            print(code)
        }
    }
}

private func parseAlgorithm(_ text: String) throws -> OTPAlgorithm {
    guard let algorithm = OTPAlgorithm(rawValue: text.lowercased()) else {
        throw ValidationError("The algorithm must be sha1, sha256 or sha512, not '\(text)'.")
    }
    return algorithm
}
