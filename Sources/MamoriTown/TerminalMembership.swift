import CoreFoundation
import Crypto
public import Foundation
public import MamoriCore
public import NIOCore
public import NIOPosix
public import NIOSSL
import SwiftASN1
import Synchronization
import X509

/// A terminal's membership of its town, in its state folder's `town/` (mode 0700):
///
/// - `terminal.key`: the terminal's private key (P-256, PKCS #8 PEM, mode 0600); it never leaves;
/// - `terminal.pem`: its certificate, which the hub's CA issued at the join;
/// - `hub-ca.pem`: the hub's CA certificate, the only root trusted for the hub;
/// - `membership.json`: the hub's address, the terminal's name and zone, when it joined.
public struct TerminalMembership: Sendable, Hashable, Codable {
    /// The hub's terminal port, `host:port`.
    public var hub: String
    /// The terminal's name in the town.
    public var terminal: String
    /// Its zone.
    public var zone: String
    /// When it joined, ISO 8601.
    public var joinedAt: String

    enum CodingKeys: String, CodingKey {
        case hub, terminal, zone
        case joinedAt = "joined_at"
    }

    /// The folder of a state folder that holds the membership.
    public static func folder(in stateDirectory: String) -> String { stateDirectory + "/town" }

    /// The membership recorded in `stateDirectory`, or nil when the terminal has not joined.
    public static func read(stateDirectory: String) throws -> TerminalMembership? {
        let path = folder(in: stateDirectory) + "/membership.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try JSONDecoder().decode(TerminalMembership.self, from: data)
    }

    /// The TLS configuration a member connects to its hub with: its key and certificate, the hub's
    /// CA as the only root, the hub's name or address checked, TLS 1.3.
    public static func clientTLS(stateDirectory: String) throws -> TLSConfiguration {
        let folder = folder(in: stateDirectory)
        TerminalJoin.finishRenewal(folder: folder)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(folder + "/hub-ca.pem"))
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(folder + "/terminal.pem").map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: folder + "/terminal.key", format: .pem))
        tls.certificateVerification = .fullVerification
        // A connection is closed when it is done with or found dead: a hub behind a black hole
        // never answers the close, and waiting the default 5 s for it holds the link's work up.
        tls.shutdownTimeout = .milliseconds(500)
        return tls
    }
}

