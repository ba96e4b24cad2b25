import ArgumentParser
import MamoriCore

/// `mamori password`: Argon2id hashes, offline.
struct PasswordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "password",
        abstract: "Hash a password or check one against a stored hash (Argon2id, offline).",
        subcommands: [Hash.self, Verify.self]
    )

    /// Argon2id cost options; the defaults are RFC 9106's second recommendation.
    struct CostOptions: ParsableArguments {
        @Option(name: .customLong("memory-kib"), help: "Memory per hash, in KiB.")
        var memoryKiB: UInt32 = Argon2Parameters.default.memoryKiB

        @Option(help: "Passes over memory.")
        var iterations: UInt32 = Argon2Parameters.default.iterations

        @Option(help: "Lanes (and threads) per hash.")
        var parallelism: UInt32 = Argon2Parameters.default.parallelism

        var parameters: Argon2Parameters {
            Argon2Parameters(memoryKiB: memoryKiB, iterations: iterations, parallelism: parallelism)
        }
    }

    struct Hash: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read one password from stdin and print its Argon2id PHC string.",
            discussion: """
                At a terminal the password is asked for twice, without echo; otherwise the first line \
                of standard input is the password. Example:
                  printf '%s\\n' "$PASSWORD" | mamori password hash
                """
        )

        @OptionGroup var cost: CostOptions

        func run() throws {
            let hasher = try PasswordHasher(parameters: cost.parameters)
            let password = try SecretInput.read(
                prompt: "Password: ", confirm: true, maximumLength: PasswordHasher.maximumPasswordLength
            )
            print(try hasher.hash(password))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a password from stdin and check it against a PHC string.",
            discussion: """
                Exit status: 0 when the password matches, 1 when it does not, 2 when the hash or the \
                input is malformed (the reason is printed on stderr). argon2id and argon2i hashes of any \
                parameters are accepted, within Mamori's resource ceilings. A match against a hash weaker \
                than the cost options is reported on stderr, so that it can be replaced.
                """
        )

        @Argument(help: "The stored hash, e.g. '$argon2id$v=19$m=65536,t=3,p=4$…'. Quote it in the shell.")
        var hash: String

        @OptionGroup var cost: CostOptions

        func run() throws {
            let hasher = try PasswordHasher(parameters: cost.parameters)
            // Parse first, so a malformed hash is reported before anyone types a password.
            let weaknesses = try hasher.weaknesses(of: hash)
            let password = try SecretInput.read(
                prompt: "Password: ", maximumLength: PasswordHasher.maximumPasswordLength
            )
            guard try hasher.verify(password, against: hash) else {
                standardError("mamori: the password does not match.")
                throw ExitCode.answeredNo
            }
            if !weaknesses.isEmpty {
                let list = weaknesses.map(\.rawValue).joined(separator: ", ")
                standardError("mamori: the password matches; the hash is weaker than \(hasher.parameters) (\(list)).")
            }
        }
    }
}
