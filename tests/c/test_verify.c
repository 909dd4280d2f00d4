/* The pure verifiers from C, on real inputs: a collective signature made by a local cluster, a
 * skipchain proof from blocks the cluster appended, and the League of Entropy drand beacons of both
 * schemes (the shared vector file named by $CONODE_VECTORS). Each is checked good and tampered.
 * Compiled with -Wall -Wextra -Werror (and ASan). */
#include "check.h"
#include "conode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *last_error(void) {
    const char *m = conode_last_error_message();
    return m ? m : "";
}

/* ---- small helpers: hex, and just enough JSON walking for the vector file ---- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes `len` hex characters into `out` (capacity `cap`); returns the byte count or -1. */
static long hex_decode(const char *hex, size_t len, unsigned char *out, size_t cap) {
    if (len % 2 != 0 || len / 2 > cap) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return (long)(len / 2);
}

static void hex_encode(const unsigned char *in, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* The JSON object (or array) starting at `p` ('{' or '['): its length up to the matching bracket,
 * strings and escapes respected; 0 if unbalanced. */
static size_t json_extent(const char *p) {
    int depth = 0, in_string = 0;
    for (const char *q = p; *q; q++) {
        if (in_string) {
            if (*q == '\\' && q[1]) q++;
            else if (*q == '"') in_string = 0;
        } else if (*q == '"') {
            in_string = 1;
        } else if (*q == '{' || *q == '[') {
            depth++;
        } else if (*q == '}' || *q == ']') {
            if (--depth == 0) return (size_t)(q - p) + 1;
        }
    }
    return 0;
}

/* The string value of `"key"` inside [obj, obj+len) at the top level of that object: a pointer to
 * its first character and its length, or NULL. (Keys of the vector file are unique per object.) */
static const char *json_string(const char *obj, size_t len, const char *key, size_t *out_len) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *end = obj + len;
    for (const char *p = strstr(obj, pattern); p && p < end; p = strstr(p + 1, pattern)) {
        const char *q = p + strlen(pattern);
        while (q < end && (*q == ' ' || *q == ':' || *q == '\n')) q++;
        if (q < end && *q == '"') {
            const char *close = memchr(q + 1, '"', (size_t)(end - q - 1));
            if (!close) return NULL;
            *out_len = (size_t)(close - q - 1);
            return q + 1;
        }
    }
    return NULL;
}

static unsigned long long json_u64(const char *obj, size_t len, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *p = strstr(obj, pattern);
    if (!p || p >= obj + len) return 0;
    p += strlen(pattern);
    while (*p == ' ' || *p == ':') p++;
    return strtoull(p, NULL, 10);
}

static char *dup_range(const char *p, size_t len) {
    char *s = malloc(len + 1);
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    size_t got = fread(text, 1, (size_t)size, f);
    fclose(f);
    text[got] = '\0';
    return text;
}

/* ---- drand beacons (both schemes), from the shared LoE vectors ---- */

