import Foundation
import MamoriCore

/// The state folder: the database and the seed key, guarded by file permissions.
///
/// Mamori refuses to start when the folder, the database or the key file could be changed by
/// anyone but the daemon's own user: someone who can write them can make themselves an
/// administrator or read every TOTP seed.
enum StateFolder {
    static let databaseName = "mamori.sqlite"
    static let keyName = "seed.key"

    /// Creates the folder (0700) and the key file (0600, 32 random bytes) if missing, checks
    /// ownership and modes, and returns the seed key.
    static func prepare(_ path: String) throws(ConfigurationError) -> [UInt8] {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if !manager.fileExists(atPath: path, isDirectory: &isDirectory) {
            do {
                try manager.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw ConfigurationError("The state folder \(path) cannot be created.")
            }
        } else if !isDirectory.boolValue {
            throw ConfigurationError("The state folder \(path) is not a folder.")
        }
        try checkOwnership(path, what: "state folder")
        let keyPath = path + "/" + keyName
        if !manager.fileExists(atPath: keyPath) {
            let descriptor = open(keyPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw ConfigurationError("The key file \(keyPath) cannot be created.") }
            let key = SystemRandomBytes().bytes(SeedCipher.keyLength)
            let written = key.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
            guard written == key.count else { throw ConfigurationError("The key file \(keyPath) cannot be written.") }
        }
        try checkOwnership(keyPath, what: "key file")
        let databasePath = path + "/" + databaseName
        if manager.fileExists(atPath: databasePath) { try checkOwnership(databasePath, what: "database") }
        guard let key = manager.contents(atPath: keyPath), key.count == SeedCipher.keyLength else {
            throw ConfigurationError("The key file \(keyPath) must hold exactly \(SeedCipher.keyLength) bytes.")
        }
        return Array(key)
    }

    /// Refuses a path owned by another user or writable by group or others.
    static func checkOwnership(_ path: String, what: String) throws(ConfigurationError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw ConfigurationError("The \(what) \(path) cannot be examined.") }
        guard info.st_uid == geteuid() else {
            throw ConfigurationError("The \(what) \(path) is owned by uid \(info.st_uid), not by the daemon's uid \(geteuid()); refusing to start.")
        }
        guard info.st_mode & 0o022 == 0 else {
            throw ConfigurationError(
                "The \(what) \(path) is writable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); "
                    + "refusing to start. Fix it with: chmod go-w \(path)"
            )
        }
    }
}
