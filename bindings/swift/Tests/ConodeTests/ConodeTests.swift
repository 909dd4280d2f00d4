// XCTest of the Swift light client: the same cases as the Kotlin tests (bindings/kotlin/src/test),
// against the local cothority tests/run-kotlin.sh starts and describes in environment variables
// (see TestSupport.swift). Left out here: the fake-conode and silent-socket cases, which need a
// server socket that Foundation on Linux does not offer.
import Foundation
import XCTest
@testable import Conode

final class ConodeTests: XCTestCase {
    // MARK: roster

    func testVersion() {
        XCTAssertFalse(libraryVersion().isEmpty)
        XCTAssertEqual(libraryVersion().split(separator: ".").count, 3, libraryVersion())
    }

    func testParsesLiveRoster() throws {
        let members = try parseRoster(rosterToml: Live.roster())
        XCTAssertEqual(members.count, 3)
        for m in members {
            XCTAssertEqual(m.publicKey.count, 64)
            XCTAssertTrue(m.address.hasPrefix("tls://127.0.0.1:"), m.address)
            XCTAssertEqual(m.cosiPublicKey?.count, 96)
        }
        XCTAssertEqual(Set(members.map { $0.publicKey }).count, 3)
    }

    func testRejectsTamperedRoster() throws {
        let roster = try Live.roster()
        guard let range = roster.range(of: "Pop = \"") else { return XCTFail("no Pop in roster") }
        let at = roster.distance(from: roster.startIndex, to: range.upperBound) + 10
        let reason = assertLightError("InvalidInput") { try parseRoster(rosterToml: roster.flippedHex(at)) }
        XCTAssertTrue(reason.contains("Pop"), reason)
        assertLightError("InvalidInput") { try parseRoster(rosterToml: "not toml [[") }
    }

    // MARK: collective signatures

    private struct Signed {
        let message: Data
        let signature: Data
        let mask: Data
    }

    private func signed() throws -> Signed {
        let file = try jsonObject(Live.signatureFile())
        func field(_ name: String) throws -> Data {
            guard let hex = file[name] as? String else { throw TestSetupError(description: "signature file: no \(name)") }
            return try Data(hex: hex)
        }
        return Signed(message: try field("message"), signature: try field("signature"), mask: try field("mask"))
    }

    /// The roster's `[[servers]]` entries, each as its own TOML text.
    private func entries(_ roster: String) -> [String] {
        roster.components(separatedBy: "[[servers]]")
            .filter { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }
            .map { "[[servers]]" + $0 }
    }

    func testLiveSignatureVerifies() throws {
        let s = try signed()
        let roster = try Live.roster()
        XCTAssertEqual(s.signature.count, 96)
        let v = try verifyCollectiveSignature(
            rosterToml: roster, message: s.message, signature: s.signature, mask: s.mask, threshold: nil)
        XCTAssertEqual(v.signers, [0, 1, 2])
        XCTAssertEqual(v.required, 3)
        XCTAssertEqual(v.rosterSize, 3)
        let two = try verifyCollectiveSignature(
            rosterToml: roster, message: s.message, signature: s.signature, mask: s.mask, threshold: 2)
        XCTAssertEqual(two.required, 2)
    }

    func testTamperedCollectiveSignatureIsRefused() throws {
        let s = try signed()
        let roster = try Live.roster()
        for at in [0, 47, 95] {
            assertLightError("VerificationFailed", "signature byte \(at)") {
                try verifyCollectiveSignature(
                    rosterToml: roster, message: s.message, signature: s.signature.flipped(at), mask: s.mask,
                    threshold: nil)
            }
        }
        assertLightError("VerificationFailed") {
            try verifyCollectiveSignature(
                rosterToml: roster, message: s.message, signature: s.signature.prefix(95), mask: s.mask, threshold: nil)
        }
    }