static void check_beacon(const char *info, const char *beacon, size_t beacon_len, int chained, const char *chain) {
    char *beacon_json = dup_range(beacon, beacon_len);
    unsigned long long round = json_u64(beacon, beacon_len, "round");
    size_t sig_hex_len = 0, prev_hex_len = 0, rand_hex_len = 0;
    const char *sig_hex = json_string(beacon, beacon_len, "signature", &sig_hex_len);
    const char *prev_hex = json_string(beacon, beacon_len, "previous_signature", &prev_hex_len);
    const char *rand_hex = json_string(beacon, beacon_len, "randomness", &rand_hex_len);
    unsigned char sig[96], prev[96];
    long sig_len = sig_hex ? hex_decode(sig_hex, sig_hex_len, sig, sizeof sig) : -1;
    long prev_len = prev_hex ? hex_decode(prev_hex, prev_hex_len, prev, sizeof prev) : -1;
    CHECK(round > 0 && sig_len > 0, "%s: vector beacon has a round and a signature", chain);
    CHECK(!chained || prev_len > 0, "%s: chained vector has previous_signature", chain);
    if (round == 0 || sig_len <= 0 || (chained && prev_len <= 0)) {
        free(beacon_json);
        return;
    }

    /* Good, as JSON. */
    uint64_t out_round = 0;
    unsigned char randomness[CONODE_RANDOMNESS_LEN];
    int rc = conode_verify_beacon_json(info, beacon_json, &out_round, randomness);
    CHECK(rc == CONODE_OK && out_round == round, "%s round %llu verifies from JSON (rc=%d)", chain, round, rc);
    if (rand_hex) {
        char got[2 * CONODE_RANDOMNESS_LEN + 1];
        hex_encode(randomness, sizeof randomness, got);
        CHECK(rand_hex_len == 64 && strncmp(got, rand_hex, 64) == 0, "%s round %llu randomness", chain, round);
    }
    /* Good, as round + signature (+ previous signature). */
    unsigned char randomness2[CONODE_RANDOMNESS_LEN];
    rc = conode_verify_beacon(info, round, sig, (size_t)sig_len, prev_len > 0 ? prev : NULL,
                              prev_len > 0 ? (size_t)prev_len : 0, randomness2);
    CHECK(rc == CONODE_OK, "%s round %llu verifies from bytes (rc=%d)", chain, round, rc);
    CHECK(memcmp(randomness, randomness2, sizeof randomness) == 0, "same randomness both ways");

    /* Tampered signature: every one of a few bits. */
    size_t bits[] = {0, 7, 100, (size_t)sig_len * 8 - 1};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        unsigned char t[96];
        memcpy(t, sig, (size_t)sig_len);
        t[bits[i] / 8] ^= (unsigned char)(1u << (bits[i] % 8));
        unsigned char untouched[CONODE_RANDOMNESS_LEN];
        memset(untouched, 0xAB, sizeof untouched);
        rc = conode_verify_beacon(info, round, t, (size_t)sig_len, prev_len > 0 ? prev : NULL,
                                  prev_len > 0 ? (size_t)prev_len : 0, untouched);
        CHECK(rc == CONODE_ERR_VERIFY, "%s round %llu: flipped signature bit %zu rejected (rc=%d)", chain, round,
              bits[i], rc);
        CHECK(untouched[0] == 0xAB && untouched[31] == 0xAB, "out-param untouched on failure");
    }
    /* Tampered round. */
    rc = conode_verify_beacon(info, round + 1, sig, (size_t)sig_len, prev_len > 0 ? prev : NULL,
                              prev_len > 0 ? (size_t)prev_len : 0, NULL);
    CHECK(rc == CONODE_ERR_VERIFY && strstr(last_error(), "does not verify"), "%s: other round rejected", chain);
    /* Chained: the previous signature matters and is required. */
    if (chained) {
        unsigned char t[96];
        memcpy(t, prev, (size_t)prev_len);
        t[10] ^= 1;
        rc = conode_verify_beacon(info, round, sig, (size_t)sig_len, t, (size_t)prev_len, NULL);
        CHECK(rc == CONODE_ERR_VERIFY, "%s: tampered previous signature rejected (rc=%d)", chain, rc);
        rc = conode_verify_beacon(info, round, sig, (size_t)sig_len, NULL, 0, NULL);
        CHECK(rc == CONODE_ERR_VERIFY && strstr(last_error(), "previous signature"),
              "%s: missing previous signature rejected: %s", chain, last_error());
    }
    /* Tampered JSON: the signature's first hex digit changed. */
    char *t = dup_range(beacon, beacon_len);
    char *s = t + (sig_hex - beacon);
    s[0] = s[0] == '8' ? '9' : '8';
    rc = conode_verify_beacon_json(info, t, &out_round, NULL);
    CHECK(rc == CONODE_ERR_VERIFY, "%s: tampered beacon JSON rejected (rc=%d)", chain, rc);
    free(t);
    free(beacon_json);
}

