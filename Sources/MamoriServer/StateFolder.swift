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
    static let auditKeyName = "audit.key"

    /// Creates the folder (0700) and the key files (0600, 32 random bytes each: the TOTP seed key
    /// and the audit signing key) if missing, checks ownership and modes, and returns both keys.
    /// With `databaseFile` (an embedded store's), the same for the database file; a hub's store is a
    /// server's, and its folder holds keys only.
    static func prepare(_ path: String, databaseFile: Bool = true) throws(ConfigurationError) -> (
        seed: [UInt8], audit: [UInt8]
    ) {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if !manager.fileExists(atPath: path, isDirectory: &isDirectory) {
            do {
                try manager.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw ConfigurationError("The state folder \(path) cannot be created.")
            }
        } else if !isDirectory.boolValue {
            throw ConfigurationError("The state folder \(path) is not a folder.")
        }
        try checkOwnership(path, what: "state folder")
        let seed = try key(path + "/" + keyName)
        let audit = try key(path + "/" + auditKeyName)
        let databasePath = path + "/" + databaseName
        guard databaseFile else { return (seed, audit) }
        if !manager.fileExists(atPath: databasePath) {
            // An empty file is a new SQLite database; made here so that it (and the -wal and -shm
            // files SQLite gives the same mode) is 0600 whatever the umask.
            let descriptor = open(databasePath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw ConfigurationError("The database \(databasePath) cannot be created.") }
            close(descriptor)
        }
        try checkOwnership(databasePath, what: "database", secret: true)
        return (seed, audit)
    }

    /// A 32-byte key file: made from the CSPRNG with mode 0600 if missing, then checked and read.
    private static func key(_ keyPath: String) throws(ConfigurationError) -> [UInt8] {
        if !FileManager.default.fileExists(atPath: keyPath) {
            let descriptor = open(keyPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw ConfigurationError("The key file \(keyPath) cannot be created.") }
            let key = SystemRandomBytes().bytes(32)
            let written = key.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
            guard written == key.count else { throw ConfigurationError("The key file \(keyPath) cannot be written.") }
        }
        try checkOwnership(keyPath, what: "key file", secret: true)
        guard let key = FileManager.default.contents(atPath: keyPath), key.count == 32 else {
            throw ConfigurationError("The key file \(keyPath) must hold exactly 32 bytes.")
        }
        return Array(key)
    }

    /// Refuses a path owned by another user or writable by group or others; with `secret`, also
    /// one readable by them (a key file, or the database with its password hashes and sealed seeds).
    static func checkOwnership(_ path: String, what: String, secret: Bool = false) throws(ConfigurationError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw ConfigurationError("The \(what) \(path) cannot be examined.") }
        guard info.st_uid == geteuid() else {
            throw ConfigurationError(
                "The \(what) \(path) is owned by uid \(info.st_uid), not by the daemon's uid \(geteuid()); refusing to start."
            )
        }
        guard info.st_mode & 0o022 == 0 else {
            throw ConfigurationError(
                "The \(what) \(path) is writable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); "
                    + "refusing to start. Fix it with: chmod go-w \(path)"
            )
        }
        guard !secret || info.st_mode & 0o077 == 0 else {
            throw ConfigurationError(
                "The \(what) \(path) is readable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); "
                    + "refusing to start. Fix it with: chmod 600 \(path)"
            )
        }
    }
}
