import Foundation

/// An Argon2 hash in the PHC string format that libargon2, argon2-cffi and the `argon2` command
/// write: `$argon2id$v=19$m=65536,t=3,p=4$<salt>$<tag>`, salt and tag in unpadded standard Base64.
///
/// Parsing is strict (parameters in the order m, t, p; canonical decimal and Base64; bounded
/// length) so that exactly one string stands for each hash and a malformed one is an error, never a
/// crash. A missing `v=` means version 0x10, as in libargon2.
public struct PHCString: Sendable, Hashable {
    /// The algorithm.
    public var variant: Argon2Variant
    /// The Argon2 version: 0x13 (19, current) or 0x10 (16, the original).
    public var version: UInt32
    /// Memory in KiB (`m=`).
    public var memoryKiB: UInt32
    /// Passes (`t=`).
    public var iterations: UInt32
    /// Lanes (`p=`).
    public var parallelism: UInt32
    /// The salt bytes.
    public var salt: [UInt8]
    /// The tag (hash output) bytes.
    public var tag: [UInt8]

    /// The longest PHC string Mamori reads; longer input is malformed without being looked at.
    public static let maximumLength = 512

    /// A hash from its parts, unchecked; ``encoded`` writes it. `version` defaults to 0x13 (19), the current one.
    public init(
        variant: Argon2Variant, version: UInt32 = 0x13, memoryKiB: UInt32, iterations: UInt32,
        parallelism: UInt32, salt: [UInt8], tag: [UInt8]
    ) {
        self.variant = variant
        self.version = version
        self.memoryKiB = memoryKiB
        self.iterations = iterations
        self.parallelism = parallelism
        self.salt = salt
        self.tag = tag
    }

    /// Parses a PHC string, checking its parameters against `limits`.
    ///
    /// - Throws: ``PasswordError`` with code `malformedHash`, `unsupportedAlgorithm` or
    ///   `parametersOutOfRange`; the message never quotes the salt or tag.
    public init(parsing text: String, limits: Argon2Limits = .default) throws(PasswordError) {
        guard text.utf8.count <= Self.maximumLength else {
            throw PasswordError(.malformedHash, "The hash is longer than \(Self.maximumLength) characters.")
        }
        var fields = text.split(separator: "$", omittingEmptySubsequences: false)[...]
        guard fields.popFirst() == "" else {
            throw PasswordError(.malformedHash, "A PHC hash string must start with '$'.")
        }
        guard let variantName = fields.popFirst() else {
            throw PasswordError(.malformedHash, "The hash string names no algorithm.")
        }
        guard let variant = Argon2Variant(rawValue: String(variantName)) else {
            throw PasswordError(
                .unsupportedAlgorithm,
                "Only argon2id and argon2i hashes can be checked; this one is '\(Self.printable(variantName))'."
            )
        }
        var version: UInt32 = 0x10
        if let field = fields.first, field.hasPrefix("v=") {
            fields.removeFirst()
            version = try Self.decimal(field.dropFirst(2), name: "v")
            guard version == 0x10 || version == 0x13 else {
                throw PasswordError(.malformedHash, "Argon2 versions are 16 and 19; this hash says \(version).")
            }
        }
        guard fields.count == 3 else {
            throw PasswordError(
                .malformedHash, "A PHC hash string has the form $argon2id$v=19$m=…,t=…,p=…$salt$tag."
            )
        }
        let parameterFields = fields[fields.startIndex].split(separator: ",", omittingEmptySubsequences: false)
        let names = parameterFields.map { $0.prefix { $0 != "=" } }
        guard names == ["m", "t", "p"] else {
            throw PasswordError(
                .malformedHash, "The parameters of a PHC hash string must be m=…,t=…,p=… in that order."
            )
        }
        let values = try parameterFields.map { field throws(PasswordError) in
            try Self.decimal(field.drop { $0 != "=" }.dropFirst(), name: String(field.prefix(1)))
        }
        try limits.check(memoryKiB: values[0], iterations: values[1], parallelism: values[2])
        let salt = try Self.base64(fields[fields.startIndex + 1], name: "salt")
        let tag = try Self.base64(fields[fields.startIndex + 2], name: "tag")
        guard salt.count >= 8, salt.count <= limits.maximumSaltLength else {
            throw PasswordError(
                .parametersOutOfRange, "The salt must be 8 to \(limits.maximumSaltLength) bytes; it is \(salt.count)."
            )
        }
        guard tag.count >= 4, tag.count <= limits.maximumTagLength else {
            throw PasswordError(
                .parametersOutOfRange, "The tag must be 4 to \(limits.maximumTagLength) bytes; it is \(tag.count)."
            )
        }
        self.init(
            variant: variant, version: version, memoryKiB: values[0], iterations: values[1],
            parallelism: values[2], salt: salt, tag: tag
        )
    }

    /// The canonical string, as libargon2 writes it.
    public var encoded: String {
        "$\(variant.rawValue)$v=\(version)$m=\(memoryKiB),t=\(iterations),p=\(parallelism)"
            + "$\(Self.unpaddedBase64(salt))$\(Self.unpaddedBase64(tag))"
    }

    static func unpaddedBase64(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.last == "=" { text.removeLast() }
        return text
    }

    /// A decimal in canonical form: digits only, no sign, no leading zero, fits in 32 bits.
    private static func decimal(_ text: Substring, name: String) throws(PasswordError) -> UInt32 {
        let isCanonical =
            !text.isEmpty && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
            && (text == "0" || !text.hasPrefix("0"))
        guard isCanonical, let value = UInt32(text) else {
            throw PasswordError(.malformedHash, "The value of '\(name)' in the hash must be a plain decimal number.")
        }
        return value
    }

    /// Unpadded standard Base64 in canonical form (the unused low bits of the last digit are zero).
    private static func base64(_ text: Substring, name: String) throws(PasswordError) -> [UInt8] {
        let padding = String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
        guard text.utf8.count % 4 != 1,
            text.utf8.allSatisfy({ $0 != UInt8(ascii: "=") }),
            let data = Data(base64Encoded: text + padding),
            unpaddedBase64(Array(data)) == text
        else {
            throw PasswordError(.malformedHash, "The \(name) in the hash is not valid unpadded Base64.")
        }
        return Array(data)
    }

    /// Shows at most a short, printable excerpt of untrusted input in an error message.
    private static func printable(_ text: Substring) -> String {
        let excerpt = text.prefix(16).unicodeScalars.map {
            $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?"
        }
        return String(excerpt) + (text.count > 16 ? "…" : "")
    }
}
