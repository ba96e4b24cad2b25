public import Foundation

/// The self-inspection report (自己点検): what `mamori inspect` prints and files. The daemon
/// builds it; the command renders it as text, JSON, Markdown or HTML.
public struct InspectionReport: Codable, Sendable, Hashable {
    /// When the inspection ran (ISO 8601, in the policy's time zone).
    public var time: String
    /// Who ran it (the caller's login name), for the filed copy.
    public var inspector: String
    /// The terminal that was inspected (the daemon's `terminal` setting).
    public var terminal: String
    /// The zone of that terminal.
    public var zone: String
    /// The revision of the policy in force (`sha256:…`), so that a finding can be traced to the rules behind it.
    public var policyRevision: String
    /// One finding per check, in the order the checks ran.
    public var findings: [Finding]

    /// A report; `time` is written as ISO 8601 in `timeZone` (the policy's), so that the filed copy reads in
    /// local time.
    public init(
        time: Date, timeZone: TimeZone, inspector: String, terminal: String, zone: String, policyRevision: String,
        findings: [Finding]
    ) {
        self.time = time.formatted(Date.ISO8601FormatStyle(timeZoneSeparator: .colon, timeZone: timeZone))
        self.inspector = inspector
        self.terminal = terminal
        self.zone = zone
        self.policyRevision = policyRevision
        self.findings = findings
    }

    /// The worst status of any finding: the report's verdict.
    public var overall: Status { findings.map(\.status).max() ?? .pass }

    /// How many findings have `status`.
    public func count(_ status: Status) -> Int { findings.filter { $0.status == status }.count }

    enum CodingKeys: String, CodingKey {
        case time, inspector, terminal, zone, findings
        case policyRevision = "policy_revision"
    }

    /// pass < warn < fail.
    public enum Status: String, Codable, Sendable, Comparable, CaseIterable {
        case pass, warn, fail

        /// Orders by severity, so that the worst status is the greatest.
        public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }
        private var rank: Int {
            switch self {
            case .pass: 0
            case .warn: 1
            case .fail: 2
            }
        }
    }

    /// One check's result.
    public struct Finding: Codable, Sendable, Hashable {
        /// A stable id, e.g. `mfa-enrolment`.
        public var check: String
        /// A short heading for people, e.g. "PAM services on this terminal".
        public var title: String
        /// Pass, warn or fail; the worst finding decides the report's ``InspectionReport/overall``.
        public var status: Status
        /// One sentence: what was found.
        public var summary: String
        /// The accounts, roles or files involved, each with why.
        public var items: [String]
        /// Where the requirement comes from: the basic policy and the guideline.
        public var basis: String

        /// A finding; leave `items` empty when no account, role or file in particular is involved.
        public init(check: String, title: String, status: Status, summary: String, items: [String] = [], basis: String)
        {
            self.check = check
            self.title = title
            self.status = status
            self.summary = summary
            self.items = items
            self.basis = basis
        }
    }
}
