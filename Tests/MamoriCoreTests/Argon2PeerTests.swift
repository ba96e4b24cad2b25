import Foundation
import MamoriCore
import MamoriTestSupport
import Testing

/// Hashes cross-checked with Python's argon2-cffi and the `argon2` command (both over the same
/// reference C code, but through their own encoders and decoders).
@Suite("Argon2 against argon2-cffi and the argon2 command")
struct Argon2PeerTests {
    let hasher: PasswordHasher
    init() throws { hasher = try PasswordHasher(parameters: testParameters) }

    static let cffiVerify = """
        import sys, argon2
        from argon2.low_level import Type, verify_secret
        from argon2.exceptions import VerifyMismatchError
        try:
            verify_secret(sys.argv[1].encode(), sys.stdin.buffer.read(), Type.ID)
            print("match")
        except VerifyMismatchError:
            print("mismatch")
        """

    @Test("hashes made by Mamori verify in argon2-cffi; a wrong password does not")
    func mamoriToCFFI() throws {
        for password in ["correct horse", "パスワード", "p"] {
            let hash = try hasher.hash(password)
            let right = try Subprocess.python(Self.cffiVerify, [hash], input: Array(password.utf8))
            try #require(right.status == 0, "argon2-cffi failed: \(right.stderr)")
            #expect(right.stdout == "match\n")
            let wrong = try Subprocess.python(Self.cffiVerify, [hash], input: Array((password + "!").utf8))
            #expect(wrong.stdout == "mismatch\n")
        }
    }

    @Test("the default parameters' hash verifies in argon2-cffi")
    func defaultParametersToCFFI() throws {
        let hash = try PasswordHasher().hash("町のパスワード")
        let result = try Subprocess.python(Self.cffiVerify, [hash], input: Array("町のパスワード".utf8))
        #expect(result.stdout == "match\n", "\(result.stderr)")
    }

    @Test("hashes made by argon2-cffi (argon2id and argon2i) verify in Mamori")
    func cffiToMamori() throws {
        let script = """
            import sys
            from argon2.low_level import Type, hash_secret
            import os
            for t in (Type.ID, Type.I):
                print(hash_secret(sys.stdin.buffer.read() if t == Type.ID else b"second password",
                                  os.urandom(16), time_cost=2, memory_cost=512, parallelism=2,
                                  hash_len=32, type=t).decode())
            """
        let result = try Subprocess.python(script, input: Array("first password".utf8))
        try #require(result.status == 0, "argon2-cffi failed: \(result.stderr)")
        let hashes = result.stdout.split(separator: "\n").map(String.init)
        try #require(hashes.count == 2)
        #expect(hashes[0].hasPrefix("$argon2id$v=19$m=512,t=2,p=2$"))
        #expect(try hasher.verify("first password", against: hashes[0]))
        #expect(try !hasher.verify("second password", against: hashes[0]))
        #expect(hashes[1].hasPrefix("$argon2i$"))
        #expect(try hasher.verify("second password", against: hashes[1]))
    }

    @Test("with the same salt, the argon2 command's string and Mamori's are identical")
    func argon2CommandIdentical() throws {
        let salt = "saltsaltsaltsalt"
        let result = try Subprocess.run(
            "argon2", [salt, "-id", "-t", "2", "-k", "256", "-p", "1", "-l", "32", "-e"], input: Array("hunter2".utf8)
        )
        try #require(result.status == 0, "argon2 failed: \(result.stderr)")
        let peer = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try hasher.hash(Array("hunter2".utf8), salt: Array(salt.utf8)) == peer)
        #expect(try hasher.verify("hunter2", against: peer))
        #expect(try !hasher.verify("hunter3", against: peer))
    }

    @Test("argon2i and version-16 hashes from the argon2 command verify in Mamori")
    func argon2CommandOlderForms() throws {
        for arguments in [["-i"], ["-i", "-v", "10"], ["-id", "-v", "10"]] {
            let result = try Subprocess.run(
                "argon2", ["somesaltsomesalt"] + arguments + ["-t", "3", "-k", "512", "-p", "2", "-e"],
                input: Array("old password".utf8)
            )
            try #require(result.status == 0, "argon2 failed: \(result.stderr)")
            let peer = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try hasher.verify("old password", against: peer), "\(arguments): \(peer)")
            #expect(try !hasher.verify("new password", against: peer))
            #expect(try hasher.needsRehash(peer) == (arguments.contains("-i") || arguments.contains("10")))
        }
    }
}
