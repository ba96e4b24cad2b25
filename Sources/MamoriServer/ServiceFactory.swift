import Foundation
import Logging
public import MamoriCore
public import MamoriStore

/// What a daemon gives its store when it opens it: where the state folder keeps the database,
/// the key that signs checkpoints, and where each new checkpoint goes once committed (the witness).
public struct StoreRequirements: Sendable {
    /// The database file in the state folder (an embedded store's; a server store ignores it).
    public let databasePath: String
    /// Signs checkpoints with the state folder's audit key (`audit.key`).
    public let signer: AuditSigner
    /// Every this many entries, a signed checkpoint in the same transaction.
    public let checkpointInterval: Int
    /// Call with each new checkpoint after its transaction commits; keep it short.
    public let onCheckpoint: @Sendable (AuditCheckpoint) -> Void
}

/// Opens the store a daemon runs on (mamorid: the SQLite store). Throw with a sentence for the operator.
public typealias StoreOpener = @Sendable (StoreRequirements) throws -> any MamoriStorage

/// Makes a daemon a hub (docs/town.md), given the store it opened: a server's store that keeps the
/// town's terminals. Throw with a sentence for the operator.
public typealias HubOpener = @Sendable (any MamoriStorage) throws -> HubRole

/// The daemon's set-up, all the I/O before serving: the state folder and its keys, the store,
/// the policy folder; then the service from its parts.
enum ServiceFactory {
    static func make(
        configuration: DaemonConfiguration, logger: Logger, openStore: StoreOpener, openHub: HubOpener? = nil,
        member: MemberRole? = nil, clock: any WallClock = SystemClock(),
        random: any RandomByteSource = SystemRandomBytes()
    ) async throws(ConfigurationError) -> MamoriService {
        let keys = try StateFolder.prepare(configuration.stateDirectory, databaseFile: openHub == nil)
        let cipher: SeedCipher
        let signer: AuditSigner
        do {
            cipher = try SeedCipher(key: keys.seed)
            signer = try AuditSigner(rawKey: keys.audit)
        } catch {
            throw ConfigurationError(error.message)
        }
        let witness = WitnessKeeper(path: configuration.witnessPath, logger: logger)
        let databasePath = configuration.stateDirectory + "/" + StateFolder.databaseName
        let store: any MamoriStorage
        let generation: Int64
        let hub: HubRole?
        do {
            let opened = try openStore(
                StoreRequirements(
                    databasePath: databasePath, signer: signer, checkpointInterval: configuration.checkpointEntries,
                    onCheckpoint: { witness.witness($0) }
                ))
            // A member terminal keeps its sessions and its chain, and reads users from its hub's mirror.
            store = member.map { MemberStore(local: opened, mirror: $0.mirror) } ?? opened
            generation = try await store.assignmentGeneration()
            hub = try openHub?(store)
        } catch {
            throw ConfigurationError("\(error)")
        }
        if hub == nil { try StateFolder.checkOwnership(databasePath, what: "database", secret: true) }
        let policy = try loadPolicy(configuration)
        return MamoriService(
            configuration: configuration, store: store, policy: policy, cipher: cipher, auditSigner: signer,
            witness: witness, assignmentGeneration: generation, clock: clock, random: random, logger: logger, hub: hub,
            member: member
        )
    }

    /// The policy folder, loaded and checked to have the configured zone.
    static func loadPolicy(_ configuration: DaemonConfiguration) throws(ConfigurationError) -> Policy {
        let policy: Policy
        do {
            policy = try PolicyLoader.load(
                directory: URL(fileURLWithPath: configuration.policyDirectory, isDirectory: true))
        } catch {
            throw ConfigurationError("The policy in \(configuration.policyDirectory) is invalid:\n\(error)")
        }
        guard policy.zones.contains(where: { $0.id == configuration.zone }) else {
            throw ConfigurationError(
                "The zone '\(configuration.zone)' is not in the policy (zones: \(policy.zones.map(\.id).joined(separator: ", ")))."
            )
        }
        return policy
    }
}