    func testTamperedMaskIsRefused() throws {
        let s = try signed()
        let roster = try Live.roster()
        XCTAssertEqual(s.mask, Data([0x07]), "all three members signed")
        for mask: UInt8 in [0x03, 0x05, 0x06] {
            assertLightError("VerificationFailed", "mask \(mask)") {
                try verifyCollectiveSignature(
                    rosterToml: roster, message: s.message, signature: s.signature, mask: Data([mask]), threshold: 1)
            }
        }
        assertLightError("VerificationFailed") {
            try verifyCollectiveSignature(
                rosterToml: roster, message: s.message, signature: s.signature, mask: Data([0x0f]), threshold: nil)
        }
    }

    func testOtherMessageIsRefused() throws {
        let s = try signed()
        let roster = try Live.roster()
        let reason = assertLightError("VerificationFailed") {
            try verifyCollectiveSignature(
                rosterToml: roster, message: Data("conode light client test!".utf8), signature: s.signature,
                mask: s.mask, threshold: nil)
        }
        XCTAssertTrue(reason.contains("collective signature"), reason)
        assertLightError("VerificationFailed") {
            try verifyCollectiveSignature(
                rosterToml: roster, message: s.message.flipped(0), signature: s.signature, mask: s.mask, threshold: nil)
        }
    }

    func testWrongRosterIsRefused() throws {
        let s = try signed()
        let members = entries(try Live.roster())
        XCTAssertEqual(members.count, 3)
        let two = members.prefix(2).joined(separator: "\n")
        assertLightError("VerificationFailed") {
            try verifyCollectiveSignature(
                rosterToml: two, message: s.message, signature: s.signature, mask: s.mask, threshold: nil)
        }
        let swapped = (Array(members.prefix(2)) + entries(try Live.outsider())).joined(separator: "\n")
        assertLightError("VerificationFailed") {
            try verifyCollectiveSignature(
                rosterToml: swapped, message: s.message, signature: s.signature, mask: s.mask, threshold: nil)
        }
        assertLightError("InvalidInput") {
            try verifyCollectiveSignature(
                rosterToml: "[[servers]]\nAddress = 1\n", message: s.message, signature: s.signature, mask: s.mask,
                threshold: nil)
        }
    }

    func testThresholdAboveTheSignersIsRefused() throws {
        let s = try signed()
        let roster = try Live.roster()
        let four = roster + "\n" + (try Live.outsider())
        let v = try verifyCollectiveSignature(
            rosterToml: four, message: s.message, signature: s.signature, mask: s.mask, threshold: nil)
        XCTAssertEqual(v.signers, [0, 1, 2])
        XCTAssertEqual(v.required, 3)
        XCTAssertEqual(v.rosterSize, 4)
        assertLightError("VerificationFailed") {
            try verifyCollectiveSignature(
                rosterToml: four, message: s.message, signature: s.signature, mask: s.mask, threshold: 4)
        }
        for threshold: UInt32 in [0, 4] {
            assertLightError("InvalidInput", "threshold \(threshold)") {
                try verifyCollectiveSignature(
                    rosterToml: roster, message: s.message, signature: s.signature, mask: s.mask,
                    threshold: threshold)
            }
        }
    }

    // MARK: skipchain

    private func client(_ url: String? = nil) throws -> ConodeClient {
        try ConodeClient(url: url ?? Live.url(), timeoutMs: 10_000)
    }

    private func assertNewest(_ block: VerifiedBlock, file: StaticString = #filePath, line: UInt = #line) throws {
        let blocks = try Live.blocks()
        XCTAssertEqual(block.index, blocks, file: file, line: line)
        XCTAssertEqual(block.genesis, try Live.genesis(), file: file, line: line)
        XCTAssertEqual(block.data, Data("block \(blocks)".utf8), file: file, line: line)
        XCTAssertEqual(block.hash.count, 64, file: file, line: line)
        let members = try parseRoster(rosterToml: Live.roster())
        XCTAssertEqual(block.roster.map { $0.publicKey }, members.map { $0.publicKey }, file: file, line: line)
        XCTAssertEqual(block.roster.map { $0.cosiPublicKey }, members.map { $0.cosiPublicKey ?? "" }, file: file, line: line)
    }

