import Foundation
import MamoriTestSupport
import Testing

/// Runs the real `mamori` binary, as an operator would.
let mamori = Subprocess.product("mamori")
/// Cost options that keep CLI tests quick.
let cheap = ["--memory-kib", "256", "--iterations", "2", "--parallelism", "1"]

@Suite("mamori password")
struct PasswordCommandTests {
    @Test("hash prints one PHC string that argon2-cffi verifies; verify exits 0 for it and 1 for another password")
    func hashThenVerify() throws {
        let hashed = try Subprocess.run(mamori, ["password", "hash"] + cheap, input: Array("town secret\n".utf8))
        try #require(hashed.status == 0, "\(hashed.stderr)")
        let hash = hashed.stdout.trimmingCharacters(in: .newlines)
        #expect(hash.hasPrefix("$argon2id$v=19$m=256,t=2,p=1$"))
        #expect(!hashed.stdout.contains("town secret") && !hashed.stderr.contains("town secret"))

        let peer = try Subprocess.python(
            "import sys; from argon2.low_level import Type, verify_secret; "
                + "print(verify_secret(sys.argv[1].encode(), b'town secret', Type.ID))",
            [hash]
        )
        #expect(peer.stdout == "True\n", "\(peer.stderr)")

        let match = try Subprocess.run(
            mamori, ["password", "verify", hash] + cheap, input: Array("town secret\n".utf8))
        #expect(match.status == 0, "\(match.stderr)")
        let mismatch = try Subprocess.run(
            mamori, ["password", "verify", hash] + cheap, input: Array("town secrets\n".utf8))
        #expect(mismatch.status == 1)
        #expect(mismatch.stderr == "mamori: the password does not match.\n")
    }

    @Test("the default cost is RFC 9106's second recommendation")
    func defaultCost() throws {
        let hashed = try Subprocess.run(mamori, ["password", "hash"], input: Array("pw\n".utf8))
        #expect(hashed.stdout.hasPrefix("$argon2id$v=19$m=65536,t=3,p=4$"), "\(hashed.stderr)")
    }

    @Test("a CRLF line ending is not part of the password; without a newline the input is the password")
    func lineEndings() throws {
        let hashed = try Subprocess.run(mamori, ["password", "hash"] + cheap, input: Array("pw\r\n".utf8))
        let hash = hashed.stdout.trimmingCharacters(in: .newlines)
        let verified = try Subprocess.run(mamori, ["password", "verify", hash] + cheap, input: Array("pw".utf8))
        #expect(verified.status == 0, "\(verified.stderr)")
    }

    @Test("a malformed hash exits 2 with a sentence on stderr")
    func malformedHash() throws {
        let result = try Subprocess.run(
            mamori, ["password", "verify", "$argon2id$v=19$m=256,t=2"], input: Array("pw\n".utf8)
        )
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("mamori: A PHC hash string has the form"))
        let bcrypt = try Subprocess.run(mamori, ["password", "verify", "$2b$12$abc"], input: Array("pw\n".utf8))
        #expect(bcrypt.status == 2)
        #expect(bcrypt.stderr.contains("Only argon2id and argon2i"))
    }

    @Test("an empty or over-long password exits 2 and hashes nothing")
    func passwordLimits() throws {
        let empty = try Subprocess.run(mamori, ["password", "hash"] + cheap, input: Array("\n".utf8))
        #expect(empty.status == 2)
        #expect(empty.stdout.isEmpty)
        #expect(empty.stderr == "mamori: The password is empty.\n")
        let long = try Subprocess.run(
            mamori, ["password", "hash"] + cheap, input: Array(repeating: UInt8(ascii: "a"), count: 2000) + [10]
        )
        #expect(long.status == 2)
        #expect(long.stderr.contains("longer than 1024 bytes"))
    }

    @Test("a match against a weaker hash is reported so it can be replaced")
    func weakerHash() throws {
        let hashed = try Subprocess.run(mamori, ["password", "hash"] + cheap, input: Array("pw\n".utf8))
        let hash = hashed.stdout.trimmingCharacters(in: .newlines)
        let result = try Subprocess.run(mamori, ["password", "verify", hash], input: Array("pw\n".utf8))
        #expect(result.status == 0)
        #expect(result.stderr.contains("weaker than m=65536,t=3,p=4 (memory, iterations)"))
    }

    @Test("a password given as an argument is a usage error")
    func noPasswordArguments() throws {
        let result = try Subprocess.run(mamori, ["password", "hash", "hunter2"])
        #expect(result.status == 64)
    }
}
