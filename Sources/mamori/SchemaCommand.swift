import ArgumentParser
import MamoriProtocol

/// `mamori schema`: the socket protocol's JSON Schema, for writing a client in another language.
struct SchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema of mamorid's socket protocol (version 1); works offline.",
        discussion: """
            Generated from the protocol's own declarations; docs/protocol-v1.schema.json is the same text.
              mamori schema > protocol-v1.schema.json
            """
    )

    func run() {
        print(ProtocolSchema.text, terminator: "")
    }
}
