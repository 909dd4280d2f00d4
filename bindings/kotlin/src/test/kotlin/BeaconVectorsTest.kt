// drand beacon verification through uniffi on the shared League of Entropy vectors
// (tests/vectors/drand.json): the chained mainnet chain (drand's v1 /info shape) and quicknet
// (bls-unchained-g1-rfc9380, the v2 shape). Good beacons verify with randomness = sha256(signature);
// a changed signature, round, previous signature, randomness or chain is refused.

import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.conode.LightException
import uniffi.conode.parseChainInfo
import uniffi.conode.verifyBeacon
import uniffi.conode.verifyBeaconRound
import uniffi.conode.verifyBeacons

class BeaconVectorsTest {
    private class Vector(val chain: JSONObject, val beacon: JSONObject) {
        val info = infoJson(chain)
        val round = beacon.getLong("round").toULong()
        val signature = beacon.getString("signature").hexToBytes()
        val previous = beacon.optString("previous_signature", "").takeIf { it.isNotEmpty() }?.hexToBytes()
        val chained = chain.getString("scheme").contains("chained") && !chain.getString("scheme").contains("unchained")
    }

    private val chains: List<JSONObject> =
        JSONObject(Live.vectors).getJSONArray("chains").let { a -> (0 until a.length()).map { a.getJSONObject(it) } }

    private val vectors: List<Vector> = chains.flatMap { c ->
        val beacons = c.getJSONArray("beacons")
        (0 until beacons.length()).map { Vector(c, beacons.getJSONObject(it)) }
    }

    private fun expectedHash(c: JSONObject) = if (c.has("hash")) c.getString("hash") else c.getString("chain_hash")

    @Test
    fun vectorsCoverBothSchemes() {
        assertEquals(setOf("pedersen-bls-chained", "bls-unchained-g1-rfc9380"), chains.map { it.getString("scheme") }.toSet())
        assertTrue(vectors.any { it.chained } && vectors.any { !it.chained })
    }

    @Test
    fun chainInfoParses() {
        for (c in chains) {
            val info = parseChainInfo(infoJson(c))
            assertEquals(expectedHash(c), info.chainHash)
            assertEquals(c.getString("scheme"), info.scheme)
            assertEquals(c.getInt("period").toUInt(), info.period)
            assertEquals(c.getLong("genesis_time"), info.genesisTime)
            assertEquals(c.getString("public_key"), info.publicKey)
        }
    }

    @Test
    fun tamperedChainInfoIsRefused() {
        for (c in chains) {
            val info = JSONObject(infoJson(c))
            val longer = JSONObject(info.toString()).put("period", c.getInt("period") + 1)
            val e = assertThrows<LightException.InvalidInput> { parseChainInfo(longer.toString()) }
            assertTrue(e.reason.contains("chain hash"), e.reason)
            val key = JSONObject(info.toString()).put("public_key", c.getString("public_key").flippedHex(20))
            assertThrows<LightException.InvalidInput> { parseChainInfo(key.toString()) }
            val noKey = JSONObject(info.toString()).also { it.remove("public_key") }
            assertThrows<LightException.InvalidInput> { parseChainInfo(noKey.toString()) }
        }
        assertThrows<LightException.InvalidInput> { parseChainInfo("{") }
    }

    @Test
    fun beaconsVerify() {
        for (v in vectors) {
            val viaJson = verifyBeacon(v.info, v.beacon.toString())
            assertEquals(v.round, viaJson.round)
            assertArrayEquals(v.signature, viaJson.signature)
            assertArrayEquals(sha256(v.signature), viaJson.randomness)
            if (v.beacon.has("randomness")) assertEquals(v.beacon.getString("randomness"), viaJson.randomness.toHex())
            assertEquals(expectedHash(v.chain), viaJson.chainHash)
            if (v.chained) assertArrayEquals(v.previous, viaJson.previousSignature) else assertNull(viaJson.previousSignature)

            val viaRound = verifyBeaconRound(v.info, v.round, v.signature, v.previous)
            assertArrayEquals(viaJson.randomness, viaRound.randomness)
        }
    }

    @Test
    fun aChainsBeaconsVerifyInOneBatchWithOneByOneVerdicts() {
        for (c in chains) {
            val info = infoJson(c)
            val beacons = c.getJSONArray("beacons")
            val all = verifyBeacons(info, beacons.toString())
            assertEquals(beacons.length(), all.size)
            assertTrue(all.all { it.verified && it.error == null }, all.toString())
            // The first beacon's signature tampered: only it fails, with verifyBeacon's reason.
            val first = beacons.getJSONObject(0)
            val bad = JSONObject(first.toString())
                .put("signature", first.getString("signature").hexToBytes().flipped(0).toHex())
                .also { it.remove("randomness") }
            val tampered = org.json.JSONArray(beacons.toString()).put(0, bad)
            val verdicts = verifyBeacons(info, tampered.toString())
            assertTrue(!verdicts[0].verified && verdicts[0].error != null)
            assertTrue(verdicts.drop(1).all { it.verified })
            val single = assertThrows<LightException.VerificationFailed> { verifyBeacon(info, bad.toString()) }
            assertTrue(single.reason.contains(verdicts[0].error!!.removePrefix("beacon: ")), "${single.reason} / ${verdicts[0].error}")
            assertThrows<LightException.InvalidInput> { verifyBeacons(info, "[{") }
        }
    }

