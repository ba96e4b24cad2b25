import Foundation
import Logging
import MamoriCore
import NIOConcurrencyHelpers

/// Keeps the audit trail's witness outside the database: every new signed checkpoint replaces
/// the witness file (atomically) and goes to the system log (journald through the daemon's log,
/// and syslog's authpriv facility), so that a trail cut off at its end is seen at the next check.
/// Only a newer head replaces the witness: a pruning anchor, which signs an older entry, does not.
final class WitnessKeeper: Sendable {
    let path: String
    private let logger: Logger
    private let newest: NIOLockedValueBox<Int64>

    /// Reads the current witness (if any) so that only newer heads replace it.
    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
        newest = NIOLockedValueBox((try? AuditWitness.read(path))??.sequence ?? 0)
    }

    /// Records `checkpoint` as the newest head if it is newer than the witness.
    func witness(_ checkpoint: AuditCheckpoint) {
        // The file is written under the lock: with checkpoints from several transactions (a store
        // that commits them in parallel), an older one must never land on disk after a newer one.
        newest.withLockedValue { newest in
            guard checkpoint.sequence > newest else { return }
            newest = checkpoint.sequence
            let line = AuditWitness.logLine(checkpoint)
            logger.notice("\(line)")
            line.withCString { text in
                withVaList([text]) { vsyslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", $0) }
            }
            do {
                try AuditWitness.write(checkpoint, to: path)
            } catch {
                logger.critical("the audit witness could not be written", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The witness as it is now on disk, and whether it could be read (a file that is there but
    /// unreadable counts as gone).
    func current() -> (checkpoint: AuditCheckpoint?, readable: Bool) {
        do {
            return (try AuditWitness.read(path), true)
        } catch {
            return (nil, false)
        }
    }
}
