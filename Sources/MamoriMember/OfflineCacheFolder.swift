import Crypto
import Foundation
public import Logging
import MamoriCore
public import MamoriServer
import MamoriTown
import NIOConcurrencyHelpers

/// A member terminal's offline credentials (docs/town.md, "Logins through a network cut"), in its
/// state folder: `town/offline.key`, the terminal's own 32-byte key (0600, made at the first
/// start, never sent anywhere), and `town/offline/`, one file per user (0600), named by a digest
/// of the user's name. A file holds an ``OfflineCredential``: a keyed verifier and keyed tags,
/// never a seed, a code or a password hash. Copied to another terminal's folder, it verifies
/// nothing there: that terminal's key differs.
///
/// Everything is read at start and kept in memory; each change is written (synced, then renamed
/// into place) before ``update(_:_:)`` returns, so a failure counted offline survives a restart.
final class OfflineCacheFolder: OfflineCredentialStore {
    let folder: String
    let terminalKey: [UInt8]
    private let state: NIOLockedValueBox<(credentials: [String: OfflineCredential], sequence: Int64)>

    /// The cache of the membership in `stateDirectory`; the key is made when there is none.
    init(stateDirectory: String, logger: Logger) throws {
        let town = TerminalMembership.folder(in: stateDirectory)
        folder = town + "/offline"
        let keyPath = town + "/offline.key"
        if let key = PrivateFile.contents(keyPath) {
            guard key.count == 32 else { throw HubClientError("\(keyPath) is not a 32-byte key.") }
            terminalKey = Array(key)
        } else if FileManager.default.fileExists(atPath: keyPath) {
            throw HubClientError(
                "\(keyPath) is not a plain file of this user that only it may read; remove it to make a new key "
                    + "(every offline credential is then made anew at each user's next online login).")
        } else {
            let key = SystemRandomBytes().bytes(32)
            try TerminalJoin.writePrivateFile(keyPath, Data(key))
            terminalKey = key
        }
        if mkdir(folder, 0o700) != 0 && errno != EEXIST {
            throw HubClientError("\(folder) cannot be made.")
        }
        guard PrivateFile.isPrivateFolder(folder) else {
            throw HubClientError("\(folder) is not a folder of this user that only it may open.")
        }
        var credentials: [String: OfflineCredential] = [:]
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") {
            guard let data = PrivateFile.contents(folder + "/" + name),
                let credential = try? decoder.decode(OfflineCredential.self, from: data),
                Self.fileName(of: credential.user) == name
            else {
                logger.warning(
                    "an offline credential file cannot be read; it is ignored", metadata: ["file": "\(name)"])
                continue
            }
            credentials[credential.user] = credential
        }
        let newest = credentials.values.flatMap(\.pending).map(\.sequence).max() ?? 0
        state = NIOLockedValueBox((credentials, newest))
    }

    func credential(of user: String) -> OfflineCredential? {
        state.withLockedValue { $0.credentials[user] }
    }

    var users: [String] { state.withLockedValue { Array($0.credentials.keys) } }

    func update<T>(_ user: String, _ change: (inout OfflineCredential?) throws -> T) throws -> T {
        try state.withLockedValue { state in
            let before = state.credentials[user]
            var credential = before
            let result = try change(&credential)
            guard credential != before else { return result }
            let path = folder + "/" + Self.fileName(of: user)
            if let credential {
                let encoder = JSONEncoder()
                encoder.dateEncodingStrategy = .millisecondsSince1970
                encoder.outputFormatting = [.sortedKeys]
                try TerminalJoin.writePrivateFile(path, try encoder.encode(credential))
            } else if unlink(path) != 0 && errno != ENOENT {
                throw HubClientError("\(path) cannot be removed.")
            }
            state.credentials[user] = credential
            return result
        }
    }

    func nextSequence() -> Int64 {
        // Microseconds since 1970, and always past the last: unique for this terminal across
        // restarts while its clock does not go back past them.
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        return state.withLockedValue { state in
            state.sequence = max(state.sequence + 1, now)
            return state.sequence
        }
    }

    /// The file name of `user`'s credential: a digest, so that the folder does not list who logs in here.
    static func fileName(of user: String) -> String {
        SHA256.hash(data: Array("mamori-offline-file-v1:\(user)".utf8)).prefix(16).map { String(format: "%02x", $0) }
            .joined() + ".json"
    }
}

extension HubLink {
    /// The offline credentials kept in `stateDirectory` (its `town/offline/` folder and key).
    public static func offlineCache(stateDirectory: String, logger: Logger) throws -> any OfflineCredentialStore {
        try OfflineCacheFolder(stateDirectory: stateDirectory, logger: logger)
    }
}
