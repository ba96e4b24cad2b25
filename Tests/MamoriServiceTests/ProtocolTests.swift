import Foundation
import MamoriCore
import MamoriProtocol
import MamoriServer
import MamoriTestSupport
import Testing

/// The protocol's declarations: what they promise about requests, and that the published schema
/// and documentation are the ones they generate.
@Suite("the protocol's declarations")
struct ProtocolTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("docs/protocol-v1.schema.json is the schema the declarations generate (mamori schema)")
    func publishedSchema() throws {
        let published = try String(
            contentsOf: Self.repository.appendingPathComponent("docs/protocol-v1.schema.json"), encoding: .utf8
        )
        #expect(
            published == ProtocolSchema.text, "regenerate it: .build/debug/mamori schema > docs/protocol-v1.schema.json"
        )
        let definitions = try #require(
            ProtocolSchema.document["$defs"].flatMap { value -> [String: JSONValue]? in
                if case .object(let object) = value { return object }
                return nil
            })
        #expect(definitions.count == WireOperation.allCases.count * 2 + 1)
    }

    @Test("every operation is documented in docs/protocol.md")
    func documented() throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        for operation in WireOperation.allCases {
            #expect(text.contains("`\(operation.rawValue)`"), "docs/protocol.md does not name \(operation.rawValue)")
        }
    }

    @Test("every action mamorid asks about is declared in the bundled policy, administrative but login")
    func actionsDeclared() throws {
        let policy = try PolicyLoader.load(
            directory: Self.repository.appendingPathComponent("policies", isDirectory: true))
        let declared = Dictionary(uniqueKeysWithValues: policy.actions.map { ($0.id, $0.administrative) })
        for action in MamoriAction.allCases {
            let administrative = declared[action.rawValue]
            #expect(administrative != nil, "policies/actions.yaml does not declare \(action.rawValue)")
            if action != .login && action != .status {
                #expect(administrative == true, "\(action.rawValue) should be administrative")
            }
        }
    }

    @Test("the declared enumerations and limits are the core's")
    func matchesCore() {
        #expect(WireField.factorNames == Factor.allCases.map(\.rawValue).sorted())
        #expect(WireField.userKinds == UserKind.allCases.map(\.rawValue).sorted())
        if case .oneOf(let results)? = WireOperation.account.replyFields.first(where: { $0.name == "result" })?.type {
            #expect(results == AccountResult.allCases.map(\.rawValue).sorted())
        } else {
            Issue.record("account's result is not declared as one of a list")
        }
        guard case .string(let maxBytes, _) = WireField.temporaryPassword.type else {
            Issue.record("the temporary password is not declared as a string")
            return
        }
        #expect(maxBytes == PasswordHasher.maximumPasswordLength)
    }

    @Test("secret fields are redacted from the request's description")
    func secrets() throws {
        #expect(WireRequest.secretFields == ["code", "new_password", "old_password", "password", "ticket"])
        let line = #"{"op":"authenticate","user":"tanaka","password":"hunter2 hunter2","code":"492039","ticket":"t0p"}"#
        let description = try WireRequest(line: Array(line.utf8)).safeDescription
        #expect(!description.contains("hunter2") && !description.contains("492039") && !description.contains("t0p"))
        #expect(description.contains("user=tanaka"))
    }

    /// Reads one field of a request line, or the bad_request message it gets.
    private func read<T>(_ line: String, _ body: (WireRequest) throws -> T) -> Result<T, WireError> {
        do {
            return .success(try body(try WireRequest(line: Array(line.utf8))))
        } catch let error as WireError {
            return .failure(error)
        } catch {
            return .failure(WireError(.internal, "\(error)"))
        }
    }

    @Test("a field is read through its declaration: byte limits, listed values, ranges, times, lists")
    func declaredLimits() {
        // Byte limits count UTF-8 bytes: 22 three-byte characters are 66 bytes, over the user's 64.
        let longName = String(repeating: "長", count: 22)
        #expect(
            read(#"{"op":"x","user":"\#(longName)"}"#) { try $0.string(.user) }.failureMessage
                == "The field \"user\" is longer than 64 bytes.")
        #expect(read(#"{"op":"x","user":"tanaka"}"#) { try $0.string(.user) }.value == "tanaka")
        #expect(read(#"{"op":"x"}"#) { try $0.string(.user) }.failureMessage == "The field \"user\" is required.")
        #expect(
            read(#"{"op":"x","user":7}"#) { try $0.string(.user) }.failureMessage
                == "The field \"user\" must be a string.")
        #expect(
            read(#"{"op":"x","kind":"intern"}"#) { try $0.optionalString(.kind) }.failureMessage
                == "The field \"kind\" must be one of contractor, fiscal-year-staff, service, staff.")
        #expect(
            read(#"{"op":"x","count":21}"#) { try $0.optionalInteger(.count) }.failureMessage
                == "The field \"count\" must be a whole number from 1 to 20.")
        #expect(
            read(#"{"op":"x","count":2.5}"#) { try $0.optionalInteger(.count) }.failureMessage
                == "The field \"count\" must be a whole number.")
        #expect(read(#"{"op":"x","count":20}"#) { try $0.optionalInteger(.count) }.value == 20)
        #expect(
            read(#"{"op":"x","factors":["password","sms"]}"#) { try $0.optionalStrings(.factors) }.failureMessage
                == "The field \"factors\" must be one of password, recovery-code, totp.")
        #expect(
            read(#"{"op":"x","factors":["totp","totp","totp","totp","totp","totp","totp","totp","totp"]}"#) {
                try $0.optionalStrings(.factors)
            }.failureMessage == "The field \"factors\" has more than 8 items.")
        let since = read(#"{"op":"x","since":"2026-04-01T00:00:00+09:00"}"#) { try $0.optionalTime(.since) }.value
        #expect(since == Date(timeIntervalSince1970: 1_774_969_200))
        #expect(
            read(#"{"op":"x","before":"2026-04-01"}"#) { try $0.time(.before) }.failureMessage
                == "The field \"before\" must be an ISO 8601 time with an offset, such as 2026-04-01T00:00:00+09:00.")
    }
}

extension Result {
    fileprivate var value: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}

extension Result where Failure == WireError {
    fileprivate var failureMessage: String? {
        if case .failure(let error) = self { return error.message }
        return nil
    }
}

/// The audit trail's vocabulary: what an auditor filters by must be written down.
@Suite("the audit events")
struct AuditEventTests {
    @Test("every audit event and outcome is in docs/operations.md's table")
    func documented() throws {
        let text = try String(
            contentsOf: ProtocolTests.repository.appendingPathComponent("docs/operations.md"), encoding: .utf8
        )
        for event in AuditEvent.allCases {
            #expect(text.contains("`\(event.rawValue)`"), "docs/operations.md does not name \(event.rawValue)")
        }
        for outcome in AuditOutcome.allCases {
            #expect(text.contains("`\(outcome.rawValue)`"))
        }
    }
}
