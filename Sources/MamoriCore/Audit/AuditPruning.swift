/// Where pruning cuts the chain. Entries go as a prefix, stopping at the first written at or
/// after the cutoff, so that an entry with an earlier clock reading later in the chain is kept and
/// no gap is ever made; the last entry removed becomes the anchor (a signed checkpoint) that the
/// first remaining entry links to. Every store prunes by this rule, inside its own transaction.
public enum AuditPruning {
    /// The last entry to remove, or nil when nothing goes.
    ///
    /// - Parameters:
    ///   - first: the oldest entry's number (nil for an empty trail).
    ///   - last: the newest entry's number.
    ///   - firstKept: the first entry written at or after the cutoff (nil when all are older).
    public static func anchor(first: Int64?, last: Int64, firstKept: Int64?) -> Int64? {
        guard let first else { return nil }
        let through = firstKept.map { $0 - 1 } ?? last
        return through >= first ? through : nil
    }
}