    func testClientFetchesAndVerifiesTheNewestBlock() throws {
        let c = try client()
        let newest = try c.latestBlock(trustedHash: Live.genesis())
        try assertNewest(newest)
        XCTAssertGreaterThanOrEqual(newest.hops, 1)
        XCTAssertLessThan(UInt64(newest.hops), try Live.blocks(), "the proof skips")
        let again = try c.latestBlock(trustedHash: newest.hash)
        XCTAssertEqual(again.hash, newest.hash)
        XCTAssertEqual(again.hops, 0)
    }

    func testClientRefusesUnknownOrMalformedHashes() throws {
        let c = try client()
        assertLightError("ServerError") { try c.latestBlock(trustedHash: String(repeating: "ab", count: 32)) }
        assertLightError("InvalidInput") { try c.latestBlock(trustedHash: "not hex") }
        assertLightError("InvalidInput") { try c.latestBlock(trustedHash: "abcd") }
    }

    func testSavedProofVerifies() throws {
        let block = try verifySkipchainProof(trustedHash: Live.genesis(), proof: Live.proof())
        try assertNewest(block)
        XCTAssertEqual(try client().latestBlock(trustedHash: Live.genesis()).hash, block.hash)
    }

    /// The proof's bytes and its blocks (field 1 of `Proof`).
    private func proofBlocks() throws -> ([UInt8], [ProtoField]) {
        let bytes = [UInt8](try Live.proof())
        return (bytes, try protoFields(bytes, 0, bytes.count).filter { $0.number == 1 })
    }

    func testChangedBlockDataIsRefused() throws {
        let (bytes, blocks) = try proofBlocks()
        guard let last = blocks.last else { return XCTFail("empty proof") }
        guard let data = try protoFields(bytes, in: last, number: 7).first else { return XCTFail("no data") }
        let blockCount = try Live.blocks()
        XCTAssertEqual(Data(bytes[data.start..<data.end]), Data("block \(blockCount)".utf8))
        let genesis = try Live.genesis()
        let reason = assertLightError("VerificationFailed") {
            try verifySkipchainProof(trustedHash: genesis, proof: Data(bytes).flipped(data.end - 1))
        }
        XCTAssertTrue(reason.contains("skipchain proof"), reason)
    }

    func testChangedLinkSignatureOrMaskIsRefused() throws {
        let (bytes, blocks) = try proofBlocks()
        let genesis = try Live.genesis()
        XCTAssertGreaterThanOrEqual(blocks.count, 2)
        // Every forward link the proof follows: from each block to the next one in the proof.
        for (from, to) in zip(blocks, blocks.dropFirst()) {
            guard let next = try protoFields(bytes, in: to, number: 10).first else { return XCTFail("no hash") }
            let nextHash = Array(bytes[next.start..<next.end])
            let links = try protoFields(bytes, in: from, number: 11).filter { link in
                guard let target = try protoFields(bytes, in: link, number: 2).first else { return false }
                return Array(bytes[target.start..<target.end]) == nextHash
            }
            XCTAssertEqual(links.count, 1)
            guard let link = links.first,
                let cosi = try protoFields(bytes, in: link, number: 4).first,
                let signature = try protoFields(bytes, in: cosi, number: 1).first,
                let mask = try protoFields(bytes, in: cosi, number: 2).first
            else { return XCTFail("no signed forward link") }
            XCTAssertEqual(signature.end - signature.start, 96)
            for at in [signature.start, signature.start + 50, signature.end - 1, mask.start] {
                assertLightError("VerificationFailed", "byte \(at)") {
                    try verifySkipchainProof(trustedHash: genesis, proof: Data(bytes).flipped(at))
                }
            }
        }
    }

