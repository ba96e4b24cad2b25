import Foundation
import MamoriProtocol
import Testing

/// The Swift request and reply types against the declarations the schema is generated from: the
/// same field names, and the same ones optional. The keys are read off each type's own
/// `init(from:)` by a decoder that holds nothing and notes what it is asked for.
@Suite("the Codable request and reply types")
struct WireTypeTests {
    struct Keys: Equatable, CustomStringConvertible {
        var required: Set<String> = []
        var optional: Set<String> = []
        var description: String { "required \(required.sorted()), optional \(optional.sorted())" }
    }

    static func keys(of type: any Decodable.Type) throws -> Keys {
        let recorder = KeyRecorder()
        _ = try type.init(from: RecordingDecoder(recorder: recorder, top: true))
        return recorder.keys
    }

    static func declared(_ fields: [WireField]) -> Keys {
        Keys(
            required: Set(fields.filter(\.required).map(\.name)),
            optional: Set(fields.filter { !$0.required }.map(\.name))
        )
    }

    @Test("each request type takes exactly its operation's declared fields, the optional ones optional")
    func requests() throws {
        for operation in WireOperation.allCases {
            let keys = try Self.keys(of: operation.requestType)
            #expect(keys == Self.declared(operation.requestFields), "\(operation.rawValue): \(operation.requestType)")
        }
    }

    @Test("each reply type reads exactly its operation's declared reply fields, the optional ones optional")
    func replies() throws {
        var checked = 0
        for operation in WireOperation.allCases {
            guard let type = operation.replyType else { continue }
            let keys = try Self.keys(of: type)
            #expect(keys == Self.declared(operation.replyFields), "\(operation.rawValue): \(type)")
            checked += 1
        }
        #expect(checked == WireOperation.allCases.count - 1, "audit.verify's type is MamoriCore's")
    }

    @Test("the recorder tells required from optional keys")
    func recorderWorks() throws {
        struct Sample: Decodable {
            let name: String
            let count: Int?
            let tags: [String]
        }
        #expect(try Self.keys(of: Sample.self) == Keys(required: ["name", "tags"], optional: ["count"]))
    }
}

/// What a type's `init(from:)` asked the top-level object for.
private final class KeyRecorder {
    var keys = WireTypeTests.Keys()
}

/// A decoder with nothing in it: a required key gets an empty value, an optional one is absent,
/// and only the top-level object's keys are noted.
private struct RecordingDecoder: Decoder {
    let recorder: KeyRecorder
    let top: Bool
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Keyed<Key>(recorder: top ? recorder : nil))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { EmptyList() }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single() }

    private struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let recorder: KeyRecorder?
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { [] }

        func contains(_ key: Key) -> Bool {
            recorder?.keys.optional.insert(key.stringValue)
            return false
        }
        func decodeNil(forKey key: Key) throws -> Bool { true }
        private func required<T: Decodable>(_ key: Key) throws -> T {
            recorder?.keys.required.insert(key.stringValue)
            return try T(from: RecordingDecoder(recorder: KeyRecorder(), top: false))
        }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try required(key) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try required(key) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try required(key) }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try required(key) }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try required(key) }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try required(key) }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try required(key) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try required(key) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try required(key) }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try required(key) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try required(key) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try required(key) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try required(key) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try required(key) }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try required(key) }
        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            recorder?.keys.required.insert(key.stringValue)
            return KeyedDecodingContainer(Keyed<NestedKey>(recorder: nil))
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            recorder?.keys.required.insert(key.stringValue)
            return EmptyList()
        }
        func superDecoder() throws -> any Decoder { RecordingDecoder(recorder: KeyRecorder(), top: false) }
        func superDecoder(forKey key: Key) throws -> any Decoder {
            RecordingDecoder(recorder: KeyRecorder(), top: false)
        }
    }

    /// Every list is empty.
    private struct EmptyList: UnkeyedDecodingContainer {
        var codingPath: [any CodingKey] { [] }
        var count: Int? { 0 }
        var isAtEnd: Bool { true }
        var currentIndex: Int { 0 }
        mutating func decodeNil() throws -> Bool { true }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            throw DecodingError.valueNotFound(type, .init(codingPath: [], debugDescription: "an empty list"))
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            throw DecodingError.valueNotFound(type, .init(codingPath: [], debugDescription: "an empty list"))
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { self }
        mutating func superDecoder() throws -> any Decoder { RecordingDecoder(recorder: KeyRecorder(), top: false) }
    }

    /// A single value: null where null may be, else false, 0 or "".
    private struct Single: SingleValueDecodingContainer {
        var codingPath: [any CodingKey] { [] }
        func decodeNil() -> Bool { true }
        func decode(_ type: Bool.Type) throws -> Bool { false }
        func decode(_ type: String.Type) throws -> String { "" }
        func decode(_ type: Double.Type) throws -> Double { 0 }
        func decode(_ type: Float.Type) throws -> Float { 0 }
        func decode(_ type: Int.Type) throws -> Int { 0 }
        func decode(_ type: Int8.Type) throws -> Int8 { 0 }
        func decode(_ type: Int16.Type) throws -> Int16 { 0 }
        func decode(_ type: Int32.Type) throws -> Int32 { 0 }
        func decode(_ type: Int64.Type) throws -> Int64 { 0 }
        func decode(_ type: UInt.Type) throws -> UInt { 0 }
        func decode(_ type: UInt8.Type) throws -> UInt8 { 0 }
        func decode(_ type: UInt16.Type) throws -> UInt16 { 0 }
        func decode(_ type: UInt32.Type) throws -> UInt32 { 0 }
        func decode(_ type: UInt64.Type) throws -> UInt64 { 0 }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try T(from: RecordingDecoder(recorder: KeyRecorder(), top: false))
        }
    }
}
