// XCTest of the Swift light client: the same cases as the Kotlin tests. The roster of a live local
// cothority comes from the CONODE_ROSTER environment variable (set by tests/run-kotlin.sh).
import Foundation
import XCTest
@testable import Conode

final class ConodeTests: XCTestCase {
    private func liveRoster() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["CONODE_ROSTER"] else {
            throw XCTSkip("CONODE_ROSTER not set")
        }
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    func testVersion() {
        XCTAssertFalse(libraryVersion().isEmpty)
    }

    func testParsesLiveRoster() throws {
        let members = try parseRoster(rosterToml: liveRoster())
        XCTAssertGreaterThanOrEqual(members.count, 3)
        for m in members {
            XCTAssertEqual(m.publicKey.count, 64)
            XCTAssertEqual(m.cosiPublicKey?.count, 96)
        }
    }

    func testRejectsTamperedRoster() throws {
        let roster = try liveRoster()
        guard let range = roster.range(of: "Pop = \"") else { return XCTFail("no Pop in roster") }
        var chars = Array(roster)
        let i = roster.distance(from: roster.startIndex, to: range.upperBound) + 10
        chars[i] = chars[i] == "0" ? "1" : "0"
        XCTAssertThrowsError(try parseRoster(rosterToml: String(chars))) { error in
            guard case LightError.InvalidInput = error else { return XCTFail("wrong error \(error)") }
        }
    }
}
