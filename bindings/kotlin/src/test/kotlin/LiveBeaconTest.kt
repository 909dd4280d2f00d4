// The live drand-compatible beacon through ConodeClient: chain info and beacons fetched from the local
// cothority verify under the chain `conode beacon init` made, a pinned chain hash is enforced, and
// what a conode serves is re-checked with the pure verifiers. A fake HTTP server stands in for a
// lying conode (another chain under the pinned hash, a forged beacon).

import com.sun.net.httpserver.HttpServer
import java.net.InetSocketAddress
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.conode.ConodeClient
import uniffi.conode.LightException
import uniffi.conode.parseChainInfo
import uniffi.conode.verifyBeacon
import uniffi.conode.verifyBeaconRound

class LiveBeaconTest {
    private fun client(url: String = Live.url) = ConodeClient(url, 10_000UL)

    private val chained get() = Live.beaconScheme.endsWith("-chained")

    /** GET on the live conode's HTTP API (same port as the WebSocket one). */
    private fun httpGet(path: String): String {
        val base = Live.url.replaceFirst("ws://", "http://")
        val response = HttpClient.newHttpClient().send(
            HttpRequest.newBuilder(URI.create(base + path)).build(),
            HttpResponse.BodyHandlers.ofString(),
        )
        assertEquals(200, response.statusCode(), "$path: ${response.body()}")
        return response.body()
    }

    @Test
    fun chainInfoIsTheInitializedChain() {
        client().use { c ->
            val info = c.chainInfo()
            assertEquals(Live.chainHash, info.chainHash)
            assertEquals(Live.beaconScheme, info.scheme)
            assertEquals(1u, info.period)
            assertEquals(parseChainInfo(httpGet("/info")), info)
        }
    }

    @Test
    fun beaconsVerifyUnderThePinnedChain() {
        client().use { c ->
            val first = c.beacon(Live.chainHash, 1UL)
            assertEquals(1UL, first.round)
            assertEquals(Live.chainHash, first.chainHash)
            assertArrayEquals(sha256(first.signature), first.randomness)
            if (chained) {
                // Round 1 chains to the genesis seed.
                assertEquals(c.chainInfo().genesisSeed, first.previousSignature?.toHex())
            } else {
                assertNull(first.previousSignature)
            }
            assertArrayEquals(first.signature, c.beacon(null, 1UL).signature)

            val latest = c.latestBeacon(Live.chainHash)
            assertTrue(latest.round >= 1UL, "round ${latest.round}")
            assertArrayEquals(sha256(latest.signature), latest.randomness)
            assertTrue(c.latestBeacon(null).round >= latest.round)
        }
    }

    @Test
    fun servedBeaconRecheckedWithThePureVerifiers() {
        val info = httpGet("/info")
        val json = httpGet("/public/1")
        val beacon = verifyBeacon(info, json)
        client().use { c -> assertArrayEquals(c.beacon(Live.chainHash, 1UL).signature, beacon.signature) }

        val previous = beacon.previousSignature
        assertEquals(1UL, verifyBeaconRound(info, 1UL, beacon.signature, previous).round)
        assertThrows<LightException.VerificationFailed> { verifyBeaconRound(info, 2UL, beacon.signature, previous) }
        assertThrows<LightException.VerificationFailed> { verifyBeaconRound(info, 1UL, beacon.signature.flipped(5), previous) }
        if (chained) {
            assertNotNull(previous)
            assertThrows<LightException.VerificationFailed> { verifyBeaconRound(info, 1UL, beacon.signature, previous!!.flipped(5)) }
        }
        // Round 1's beacon presented as round 2's.
        val forged = JSONObject(json).put("round", 2).toString()
        assertThrows<LightException.VerificationFailed> { verifyBeacon(info, forged) }
    }

    @Test
    fun otherChainHashIsRefused() {
        client().use { c ->
            // The conode does not serve that chain.
            assertThrows<LightException.ServerException> { c.latestBeacon("00".repeat(32)) }
            assertThrows<LightException.ServerException> { c.beacon(Live.chainHash.flippedHex(0), 1UL) }
            assertThrows<LightException.InvalidInput> { c.latestBeacon("abc") }
            assertThrows<LightException.InvalidInput> { c.beacon(Live.chainHash, 0UL) }
            // A round far in the future is not served yet.
            assertThrows<LightException.ServerException> { c.beacon(Live.chainHash, 1_000_000_000UL) }
        }
    }

    /** Runs `body` against a fake conode that answers every GET with `answer(path)` (status 200). */
    private fun withFakeConode(answer: (String) -> String, body: (ConodeClient) -> Unit) {
        val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
        server.createContext("/") { exchange ->
            val bytes = answer(exchange.requestURI.path).toByteArray()
            exchange.responseHeaders.add("content-type", "application/json")
            exchange.sendResponseHeaders(200, bytes.size.toLong())
            exchange.responseBody.use { it.write(bytes) }
        }
        server.start()
        try {
            ConodeClient("http://127.0.0.1:${server.address.port}", 10_000UL).use(body)
        } finally {
            server.stop(0)
        }
    }

    @Test
    fun lyingConodeIsCaught() {
        val info = httpGet("/info")
        val beacon = JSONObject(httpGet("/public/1"))
        val forged = JSONObject(beacon.toString())
            .put("signature", beacon.getString("signature").hexToBytes().flipped(3).toHex())
            .also { it.remove("randomness") }
        withFakeConode({ path -> if (path.endsWith("/info")) info else forged.toString() }) { fake ->
            // Its own chain, but a signature the group never made.
            assertThrows<LightException.VerificationFailed> { fake.latestBeacon(Live.chainHash) }
            assertThrows<LightException.VerificationFailed> { fake.beacon(null, 1UL) }
            // The chain it describes under another chain's hash.
            val e = assertThrows<LightException.VerificationFailed> { fake.latestBeacon("11".repeat(32)) }
            assertTrue(e.reason.contains("not the trusted"), e.reason)
        }
        // A beacon whose randomness is not sha256(signature).
        val wrongRandomness = JSONObject(beacon.toString()).put("randomness", "00".repeat(32)).toString()
        withFakeConode({ path -> if (path.endsWith("/info")) info else wrongRandomness }) { fake ->
            assertThrows<LightException.VerificationFailed> { fake.beacon(Live.chainHash, 1UL) }
        }
    }

    @Test
    fun undecodableAnswerIsTheNodesFault() {
        val info = httpGet("/info")
        withFakeConode({ path -> if (path.endsWith("/info")) "<html>not json</html>" else "{}" }) { fake ->
            val e = assertThrows<LightException.Network> { fake.chainInfo() }
            assertTrue(e.reason.contains("/info") && e.reason.contains("undecodable"), e.reason)
        }
        withFakeConode({ path -> if (path.endsWith("/info")) info else "{\"round\": 1}" }) { fake ->
            val e = assertThrows<LightException.Network> { fake.beacon(Live.chainHash, 1UL) }
            assertTrue(e.reason.contains("/public/1"), e.reason)
        }
    }
}
