// What the XCTests share (the Swift twin of bindings/kotlin/src/test/kotlin/Live.kt): the live
// cothority's files and hashes that tests/run-kotlin.sh passes as environment variables, hex and
// JSON helpers, a check that a call throws a given LightError case, and a small protobuf walker that
// finds fields inside a skipchain proof so the tests can tamper with exactly one of them.
import Foundation
import XCTest
@testable import Conode

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

/// The local cothority started by tests/run-kotlin.sh and what it made.
enum Live {
    /// An environment variable set by tests/run-kotlin.sh (an error when the tests run without it).
    static func env(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw TestSetupError(description: "\(name) is not set: run the tests with tests/run-kotlin.sh")
        }
        return value
    }

    static func text(_ name: String) throws -> String {
        let path = try env(name)
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    /// Client port of member 0 (`ws://127.0.0.1:P`).
    static func url() throws -> String { try env("CONODE_URL") }
    /// The three members' roster (concatenated public.toml entries).
    static func roster() throws -> String { try text("CONODE_ROSTER") }
    /// public.toml of a configured conode that is not in the cothority and never ran.
    static func outsider() throws -> String { try text("CONODE_OUTSIDER") }
    /// Signature file written by `conode sign --out`.
    static func signatureFile() throws -> String { try text("CONODE_SIGNATURE") }
    /// Genesis hash (hex) of the skipchain made by `conode skipchain create`.
    static func genesis() throws -> String { try env("CONODE_GENESIS") }
    /// Number of blocks appended after the genesis.
    static func blocks() throws -> UInt64 {
        let value = try env("CONODE_BLOCKS")
        guard let n = UInt64(value) else { throw TestSetupError(description: "CONODE_BLOCKS `\(value)` is no number") }
        return n
    }
    /// Proof from the genesis to the newest block, saved by `conode skipchain update --out`.
    static func proof() throws -> Data { try Data(contentsOf: URL(fileURLWithPath: try env("CONODE_PROOF"))) }
    /// drand scheme of the beacon chain started by `conode beacon init`.
    static func beaconScheme() throws -> String { try env("CONODE_BEACON_SCHEME") }
    /// Chain hash printed by `conode beacon init`.
    static func chainHash() throws -> String { try env("CONODE_CHAIN_HASH") }
    /// The shared drand test vectors (tests/vectors/drand.json).
    static func vectors() throws -> String { try text("CONODE_VECTORS") }
    /// A local port nothing listens on.
    static func closedPort() throws -> String { try env("CONODE_CLOSED_PORT") }
}

extension Data {
    init(hex: String) throws {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { throw TestSetupError(description: "odd hex length: \(hex)") }
        var bytes = [UInt8]()
        bytes.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else {
                throw TestSetupError(description: "not hex: \(hex)")
            }
            bytes.append(byte)
            i += 2
        }
        self.init(bytes)
    }

    var hex: String {
        map { b -> String in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    /// A copy with the lowest bit of byte `at` (counted from the start) flipped.
    func flipped(_ at: Int) -> Data {
        var copy = Data(self)
        copy[copy.startIndex + at] ^= 1
        return copy
    }
}

extension String {
    /// A copy with the hex digit at `at` changed.
    func flippedHex(_ at: Int) -> String {
        var chars = Array(self)
        chars[at] = chars[at] == "0" ? "1" : "0"
        return String(chars)
    }
}

/// A JSON object from text.
func jsonObject(_ text: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw TestSetupError(description: "not a JSON object: \(text.prefix(80))")
    }
    return object
}

/// A JSON object as text.
func jsonText(_ object: [String: Any]) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
}

/// An integer JSON value (JSONSerialization gives NSNumber or Int depending on the platform).
func jsonInt(_ value: Any?) -> Int? {
    if let n = value as? Int { return n }
    return (value as? NSNumber)?.intValue
}

/// The name of a LightError case, or a description of any other error.
func lightErrorCase(_ error: Error) -> String {
    guard let e = error as? LightError else { return "not a LightError: \(error)" }
    switch e {
    case .InvalidInput: return "InvalidInput"
    case .VerificationFailed: return "VerificationFailed"
    case .Network: return "Network"
    case .ServerError: return "ServerError"
    }
}

func lightErrorReason(_ error: Error) -> String {
    guard let e = error as? LightError else { return "\(error)" }
    switch e {
    case let .InvalidInput(reason), let .VerificationFailed(reason), let .Network(reason), let .ServerError(_, reason):
        return reason
    }
}

/// Checks that `body` throws the LightError case `expected` ("InvalidInput", "VerificationFailed",
/// "Network" or "ServerError"); returns its reason ("" when it did not throw).
@discardableResult
func assertLightError<T>(
    _ expected: String, _ message: String = "", file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> T
) -> String {
    do {
        _ = try body()
        XCTFail("expected LightError.\(expected), nothing was thrown. \(message)", file: file, line: line)
        return ""
    } catch {
        XCTAssertEqual(lightErrorCase(error), expected, "\(message) \(error)", file: file, line: line)
        return lightErrorReason(error)
    }
}

/// One protobuf field: its number and where its value lies in the buffer (`start..<end`).
struct ProtoField {
    let number: Int
    let start: Int
    let end: Int
}

/// The fields of the protobuf message in `buf[start..<end]`, in order.
func protoFields(_ buf: [UInt8], _ start: Int, _ end: Int) throws -> [ProtoField] {
    var fields = [ProtoField]()
    var at = start
    func varint() throws -> Int {
        var value = 0
        var shift = 0
        while true {
            guard at < end, shift < 63 else { throw TestSetupError(description: "bad protobuf varint") }
            let b = Int(buf[at])
            at += 1
            value |= (b & 0x7f) << shift
            if b < 0x80 { return value }
            shift += 7
        }
    }
    while at < end {
        let key = try varint()
        let number = key >> 3
        switch key & 7 {
        case 0:
            let s = at
            _ = try varint()
            fields.append(ProtoField(number: number, start: s, end: at))
        case 1:
            fields.append(ProtoField(number: number, start: at, end: at + 8))
            at += 8
        case 2:
            let len = try varint()
            fields.append(ProtoField(number: number, start: at, end: at + len))
            at += len
        case 5:
            fields.append(ProtoField(number: number, start: at, end: at + 4))
            at += 4
        default:
            throw TestSetupError(description: "unsupported protobuf wire type in key \(key)")
        }
    }
    guard at == end else { throw TestSetupError(description: "protobuf message overruns its end") }
    return fields
}

/// The fields numbered `number` of the message in `parent`.
func protoFields(_ buf: [UInt8], in parent: ProtoField, number: Int) throws -> [ProtoField] {
    try protoFields(buf, parent.start, parent.end).filter { $0.number == number }
}
