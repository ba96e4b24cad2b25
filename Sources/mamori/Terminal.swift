import Foundation
import MamoriProtocol

/// Output for people: columns that line up, Japanese titles included.
enum Terminal {
    /// Columns `text` takes in a terminal: East Asian wide and fullwidth characters (kanji, kana,
    /// hangul, fullwidth forms, most emoji) take two; combining marks, zero-width characters and
    /// controls none; everything else one. Written here because glibc's wcwidth is hidden from
    /// Swift's Glibc module and no maintained Swift package on this machine provides it.
    static func displayWidth(_ text: String) -> Int {
        text.unicodeScalars.reduce(0) { $0 + width(of: $1.value) }
    }

    /// Unicode's East Asian Width "W" and "F" ranges, in the blocks a town's records use.
    private static let wide: [ClosedRange<UInt32>] = [
        0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
        0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x1F300...0x1F64F,
        0x1F900...0x1F9FF, 0x20000...0x2FFFD, 0x30000...0x3FFFD,
    ]
    private static let zero: [ClosedRange<UInt32>] = [
        0x0000...0x001F, 0x007F...0x009F, 0x0300...0x036F, 0x200B...0x200F, 0x3099...0x309A, 0xFE00...0xFE0F,
    ]

    static func width(of scalar: UInt32) -> Int {
        if zero.contains(where: { $0.contains(scalar) }) { return 0 }
        return wide.contains(where: { $0.contains(scalar) }) ? 2 : 1
    }

    static func padded(_ text: String, to width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - displayWidth(text)))
    }

    /// Rows under a header, each column as wide as its widest cell, two spaces apart.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { displayWidth($0[column]) }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { index, cell in index == row.count - 1 ? cell : padded(cell, to: widths[index]) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    /// `label  value` lines with the labels padded to one width.
    static func fields(_ pairs: [(String, String)]) -> String {
        let width = pairs.map { displayWidth($0.0) }.max() ?? 0
        return pairs.map { "  " + padded($0.0, to: width) + "  " + $0.1 }.joined(separator: "\n")
    }

    /// Prints a reply (or any object) as one JSON line, keys sorted.
    static func printJSON(_ fields: [String: JSONValue]) {
        print(JSONValue.object(fields).text)
    }
}