static void test_drand_vectors(void) {
    const char *path = getenv("CONODE_VECTORS");
    CHECK(path != NULL, "CONODE_VECTORS names the drand vector file (tests/run-c.sh sets it)");
    if (!path) return;
    char *text = read_file(path);
    CHECK(text != NULL, "read %s", path);
    if (!text) return;
    const char *chains = strstr(text, "\"chains\"");
    CHECK(chains != NULL, "vector file has chains");
    const char *p = chains ? strchr(chains, '[') : NULL;
    int chained_beacons = 0, quicknet_beacons = 0;
    size_t chains_len = p ? json_extent(p) : 0;
    for (const char *c = p ? strchr(p + 1, '{') : NULL; c && c < p + chains_len; c = strchr(c + 1, '{')) {
        size_t len = json_extent(c);
        if (len == 0) break;
        char *info = dup_range(c, len); /* a drand /info document plus a `beacons` list */
        size_t name_len = 0, scheme_len = 0, hash_len = 0;
        const char *name = json_string(c, len, "name", &name_len);
        const char *scheme = json_string(c, len, "scheme", &scheme_len);
        const char *hash = json_string(c, len, "chain_hash", &hash_len);
        if (!hash) hash = json_string(c, len, "hash", &hash_len);
        char chain[64];
        snprintf(chain, sizeof chain, "%.*s", (int)(name ? name_len : 0), name ? name : "");
        int chained = scheme && scheme_len == strlen("pedersen-bls-chained") &&
                      strncmp(scheme, "pedersen-bls-chained", scheme_len) == 0;
        int quicknet = scheme && scheme_len == strlen("bls-unchained-g1-rfc9380") &&
                       strncmp(scheme, "bls-unchained-g1-rfc9380", scheme_len) == 0;

        char *computed = NULL;
        CHECK(conode_chain_info_hash(info, &computed) == CONODE_OK, "%s: chain info parses", chain);
        CHECK(computed && hash && hash_len == 64 && strncmp(computed, hash, 64) == 0, "%s: chain hash %s", chain,
              computed ? computed : "");
        conode_string_free(computed);

        const char *beacons = strstr(c, "\"beacons\"");
        const char *arr = beacons && beacons < c + len ? strchr(beacons, '[') : NULL;
        size_t arr_len = arr ? json_extent(arr) : 0;
        for (const char *b = arr ? strchr(arr, '{') : NULL; b && b < arr + arr_len; b = strchr(b + 1, '{')) {
            size_t blen = json_extent(b);
            if (blen == 0) break;
            check_beacon(info, b, blen, chained, chain);
            chained_beacons += chained;
            quicknet_beacons += quicknet;
            b += blen - 1;
        }

        /* All of the chain's beacons at once (batch verification): the same verdicts. */
        if (arr && arr_len > 0) {
            char *all = dup_range(arr, arr_len);
            unsigned char ok[16];
            size_t verified = 0, n = 0;
            for (const char *b = strchr(all, '{'); b; b = strchr(b + json_extent(b), '{')) n++;
            memset(ok, 7, sizeof ok);
            int rc = conode_verify_beacons_json(info, all, ok, sizeof ok, &verified);
            CHECK(rc == CONODE_OK && verified == n && n > 0, "%s: %zu beacons verify in a batch (rc=%d, %zu)", chain,
                  n, rc, verified);
            for (size_t i = 0; i < n && i < sizeof ok; i++) CHECK(ok[i] == 1, "%s: batch verdict %zu", chain, i);
            /* The first beacon's signature tampered (its randomness dropped): only it fails. */
            char *sig = strstr(all, "\"signature\"");
            char *rnd = strstr(all, "\"randomness\"");
            if (sig && rnd) {
                memcpy(rnd, "\"randomnesX\"", 12);
                char *v = strchr(sig + 11, '"') + 1;
                *v = *v == '8' ? '9' : '8';
                memset(ok, 7, sizeof ok);
                rc = conode_verify_beacons_json(info, all, ok, sizeof ok, &verified);
                CHECK(rc == CONODE_ERR_VERIFY && ok[0] == 0 && verified == n - 1, "%s: tampered beacon found (rc=%d)",
                      chain, rc);
                for (size_t i = 1; i < n && i < sizeof ok; i++) CHECK(ok[i] == 1, "%s: untouched beacon %zu", chain, i);
                CHECK(strstr(last_error(), "do not verify") != NULL, "message: %s", last_error());
            }
            rc = conode_verify_beacons_json(info, all, ok, 0, &verified);
            CHECK(rc == CONODE_ERR_INVALID, "%s: no room for the verdicts is refused (rc=%d)", chain, rc);
            rc = conode_verify_beacons_json(info, "[{\"round\": 1}", ok, sizeof ok, NULL);
            CHECK(rc == CONODE_ERR_INVALID, "%s: broken JSON is refused (rc=%d)", chain, rc);
            free(all);
        }

        /* A chain info whose key no longer matches its hash is refused, and so is its beacon. */
        char *bad = dup_range(c, len);
        size_t pk_len = 0;
        const char *pk = json_string(bad, len, "public_key", &pk_len);
        if (pk) {
            char *d = bad + (pk - bad) + 20;
            *d = *d == '0' ? '1' : '0';
            char *h = NULL;
            int rc = conode_chain_info_hash(bad, &h);
            CHECK(rc == CONODE_ERR_INVALID && h == NULL, "%s: tampered chain info refused (rc=%d)", chain, rc);
            CHECK(strstr(last_error(), "chain info") != NULL, "message names the chain info: %s", last_error());
        }
        free(bad);
        free(info);
        c += len - 1;
    }
    CHECK(chained_beacons > 0, "pedersen-bls-chained vectors checked");
    CHECK(quicknet_beacons > 0, "bls-unchained-g1-rfc9380 (quicknet) vectors checked");
    CHECK(conode_verify_beacon_json("{}", "{}", NULL, NULL) == CONODE_ERR_INVALID, "empty info refused");
    CHECK(conode_verify_beacon_json(NULL, "{}", NULL, NULL) == CONODE_ERR_NULL, "NULL info refused");
    free(text);
}

