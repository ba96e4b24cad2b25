/// The build's version: `status` reports it, and `mamori` and `mamorid` print it for `--version`.
public enum MamoriVersion {
    /// Semantic version of this build.
    public static let current = "0.1.0"
}
