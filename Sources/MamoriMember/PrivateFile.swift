import Foundation
import Glibc

/// The member's files in its state folder (the mirror, the offline credentials and their key).
enum PrivateFile {
    /// The contents of `path` when it is a plain file of this user that no one else may read or
    /// write (not a link planted in its place); nil otherwise.
    static func contents(_ path: String) -> Data? {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid(),
            info.st_mode & 0o077 == 0
        else { return nil }
        return FileManager.default.contents(atPath: path)
    }

    /// Whether `path` is a folder (not a link) of this user that no one else may open.
    static func isPrivateFolder(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR && info.st_uid == geteuid()
            && info.st_mode & 0o077 == 0
    }
}
