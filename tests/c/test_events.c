/* Node events from C: a node handle's own subscription sees its start and stop as JSON events; an
 * independent subscription on a cluster member sees each appended block once, in order; timeouts
 * leave NULL; every string is freed (run under AddressSanitizer by tests/run-c.sh). */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Waits for an event whose JSON contains `needle` (up to `tries` events, 10 s each). Returns it
 * (free with conode_string_free) or NULL. */
static char *wait_for(ConodeEvents *ev, const char *needle, int tries) {
    for (int i = 0; i < tries; i++) {
        char *json = NULL;
        if (conode_events_next(ev, 10000, &json) != CONODE_OK || json == NULL) return NULL;
        if (strstr(json, needle) != NULL) return json;
        conode_string_free(json);
    }
    return NULL;
}

static void test_node_events(void) {
    ConodeConfig *cfg = NULL;
    CHECK(conode_config_generate("127.0.0.1", 0, "events", &cfg) == CONODE_OK, "generate");
    char dir[] = "/tmp/conode-c-events-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "tempdir");
    ConodeNode *node = NULL;
    CHECK(conode_node_new(cfg, dir, &node) == CONODE_OK, "node_new");
    conode_config_free(cfg);

    char *json = (char *)1;
    CHECK(conode_node_next_event(node, 0, &json) == CONODE_OK && json == NULL, "nothing before start");
    CHECK(conode_node_next_event(NULL, 0, &json) == CONODE_ERR_NULL, "NULL node");
    CHECK(conode_node_next_event(node, 0, NULL) == CONODE_ERR_NULL, "NULL out");

    CHECK(conode_node_start(node) == CONODE_OK, "start");
    json = NULL;
    CHECK(conode_node_next_event(node, 10000, &json) == CONODE_OK && json != NULL, "an event after start");
    CHECK(json && strstr(json, "\"kind\":\"node_started\"") && strstr(json, "\"client_addr\":\"127.0.0.1:"),
          "node_started with its addresses: %s", json ? json : "(null)");
    conode_string_free(json);

    CHECK(conode_node_stop(node) == CONODE_OK, "stop");
    json = NULL;
    CHECK(conode_node_next_event(node, 10000, &json) == CONODE_OK && json && strstr(json, "\"node_stopping\""),
          "node_stopping: %s", json ? json : "(null)");
    conode_string_free(json);

    ConodeEvents *ev = NULL;
    CHECK(conode_node_events(node, &ev) == CONODE_OK && ev != NULL, "independent subscription");
    conode_node_free(node);
    json = (char *)1;
    CHECK(conode_events_next(ev, 100, &json) == CONODE_OK && json == NULL, "freed node: no more events");
    conode_events_free(ev);
    conode_events_free(NULL);
}

static void test_cluster_block_events(void) {
    ConodeCluster *cl = NULL;
    CHECK(conode_cluster_new(3, &cl) == CONODE_OK, "cluster");
    ConodeEvents *ev = NULL;
    CHECK(conode_cluster_node_events(cl, 7, &ev) == CONODE_ERR_INVALID && ev == NULL, "index out of range");
    CHECK(conode_cluster_node_events(cl, 1, &ev) == CONODE_OK, "member events");
    uint8_t genesis[32];
    CHECK(conode_cluster_skipchain_create(cl, 0, 2, 4, (const uint8_t *)"g", 1, genesis) == CONODE_OK, "create");
    for (uint64_t i = 1; i <= 3; i++) {
        uint64_t index = 0;
        CHECK(conode_cluster_skipchain_append(cl, 0, genesis, 32, (const uint8_t *)"x", 1, &index) == CONODE_OK &&
                  index == i,
              "append %llu", (unsigned long long)i);
    }
    for (int i = 0; i <= 3; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\"index\":%d", i);
        char *json = wait_for(ev, "\"block_stored\"", 50);
        CHECK(json != NULL && strstr(json, needle) != NULL, "block %d stored, in order: %s", i, json ? json : "(null)");
        conode_string_free(json);
    }
    conode_events_free(ev);
    conode_cluster_free(cl);
}

int main(void) {
    test_node_events();
    test_cluster_block_events();
    return check_summary();
}
