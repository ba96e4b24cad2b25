import Foundation
import MamoriCore
import Testing

@Suite("TOTP verification: window, replay, malformed codes")
struct TOTPVerificationTests {
    let totp: TOTP
    /// A moment in the middle of step 50_000_000.
    let now = Date(timeIntervalSince1970: 1_500_000_015)
    let currentStep: UInt64 = 50_000_000

    init() throws {
        totp = try TOTP(secret: Array("12345678901234567890".utf8))
    }

    @Test("the current step and its neighbours within the window are accepted, with their step")
    func windowEdges() {
        for offset in -1...1 {
            let step = UInt64(Int64(currentStep) + Int64(offset))
            #expect(totp.verify(totp.code(forStep: step), at: now) == .accepted(step: step))
        }
        for offset in [-3, -2, 2, 3] {
            let step = UInt64(Int64(currentStep) + Int64(offset))
            #expect(totp.verify(totp.code(forStep: step), at: now) == .rejected, "offset \(offset)")
        }
    }

    @Test("window 0 accepts only the current step; window 2 reaches two steps")
    func windowWidth() {
        #expect(totp.verify(totp.code(forStep: currentStep), at: now, window: 0).isAccepted)
        #expect(totp.verify(totp.code(forStep: currentStep - 1), at: now, window: 0) == .rejected)
        #expect(totp.verify(totp.code(forStep: currentStep + 2), at: now, window: 2).isAccepted)
    }

    @Test("the last second of a step and the first of the next are different steps")
    func stepBoundaries() {
        let lastSecond = Date(timeIntervalSince1970: 1_500_000_029.999)
        let firstSecond = Date(timeIntervalSince1970: 1_500_000_030)
        #expect(totp.step(at: lastSecond) == currentStep)
        #expect(totp.step(at: firstSecond) == currentStep + 1)
        #expect(totp.verify(totp.code(forStep: currentStep - 1), at: firstSecond) == .rejected)
    }

    @Test("a step at or before the last accepted one is a replay; a later one is accepted")
    func replay() {
        let code = totp.code(forStep: currentStep)
        #expect(totp.verify(code, at: now, lastAcceptedStep: currentStep) == .replayed(step: currentStep))
        #expect(totp.verify(code, at: now, lastAcceptedStep: currentStep + 1) == .replayed(step: currentStep))
        #expect(totp.verify(code, at: now, lastAcceptedStep: currentStep - 1) == .accepted(step: currentStep))
        let previous = totp.code(forStep: currentStep - 1)
        #expect(totp.verify(previous, at: now, lastAcceptedStep: currentStep - 1) == .replayed(step: currentStep - 1))
        #expect(!totp.verify(code, at: now, lastAcceptedStep: currentStep).isAccepted)
    }

    @Test(
        "text that cannot be a code is malformed", arguments: ["", "12345", "1234567", "12a456", "１２３４５６", "12345\n"])
    func malformed(code: String) {
        #expect(totp.verify(code, at: now) == .malformed)
    }

    @Test("spaces typed inside a code are ignored")
    func spaces() {
        let code = totp.code(forStep: currentStep)
        let spaced = String(code.prefix(3)) + " " + String(code.suffix(3))
        #expect(totp.verify(spaced, at: now) == .accepted(step: currentStep))
    }

    @Test("times before 1970 have no step; at the epoch the window does not reach below step 0")
    func epoch() {
        #expect(totp.step(at: Date(timeIntervalSince1970: -1)) == nil)
        #expect(totp.code(at: Date(timeIntervalSince1970: -1)) == nil)
        #expect(totp.verify("123456", at: Date(timeIntervalSince1970: -1)) == .malformed)
        let epoch = Date(timeIntervalSince1970: 0)
        #expect(totp.verify(totp.code(forStep: 0), at: epoch) == .accepted(step: 0))
        #expect(totp.verify(totp.code(forStep: 1), at: epoch) == .accepted(step: 1))
    }

    @Test("settings out of range are refused with a sentence")
    func invalidParameters() throws {
        #expect(throws: OTPError.self) { try OTPParameters(digits: 5) }
        #expect(throws: OTPError.self) { try OTPParameters(digits: 9) }
        #expect(throws: OTPError.self) { try OTPParameters(period: 0) }
        #expect(throws: OTPError.self) { try TOTP(secret: []) }
        #expect(throws: OTPError.self) { try TOTP(secret: Array(repeating: 1, count: 129)) }
        let error = try #require(throws: OTPError.self) { try OTPParameters(digits: 4) }
        #expect(error.code == .invalidParameters)
        #expect(error.message.hasSuffix("."))
    }

    @Test("generated secrets have the RFC 6238 lengths and differ")
    func generatedSecrets() {
        for algorithm in OTPAlgorithm.allCases {
            let first = TOTP.generateSecret(for: algorithm)
            let second = TOTP.generateSecret(for: algorithm)
            #expect(first.count == algorithm.secretLength)
            #expect(first != second)
        }
    }
}
