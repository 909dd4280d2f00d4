/* Membership by vote through the C ABI: a local cluster makes its network chain, a fifth node asks
 * to join and is voted in (a duplicate ballot is refused), then voted out again; bad arguments get
 * their error codes. */
#include "check.h"

#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Polls node `i`'s membership state until it is `want` (30 s deadline). */
static int wait_state(ConodeCluster *cl, size_t i, const char *want) {
    double deadline = now_s() + 30.0;
    for (;;) {
        char *state = NULL;
        int ok = conode_cluster_node_state(cl, i, &state) == CONODE_OK && strcmp(state, want) == 0;
        conode_string_free(state);
        if (ok) return 1;
        if (now_s() > deadline) return 0;
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* Votes and returns 1 when the call succeeds with state `want`. */
static int vote(ConodeCluster *cl, const uint8_t *proposal, size_t voter, int approve, const char *want) {
    char *state = NULL;
    int rc = conode_cluster_vote(cl, proposal, 32, voter, approve, 10000, &state);
    int ok = rc == CONODE_OK && strcmp(state, want) == 0;
    if (!ok) fprintf(stderr, "vote by %zu: rc %d, state %s\n", voter, rc, state ? state : "(none)");
    conode_string_free(state);
    return ok;
}

int main(void) {
    ConodeCluster *cl = NULL;
    CHECK(conode_cluster_new(4, &cl) == CONODE_OK, "cluster");
    uint8_t network[32] = {0};
    CHECK(conode_cluster_network_create(cl, 9, 0, network) == CONODE_ERR_INVALID, "index out of range");
    CHECK(conode_cluster_network_create(cl, 0, 0, NULL) == CONODE_ERR_NULL, "NULL out_network");
    CHECK(conode_cluster_network_create(cl, 0, 0, network) == CONODE_OK, "network create");
    for (size_t i = 0; i < 4; i++) CHECK(wait_state(cl, i, "PartOfNetwork"), "founder %zu part of the network", i);

    /* A fifth node asks to join; four members, so three yes votes pass it. */
    uint8_t proposal[32] = {0};
    size_t joiner = 0;
    CHECK(conode_cluster_add_node(cl, "{\"host\": \"c-test\"}", 30000, &joiner, proposal) == CONODE_OK, "add node");
    CHECK(joiner == 4, "the new node is #4 (got %zu)", joiner);
    CHECK(wait_state(cl, joiner, "Pending"), "joiner pending");
    CHECK(vote(cl, proposal, 0, 1, "open"), "first yes");
    char *state = NULL;
    CHECK(conode_cluster_vote(cl, proposal, 32, 0, 1, 10000, &state) == CONODE_ERR_STATE && state == NULL,
          "a second ballot by one member is refused");
    CHECK(conode_cluster_vote(cl, proposal, 5, 1, 1, 10000, &state) == CONODE_ERR_INVALID, "short proposal id");
    CHECK(vote(cl, proposal, 1, 1, "open"), "second yes");
    CHECK(vote(cl, proposal, 2, 1, "accepted"), "third yes passes it");
    CHECK(wait_state(cl, joiner, "PartOfNetwork"), "joiner part of the network");

    /* And out again: five members now, four yes votes. */
    uint8_t removal[32] = {0};
    CHECK(conode_cluster_remove_node(cl, joiner, 0, removal) == CONODE_OK, "propose removal");
    CHECK(memcmp(removal, proposal, 32) != 0, "a new proposal id");
    CHECK(vote(cl, removal, 0, 1, "open") && vote(cl, removal, 1, 1, "open") && vote(cl, removal, 2, 1, "open"),
          "three yes");
    CHECK(vote(cl, removal, 3, 1, "accepted"), "fourth yes passes it");
    CHECK(wait_state(cl, joiner, "Retired"), "removed node retired");

    conode_cluster_free(cl);
    return check_summary();
}