/* ---- collective signatures and skipchain proofs from a local cluster ---- */

static void test_cosi(ConodeCluster *cl, const char *roster) {
    const char *msg = "pay 3 coins to bob";
    size_t msg_len = strlen(msg);
    unsigned char sig[CONODE_COSI_SIGNATURE_LEN];
    unsigned char *mask = NULL;
    size_t mask_len = 0;
    int rc = conode_cluster_sign(cl, 0, (const unsigned char *)msg, msg_len, 0, sig, &mask, &mask_len);
    CHECK(rc == CONODE_OK && mask != NULL && mask_len == 1, "cluster signs (rc=%d)", rc);
    if (rc != CONODE_OK) return;

    size_t signers = 0;
    rc = conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, sig, sizeof sig, mask, mask_len, 0, &signers);
    CHECK(rc == CONODE_OK && signers >= 3, "signature verifies (rc=%d, %zu signers)", rc, signers);
    CHECK(conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, sig, sizeof sig, mask, mask_len, 3, NULL) ==
              CONODE_OK,
          "explicit threshold 3 of 4");

    /* Tampered message, signature, mask. */
    rc = conode_verify_cosi(roster, (const unsigned char *)"pay 4 coins to bob", msg_len, sig, sizeof sig, mask,
                            mask_len, 0, &signers);
    CHECK(rc == CONODE_ERR_VERIFY && strstr(last_error(), "does not verify"), "other message rejected (rc=%d)", rc);
    for (size_t i = 0; i < sizeof sig; i += 19) {
        unsigned char t[CONODE_COSI_SIGNATURE_LEN];
        memcpy(t, sig, sizeof t);
        t[i] ^= 0x04;
        size_t untouched = 12345;
        rc = conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, t, sizeof t, mask, mask_len, 0, &untouched);
        CHECK(rc == CONODE_ERR_VERIFY && untouched == 12345, "signature byte %zu tampered rejected (rc=%d)", i, rc);
    }
    unsigned char m = mask[0];
    unsigned char fewer = (unsigned char)(m & (m - 1)); /* one signer less */
    rc = conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, sig, sizeof sig, &fewer, 1, 1, NULL);
    CHECK(rc == CONODE_ERR_VERIFY, "mask without a signer rejected (rc=%d)", rc);
    unsigned char beyond = (unsigned char)(m | 0x10); /* bit 4: no such member */
    rc = conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, sig, sizeof sig, &beyond, 1, 0, NULL);
    CHECK(rc == CONODE_ERR_VERIFY && strstr(last_error(), "past the roster"), "padding bit rejected: %s", last_error());
    rc = conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, sig, 95, mask, mask_len, 0, NULL);
    CHECK(rc == CONODE_ERR_VERIFY, "short signature rejected (rc=%d)", rc);

    /* Arguments and roster. */
    rc = conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, sig, sizeof sig, mask, mask_len, 5, NULL);
    CHECK(rc == CONODE_ERR_INVALID && strstr(last_error(), "exceeds"), "threshold above n refused (rc=%d)", rc);
    rc = conode_verify_cosi("[[servers]]\nAddress = 1\n", (const unsigned char *)msg, msg_len, sig, sizeof sig, mask,
                            mask_len, 0, NULL);
    CHECK(rc == CONODE_ERR_CONFIG && strstr(last_error(), "roster"), "garbled roster refused: %s", last_error());
    rc = conode_verify_cosi(roster, NULL, 5, sig, sizeof sig, mask, mask_len, 0, NULL);
    CHECK(rc == CONODE_ERR_NULL && strstr(last_error(), "message"), "NULL message refused");
    conode_bytes_free(mask, mask_len);

    /* With a member down the default threshold (3 of 4) still signs; a policy of 4 rejects it. */
    CHECK(conode_cluster_stop_node(cl, 3) == CONODE_OK, "stop node 3");
    rc = conode_cluster_sign(cl, 0, (const unsigned char *)msg, msg_len, 0, sig, &mask, &mask_len);
    CHECK(rc == CONODE_OK, "signs with a member down (rc=%d)", rc);
    if (rc == CONODE_OK) {
        CHECK((mask[0] & 0x08) == 0, "the stopped member is not in the mask");
        rc = conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, sig, sizeof sig, mask, mask_len, 0, &signers);
        CHECK(rc == CONODE_OK && signers == 3, "3 of 4 verifies under the default policy");
        rc = conode_verify_cosi(roster, (const unsigned char *)msg, msg_len, sig, sizeof sig, mask, mask_len, 4, NULL);
        CHECK(rc == CONODE_ERR_VERIFY && strstr(last_error(), "3 of 4"), "threshold 4 rejects it: %s", last_error());
        conode_bytes_free(mask, mask_len);
    }
    unsigned char *no_mask = NULL;
    rc = conode_cluster_sign(cl, 0, (const unsigned char *)msg, msg_len, 4, sig, &no_mask, &mask_len);
    CHECK(rc == CONODE_ERR_RUNTIME && no_mask == NULL, "a threshold of 4 cannot be reached (rc=%d)", rc);
    CHECK(conode_cluster_restart_node(cl, 3) == CONODE_OK, "restart node 3");
}

