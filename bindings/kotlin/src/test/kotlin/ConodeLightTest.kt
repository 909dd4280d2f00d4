// JUnit tests of the Kotlin light client: roster parsing (good and tampered), and live checks
// against the local cothority that tests/run-kotlin.sh starts (roster and URL as system properties).

import java.io.File
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.conode.LightException
import uniffi.conode.libraryVersion
import uniffi.conode.parseRoster

class ConodeLightTest {
    private fun liveRoster(): String {
        val path = System.getProperty("conode.roster")
        assertTrue(!path.isNullOrEmpty(), "conode.roster system property not set by tests/run-kotlin.sh")
        return File(path).readText()
    }

    @Test
    fun versionIsReported() {
        assertTrue(libraryVersion().isNotEmpty())
    }

    @Test
    fun parsesLiveRoster() {
        val members = parseRoster(liveRoster())
        assertTrue(members.size >= 3, "expected the local cothority's members, got ${members.size}")
        for (m in members) {
            assertEquals(64, m.publicKey.length)
            assertTrue(m.address.startsWith("tls://127.0.0.1:"))
            assertNotNull(m.cosiPublicKey)
            assertEquals(96, m.cosiPublicKey!!.length)
        }
    }

    @Test
    fun rejectsTamperedRoster() {
        val roster = liveRoster()
        val pop = Regex("Pop = \"([0-9a-f]{192})\"").find(roster)!!.groupValues[1]
        val flipped = (if (pop[10] == '0') "1" else "0")
        val tampered = roster.replaceFirst(pop, pop.substring(0, 10) + flipped + pop.substring(11))
        val e = assertThrows<LightException.InvalidInput> { parseRoster(tampered) }
        assertTrue(e.message!!.contains("Pop"), e.message)
        assertThrows<LightException.InvalidInput> { parseRoster("not toml [[") }
    }
}
