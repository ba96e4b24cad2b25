import Foundation
import MamoriCore
import MamoriServer
import MamoriStore
import MamoriTown

/// The mirror kept in the state folder (`town/mirror.json`, 0600), so that a member restarted
/// while its hub cannot be reached decides on the users it last heard of, as it would have had it
/// kept running, instead of refusing everyone. It holds what `terminal.subjects` carries: users,
/// assignments and locks, never a password hash, a seed or a code. The next full read from the
/// hub replaces it.
struct MirrorFile {
    let path: String
    /// The membership it belongs to: a file of another join (or another hub) is not read.
    let terminal: String
    let hub: String

    struct Contents: Codable {
        var format = MirrorFile.format
        var terminal: String
        var hub: String
        /// When it was written, ISO 8601: the time of the last read the mirror holds, or later.
        var savedAt: String
        var latest: Int64
        var subjects: [SubjectDescription]

        enum CodingKeys: String, CodingKey {
            case format, latest, subjects, terminal, hub
            case savedAt = "saved_at"
        }
    }

    static let format = "mamori-mirror-v1"

    /// The mirror last saved, and when; nil when there is none, or it cannot be read (a file of
    /// another format, or damaged: the terminal then waits for its hub, as before any read).
    func load() -> (subjects: [MirroredSubject], latest: Int64, savedAt: Date)? {
        // Only a plain file of this daemon's user that no one else may read or write (not a link
        // planted in its place).
        guard let data = PrivateFile.contents(path),
            let contents = try? JSONDecoder().decode(Contents.self, from: data), contents.format == Self.format,
            contents.terminal == terminal, contents.hub == hub,
            let saved = ISO8601DateFormatter().date(from: contents.savedAt)
        else { return nil }
        return (contents.subjects.compactMap(HubLink.mirrored), contents.latest, saved)
    }

    /// Writes `mirror` whole, atomically.
    func save(_ mirror: SubjectMirror, at time: Date) throws {
        let contents = Contents(
            terminal: terminal, hub: hub, savedAt: ISO8601DateFormatter().string(from: time),
            latest: mirror.latest ?? 0,
            subjects: mirror.subjects.map(Self.describe))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try TerminalJoin.writePrivateFile(path, try encoder.encode(contents))
    }

    /// A mirrored user as the hub describes it (the inverse of ``HubLink/mirrored(_:)``).
    static func describe(_ subject: MirroredSubject) -> SubjectDescription {
        SubjectDescription(subject.user, assignments: subject.assignments, lockedUntil: subject.lockedUntil)
    }
}
