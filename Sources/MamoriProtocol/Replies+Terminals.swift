// The replies about a hub's terminals.
// Each type's keys are its operation's declared reply fields (WireOperation.replyFields);
// WireTypeTests keeps the two equal.

/// `terminal.add`: the one-time token to give the terminal's installer.
public struct TerminalAddReply: WireReplyBody, Hashable {
    /// The terminal's name.
    public var terminal: String
    /// Its zone.
    public var zone: String
    /// The join token (`mamori1.SECRET.PIN`): a secret, shown once; the hub keeps its digest only.
    public var token: String
    /// When the token stops being accepted, ISO 8601.
    public var expiresAt: String

    /// A reply from its parts.
    public init(terminal: String, zone: String, token: String, expiresAt: String) {
        self.terminal = terminal
        self.zone = zone
        self.token = token
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case terminal, zone, token
        case expiresAt = "expires_at"
    }
}

/// A terminal as a hub's administrators see it: each of `terminal.list`.
public struct TerminalDescription: Codable, Sendable, Hashable {
    /// Its name.
    public var terminal: String
    /// Its zone.
    public var zone: String
    /// `awaiting-join`, `token-expired`, `joined` or `removed`.
    public var state: String
    /// When it was added, ISO 8601.
    public var addedAt: String
    /// Who added it.
    public var addedBy: String
    /// When its unused token expires, or nil (`null`).
    @Nullable public var tokenExpiresAt: String?
    /// When it joined, or nil (`null`).
    @Nullable public var joinedAt: String?
    /// Its certificate's serial (hex), or nil (`null`).
    @Nullable public var certificateSerial: String?
    /// When its certificate expires, or nil (`null`).
    @Nullable public var certificateExpiresAt: String?
    /// When it was removed, or nil (`null`).
    @Nullable public var removedAt: String?

    /// A terminal from its parts.
    public init(
        terminal: String, zone: String, state: String, addedAt: String, addedBy: String, tokenExpiresAt: String?,
        joinedAt: String?, certificateSerial: String?, certificateExpiresAt: String?, removedAt: String?
    ) {
        self.terminal = terminal
        self.zone = zone
        self.state = state
        self.addedAt = addedAt
        self.addedBy = addedBy
        self.tokenExpiresAt = tokenExpiresAt
        self.joinedAt = joinedAt
        self.certificateSerial = certificateSerial
        self.certificateExpiresAt = certificateExpiresAt
        self.removedAt = removedAt
    }

    enum CodingKeys: String, CodingKey {
        case terminal, zone, state
        case addedAt = "added_at"
        case addedBy = "added_by"
        case tokenExpiresAt = "token_expires_at"
        case joinedAt = "joined_at"
        case certificateSerial = "certificate_serial"
        case certificateExpiresAt = "certificate_expires_at"
        case removedAt = "removed_at"
    }
}

/// `terminal.list`.
public struct TerminalListReply: WireReplyBody, Hashable {
    /// Every terminal, removed ones too.
    public var terminals: [TerminalDescription]

    /// A reply from its parts.
    public init(terminals: [TerminalDescription]) {
        self.terminals = terminals
    }
}

/// `terminal.remove`.
public struct TerminalRemovedReply: WireReplyBody, Hashable {
    /// The terminal's name.
    public var terminal: String
    /// Always true.
    public var removed: Bool

    /// A reply for a removed terminal.
    public init(terminal: String) {
        self.terminal = terminal
        removed = true
    }
}
