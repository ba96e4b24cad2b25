import MamoriCore
import Testing

/// Where pruning cuts: a prefix of the chain, never a gap.
@Suite("the pruning anchor")
struct AuditPruningTests {
    @Test("the entry before the first kept one; everything when all are older; nothing otherwise")
    func anchors() {
        // Entries 1…10; entry 6 is the first written at or after the cutoff.
        #expect(AuditPruning.anchor(first: 1, last: 10, firstKept: 6) == 5)
        // All older than the cutoff: through the newest.
        #expect(AuditPruning.anchor(first: 1, last: 10, firstKept: nil) == 10)
        // The oldest is already at or after the cutoff: nothing goes.
        #expect(AuditPruning.anchor(first: 1, last: 10, firstKept: 1) == nil)
        // After an earlier pruning through 5, the chain starts at 6.
        #expect(AuditPruning.anchor(first: 6, last: 10, firstKept: 6) == nil)
        #expect(AuditPruning.anchor(first: 6, last: 10, firstKept: 8) == 7)
        // An empty trail.
        #expect(AuditPruning.anchor(first: nil, last: 0, firstKept: nil) == nil)
    }
}
