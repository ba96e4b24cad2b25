import Foundation

/// The member's files in its state folder (the mirror, the offline credentials and their key).
enum PrivateFile {
    /// Whether `path` is of `type` (itself, not what a link there points to), of this user, and
    /// closed to everyone else. (Foundation's attributes are lstat's: no `stat` struct here,
    /// whose defining module differs between builds.)
    private static func isPrivate(_ path: String, _ type: FileAttributeType) -> Bool {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            attributes[.type] as? FileAttributeType == type,
            (attributes[.ownerAccountID] as? NSNumber)?.uint32Value == geteuid(),
            let permissions = (attributes[.posixPermissions] as? NSNumber)?.intValue
        else { return false }
        return permissions & 0o077 == 0
    }

    /// The contents of `path` when it is a plain file of this user that no one else may read or
    /// write (not a link planted in its place); nil otherwise.
    static func contents(_ path: String) -> Data? {
        guard isPrivate(path, .typeRegular) else { return nil }
        return FileManager.default.contents(atPath: path)
    }

    /// Whether `path` is a folder (not a link) of this user that no one else may open.
    static func isPrivateFolder(_ path: String) -> Bool { isPrivate(path, .typeDirectory) }
}