    func testWrongTrustedBlockIsRefused() throws {
        let proof = try Live.proof()
        let genesis = try Live.genesis()
        assertLightError("VerificationFailed") { try verifySkipchainProof(trustedHash: genesis.flippedHex(0), proof: proof) }
        let newest = try verifySkipchainProof(trustedHash: genesis, proof: proof).hash
        assertLightError("VerificationFailed") { try verifySkipchainProof(trustedHash: newest, proof: proof) }
        assertLightError("InvalidInput") { try verifySkipchainProof(trustedHash: "xyz", proof: proof) }
        assertLightError("InvalidInput") {
            try verifySkipchainProof(trustedHash: String(genesis.dropFirst(2)), proof: proof)
        }
    }

    func testBrokenProofBytesAreRefused() throws {
        let proof = try Live.proof()
        let genesis = try Live.genesis()
        assertLightError("InvalidInput") { try verifySkipchainProof(trustedHash: genesis, proof: proof.dropLast()) }
        assertLightError("InvalidInput") { try verifySkipchainProof(trustedHash: genesis, proof: Data([0x0a, 0x7f, 1])) }
    }

    // MARK: beacon vectors

    private struct BeaconVector {
        let chain: [String: Any]
        let beacon: [String: Any]
        let info: String
        let round: UInt64
        let signature: Data
        let previous: Data?
        let chained: Bool
        let chainHash: String
    }

    private func string(_ object: [String: Any], _ key: String) throws -> String {
        guard let value = object[key] as? String else { throw TestSetupError(description: "vectors: no string \(key)") }
        return value
    }

    private func vectorChains() throws -> [[String: Any]] {
        guard let chains = try jsonObject(Live.vectors())["chains"] as? [[String: Any]] else {
            throw TestSetupError(description: "vectors: no chains")
        }
        return chains
    }

    /// drand's `/info` for a vector chain: the v1 shape (`hash`, `groupHash`, `schemeID`,
    /// `metadata.beaconID`) when the vector carries `hash`, else the v2 shape.
    private func infoJson(_ c: [String: Any]) throws -> String {
        let publicKey = try string(c, "public_key")
        var info: [String: Any] = [
            "public_key": publicKey,
            "period": jsonInt(c["period"]) ?? -1,
            "genesis_time": jsonInt(c["genesis_time"]) ?? -1,
        ]
        if let hash = c["hash"] as? String {
            info["hash"] = hash
            info["groupHash"] = try string(c, "groupHash")
            info["schemeID"] = try string(c, "scheme")
            info["metadata"] = ["beaconID": (c["beacon_id"] as? String) ?? "default"]
        } else {
            info["chain_hash"] = try string(c, "chain_hash")
            info["genesis_seed"] = try string(c, "genesis_seed")
            info["scheme"] = try string(c, "scheme")
            info["beacon_id"] = try string(c, "beacon_id")
        }
        return try jsonText(info)
    }

    private func vectors() throws -> [BeaconVector] {
        try vectorChains().flatMap { c -> [BeaconVector] in
            let info = try infoJson(c)
            let scheme = try string(c, "scheme")
            let chainHash = try (c["hash"] as? String) ?? string(c, "chain_hash")
            guard let beacons = c["beacons"] as? [[String: Any]] else { throw TestSetupError(description: "no beacons") }
            return try beacons.map { b -> BeaconVector in
                guard let round = jsonInt(b["round"]) else { throw TestSetupError(description: "no round") }
                return BeaconVector(
                    chain: c, beacon: b, info: info, round: UInt64(round), signature: try Data(hex: string(b, "signature")),
                    previous: try (b["previous_signature"] as? String).map { try Data(hex: $0) },
                    chained: scheme.hasSuffix("-chained"), chainHash: chainHash)
            }
        }
    }

    /// `v`'s beacon JSON with `changes` applied (`nil` removes a field).
    private func beaconJson(_ v: BeaconVector, _ changes: [String: Any?] = [:]) throws -> String {
        var b = v.beacon
        for (key, value) in changes { b[key] = value }
        return try jsonText(b)
    }

