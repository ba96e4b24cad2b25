import CoreFoundation
public import Crypto
public import Foundation
import MamoriCore
public import MamoriStore
import NIOSSL
import SwiftASN1
public import X509

/// The hub's certificate authority: it signs each terminal's certificate at the join and the hub's
/// own server certificate at each start. Its key and certificate live in the hub's state folder
/// (`hub-ca.key`, 0600, and `hub-ca.pem`), beside the seed and audit keys: every hub of one town
/// shares the folder's keys, so copy the folder to a second hub (docs/town.md).
///
/// Written with swift-certificates rather than by calling openssl: the hub issues certificates
/// itself, on the join's request, with no tool to install or shell out to.
public struct HubAuthority: Sendable {
    /// The CA key's file in the state folder.
    public static let keyName = "hub-ca.key"
    /// The CA certificate's file in the state folder.
    public static let certificateName = "hub-ca.pem"

    /// How long a terminal's certificate is valid.
    public static let terminalValidity: TimeInterval = 365 * 86_400
    /// How long the hub's own server certificate is valid; it is issued anew at each start.
    public static let serverValidity: TimeInterval = 397 * 86_400
    /// How long the CA is valid.
    static let authorityValidity: TimeInterval = 20 * 365 * 86_400
    /// Certificates start a little in the past, for terminals whose clocks run behind.
    static let backdating: TimeInterval = 300

    let key: P256.Signing.PrivateKey
    /// The CA certificate.
    public let certificate: Certificate

    /// The CA's certificate, PEM.
    public var certificatePEM: String { (try? certificate.serializeAsPEM().pemString) ?? "" }

