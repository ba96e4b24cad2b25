import Crypto
import Foundation
import Logging
import MamoriCore
import MamoriPostgres
import MamoriProtocol
import MamoriSQLite
import MamoriStore
import MamoriTestSupport
import PostgresNIO
import Synchronization

@testable import MamoriServer

/// A clock the test sets: time moves only when the test moves it.
final class ManualClock: WallClock {
    private let time: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_790_000_000)) {
        time = Mutex(start)
    }

    func now() -> Date { time.withLock { $0 } }

    func advance(by seconds: TimeInterval) { time.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// The daemon's request handling without a socket: the service built by the daemon's own factory
/// on a real SQLite file in a temporary folder, with a ``ManualClock``. Requests go through the
/// same parsing as the socket's lines.
final class InProcessService: @unchecked Sendable {
    let folder: URL
    let clock: ManualClock
    let configuration: DaemonConfiguration
    let backing: Backing
    private(set) var service: MamoriService

    /// Where the service keeps its state: the SQLite file the daemon uses, or a PostgreSQL
    /// database (already migrated) as the hub will.
    enum Backing {
        case sqlite
        case postgres(PostgresClient)

        var isPostgres: Bool {
            if case .postgres = self { return true }
            return false
        }
    }

    /// The break-glass operator (the test runs as root).
    static let root = Caller(uid: 0, pid: 1, name: "root")

    /// A caller with a Unix name that is not an operator.
    static func user(_ name: String, uid: UInt32 = 4242) -> Caller { Caller(uid: uid, pid: 2, name: name) }

    init(clock: ManualClock = ManualClock(), backing: Backing = .sqlite) async throws {
        self.clock = clock
        self.backing = backing
        folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mamori-service-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let policies = folder.appendingPathComponent("policies").path
        try FileManager.default.copyItem(atPath: DaemonHarness.repositoryPolicies, toPath: policies)
        // Cheap Argon2: these tests are about time and rules, not the hash's cost.
        let settings = policies + "/settings.yaml"
        let text = try String(contentsOfFile: settings, encoding: .utf8)
            .replacingOccurrences(of: "memory-kib: 65536", with: "memory-kib: 1024")
            .replacingOccurrences(of: "iterations: 3", with: "iterations: 1")
            .replacingOccurrences(of: "parallelism: 4", with: "parallelism: 1")
        try text.write(toFile: settings, atomically: true, encoding: .utf8)
        var configuration = DaemonConfiguration()
        configuration.stateDirectory = folder.appendingPathComponent("state").path
        configuration.policyDirectory = policies
        configuration.socketPath = folder.appendingPathComponent("unused.sock").path
        configuration.terminal = "in-process"
        self.configuration = configuration
        service = try await Self.open(configuration, clock: clock, backing: backing)
    }

    /// On PostgreSQL the service is a hub's, which keeps the town's terminals.
    private static let openHub: HubOpener = { store in
        guard let registry = store as? any TerminalRegistry else { throw StoreError(.storage, "no register") }
        let key = SymmetricKey(size: .bits256)
        return HubRole(registry: registry, caPin: Array(repeating: 7, count: 32)) { $0.secretDigest(key: key) }
    }

    private static func open(_ configuration: DaemonConfiguration, clock: ManualClock, backing: Backing) async throws
        -> MamoriService
    {
        let logger = Logger(label: "mamori-test") { _ in SwiftLogNoOpLogHandler() }
        return try await ServiceFactory.make(
            configuration: configuration, logger: logger,
            openStore: { needs in
                switch backing {
                case .sqlite:
                    return try SQLiteStore(
                        path: needs.databasePath, signer: needs.signer, checkpointInterval: needs.checkpointInterval,
                        onCheckpoint: needs.onCheckpoint)
                case .postgres(let client):
                    return PostgresStore(
                        client: client, signer: needs.signer, checkpointInterval: needs.checkpointInterval,
                        onCheckpoint: needs.onCheckpoint, logger: logger)
                }
            },
            openHub: backing.isPostgres ? Self.openHub : nil,
            clock: clock
        )
    }

    /// Stops the service as the daemon does (saving session activity, signing the head) and
    /// opens a new one on the same state folder and clock.
    func restart() async throws {
        await service.shutdown()
        service = try await Self.open(configuration, clock: clock, backing: backing)
    }

    func stop() async {
        await service.shutdown()
        try? FileManager.default.removeItem(at: folder)
    }

    /// One request as a socket line would carry it, answered by the service.
    func call(_ fields: [String: JSONValue], as caller: Caller = InProcessService.root) async throws -> Reply {
        let line = WireReply.encodeRequest(fields)
        let request = try WireRequest(line: line.dropLast())
        let bytes = await service.handle(request, caller: caller)
        ReplyLog.record(request: line.dropLast(), reply: bytes.dropLast())
        guard let reply = WireReply.parse(bytes) else { throw SubprocessError(description: "unparsable reply") }
        return Reply(fields: reply)
    }

    /// One request built from its Swift type (MamoriProtocol's request types), answered by the service.
    func call(
        _ operation: WireOperation, _ body: some WireRequestBody = EmptyRequest(), session: String? = nil,
        as caller: Caller = InProcessService.root
    ) async throws -> Reply {
        var fields = try body.fields()
        fields["op"] = .string(operation.rawValue)
        if let session { fields["session"] = .string(session) }
        return try await call(fields, as: caller)
    }

    /// The TOTP code of `secret` at the service's current time, from oathtool.
    func code(_ secret: String, offset: TimeInterval = 0) throws -> String {
        let time = Int(clock.now().addingTimeInterval(offset).timeIntervalSince1970)
        return try Subprocess.run("oathtool", ["--totp", "-b", "-N", "@\(time)", secret]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A user with a password, a confirmed TOTP device and roles; returns the base32 seed.
    func enrol(_ user: String, password: String, roles: [String]) async throws -> String {
        for fields: [String: JSONValue] in [
            ["op": "user.add", "user": .string(user), "kind": "staff", "organisation": "planning"],
            ["op": "user.passwd", "user": .string(user), "password": .string(password)],
        ] {
            let reply = try await call(fields)
            guard reply.ok else { throw SubprocessError(description: "\(fields["op"]!): \(reply)") }
        }
        guard let secret = try await call(["op": "totp.enroll.begin", "user": .string(user)]).string("secret") else {
            throw SubprocessError(description: "no secret")
        }
        let confirm = try await call([
            "op": "totp.enroll.confirm", "user": .string(user), "code": .string(try code(secret)),
        ])
        guard confirm.ok else { throw SubprocessError(description: "confirm: \(confirm)") }
        for role in roles {
            let grant = try await call(["op": "role.grant", "user": .string(user), "role": .string(role)])
            guard grant.ok else { throw SubprocessError(description: "grant: \(grant)") }
        }
        return secret
    }
}

/// A reply's fields, with the accessors tests read.
struct Reply: CustomStringConvertible {
    let fields: [String: JSONValue]

    var ok: Bool { fields["ok"] == .bool(true) }
    var errorCode: String? {
        if case .object(let error)? = fields["error"], case .string(let code)? = error["code"] { return code }
        return nil
    }
    var errorMessage: String? {
        if case .object(let error)? = fields["error"], case .string(let message)? = error["message"] { return message }
        return nil
    }
    func string(_ name: String) -> String? {
        if case .string(let value)? = fields[name] { return value }
        return nil
    }
    func strings(_ name: String) -> [String] {
        guard case .array(let values)? = fields[name] else { return [] }
        return values.compactMap { if case .string(let value) = $0 { value } else { nil } }
    }
    var description: String { JSONValue.object(fields).text }
}
