import Foundation
import MamoriCore
import Testing

/// The login's decisions as values in, values out: which failure the password step's facts add up
/// to, and what a typed code proves.
@Suite("login evaluation")
struct LoginEvaluationTests {
    /// RFC 6238's SHA-1 key; at 1111111109 its 6-digit code is 081804 (the RFC's 07081804).
    let device: TOTP
    let moment = Date(timeIntervalSince1970: 1_111_111_109)
    let step: UInt64 = 1_111_111_109 / 30

    init() throws {
        device = try TOTP(secret: Array("12345678901234567890".utf8))
    }

    func facts(
        exists: Bool = true, disabled: Bool = false, locked: Bool = false, password: Bool = true, reserved: Bool = true,
        usable: Bool = true, verified: Bool = true
    ) -> PasswordFacts {
        PasswordFacts(
            userExists: exists, disabled: disabled, locked: locked, hasPassword: password, attemptReserved: reserved,
            usable: usable, verified: verified
        )
    }

    @Test("the password step's first failure, in the trail's order; none when all holds")
    func passwordFailures() {
        #expect(facts().failure == nil)
        #expect(facts(verified: false).failure == .password)
        #expect(facts(usable: false, verified: true).failure == .password, "an unusable password never matches")
        #expect(facts(reserved: false, verified: false).failure == .attemptsInFlight)
        #expect(facts(password: false, reserved: false).failure == .noPassword)
        #expect(
            facts(locked: true, reserved: false, verified: true).failure == .locked,
            "a locked account is locked, right password or not")
        #expect(facts(disabled: true, locked: true).failure == .disabled)
        #expect(facts(exists: false, disabled: true, locked: true, password: false).failure == .unknownUser)
    }

    func evaluate(
        _ typed: String, device: TOTP?, confirmed: Bool = true, last: UInt64? = nil, codes: [StoredRecoveryCode] = []
    ) -> SecondFactor.Result {
        SecondFactor.evaluate(
            typed, device: device, deviceConfirmed: confirmed, lastAcceptedStep: last, window: 1, recoveryCodes: codes,
            at: moment
        )
    }

    @Test("the device's code is accepted once; its step again, or an earlier one, is a replay")
    func deviceCode() {
        #expect(evaluate("081804", device: device) == .totp(step: step))
        #expect(evaluate("081804", device: device, last: step) == .failed(.replay))
        #expect(evaluate("081804", device: device, last: step + 1) == .failed(.replay))
        #expect(evaluate("081805", device: device) == .failed(.code))
        #expect(evaluate("", device: nil) == .failed(.code), "nothing typed, with a confirmed device")
    }

    @Test("a recovery code stands in for the device, once; with nothing enrolled the reason says so")
    func recoveryCodes() {
        let issued = RecoveryCodes.generate(count: 3)
        let stored = issued.map(\.stored)
        #expect(evaluate(issued[1].formatted, device: device, codes: stored) == .recoveryCode(index: 1))
        // After a TOTP reset: no device, and a recovery code still works.
        #expect(evaluate(issued[2].formatted, device: nil, confirmed: false, codes: stored) == .recoveryCode(index: 2))
        var used = stored
        used[0].usedAt = moment
        #expect(evaluate(issued[0].formatted, device: device, codes: used) == .failed(.code), "a used code is spent")
        #expect(evaluate("081804", device: nil, confirmed: false, codes: []) == .failed(.noSecondFactor))
        #expect(
            evaluate("", device: nil, confirmed: false, codes: stored) == .failed(.noSecondFactor),
            "nothing typed and no device: as the daemon always recorded it")
        #expect(evaluate("nonsense", device: nil, confirmed: false, codes: stored) == .failed(.code))
    }
}
