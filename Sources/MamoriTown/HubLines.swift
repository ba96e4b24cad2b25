public import MamoriProtocol

/// The operations a hub serves on its terminal port, besides those a terminal forwards for its
/// users (docs/protocol.md, "The hub's terminal port"). Requests and replies are the same JSON
/// lines as on the Unix socket.
public enum HubOperation: String, Sendable, CaseIterable {
    /// A terminal without a certificate yet presents its join token and a certificate request.
    case join = "terminal.join"
    /// A joined terminal asks who the hub takes it for.
    case hello = "terminal.hello"
}

/// `terminal.join`: the one request a connection without a certificate may make.
public struct TerminalJoinRequest: WireRequestBody, Hashable {
    /// The join token (`mamori1.SECRET.PIN`): a secret.
    public var token: String
    /// The terminal's certificate signing request, PEM (PKCS #10), signed with its new key.
    public var csr: String

    /// A join request.
    public init(token: String, csr: String) {
        self.token = token
        self.csr = csr
    }
}

/// The reply to `terminal.join`: the terminal's certificate and the CA that signed it.
public struct TerminalJoinReply: WireReplyBody, Hashable {
    /// The terminal's name, as the hub's administrator added it.
    public var terminal: String
    /// Its zone.
    public var zone: String
    /// The certificate the hub's CA issued for the request's key, PEM.
    public var certificate: String
    /// The hub's CA certificate, PEM: the only root the terminal trusts for its hub.
    public var ca: String

    /// A reply from its parts.
    public init(terminal: String, zone: String, certificate: String, ca: String) {
        self.terminal = terminal
        self.zone = zone
        self.certificate = certificate
        self.ca = ca
    }
}

/// The reply to `terminal.hello`: who the hub takes the connected terminal for.
public struct TerminalHelloReply: WireReplyBody, Hashable {
    /// The terminal's name, from its certificate's record.
    public var terminal: String
    /// Its zone.
    public var zone: String
    /// The hub's version.
    public var hubVersion: String

    /// A reply from its parts.
    public init(terminal: String, zone: String, hubVersion: String) {
        self.terminal = terminal
        self.zone = zone
        self.hubVersion = hubVersion
    }

    enum CodingKeys: String, CodingKey {
        case terminal, zone
        case hubVersion = "hub_version"
    }
}