    /// The key the register's token digests are made with (HKDF of the CA key): shared by every hub
    /// of the town, as the CA is, and never in the database.
    public var tokenKey: SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: key.rawRepresentation), info: Array("mamori join tokens".utf8),
            outputByteCount: 32)
    }

    /// The pin join tokens carry: SHA-256 of the CA's SubjectPublicKeyInfo.
    public var pin: [UInt8] { JoinToken.pin(subjectPublicKeyInfo: certificate.publicKey.subjectPublicKeyInfoBytes) }

    /// The authority in `stateDirectory`, made there on first use (a new key, a self-signed
    /// certificate); throws with a sentence for the operator when the files are unusable.
    public static func open(stateDirectory: String, now: Date = Date()) throws -> HubAuthority {
        let keyPath = stateDirectory + "/" + keyName
        let certificatePath = stateDirectory + "/" + certificateName
        let manager = FileManager.default
        if !manager.fileExists(atPath: keyPath) && !manager.fileExists(atPath: certificatePath) {
            try create(keyPath: keyPath, certificatePath: certificatePath, now: now)
        }
        let keyText = try readPrivate(keyPath)
        guard let key = try? P256.Signing.PrivateKey(pemRepresentation: keyText)
        else { throw HubAuthorityError("The CA key \(keyPath) cannot be read as a P-256 key.") }
        guard
            let certificateText = manager.contents(atPath: certificatePath).map({ String(decoding: $0, as: UTF8.self) }
            ),
            let certificate = try? Certificate(pemEncoded: certificateText)
        else { throw HubAuthorityError("The CA certificate \(certificatePath) cannot be read.") }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw HubAuthorityError("The CA certificate \(certificatePath) is not for the key \(keyPath).")
        }
        return HubAuthority(key: key, certificate: certificate)
    }

    private static func create(keyPath: String, certificatePath: String, now: Date) throws {
        let key = P256.Signing.PrivateKey()
        // A random part in the name tells two towns' CAs apart in any listing.
        let name = try DistinguishedName {
            OrganizationName("Mamori")
            CommonName("Mamori town CA \(JoinToken.encode(SystemRandomBytes().bytes(6)))")
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - backdating, notValidAfter: now + authorityValidity, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        try writeNew(keyPath, Data(key.pemRepresentation.utf8), mode: 0o600)
        try writeNew(certificatePath, Data(try certificate.serializeAsPEM().pemString.utf8), mode: 0o644)
    }

    /// The hub's server certificate for `names` (DNS names and IP addresses the terminals use),
    /// with a new key; terminals check the name or address they connect to against it.
    public func issueServerCertificate(names: [String], now: Date = Date()) throws -> (
        certificate: Certificate, key: P256.Signing.PrivateKey
    ) {
        let serverKey = P256.Signing.PrivateKey()
        let alternativeNames = names.map { name -> GeneralName in
            if let address = Self.ipAddressBytes(name) {
                return .ipAddress(ASN1OctetString(contentBytes: address[...]))
            }
            return .dnsName(name)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(serverKey.publicKey),
            notValidBefore: now - Self.backdating, notValidAfter: now + Self.serverValidity,
            issuer: self.certificate.subject,
            subject: try DistinguishedName { CommonName(names.first ?? "mamori-hub") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(alternativeNames)
                AuthorityKeyIdentifier(keyIdentifier: try authorityKeyIdentifier())
            },
            issuerPrivateKey: .init(key))
        return (certificate, serverKey)
    }

    /// The certificate for a joining terminal: for the request's key, whose signature must verify,
    /// named after the terminal as the administrator added it (the request's own subject is
    /// ignored), for client authentication only.
    public func issueTerminalCertificate(
        request: CertificateSigningRequest, terminal: TerminalRecord, now: Date,
        validity: TimeInterval = terminalValidity
    ) throws -> IssuedTerminalCertificate {
        let expires = now + validity
        let serial = Certificate.SerialNumber()
        let certificate = try Certificate(
            version: .v3, serialNumber: serial, publicKey: request.publicKey,
            notValidBefore: now - Self.backdating, notValidAfter: expires, issuer: self.certificate.subject,
            subject: try DistinguishedName {
                OrganizationalUnitName(terminal.zone)
                CommonName(terminal.name)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
                AuthorityKeyIdentifier(keyIdentifier: try authorityKeyIdentifier())
            },
            issuerPrivateKey: .init(key))
        return IssuedTerminalCertificate(
            serial: serial.bytes.map { String(format: "%02x", $0) }.joined(),
            // The same digest the terminal port computes of the certificate presented to it.
            digest: Self.digest(der: try Self.der(certificate)),
            expiresAt: expires, pem: try certificate.serializeAsPEM().pemString)
    }

    /// A terminal's certificate request, checked: PKCS #10 PEM, signed by its own key, a P-256 key.
    public static func checkRequest(_ pem: String) throws -> CertificateSigningRequest {
        guard let request = try? CertificateSigningRequest(pemEncoded: pem),
            request.publicKey.isValidSignature(request.signature, for: request)
        else { throw HubAuthorityError("The certificate request is not a signed PKCS #10 request.") }
        guard P256.Signing.PublicKey(request.publicKey) != nil else {
            throw HubAuthorityError("The certificate request's key must be a P-256 key.")
        }
        return request
    }

    /// A certificate's DER.
    static func der(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    /// SHA-256 of a certificate's DER: how the register knows a presented certificate again.
    public static func digest(der: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: der)) }

    private func authorityKeyIdentifier() throws -> ArraySlice<UInt8> {
        guard let identifier = try certificate.extensions.subjectKeyIdentifier?.keyIdentifier else {
            return ArraySlice(SHA256.hash(data: certificate.publicKey.subjectPublicKeyInfoBytes).prefix(20))
        }
        return identifier
    }

    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// Reads the key file through one descriptor, opened without following a link and checked with
    /// `fstat`: what is checked is what is read.
    private static func readPrivate(_ path: String) throws -> String {
        let descriptor = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw HubAuthorityError("The CA key \(path) is missing, or is a link.") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o077 == 0,
            info.st_mode & S_IFMT == S_IFREG
        else {
            throw HubAuthorityError(
                "The CA key \(path) must be a file of the hub's own user that no one else can read (chmod 600).")
        }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = read(descriptor, &bytes, bytes.count)
        guard count > 0 else { throw HubAuthorityError("The CA key \(path) cannot be read.") }
        return String(decoding: bytes[..<count], as: UTF8.self)
    }

    private static func writeNew(_ path: String, _ data: Data, mode: mode_t) throws {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard descriptor >= 0 else { throw HubAuthorityError("\(path) cannot be created.") }
        let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == data.count, synced == 0 else { throw HubAuthorityError("\(path) cannot be written.") }
    }
}

/// The hub's CA files are unusable, or a certificate request is; a sentence for the operator.
public struct HubAuthorityError: Error, CustomStringConvertible, Sendable {
    /// A sentence for the operator.
    public let description: String
    /// An error with a sentence for the operator.
    public init(_ description: String) { self.description = description }
}
