// Roster parsing through uniffi: the live cothority's roster parses with every key, and a roster with
// a broken proof of possession or no TOML at all is refused with InvalidInput naming the problem.

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.conode.LightException
import uniffi.conode.libraryVersion
import uniffi.conode.parseRoster

class RosterTest {
    @Test
    fun versionIsReported() {
        assertTrue(Regex("""\d+\.\d+\.\d+.*""").matches(libraryVersion()), libraryVersion())
    }

    @Test
    fun parsesLiveRoster() {
        val members = parseRoster(Live.roster)
        assertEquals(3, members.size)
        for (m in members) {
            assertEquals(64, m.publicKey.length)
            assertTrue(m.address.startsWith("tls://127.0.0.1:"), m.address)
            assertNotNull(m.cosiPublicKey)
            assertEquals(96, m.cosiPublicKey!!.length)
        }
        assertEquals(3, members.map { it.publicKey }.toSet().size, "members must have distinct keys")
    }

    @Test
    fun rejectsTamperedRoster() {
        val roster = Live.roster
        val pop = Regex("Pop = \"([0-9a-f]{192})\"").find(roster)!!.groupValues[1]
        val tampered = roster.replaceFirst(pop, pop.flippedHex(10))
        val e = assertThrows<LightException.InvalidInput> { parseRoster(tampered) }
        assertTrue(e.reason.contains("Pop"), e.reason)
        assertThrows<LightException.InvalidInput> { parseRoster("not toml [[") }
    }
}