    @Test
    fun tamperedSignatureIsRefused() {
        for (v in vectors) {
            for (at in listOf(0, v.signature.size / 2, v.signature.size - 1)) {
                val bad = v.signature.flipped(at)
                assertThrows<LightException.VerificationFailed>("round ${v.round} byte $at") {
                    verifyBeaconRound(v.info, v.round, bad, v.previous)
                }
                val json = JSONObject(v.beacon.toString()).put("signature", bad.toHex()).also { it.remove("randomness") }
                assertThrows<LightException.VerificationFailed> { verifyBeacon(v.info, json.toString()) }
            }
        }
    }

    @Test
    fun wrongRoundIsRefused() {
        for (v in vectors) {
            for (round in listOf(v.round + 1u, v.round - 1u)) {
                val e = assertThrows<LightException.VerificationFailed> {
                    verifyBeaconRound(v.info, round, v.signature, v.previous)
                }
                assertTrue(e.reason.contains("round $round"), e.reason)
                val json = JSONObject(v.beacon.toString()).put("round", round.toLong())
                assertThrows<LightException.VerificationFailed> { verifyBeacon(v.info, json.toString()) }
            }
        }
    }

    @Test
    fun previousSignatureMattersOnlyForChainedSchemes() {
        for (v in vectors) {
            val other = ByteArray(96) { 7 }
            if (v.chained) {
                assertThrows<LightException.VerificationFailed> { verifyBeaconRound(v.info, v.round, v.signature, v.previous!!.flipped(10)) }
                val e = assertThrows<LightException.VerificationFailed> { verifyBeaconRound(v.info, v.round, v.signature, null) }
                assertTrue(e.reason.contains("previous signature"), e.reason)
                val json = JSONObject(v.beacon.toString()).put("previous_signature", v.previous!!.flipped(10).toHex())
                assertThrows<LightException.VerificationFailed> { verifyBeacon(v.info, json.toString()) }
            } else {
                assertEquals(v.round, verifyBeaconRound(v.info, v.round, v.signature, other).round)
                assertEquals(v.round, verifyBeaconRound(v.info, v.round, v.signature, null).round)
            }
        }
    }

    @Test
    fun wrongRandomnessIsRefused() {
        for (v in vectors) {
            val json = JSONObject(v.beacon.toString()).put("randomness", sha256(v.signature).flipped(0).toHex())
            val e = assertThrows<LightException.VerificationFailed> { verifyBeacon(v.info, json.toString()) }
            assertTrue(e.reason.contains("randomness"), e.reason)
        }
    }

    @Test
    fun beaconOfAnotherChainIsRefused() {
        val (a, b) = chains.map { c -> vectors.first { it.chain === c } }
        assertThrows<LightException.VerificationFailed> { verifyBeacon(b.info, a.beacon.toString()) }
        assertThrows<LightException.VerificationFailed> { verifyBeacon(a.info, b.beacon.toString()) }
    }

    @Test
    fun malformedBeaconIsRefused() {
        val v = vectors.first()
        assertThrows<LightException.InvalidInput> { verifyBeacon(v.info, "[]") }
        assertThrows<LightException.InvalidInput> { verifyBeacon(v.info, """{"round": 1}""") }
        val e = assertThrows<LightException.InvalidInput> { verifyBeacon(v.info, """{"round": 1, "signature": "zz"}""") }
        assertTrue(e.reason.contains("signature"), e.reason)
    }

    companion object {
        /**
         * drand's `/info` for a vector chain: the v1 shape (`hash`, `groupHash`, `schemeID`,
         * `metadata.beaconID`) when the vector carries `hash`, else the v2 shape (`chain_hash`,
         * `genesis_seed`, `scheme`, `beacon_id`).
         */
        private fun infoJson(c: JSONObject): String {
            val info = JSONObject()
                .put("public_key", c.getString("public_key"))
                .put("period", c.getInt("period"))
                .put("genesis_time", c.getLong("genesis_time"))
            if (c.has("hash")) {
                info.put("hash", c.getString("hash"))
                    .put("groupHash", c.getString("groupHash"))
                    .put("schemeID", c.getString("scheme"))
                    .put("metadata", JSONObject().put("beaconID", c.optString("beacon_id", "default")))
            } else {
                info.put("chain_hash", c.getString("chain_hash"))
                    .put("genesis_seed", c.getString("genesis_seed"))
                    .put("scheme", c.getString("scheme"))
                    .put("beacon_id", c.getString("beacon_id"))
            }
            return info.toString()
        }
    }
}
