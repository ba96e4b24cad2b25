import ArgumentParser
import Foundation
import MamoriCore
import MamoriProtocol

/// `mamori totp`: one-time codes, offline.
struct TOTPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "totp",
        abstract: "Enrol and reset TOTP devices; print codes for diagnostics (RFC 6238).",
        subcommands: [Enroll.self, Reset.self, Code.self]
    )

    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrol a TOTP device for a user: show the key as a QR code, then confirm with a first code.",
            discussion: """
                The key is shown once, as a QR code to scan with an authenticator app and as the \
                otpauth:// URI; then the first code the app shows is asked for (a line on stdin). \
                The enrolment counts only when that code is right; otherwise it stays pending and \
                can be begun again.
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String

        func run() throws {
            // With --json the reply is printed as it came (and nil returned); the prompt follows either way.
            if let begin = try connection.call(.totpEnrollBegin, UserRequest(user: user), reading: EnrolmentReply.self)
            {
                if let drawing = QRCode.draw(begin.uri) { print(drawing) }
                print("Scan the code with the authenticator app, or enter the key by hand:")
                print(
                    Terminal.fields([
                        ("key", begin.secret), ("URI", begin.uri),
                        ("settings", "\(begin.algorithm.uppercased()), \(begin.digits) digits, \(begin.period) s"),
                    ]))
            }
            // The key must be on the screen (or in the pipe) before the prompt waits for the code:
            // fflush(nil) flushes every output stream, stdout included.
            fflush(nil)
            FileHandle.standardError.write(Data("Code shown by the app: ".utf8))
            let typed = try SecretInput.read(prompt: "", maximumLength: 64, fromStandardInput: true)
            let code = String(decoding: typed, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            let request = EnrolmentConfirmRequest(user: user, code: code)
            guard try connection.call(.totpEnrollConfirm, request, reading: EnrolmentConfirmedReply.self) != nil else {
                return
            }
            print("TOTP is enrolled for \(user).")
        }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a user's TOTP device (a lost phone); enrol a new one after.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The user's login name.") var user: String
        func run() throws {
            try UserCommand.Simple.run(
                .totpReset, user, connection, reading: TOTPResetReply.self, done: "Removed the TOTP device of \(user).")
        }
    }

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
            let text =
                try secret ?? String(decoding: SecretInput.read(prompt: "Secret: ", maximumLength: 512), as: UTF8.self)
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
