import CQRencode

/// A QR code drawn with Unicode half blocks, two module rows per text line, for a TOTP key at
/// enrolment. Drawn as `qrencode -t UTF8` does: blocks are the light modules, so the code reads
/// right on the usual dark terminal background; a 4-module quiet zone surrounds it.
enum QRCode {
    /// The drawing, or nil when libqrencode cannot encode the text.
    static func draw(_ text: String) -> String? {
        guard let modules = matrix(text) else { return nil }
        let quiet = 4
        let size = modules.count + 2 * quiet
        func dark(_ row: Int, _ column: Int) -> Bool {
            let r = row - quiet
            let c = column - quiet
            return r >= 0 && c >= 0 && r < modules.count && c < modules.count && modules[r][c]
        }
        var lines: [String] = []
        for row in stride(from: 0, to: size, by: 2) {
            var line = ""
            for column in 0..<size {
                let top = !dark(row, column)
                let bottom = row + 1 < size ? !dark(row + 1, column) : true
                line += top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " "
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The modules (true = dark), error correction level M, 8-bit mode.
    static func matrix(_ text: String) -> [[Bool]]? {
        guard let code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M) else { return nil }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        guard let data = code.pointee.data else { return nil }
        return (0..<width).map { row in (0..<width).map { column in data[row * width + column] & 1 == 1 } }
    }
}
