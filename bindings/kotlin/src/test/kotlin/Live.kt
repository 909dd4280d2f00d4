// What the JUnit tests share: the live cothority's files and hashes that tests/run-kotlin.sh passes as
// system properties, hex and sha256 helpers, and a small protobuf walker that finds fields inside a
// skipchain proof so the tests can tamper with exactly one of them.

import java.io.File
import java.security.MessageDigest
import org.junit.jupiter.api.Assertions.assertTrue

/** The local cothority started by tests/run-kotlin.sh and what it made. */
object Live {
    /** A system property set by tests/run-kotlin.sh (a clear failure when the tests run without it). */
    fun property(name: String): String {
        val value = System.getProperty(name)
        assertTrue(!value.isNullOrEmpty(), "system property $name is not set: run the tests with tests/run-kotlin.sh")
        return value!!
    }

    fun file(name: String): File = File(property(name)).also { assertTrue(it.isFile, "$name: no file ${it.path}") }

    /** Client port of member 0 (`ws://127.0.0.1:P`). */
    val url get() = property("conode.url")
    /** The three members' roster (concatenated public.toml entries). */
    val roster get() = file("conode.roster").readText()
    /** public.toml of a configured conode that is not in the cothority and never ran. */
    val outsider get() = file("conode.outsider").readText()
    /** Signature file written by `conode sign --out`. */
    val signatureFile get() = file("conode.signature")
    /** Genesis hash (hex) of the skipchain made by `conode skipchain create`. */
    val genesis get() = property("conode.genesis")
    /** Number of blocks appended after the genesis. */
    val blocks get() = property("conode.blocks").toULong()
    /** Proof from the genesis to the newest block, saved by `conode skipchain update --out`. */
    val proof: ByteArray get() = file("conode.proof").readBytes()
    /** drand scheme of the beacon chain started by `conode beacon init`. */
    val beaconScheme get() = property("conode.beacon.scheme")
    /** Chain hash printed by `conode beacon init`. */
    val chainHash get() = property("conode.chain.hash")
    /** The shared drand test vectors (tests/vectors/drand.json). */
    val vectors get() = file("conode.vectors").readText()
}

fun String.hexToBytes(): ByteArray {
    require(length % 2 == 0) { "odd hex length" }
    return ByteArray(length / 2) { i -> substring(2 * i, 2 * i + 2).toInt(16).toByte() }
}

fun ByteArray.toHex(): String = joinToString("") { "%02x".format(it.toInt() and 0xff) }

fun sha256(bytes: ByteArray): ByteArray = MessageDigest.getInstance("SHA-256").digest(bytes)

/** A copy with the lowest bit of byte `at` flipped. */
fun ByteArray.flipped(at: Int): ByteArray = copyOf().also { it[at] = (it[at].toInt() xor 1).toByte() }

/** A copy of a hex string with one hex digit changed at character `at`. */
fun String.flippedHex(at: Int): String = substring(0, at) + (if (this[at] == '0') '1' else '0') + substring(at + 1)

/** One protobuf field: its number and where its value lies in the buffer (`[start, end)`). */
data class ProtoField(val number: Int, val start: Int, val end: Int)

/** The fields of the protobuf message in `buf[start, end)`, in order. */
fun protoFields(buf: ByteArray, start: Int = 0, end: Int = buf.size): List<ProtoField> {
    val fields = mutableListOf<ProtoField>()
    var at = start
    fun varint(): Long {
        var value = 0L
        var shift = 0
        while (true) {
            val b = buf[at++].toInt() and 0xff
            value = value or ((b and 0x7f).toLong() shl shift)
            if (b < 0x80) return value
            shift += 7
        }
    }
    while (at < end) {
        val key = varint()
        val number = (key ushr 3).toInt()
        when ((key and 7).toInt()) {
            0 -> { val s = at; varint(); fields += ProtoField(number, s, at) }
            1 -> { fields += ProtoField(number, at, at + 8); at += 8 }
            2 -> { val len = varint().toInt(); fields += ProtoField(number, at, at + len); at += len }
            5 -> { fields += ProtoField(number, at, at + 4); at += 4 }
            else -> error("unsupported protobuf wire type in key $key")
        }
    }
    check(at == end) { "protobuf message overruns its end" }
    return fields
}

/** The whole buffer as one message. */
fun ByteArray.asMessage() = ProtoField(0, 0, size)

/** The fields numbered `number` of the message in `parent`. */
fun ByteArray.fieldsOf(parent: ProtoField, number: Int) = protoFields(this, parent.start, parent.end).filter { it.number == number }