    func testVectorsCoverBothSchemes() throws {
        let schemes = Set(try vectorChains().map { try string($0, "scheme") })
        XCTAssertEqual(schemes, ["pedersen-bls-chained", "bls-unchained-g1-rfc9380"])
        let all = try vectors()
        XCTAssertTrue(all.contains { $0.chained } && all.contains { !$0.chained })
    }

    func testChainInfoParses() throws {
        for c in try vectorChains() {
            let info = try parseChainInfo(chainInfoJson: infoJson(c))
            let expectedHash = try (c["hash"] as? String) ?? string(c, "chain_hash")
            XCTAssertEqual(info.chainHash, expectedHash)
            XCTAssertEqual(info.scheme, try string(c, "scheme"))
            XCTAssertEqual(Int(info.period), jsonInt(c["period"]))
            XCTAssertEqual(Int(info.genesisTime), jsonInt(c["genesis_time"]))
            XCTAssertEqual(info.publicKey, try string(c, "public_key"))
        }
    }

    func testTamperedChainInfoIsRefused() throws {
        for c in try vectorChains() {
            var info = try jsonObject(infoJson(c))
            var longer = info
            longer["period"] = (jsonInt(c["period"]) ?? 0) + 1
            let reason = assertLightError("InvalidInput") { try parseChainInfo(chainInfoJson: jsonText(longer)) }
            XCTAssertTrue(reason.contains("chain hash"), reason)
            var key = info
            key["public_key"] = try string(c, "public_key").flippedHex(20)
            assertLightError("InvalidInput") { try parseChainInfo(chainInfoJson: jsonText(key)) }
            info["public_key"] = nil
            assertLightError("InvalidInput") { try parseChainInfo(chainInfoJson: jsonText(info)) }
        }
        assertLightError("InvalidInput") { try parseChainInfo(chainInfoJson: "{") }
    }

    func testVectorBeaconsVerify() throws {
        for v in try vectors() {
            let viaJson = try verifyBeacon(chainInfoJson: v.info, beaconJson: beaconJson(v))
            XCTAssertEqual(viaJson.round, v.round)
            XCTAssertEqual(viaJson.signature, v.signature)
            XCTAssertEqual(viaJson.randomness.count, 32)
            if let randomness = v.beacon["randomness"] as? String {
                XCTAssertEqual(viaJson.randomness.hex, randomness)
            }
            XCTAssertEqual(viaJson.chainHash, v.chainHash)
            if v.chained { XCTAssertEqual(viaJson.previousSignature, v.previous) } else { XCTAssertNil(viaJson.previousSignature) }
            let viaRound = try verifyBeaconRound(
                chainInfoJson: v.info, round: v.round, signature: v.signature, previousSignature: v.previous)
            XCTAssertEqual(viaRound.randomness, viaJson.randomness)
            // The returned randomness is what drand's JSON carries.
            let withRandomness = try beaconJson(v, ["randomness": viaJson.randomness.hex])
            XCTAssertEqual(try verifyBeacon(chainInfoJson: v.info, beaconJson: withRandomness).round, v.round)
        }
    }

    func testTamperedBeaconSignatureIsRefused() throws {
        for v in try vectors() {
            for at in [0, v.signature.count / 2, v.signature.count - 1] {
                let bad = v.signature.flipped(at)
                assertLightError("VerificationFailed", "round \(v.round) byte \(at)") {
                    try verifyBeaconRound(chainInfoJson: v.info, round: v.round, signature: bad, previousSignature: v.previous)
                }
                let json = try beaconJson(v, ["signature": bad.hex, "randomness": nil])
                assertLightError("VerificationFailed") { try verifyBeacon(chainInfoJson: v.info, beaconJson: json) }
            }
        }
    }

