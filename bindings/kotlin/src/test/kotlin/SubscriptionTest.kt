// Blocking subscriptions through uniffi: BlockSubscription.nextBlock follows the live chain from its
// genesis, each block verified by the forward link from the one before; a quiet chain times out with
// null; BeaconSubscription.nextBeacon returns verified rounds in order from the round asked for.

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.conode.ConodeClient
import uniffi.conode.LightException

class SubscriptionTest {
    private fun client() = ConodeClient(Live.url, 10_000UL)

    @Test
    fun nextBlockFollowsTheChainFromItsGenesis() {
        client().use { c ->
            c.subscribeBlocks(Live.genesis).use { sub ->
                for (i in 0UL..Live.blocks) {
                    val block = sub.nextBlock(10_000UL)!!
                    assertEquals(i, block.index)
                    assertEquals(Live.genesis, block.genesis)
                    if (i > 0UL) assertEquals("block $i", String(block.data))
                }
                assertNull(sub.nextBlock(200UL), "no newer block: null after the timeout")
            }
            assertThrows<LightException.InvalidInput> { c.subscribeBlocks("not hex") }
        }
    }

    @Test
    fun nextBeaconReturnsVerifiedRoundsInOrder() {
        client().use { c ->
            c.subscribeBeacons(Live.chainHash, 1UL).use { sub ->
                for (round in 1UL..2UL) {
                    val b = sub.nextBeacon(20_000UL)!!
                    assertEquals(round, b.round)
                    assertEquals(Live.chainHash, b.chainHash)
                }
            }
        }
    }
}