/// `mamori join`: a terminal joins its hub with a one-time token (docs/town.md, "Joining").
public enum TerminalJoin {
    /// Joins the hub at `hub` with `token`, and records the membership in `stateDirectory`.
    ///
    /// 1. A first TLS handshake only looks at the certificates the hub presents, and sends nothing:
    ///    the CA among them must hash to the token's pin, or the join stops there.
    /// 2. A new P-256 key is made, and a certificate request signed with it.
    /// 3. A second connection trusts that CA alone, checks the hub's name or address against its
    ///    certificate, and sends the token and the request.
    /// 4. The certificate that comes back must be for the new key, and the CA the pinned one; then
    ///    the key, the certificate, the CA and the membership are written, the key 0600.
    ///
    /// Throws ``HubClientError`` with a sentence for the operator; nothing is written on failure.
    public static func join(
        hub: HubAddress, token: JoinToken, stateDirectory: String,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, now: Date = Date()
    ) async throws -> TerminalMembership {
        let folder = TerminalMembership.folder(in: stateDirectory)
        if let existing = try? TerminalMembership.read(stateDirectory: stateDirectory) {
            throw HubClientError(
                code: "conflict",
                "This terminal has joined \(existing.hub) as '\(existing.terminal)' already. To join again, "
                    + "stop mamorid, move \(folder) aside, and ask the hub's administrator for a new token.")
        }
        let ca = try await discoverCA(hub: hub, pin: token.caPin, group: group)
        let key = P256.Signing.PrivateKey()
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("mamori terminal") },
            privateKey: Certificate.PrivateKey(key), attributes: CertificateSigningRequest.Attributes(),
            signatureAlgorithm: .ecdsaWithSHA256)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: ca.derBytes, format: .der)])
        tls.certificateVerification = .fullVerification
        let client = try await HubClient.connect(to: hub, tls: tls, group: group)
        defer { client.close() }
        let reply = try await client.call(
            HubOperation.join.rawValue,
            TerminalJoinRequest(token: token.text, csr: try request.serializeAsPEM().pemString),
            reading: TerminalJoinReply.self)
        let certificate: Certificate
        let returnedCA: Certificate
        do {
            certificate = try Certificate(pemEncoded: reply.certificate)
            returnedCA = try Certificate(pemEncoded: reply.ca)
        } catch {
            throw HubClientError(code: "invalid", "The hub's join reply holds no readable certificate.")
        }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey), returnedCA == ca.certificate else {
            throw HubClientError(
                code: "untrusted", "The hub issued a certificate for another key or from another CA; nothing was kept.")
        }
        let membership = TerminalMembership(
            hub: hub.description, terminal: reply.terminal, zone: reply.zone,
            joinedAt: ISO8601DateFormatter().string(from: now))
        try record(
            folder: folder, key: key.pemRepresentation, certificate: reply.certificate, ca: reply.ca,
            membership: membership)
        return membership
    }

    /// When this terminal's certificate (`town/terminal.pem`) stops being valid.
    public static func certificateExpiry(stateDirectory: String) throws -> Date {
        let folder = TerminalMembership.folder(in: stateDirectory)
        finishRenewal(folder: folder)
        guard let data = FileManager.default.contents(atPath: folder + "/terminal.pem"),
            let certificate = try? Certificate(pemEncoded: String(decoding: data, as: UTF8.self))
        else { throw HubClientError("\(folder)/terminal.pem cannot be read as a certificate.") }
        return certificate.notValidAfter
    }

    /// Renews this terminal's certificate over `client`, a connection made with the current one
    /// (docs/town.md, "Certificates and their renewal"): a new P-256 key, a certificate request
    /// signed with it, `terminal.renew`; the certificate that comes back must be for the new key
    /// and from the hub's CA. The new key is written (`terminal.key.next`, 0600) before it is
    /// asked for, and used again by the next attempt when the reply was lost: the hub issues a
    /// certificate again for the key of the renewal it recorded. The certificate is written
    /// beside the old one, then both are renamed over the old pair, the key first; a crash between
    /// the renames is finished at the next read (``finishRenewal(folder:)``). Returns the new
    /// certificate's expiry.
    public static func renew(using client: HubClient, stateDirectory: String) async throws -> Date {
        let folder = TerminalMembership.folder(in: stateDirectory)
        let pending = folder + "/terminal.key.next"
        let key: P256.Signing.PrivateKey
        if let text = try? String(contentsOfFile: pending, encoding: .utf8),
            let kept = try? P256.Signing.PrivateKey(pemRepresentation: text)
        {
            key = kept
        } else {
            key = P256.Signing.PrivateKey()
            do {
                try writeFile(pending, Data(key.pemRepresentation.utf8), mode: 0o600)
                syncFolder(folder)
            } catch {
                throw HubClientError(code: "storage", "The new key cannot be written to \(folder): \(error)")
            }
        }
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("mamori terminal") },
            privateKey: Certificate.PrivateKey(key), attributes: CertificateSigningRequest.Attributes(),
            signatureAlgorithm: .ecdsaWithSHA256)
        let reply = try await client.call(
            HubOperation.renew.rawValue, TerminalRenewRequest(csr: try request.serializeAsPEM().pemString),
            reading: TerminalJoinReply.self)
        let certificate: Certificate
        let returnedCA: Certificate
        let knownCA: Certificate
        do {
            certificate = try Certificate(pemEncoded: reply.certificate)
            returnedCA = try Certificate(pemEncoded: reply.ca)
            knownCA = try Certificate(
                pemEncoded: String(contentsOfFile: folder + "/hub-ca.pem", encoding: .utf8))
        } catch {
            throw HubClientError(code: "invalid", "The hub's renewal reply holds no readable certificate.")
        }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey), returnedCA == knownCA,
            knownCA.publicKey.isValidSignature(certificate.signature, for: certificate)
        else {
            throw HubClientError(
                code: "untrusted", "The hub issued a certificate for another key or from another CA; nothing was kept.")
        }
        do {
            try writeFile(folder + "/terminal.pem.next", Data(reply.certificate.utf8), mode: 0o644)
            syncFolder(folder)
        } catch {
            throw HubClientError(code: "storage", "The renewed certificate cannot be written to \(folder): \(error)")
        }
        finishRenewal(folder: folder)
        return certificate.notValidAfter
    }

    /// Puts a renewed key and certificate written beside the old ones in their place: the key
    /// (when both are there), then the certificate.
    static func finishRenewal(folder: String) {
        let manager = FileManager.default
        let key = folder + "/terminal.key"
        let certificate = folder + "/terminal.pem"
        if manager.fileExists(atPath: key + ".next"), manager.fileExists(atPath: certificate + ".next") {
            rename(key + ".next", key)
            syncFolder(folder)
        }
        // The key alone pending: a renewal not answered yet, kept for its retry.
        if manager.fileExists(atPath: certificate + ".next"), !manager.fileExists(atPath: key + ".next") {
            rename(certificate + ".next", certificate)
            syncFolder(folder)
        }
    }

    /// Makes the folder's entries (new files, renames) durable.
    static func syncFolder(_ folder: String) {
        let descriptor = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if descriptor >= 0 {
            fsync(descriptor)
            close(descriptor)
        }
    }

    /// The hub's CA, as presented in a handshake that sends nothing, when it hashes to `pin`.
    static func discoverCA(hub: HubAddress, pin: [UInt8], group: any EventLoopGroup) async throws
        -> (certificate: Certificate, derBytes: [UInt8])
    {
        let presented = NIOLockedChain()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.certificateVerification = .noHostnameVerification
        // Nothing is trusted on this connection, and nothing is sent on it: it only shows the chain.
        let client = try await HubClient.connect(to: hub, tls: tls, group: group) { chain, promise in
            presented.set(chain.compactMap { try? $0.toDERBytes() })
            promise.succeed(.certificateVerified)
        }
        client.close()
        for der in presented.get() {
            guard let certificate = try? Certificate(derEncoded: der),
                JoinToken.pin(subjectPublicKeyInfo: certificate.publicKey.subjectPublicKeyInfoBytes) == pin
            else { continue }
            // The pinned key's own self-signed CA certificate, not another certificate someone in
            // between made for the same public key (which would burn the token for nothing).
            let constraints = try? certificate.extensions.basicConstraints
            guard certificate.issuer == certificate.subject,
                certificate.publicKey.isValidSignature(certificate.signature, for: certificate),
                case .isCertificateAuthority? = constraints
            else { continue }
            return (certificate, der)
        }
        throw HubClientError(
            code: "untrusted",
            "The server at \(hub) did not present the CA this token names: it is not the town's hub, "
                + "or something in between answered. Nothing was sent.")
    }

    private static func record(
        folder: String, key: String, certificate: String, ca: String, membership: TerminalMembership
    ) throws {
        let manager = FileManager.default
        do {
            try manager.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try writeFile(folder + "/terminal.key", Data(key.utf8), mode: 0o600)
            try writeFile(folder + "/terminal.pem", Data(certificate.utf8), mode: 0o644)
            try writeFile(folder + "/hub-ca.pem", Data(ca.utf8), mode: 0o644)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            // Written last: a membership file means the rest is in place.
            try writeFile(folder + "/membership.json", try encoder.encode(membership) + Data("\n".utf8), mode: 0o644)
            // Joined as root for a daemon that runs as its own user: the files are the state folder's owner's.
            var owner = stat()
            if geteuid() == 0, stat(folder + "/..", &owner) == 0, owner.st_uid != 0 {
                for name in ["", "/terminal.key", "/terminal.pem", "/hub-ca.pem", "/membership.json"] {
                    guard chown(folder + name, owner.st_uid, owner.st_gid) == 0 else {
                        throw HubClientError("\(folder + name) cannot be given to the state folder's owner")
                    }
                }
            }
        } catch {
            throw HubClientError(code: "storage", "The membership cannot be written to \(folder): \(error)")
        }
    }

    /// Writes `data` to `path` for the daemon's user alone (0600), as ``writeFile(_:_:mode:)`` does.
    public static func writePrivateFile(_ path: String, _ data: Data) throws {
        try writeFile(path, data, mode: 0o600)
        syncFolder((path as NSString).deletingLastPathComponent)
    }

    /// Writes through a temporary file made with `mode` from the start, synced, then renames it
    /// into place: a crash leaves the old file or the new one, whole.
    static func writeFile(_ path: String, _ data: Data, mode: mode_t) throws {
        let temporary = path + ".new"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard descriptor >= 0 else { throw HubClientError("\(temporary) cannot be created") }
        let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw HubClientError("\(path) cannot be written")
        }
    }
}

/// The chain a verification callback saw, handed from the event loop to the joining task.
final class NIOLockedChain: Sendable {
    private let chain = Mutex<[[UInt8]]>([])
    func set(_ value: [[UInt8]]) { chain.withLock { $0 = value } }
    func get() -> [[UInt8]] { chain.withLock { $0 } }
}