    func testWrongRoundIsRefused() throws {
        for v in try vectors() {
            for round in [v.round + 1, v.round - 1] {
                let reason = assertLightError("VerificationFailed") {
                    try verifyBeaconRound(
                        chainInfoJson: v.info, round: round, signature: v.signature, previousSignature: v.previous)
                }
                XCTAssertTrue(reason.contains("round \(round)"), reason)
                let json = try beaconJson(v, ["round": Int(round)])
                assertLightError("VerificationFailed") { try verifyBeacon(chainInfoJson: v.info, beaconJson: json) }
            }
        }
    }

    func testPreviousSignatureMattersOnlyForChainedSchemes() throws {
        for v in try vectors() {
            if v.chained {
                guard let previous = v.previous else { return XCTFail("chained vector without previous signature") }
                assertLightError("VerificationFailed") {
                    try verifyBeaconRound(
                        chainInfoJson: v.info, round: v.round, signature: v.signature, previousSignature: previous.flipped(10))
                }
                let reason = assertLightError("VerificationFailed") {
                    try verifyBeaconRound(chainInfoJson: v.info, round: v.round, signature: v.signature, previousSignature: nil)
                }
                XCTAssertTrue(reason.contains("previous signature"), reason)
                let json = try beaconJson(v, ["previous_signature": previous.flipped(10).hex])
                assertLightError("VerificationFailed") { try verifyBeacon(chainInfoJson: v.info, beaconJson: json) }
            } else {
                let other = Data(repeating: 7, count: 96)
                XCTAssertEqual(
                    try verifyBeaconRound(chainInfoJson: v.info, round: v.round, signature: v.signature, previousSignature: other).round,
                    v.round)
                XCTAssertEqual(
                    try verifyBeaconRound(chainInfoJson: v.info, round: v.round, signature: v.signature, previousSignature: nil).round,
                    v.round)
            }
        }
    }

    func testWrongRandomnessIsRefused() throws {
        for v in try vectors() {
            let json = try beaconJson(v, ["randomness": String(repeating: "00", count: 32)])
            let reason = assertLightError("VerificationFailed") { try verifyBeacon(chainInfoJson: v.info, beaconJson: json) }
            XCTAssertTrue(reason.contains("randomness"), reason)
        }
    }

    func testBeaconOfAnotherChainIsRefused() throws {
        let all = try vectors()
        guard let a = all.first(where: { $0.chained }), let b = all.first(where: { !$0.chained }) else {
            return XCTFail("vectors of both schemes needed")
        }
        assertLightError("VerificationFailed") { try verifyBeacon(chainInfoJson: b.info, beaconJson: beaconJson(a)) }
        assertLightError("VerificationFailed") { try verifyBeacon(chainInfoJson: a.info, beaconJson: beaconJson(b)) }
    }

    func testMalformedBeaconIsRefused() throws {
        guard let v = try vectors().first else { return XCTFail("no vectors") }
        assertLightError("InvalidInput") { try verifyBeacon(chainInfoJson: v.info, beaconJson: "[]") }
        assertLightError("InvalidInput") { try verifyBeacon(chainInfoJson: v.info, beaconJson: "{\"round\": 1}") }
        let reason = assertLightError("InvalidInput") {
            try verifyBeacon(chainInfoJson: v.info, beaconJson: "{\"round\": 1, \"signature\": \"zz\"}")
        }
        XCTAssertTrue(reason.contains("signature"), reason)
    }

    // MARK: live beacon

    /// drand's v2 `/info` JSON of a chain the client returned.
    private func infoJson(_ i: DrandChainInfo) throws -> String {
        try jsonText([
            "public_key": i.publicKey, "period": Int(i.period), "genesis_time": Int(i.genesisTime),
            "genesis_seed": i.genesisSeed, "scheme": i.scheme, "beacon_id": i.beaconId, "chain_hash": i.chainHash,
        ])
    }

    func testChainInfoIsTheInitializedChain() throws {
        let info = try client().chainInfo()
        XCTAssertEqual(info.chainHash, try Live.chainHash())
        XCTAssertEqual(info.scheme, try Live.beaconScheme())
        XCTAssertEqual(info.period, 1)
        XCTAssertEqual(try parseChainInfo(chainInfoJson: infoJson(info)), info)
    }

