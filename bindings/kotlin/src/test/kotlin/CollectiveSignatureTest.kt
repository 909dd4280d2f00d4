// Collective (BLS-CoSi) signatures through uniffi: the signature `conode sign` got from the live
// cothority verifies against its roster, and every change to the signature, the mask, the message,
// the roster or the threshold is refused with the right LightException.

import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.conode.LightException
import uniffi.conode.verifyCollectiveSignature

class CollectiveSignatureTest {
    private class Signed(val message: ByteArray, val signature: ByteArray, val mask: ByteArray)

    private val signed: Signed = JSONObject(Live.signatureFile.readText()).let {
        Signed(it.getString("message").hexToBytes(), it.getString("signature").hexToBytes(), it.getString("mask").hexToBytes())
    }

    /** The roster's `[[servers]]` entries, each as its own TOML text. */
    private fun entries(roster: String): List<String> =
        roster.split("[[servers]]").filter { it.isNotBlank() }.map { "[[servers]]$it" }

    @Test
    fun liveSignatureVerifies() {
        assertEquals(96, signed.signature.size)
        val v = verifyCollectiveSignature(Live.roster, signed.message, signed.signature, signed.mask, null)
        assertEquals(listOf(0u, 1u, 2u), v.signers)
        assertEquals(3u, v.required, "default policy for 3 members: n - (n-1)/3")
        assertEquals(3u, v.rosterSize)
        // An explicit threshold the signers meet.
        assertEquals(2u, verifyCollectiveSignature(Live.roster, signed.message, signed.signature, signed.mask, 2u).required)
    }

    @Test
    fun tamperedSignatureIsRefused() {
        for (at in listOf(0, 47, 95)) {
            val bad = signed.signature.flipped(at)
            assertThrows<LightException.VerificationFailed>("signature byte $at") {
                verifyCollectiveSignature(Live.roster, signed.message, bad, signed.mask, null)
            }
        }
        assertThrows<LightException.VerificationFailed> {
            verifyCollectiveSignature(Live.roster, signed.message, signed.signature.copyOf(95), signed.mask, null)
        }
    }

    @Test
    fun tamperedMaskIsRefused() {
        assertEquals(listOf(0x07.toByte()), signed.mask.toList(), "all three members signed")
        // Claiming a signer fewer changes the aggregate key: the signature no longer matches it.
        for (mask in listOf(0x03, 0x05, 0x06)) {
            assertThrows<LightException.VerificationFailed>("mask $mask") {
                verifyCollectiveSignature(Live.roster, signed.message, signed.signature, byteArrayOf(mask.toByte()), 1u)
            }
        }
        // A bit for a member the roster does not have.
        assertThrows<LightException.VerificationFailed> {
            verifyCollectiveSignature(Live.roster, signed.message, signed.signature, byteArrayOf(0x0f), null)
        }
    }

    @Test
    fun otherMessageIsRefused() {
        val other = "conode light client test!".toByteArray()
        val e = assertThrows<LightException.VerificationFailed> {
            verifyCollectiveSignature(Live.roster, other, signed.signature, signed.mask, null)
        }
        assertTrue(e.reason.contains("collective signature"), e.reason)
        assertThrows<LightException.VerificationFailed> {
            verifyCollectiveSignature(Live.roster, signed.message.flipped(0), signed.signature, signed.mask, null)
        }
    }

    @Test
    fun wrongRosterIsRefused() {
        val members = entries(Live.roster)
        assertEquals(3, members.size)
        // One member removed.
        val two = members.take(2).joinToString("\n")
        assertThrows<LightException.VerificationFailed> {
            verifyCollectiveSignature(two, signed.message, signed.signature, signed.mask, null)
        }
        // An outsider in the place of the last member.
        val swapped = (members.take(2) + entries(Live.outsider)).joinToString("\n")
        assertThrows<LightException.VerificationFailed> {
            verifyCollectiveSignature(swapped, signed.message, signed.signature, signed.mask, null)
        }
        // A roster that is not one.
        assertThrows<LightException.InvalidInput> {
            verifyCollectiveSignature("[[servers]]\nAddress = 1\n", signed.message, signed.signature, signed.mask, null)
        }
    }

    @Test
    fun thresholdAboveTheSignersIsRefused() {
        // Four members, of which the three signers come first: 3 of 4 meet the default policy (4 - 1),
        // but not a threshold of 4.
        val four = Live.roster + "\n" + Live.outsider
        val v = verifyCollectiveSignature(four, signed.message, signed.signature, signed.mask, null)
        assertEquals(listOf(0u, 1u, 2u), v.signers)
        assertEquals(3u, v.required)
        assertEquals(4u, v.rosterSize)
        assertThrows<LightException.VerificationFailed> {
            verifyCollectiveSignature(four, signed.message, signed.signature, signed.mask, 4u)
        }
        // A threshold no roster of this size can meet, or one that accepts anything, is a bad argument.
        assertThrows<LightException.InvalidInput> {
            verifyCollectiveSignature(Live.roster, signed.message, signed.signature, signed.mask, 4u)
        }
        assertThrows<LightException.InvalidInput> {
            verifyCollectiveSignature(Live.roster, signed.message, signed.signature, signed.mask, 0u)
        }
    }
}
