/* Beacon resharing through the C ABI: a local cluster of three starts a beacon (1 s period), its
 * group is reshared by hand (conode_cluster_beacon_reshare) to the same three with threshold 3, and
 * every round from 1 through the transition verifies under the chain info printed at the start
 * (same chain hash and group key) and chains on the round before; bad arguments get their error
 * codes. Compiled with -Wall -Wextra -Werror (and ASan). */
#include "check.h"

#include <stdlib.h>
#include <string.h>

/* The value of string field `key` in a one-level JSON object (a malloc'd copy, or NULL). */
static char *json_field(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *start = strstr(json, pattern);
    if (!start) return NULL;
    start += strlen(pattern);
    const char *end = strchr(start, '"');
    if (!end) return NULL;
    char *out = malloc((size_t)(end - start) + 1);
    if (!out) return NULL;
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
    return out;
}

int main(void) {
    ConodeCluster *cl = NULL;
    CHECK(conode_cluster_new(3, &cl) == CONODE_OK, "cluster");
    size_t all[3] = {0, 1, 2};
    uint64_t t = 0;
    char *beacon = NULL;
    CHECK(conode_cluster_beacon_reshare(cl, 0, all, 3, 3, 500, 0, &t) == CONODE_ERR_STATE, "no chain to reshare");
    CHECK(conode_cluster_beacon_round(cl, 0, 1, 0, &beacon) == CONODE_ERR_STATE && beacon == NULL, "no chain");

    size_t size = 0;
    uint32_t threshold = 0;
    uint64_t since = 0;
    CHECK(conode_cluster_beacon_group(cl, 0, &size, &threshold, &since) == CONODE_ERR_STATE, "no group yet");
    char *info = NULL;
    CHECK(conode_cluster_beacon_start(cl, 0, "no-such-scheme", 1, 500, &info) == CONODE_ERR_INVALID, "bad scheme");
    CHECK(conode_cluster_beacon_start(cl, 0, NULL, 0, 500, &info) == CONODE_ERR_INVALID, "period 0");
    CHECK(conode_cluster_beacon_start(cl, 0, NULL, 1, 500, &info) == CONODE_OK && info != NULL, "beacon start");
    if (!info) return check_summary();
    CHECK(conode_cluster_beacon_start(cl, 1, NULL, 1, 500, NULL) == CONODE_ERR_STATE, "a node runs one chain");

    CHECK(conode_cluster_beacon_round(cl, 1, 1, 15000, &beacon) == CONODE_OK, "round 1");
    CHECK(beacon && conode_verify_beacon_json(info, beacon, NULL, NULL) == CONODE_OK, "round 1 verifies");
    conode_string_free(beacon);
    beacon = NULL;
    CHECK(conode_cluster_beacon_group(cl, 1, &size, &threshold, &since) == CONODE_OK && size == 3 && threshold == 2 &&
              since == 0,
          "the DKG's group: 3 members, threshold 2 (got %zu, %u, %llu)", size, threshold, (unsigned long long)since);

    /* Bad arguments are refused before anything happens. */
    size_t bad[2] = {0, 7};
    CHECK(conode_cluster_beacon_reshare(cl, 0, NULL, 2, 0, 500, 0, &t) == CONODE_ERR_NULL, "NULL members");
    CHECK(conode_cluster_beacon_reshare(cl, 0, all, 0, 0, 500, 0, &t) == CONODE_ERR_INVALID, "no members");
    CHECK(conode_cluster_beacon_reshare(cl, 0, bad, 2, 0, 500, 0, &t) == CONODE_ERR_INVALID, "member out of range");
    CHECK(conode_cluster_beacon_reshare(cl, 0, all, 3, 4, 500, 0, &t) == CONODE_ERR_INVALID, "threshold above n");

    /* The same three, threshold 3 (from 2): the new group takes over at round t. */
    CHECK(conode_cluster_beacon_reshare(cl, 0, all, 3, 3, 500, 0, &t) == CONODE_OK, "reshare");
    CHECK(t > 1, "transition round %llu", (unsigned long long)t);
    CHECK(conode_cluster_beacon_reshare(cl, 1, all, 3, 2, 500, 0, NULL) == CONODE_ERR_STATE,
          "a second transition while one is agreed");

    /* Every round 1..t+1 verifies under the first info and chains on the previous one. */
    CHECK(conode_cluster_beacon_round(cl, 2, t + 1, 20000, &beacon) == CONODE_OK, "round t+1 at node 2");
    conode_string_free(beacon);
    beacon = NULL;
    CHECK(conode_cluster_beacon_group(cl, 2, NULL, &threshold, &since) == CONODE_OK && threshold == 3 && since == t,
          "node 2 runs the new group (threshold %u from round %llu)", threshold, (unsigned long long)since);
    char *previous = NULL;
    for (uint64_t r = 1; r <= t + 1; r++) {
        size_t node = (size_t)(r % 3);
        if (conode_cluster_beacon_round(cl, node, r, 5000, &beacon) != CONODE_OK) {
            CHECK(0, "round %llu missing at node %zu", (unsigned long long)r, node);
            break;
        }
        uint64_t round = 0;
        CHECK(conode_verify_beacon_json(info, beacon, &round, NULL) == CONODE_OK && round == r,
              "round %llu verifies", (unsigned long long)r);
        char *prev = json_field(beacon, "previous_signature");
        if (previous) CHECK(prev && strcmp(prev, previous) == 0, "round %llu chains", (unsigned long long)r);
        free(prev);
        free(previous);
        previous = json_field(beacon, "signature");
        conode_string_free(beacon);
        beacon = NULL;
    }
    free(previous);

    /* Still one chain; round t (the new group's first) verifies under the first info's key. */
    CHECK(conode_cluster_beacon_start(cl, 2, NULL, 1, 500, NULL) == CONODE_ERR_STATE, "still one chain");
    CHECK(conode_cluster_beacon_round(cl, 0, t, 0, &beacon) == CONODE_OK, "round t stored");
    CHECK(beacon && conode_verify_beacon_json(info, beacon, NULL, NULL) == CONODE_OK, "round t under the first key");
    conode_string_free(beacon);
    conode_string_free(info);
    conode_cluster_free(cl);
    return check_summary();
}
