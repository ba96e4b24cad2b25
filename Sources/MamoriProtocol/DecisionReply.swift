/// A policy decision as every client sees it, in one shape (``ReplyFields/decision``): the
/// `authorize` reply, `mamori check --json`, and `mamori policy explain --json`, which decides
/// offline and so has no assignment generation.
public struct DecisionReply: WireReplyBody, Hashable {
    /// `allow`, `deny` or `step-up`.
    public var effect: String
    /// The ids of the rules that decided.
    public var rules: [String]
    /// Why, one sentence each.
    public var reasons: [String]
    /// With `step-up`: the factors a new login needs.
    public var missingFactors: [String]
    /// The policy the decision was made on.
    public var policyRevision: String
    /// The assignments it was made on; nil for a decision made offline on policy files.
    public var assignmentGeneration: Int64?

    /// Whether the effect is `allow`.
    public var allowed: Bool { effect == "allow" }

    /// A decision from its parts; `assignmentGeneration` is nil for one made offline on
    /// policy files.
    public init(
        effect: String, rules: [String], reasons: [String], missingFactors: [String], policyRevision: String,
        assignmentGeneration: Int64?
    ) {
        self.effect = effect
        self.rules = rules
        self.reasons = reasons
        self.missingFactors = missingFactors
        self.policyRevision = policyRevision
        self.assignmentGeneration = assignmentGeneration
    }

    /// The reply's fields. Built by hand: this sits on `authorize`'s fast path, where an
    /// encoder would cost more than the decision itself.
    public var fields: [String: JSONValue] {
        var fields: [String: JSONValue] = [
            "effect": .string(effect), "allowed": .bool(allowed),
            "rules": .array(rules.map { .string($0) }),
            "reasons": .array(reasons.map { .string($0) }),
            "missing_factors": .array(missingFactors.map { .string($0) }),
            "policy_revision": .string(policyRevision),
        ]
        if let assignmentGeneration { fields["assignment_generation"] = .number(Double(assignmentGeneration)) }
        return fields
    }

    enum CodingKeys: String, CodingKey {
        case effect, allowed, rules, reasons
        case missingFactors = "missing_factors"
        case policyRevision = "policy_revision"
        case assignmentGeneration = "assignment_generation"
    }

    /// Reads a decision; `allowed` must be there, though it follows from `effect`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        _ = try container.decode(Bool.self, forKey: .allowed)
        self.init(
            effect: try container.decode(String.self, forKey: .effect),
            rules: try container.decode([String].self, forKey: .rules),
            reasons: try container.decode([String].self, forKey: .reasons),
            missingFactors: try container.decode([String].self, forKey: .missingFactors),
            policyRevision: try container.decode(String.self, forKey: .policyRevision),
            assignmentGeneration: try container.decodeIfPresent(Int64.self, forKey: .assignmentGeneration)
        )
    }

    /// Writes the decision with `allowed`, as ``fields`` does.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(effect, forKey: .effect)
        try container.encode(allowed, forKey: .allowed)
        try container.encode(rules, forKey: .rules)
        try container.encode(reasons, forKey: .reasons)
        try container.encode(missingFactors, forKey: .missingFactors)
        try container.encode(policyRevision, forKey: .policyRevision)
        try container.encodeIfPresent(assignmentGeneration, forKey: .assignmentGeneration)
    }

    /// What a person reads: the effect, then what is missing, the rules, the reasons and the revision.
    public var lines: [String] {
        var lines = [effect]
        if !missingFactors.isEmpty { lines.append("  missing factors: \(missingFactors.joined(separator: ", "))") }
        if !rules.isEmpty { lines.append("  deciding rules: \(rules.joined(separator: ", "))") }
        lines += reasons.map { "  \($0)" }
        lines.append("  policy revision: \(policyRevision)")
        return lines
    }
}
