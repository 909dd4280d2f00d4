// Skipchain proofs through uniffi: ConodeClient.latestBlock fetches and verifies the newest block of
// the live chain from its genesis, and verifySkipchainProof checks the raw proof `conode skipchain
// update --out` saved; a changed block, link signature or mask, a wrong trusted block and broken
// bytes are refused.

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.conode.ConodeClient
import uniffi.conode.LightException
import uniffi.conode.VerifiedBlock
import uniffi.conode.parseRoster
import uniffi.conode.verifySkipchainProof

class SkipchainTest {
    private fun client() = ConodeClient(Live.url, 10_000UL)

    private fun assertNewest(block: VerifiedBlock) {
        assertEquals(Live.blocks, block.index)
        assertEquals(Live.genesis, block.genesis)
        assertEquals("block ${Live.blocks}", String(block.data))
        assertEquals(64, block.hash.length)
        val members = parseRoster(Live.roster)
        assertEquals(members.map { it.publicKey }, block.roster.map { it.publicKey })
        assertEquals(members.map { it.cosiPublicKey }, block.roster.map { it.cosiPublicKey })
    }

    @Test
    fun clientFetchesAndVerifiesTheNewestBlock() {
        client().use { c ->
            val newest = c.latestBlock(Live.genesis)
            assertNewest(newest)
            // The proof skips: fewer forward links than blocks.
            assertTrue(newest.hops in 1u until Live.blocks.toUInt(), "hops ${newest.hops}")
            // From the newest block there is nothing to follow.
            val again = c.latestBlock(newest.hash)
            assertEquals(newest.hash, again.hash)
            assertEquals(0u, again.hops)
        }
    }

    @Test
    fun clientRefusesUnknownOrMalformedHashes() {
        client().use { c ->
            val unknown = assertThrows<LightException.ServerException> { c.latestBlock("ab".repeat(32)) }
            assertEquals("not_found", unknown.code, unknown.reason)
            assertThrows<LightException.InvalidInput> { c.latestBlock("not hex") }
            assertThrows<LightException.InvalidInput> { c.latestBlock("abcd") }
        }
    }

    @Test
    fun savedProofVerifies() {
        val block = verifySkipchainProof(Live.genesis, Live.proof)
        assertNewest(block)
        client().use { c -> assertEquals(c.latestBlock(Live.genesis).hash, block.hash) }
    }

    /** The proof's blocks (field 1 of `Proof`). */
    private fun blocks(proof: ByteArray) = proof.fieldsOf(proof.asMessage(), 1)

    @Test
    fun changedBlockDataIsRefused() {
        val proof = Live.proof
        val last = blocks(proof).last()
        val data = proof.fieldsOf(last, 7).single()
        assertEquals("block ${Live.blocks}", String(proof.copyOfRange(data.start, data.end)))
        val e = assertThrows<LightException.VerificationFailed> {
            verifySkipchainProof(Live.genesis, proof.flipped(data.end - 1))
        }
        assertTrue(e.reason.contains("skipchain proof"), e.reason)
    }

    @Test
    fun changedLinkSignatureOrMaskIsRefused() {
        val proof = Live.proof
        val chain = blocks(proof)
        assertTrue(chain.size >= 2, "the proof follows at least one link")
        // Every forward link the proof follows: from each block to the next one in the proof.
        for ((from, to) in chain.zipWithNext()) {
            val next = proof.fieldsOf(to, 10).single().let { proof.copyOfRange(it.start, it.end) }
            val link = proof.fieldsOf(from, 11).single { l ->
                proof.fieldsOf(l, 2).single().let { proof.copyOfRange(it.start, it.end).contentEquals(next) }
            }
            val cosi = proof.fieldsOf(link, 4).single()
            val signature = proof.fieldsOf(cosi, 1).single()
            val mask = proof.fieldsOf(cosi, 2).single()
            assertEquals(96, signature.end - signature.start)
            for (at in listOf(signature.start, signature.start + 50, signature.end - 1, mask.start)) {
                assertThrows<LightException.VerificationFailed>("byte $at") {
                    verifySkipchainProof(Live.genesis, proof.flipped(at))
                }
            }
        }
    }

    @Test
    fun wrongTrustedBlockIsRefused() {
        val proof = Live.proof
        assertThrows<LightException.VerificationFailed> { verifySkipchainProof(Live.genesis.flippedHex(0), proof) }
        // The newest block is trusted, but the proof starts at the genesis.
        val newest = verifySkipchainProof(Live.genesis, proof).hash
        assertThrows<LightException.VerificationFailed> { verifySkipchainProof(newest, proof) }
        assertThrows<LightException.InvalidInput> { verifySkipchainProof("xyz", proof) }
        assertThrows<LightException.InvalidInput> { verifySkipchainProof(Live.genesis.substring(2), proof) }
    }

    @Test
    fun brokenProofBytesAreRefused() {
        val proof = Live.proof
        // Cut inside the last block: no longer a protobuf message.
        assertThrows<LightException.InvalidInput> { verifySkipchainProof(Live.genesis, proof.copyOf(proof.size - 1)) }
        assertThrows<LightException.InvalidInput> { verifySkipchainProof(Live.genesis, byteArrayOf(0x0a, 0x7f, 1)) }
        // A proof without its newest block still verifies, but only up to the block before.
        val lastBlock = blocks(proof).last()
        val lastKeyStart = lastBlock.start - lengthPrefixSize(lastBlock.end - lastBlock.start) - 1
        val block = verifySkipchainProof(Live.genesis, proof.copyOf(lastKeyStart))
        assertTrue(block.index in 1UL until Live.blocks, "index ${block.index}")
    }

    private fun lengthPrefixSize(len: Int): Int {
        var n = 1
        var v = len ushr 7
        while (v != 0) { n++; v = v ushr 7 }
        return n
    }
}