    func testLiveBeaconsVerifyUnderThePinnedChain() throws {
        let c = try client()
        let chainHash = try Live.chainHash()
        let chained = try Live.beaconScheme().hasSuffix("-chained")
        let first = try c.beacon(chainHash: chainHash, round: 1)
        XCTAssertEqual(first.round, 1)
        XCTAssertEqual(first.chainHash, chainHash)
        XCTAssertEqual(first.randomness.count, 32)
        if chained {
            XCTAssertEqual(first.previousSignature?.hex, try c.chainInfo().genesisSeed)
        } else {
            XCTAssertNil(first.previousSignature)
        }
        XCTAssertEqual(try c.beacon(chainHash: nil, round: 1).signature, first.signature)
        let latest = try c.latestBeacon(chainHash: chainHash)
        XCTAssertGreaterThanOrEqual(latest.round, 1)
        XCTAssertGreaterThanOrEqual(try c.latestBeacon(chainHash: nil).round, latest.round)
    }

    func testLiveBeaconRecheckedWithThePureVerifiers() throws {
        let c = try client()
        let info = try infoJson(c.chainInfo())
        let b = try c.beacon(chainHash: Live.chainHash(), round: 1)
        XCTAssertEqual(
            try verifyBeaconRound(chainInfoJson: info, round: 1, signature: b.signature, previousSignature: b.previousSignature),
            b)
        assertLightError("VerificationFailed") {
            try verifyBeaconRound(chainInfoJson: info, round: 2, signature: b.signature, previousSignature: b.previousSignature)
        }
        assertLightError("VerificationFailed") {
            try verifyBeaconRound(
                chainInfoJson: info, round: 1, signature: b.signature.flipped(5), previousSignature: b.previousSignature)
        }
        if let previous = b.previousSignature {
            assertLightError("VerificationFailed") {
                try verifyBeaconRound(chainInfoJson: info, round: 1, signature: b.signature, previousSignature: previous.flipped(5))
            }
        }
    }

    func testOtherChainHashIsRefused() throws {
        let c = try client()
        let chainHash = try Live.chainHash()
        assertLightError("ServerError") { try c.latestBeacon(chainHash: String(repeating: "00", count: 32)) }
        assertLightError("ServerError") { try c.beacon(chainHash: chainHash.flippedHex(0), round: 1) }
        assertLightError("InvalidInput") { try c.latestBeacon(chainHash: "abc") }
        assertLightError("InvalidInput") { try c.beacon(chainHash: chainHash, round: 0) }
        assertLightError("ServerError") { try c.beacon(chainHash: chainHash, round: 1_000_000_000) }
    }

    // MARK: client errors

    func testBadUrlIsInvalidInput() throws {
        for url in ["", "127.0.0.1:7771", "ftp://127.0.0.1:7771", "ws://", "ws://127.0.0.1:7771?x=1", "ws://[::1"] {
            let reason = assertLightError("InvalidInput", "url `\(url)`") { try ConodeClient(url: url, timeoutMs: 1000) }
            XCTAssertTrue(reason.contains("url"), reason)
        }
        assertLightError("InvalidInput") { try ConodeClient(url: "ws://127.0.0.1:7771", timeoutMs: 0) }
        XCTAssertEqual(try ConodeClient(url: "http://127.0.0.1:7771/", timeoutMs: 1000).url(), "ws://127.0.0.1:7771")
    }

    func testUnreachableConodeIsANetworkError() throws {
        let port = try Live.closedPort()
        let c = try client("ws://127.0.0.1:\(port)")
        let genesis = try Live.genesis()
        assertLightError("Network") { try c.chainInfo() }
        assertLightError("Network") { try c.latestBeacon(chainHash: nil) }
        let reason = assertLightError("Network") { try c.latestBlock(trustedHash: genesis) }
        XCTAssertTrue(reason.contains("connect"), reason)
    }
}
