/// RFC 4648 base32 (the alphabet `A–Z2–7`), the form in which TOTP secrets travel in key URIs and
/// are typed by hand.
public enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// Encodes bytes; without padding by default, as key URIs carry secrets.
    public static func encode(_ bytes: [UInt8], padded: Bool = false) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 4) / 5 * 8)
        var buffer: UInt64 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt64(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                output.append(alphabet[Int((buffer >> UInt64(bits)) & 0x1F)])
            }
        }
        if bits > 0 {
            output.append(alphabet[Int((buffer << UInt64(5 - bits)) & 0x1F)])
        }
        if padded {
            output.append(contentsOf: repeatElement(UInt8(ascii: "="), count: (8 - output.count % 8) % 8))
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes base32 text, ignoring case and spaces (secrets are often shown in groups of four).
    ///
    /// Padding is optional but, when present, must be complete. Non-canonical text (a length no
    /// encoder produces, or non-zero unused bits in the last character) is refused, so that one
    /// secret has one spelling.
    public static func decode(_ text: String) throws(OTPError) -> [UInt8] {
        var digits = text.utf8.filter { $0 != UInt8(ascii: " ") }
        let padding = digits.reversed().prefix { $0 == UInt8(ascii: "=") }.count
        digits.removeLast(padding)
        guard padding == 0 || (digits.count + padding) % 8 == 0 else {
            throw OTPError(.malformedBase32, "The base32 text has incomplete padding.")
        }
        let values = try digits.map { character throws(OTPError) in
            guard let value = value(of: character) else {
                throw OTPError(
                    .malformedBase32, "The base32 text may hold only the letters A–Z and the digits 2–7."
                )
            }
            return value
        }
        // 8 characters carry 5 bytes; 1, 3 and 6 leftover characters cannot end a whole byte.
        guard ![1, 3, 6].contains(digits.count % 8) else {
            throw OTPError(.malformedBase32, "The base32 text has a length that no encoder produces.")
        }
        var output: [UInt8] = []
        output.reserveCapacity(digits.count * 5 / 8)
        var buffer: UInt64 = 0
        var bits = 0
        for value in values {
            buffer = (buffer << 5) | UInt64(value)
            bits += 5
            if bits >= 8 {
                bits -= 8
                output.append(UInt8((buffer >> UInt64(bits)) & 0xFF))
            }
        }
        guard buffer & ((1 << UInt64(bits)) - 1) == 0 else {
            throw OTPError(.malformedBase32, "The last base32 character has bits set that encode nothing.")
        }
        return output
    }

    private static func value(of character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): character - UInt8(ascii: "a")
        case UInt8(ascii: "2")...UInt8(ascii: "7"): character - UInt8(ascii: "2") + 26
        default: nil
        }
    }
}