static void test_skipchain(ConodeCluster *cl) {
    unsigned char genesis[CONODE_HASH_LEN];
    int rc = conode_cluster_skipchain_create(cl, 0, 2, 4, (const unsigned char *)"genesis", 7, genesis);
    CHECK(rc == CONODE_OK, "skipchain created (rc=%d)", rc);
    if (rc != CONODE_OK) return;
    uint64_t index = 0;
    char data[32];
    for (int i = 1; i <= 6; i++) {
        snprintf(data, sizeof data, "block %d", i);
        rc = conode_cluster_skipchain_append(cl, 0, genesis, sizeof genesis, (const unsigned char *)data, strlen(data),
                                             &index);
        CHECK(rc == CONODE_OK && index == (uint64_t)i, "append %d (rc=%d, index %llu)", i, rc,
              (unsigned long long)index);
    }
    unsigned char *proof = NULL;
    size_t proof_len = 0;
    rc = conode_cluster_skipchain_proof(cl, 0, genesis, sizeof genesis, &proof, &proof_len);
    CHECK(rc == CONODE_OK && proof && proof_len > 0, "proof fetched (rc=%d)", rc);
    if (rc != CONODE_OK) return;

    uint64_t latest = 0;
    unsigned char latest_hash[CONODE_HASH_LEN] = {0};
    rc = conode_verify_skipchain_proof(genesis, sizeof genesis, proof, proof_len, &latest, latest_hash);
    CHECK(rc == CONODE_OK && latest == 6, "proof verifies to block 6 (rc=%d, latest %llu)", rc,
          (unsigned long long)latest);
    unsigned char zero[CONODE_HASH_LEN] = {0};
    CHECK(memcmp(latest_hash, zero, sizeof zero) != 0 && memcmp(latest_hash, genesis, sizeof genesis) != 0,
          "newest block hash written");
    /* A proof from the newest block is that block alone. */
    unsigned char *self_proof = NULL;
    size_t self_len = 0;
    CHECK(conode_cluster_skipchain_proof(cl, 0, latest_hash, sizeof latest_hash, &self_proof, &self_len) == CONODE_OK,
          "proof from the newest block");
    uint64_t again = 0;
    CHECK(conode_verify_skipchain_proof(latest_hash, sizeof latest_hash, self_proof, self_len, &again, NULL) ==
                  CONODE_OK &&
              again == 6,
          "trusting the newest block directly");
    conode_bytes_free(self_proof, self_len);

    /* Wrong trusted block. */
    unsigned char other[CONODE_HASH_LEN];
    memcpy(other, genesis, sizeof other);
    other[0] ^= 1;
    uint64_t untouched = 77;
    rc = conode_verify_skipchain_proof(other, sizeof other, proof, proof_len, &untouched, NULL);
    CHECK(rc == CONODE_ERR_VERIFY && untouched == 77 && strstr(last_error(), "trusted"),
          "proof from another start rejected: %s", last_error());
    /* Tampered block data ("block 6" -> "block 7"): its hash no longer matches. */
    unsigned char *t = malloc(proof_len);
    memcpy(t, proof, proof_len);
    int tampered = 0;
    for (size_t i = 0; i + 7 <= proof_len; i++) {
        if (memcmp(t + i, "block 6", 7) == 0) {
            t[i + 6] = '7';
            tampered = 1;
        }
    }
    CHECK(tampered, "found the newest block's data in the proof");
    rc = conode_verify_skipchain_proof(genesis, sizeof genesis, t, proof_len, &latest, NULL);
    CHECK(rc == CONODE_ERR_VERIFY && strstr(last_error(), "hash"), "tampered data rejected: %s", last_error());
    /* Truncated proof: does not decode. */
    rc = conode_verify_skipchain_proof(genesis, sizeof genesis, proof, proof_len - 10, &latest, NULL);
    CHECK(rc == CONODE_ERR_INVALID, "truncated proof refused (rc=%d): %s", rc, last_error());
    rc = conode_verify_skipchain_proof(genesis, 31, proof, proof_len, NULL, NULL);
    CHECK(rc == CONODE_ERR_INVALID && strstr(last_error(), "32"), "short trusted hash refused");
    rc = conode_verify_skipchain_proof(genesis, sizeof genesis, NULL, 0, NULL, NULL);
    CHECK(rc == CONODE_ERR_INVALID, "empty proof refused (rc=%d)", rc);
    free(t);
    conode_bytes_free(proof, proof_len);

    /* Appending to a chain this handle did not create is refused. */
    rc = conode_cluster_skipchain_append(cl, 0, other, sizeof other, (const unsigned char *)"x", 1, NULL);
    CHECK(rc == CONODE_ERR_INVALID && strstr(last_error(), "genesis"), "unknown chain refused: %s", last_error());
    unsigned char *none = NULL;
    rc = conode_cluster_skipchain_proof(cl, 0, other, sizeof other, &none, &proof_len);
    CHECK(rc == CONODE_ERR_INVALID && none == NULL, "proof of an unknown block refused (rc=%d)", rc);
}

int main(void) {
    test_drand_vectors();

    ConodeCluster *cl = NULL;
    CHECK(conode_cluster_new(4, &cl) == CONODE_OK, "cluster of 4");
    if (cl) {
        char *roster = NULL;
        CHECK(conode_cluster_roster_toml(cl, &roster) == CONODE_OK, "roster");
        test_cosi(cl, roster);
        test_skipchain(cl);
        conode_string_free(roster);
        conode_cluster_free(cl);
    }
    conode_bytes_free(NULL, 0);
    return check_summary();
}
