import Foundation
import MamoriCore
import Testing

@Suite("Recovery codes")
struct RecoveryCodeTests {
    @Test("a set has the requested number of distinct 16-character codes from the alphabet")
    func generation() {
        let issued = RecoveryCodes.generate(count: 12)
        #expect(issued.count == 12)
        #expect(Set(issued.map(\.code)).count == 12)
        for code in issued {
            #expect(code.code.count == 16)
            #expect(code.code.allSatisfy { RecoveryCodes.alphabet.contains($0) })
            #expect(code.formatted.count == 19)
            #expect(code.formatted.split(separator: "-").count == 4)
            #expect(code.stored.usedAt == nil)
            // Only a digest is kept: the stored value does not contain the code's text.
            #expect(code.stored.digest.count == 32)
            #expect(!String(decoding: code.stored.digest, as: UTF8.self).contains(code.code))
        }
    }

    @Test("the alphabet has no look-alike letters")
    func alphabet() {
        #expect(RecoveryCodes.alphabet.count == 32)
        for letter in "ILOU" { #expect(!RecoveryCodes.alphabet.contains(letter)) }
    }

    @Test("typing is forgiving: case, hyphens, spaces and look-alikes")
    func canonical() {
        #expect(RecoveryCodes.canonical("abcd-efgh-jkmn-pqrs") == "ABCDEFGHJKMNPQRS")
        #expect(RecoveryCodes.canonical("O1IL 0000 1111 2222") == "0111000011112222")
        #expect(RecoveryCodes.canonical("ABCD-EFGH-JKMN-PQR") == nil)
        #expect(RecoveryCodes.canonical("ABCD-EFGH-JKMN-PQRST") == nil)
        #expect(RecoveryCodes.canonical("ABCD-EFGH-JKMN-PQRU") == nil)
        #expect(RecoveryCodes.canonical("") == nil)
    }

    @Test("a code is consumed once: the match is named and marked used, and a second use fails")
    func consume() throws {
        let issued = RecoveryCodes.generate(count: 5)
        let stored = issued.map(\.stored)
        let when = Date(timeIntervalSince1970: 1_800_000_000)
        let first = try #require(RecoveryCodes.consume(issued[3].formatted.lowercased(), from: stored, at: when))
        #expect(first.index == 3)
        #expect(first.codes[3].usedAt == when)
        #expect(first.codes.enumerated().allSatisfy { $0.offset == 3 || $0.element.usedAt == nil })
        #expect(RecoveryCodes.consume(issued[3].code, from: first.codes, at: when) == nil)
        let second = try #require(RecoveryCodes.consume(issued[0].code, from: first.codes, at: when))
        #expect(second.index == 0)
        #expect(second.codes[3].usedAt == when)
    }

    @Test("a wrong or malformed code matches nothing")
    func wrong() {
        let stored = RecoveryCodes.generate(count: 3).map(\.stored)
        let other = RecoveryCodes.generate(count: 1)[0].code
        #expect(RecoveryCodes.consume(other, from: stored, at: Date()) == nil)
        #expect(RecoveryCodes.consume("not a code", from: stored, at: Date()) == nil)
        #expect(RecoveryCodes.consume("", from: [], at: Date()) == nil)
    }

    @Test("constant-time comparison agrees with ==")
    func constantTime() {
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(constantTimeEquals([UInt8](), [UInt8]()))
    }
}
