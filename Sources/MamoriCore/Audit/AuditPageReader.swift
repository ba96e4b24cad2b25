/// Reads a stored audit trail in pages, oldest first: what ``AuditVerifier/verify(_:publicKey:witness:pageSize:)``
/// needs from a store, a database copy or an export file, so that one verification serves them all.
public protocol AuditPageReader: Sendable {
    /// Every checkpoint, in the order they were made.
    func checkpoints() async throws -> [AuditCheckpoint]
    /// Up to `limit` entries with a sequence number above `after`, in sequence order; empty past
    /// the end.
    func auditPage(after: Int64, limit: Int) async throws -> [AuditChain.StoredEntry]
}

extension AuditVerifier {
    /// Checks the whole trail behind `reader` page by page, never holding all of it.
    ///
    /// - Parameters:
    ///   - publicKey: the raw Ed25519 verifying key, or nil to compare checkpoints without trusting them.
    ///   - witness: the newest checkpoint as kept outside the store, if any.
    /// - Throws: whatever the reader throws; a trail that reads but does not hold is a report with
    ///   problems, not an error.
    public static func verify(
        _ reader: some AuditPageReader, publicKey: [UInt8]?, witness: AuditCheckpoint? = nil, pageSize: Int = 5_000
    ) async throws -> AuditReport {
        var verifier = AuditVerifier(
            checkpoints: try await reader.checkpoints(), publicKey: publicKey, witness: witness)
        var after: Int64 = 0
        while true {
            let page = try await reader.auditPage(after: after, limit: pageSize)
            guard let last = page.last else { break }
            for entry in page { verifier.add(entry) }
            after = last.sequence
        }
        return verifier.finish()
    }
}
