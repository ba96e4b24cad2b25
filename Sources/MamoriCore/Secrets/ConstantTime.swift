/// Compares two byte sequences in time that depends only on their lengths, never on where they
/// first differ.
///
/// Use it for every comparison of a secret or of a value derived from one (password tags, one-time
/// codes, recovery-code digests). Lengths are not secret in any of those uses: they are fixed by the
/// format. swift-crypto keeps its own constant-time comparison internal, so Mamori carries this one.
public func constantTimeEquals(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for (left, right) in zip(lhs, rhs) {
        difference |= left ^ right
    }
    return difference == 0
}
