// ConodeClient's own errors: a URL it cannot use is InvalidInput before any network traffic; a closed
// port or a conode that never answers is a Network error, and a silent one within the timeout.

import java.net.InetAddress
import java.net.ServerSocket
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.conode.ConodeClient
import uniffi.conode.LightException

class ClientErrorsTest {
    @Test
    fun badUrlIsInvalidInput() {
        for (url in listOf("", "127.0.0.1:7771", "ftp://127.0.0.1:7771", "ws://", "ws://127.0.0.1:7771?x=1", "ws://[::1")) {
            val e = assertThrows<LightException.InvalidInput>("url `$url`") { ConodeClient(url, 1000UL) }
            assertTrue(e.reason.contains("url"), e.reason)
        }
        assertThrows<LightException.InvalidInput> { ConodeClient("ws://127.0.0.1:7771", 0UL) }
        // Every scheme the client port speaks, with or without a trailing slash.
        for (url in listOf("ws://127.0.0.1:7771", "http://127.0.0.1:7771/", "wss://example.org", "https://example.org")) {
            ConodeClient(url, 1000UL).use { assertTrue(it.url().startsWith("ws"), it.url()) }
        }
        ConodeClient("http://127.0.0.1:7771/", 1000UL).use { assertEquals("ws://127.0.0.1:7771", it.url()) }
    }

    /** A port nothing listens on: bound by us, then closed. */
    private fun closedPort(): Int = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { it.localPort }

    @Test
    fun unreachableConodeIsANetworkError() {
        ConodeClient("ws://127.0.0.1:${closedPort()}", 5000UL).use { c ->
            assertThrows<LightException.Network> { c.chainInfo() }
            assertThrows<LightException.Network> { c.latestBeacon(null) }
            val e = assertThrows<LightException.Network> { c.latestBlock(Live.genesis) }
            assertTrue(e.reason.contains("connect"), e.reason)
        }
    }

    @Test
    fun silentConodeTimesOut() {
        // Accepts connections (the backlog does) but never answers.
        ServerSocket(0, 8, InetAddress.getLoopbackAddress()).use { silent ->
            ConodeClient("ws://127.0.0.1:${silent.localPort}", 300UL).use { c ->
                for (call in listOf<() -> Unit>({ c.latestBlock(Live.genesis) }, { c.chainInfo() })) {
                    val started = System.nanoTime()
                    val e = assertThrows<LightException.Network> { call() }
                    val ms = (System.nanoTime() - started) / 1_000_000
                    assertTrue(ms < 5000, "gave up after $ms ms with a 300 ms timeout")
                    assertTrue(e.reason.contains("300") || e.reason.contains("time", ignoreCase = true), e.reason)
                }
            }
        }
    }
}
