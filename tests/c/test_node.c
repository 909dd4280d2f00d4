/* Embeds conode from C: errors and NULL checks, a node started/stopped with its status read, a
 * local cluster with a node stopped and restarted, and members dropping their connections while
 * the host keeps SIGPIPE's default action (as C programs do): the host must live on, its signal
 * disposition and its thread's mask untouched. Compiled with -Wall -Wextra -Werror (and ASan). */
#include "check.h"
#include "conode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

static void test_errors(void) {
    CHECK(conode_version() != NULL && strlen(conode_version()) > 0, "version");
    CHECK(conode_node_start(NULL) == CONODE_ERR_NULL, "NULL node");
    CHECK(strstr(conode_last_error_message(), "node") != NULL, "message names the argument");

    ConodeConfig *cfg = (ConodeConfig *)0x1; /* sentinel: must stay untouched on error */
    int rc = conode_config_from_toml("Suite = \"Ed25519\"\nPublic = \"abcd\"\n", &cfg);
    CHECK(rc == CONODE_ERR_CONFIG, "garbled config rc=%d", rc);
    CHECK(cfg == (ConodeConfig *)0x1, "out-param written on error");
    CHECK(strstr(conode_last_error_message(), "Private") != NULL, "message names the field: %s", conode_last_error_message());

    rc = conode_config_from_file("/nonexistent/private.toml", &cfg);
    CHECK(rc == CONODE_ERR_CONFIG, "missing file rc=%d", rc);
    CHECK(strstr(conode_last_error_message(), "/nonexistent/private.toml") != NULL, "message names the file");
    CHECK(conode_config_generate("127.0.0.1", 0, "x", NULL) == CONODE_ERR_NULL, "NULL out");

    ConodeCluster *cl = NULL;
    CHECK(conode_cluster_new(0, &cl) == CONODE_ERR_INVALID && cl == NULL, "empty cluster refused");
    conode_string_free(NULL);
    conode_node_free(NULL);
    conode_config_free(NULL);
    conode_cluster_free(NULL);
}

static void test_node(void) {
    ConodeConfig *cfg = NULL;
    CHECK(conode_config_generate("127.0.0.1", 0, "from C", &cfg) == CONODE_OK, "generate");
    char *toml = NULL;
    CHECK(conode_config_to_toml(cfg, &toml) == CONODE_OK && strstr(toml, "[Services.Cosi]") != NULL, "to_toml");
    ConodeConfig *again = NULL;
    CHECK(conode_config_from_toml(toml, &again) == CONODE_OK, "round trip");
    char *pk1 = NULL, *pk2 = NULL;
    CHECK(conode_config_public_key(cfg, &pk1) == CONODE_OK && conode_config_public_key(again, &pk2) == CONODE_OK, "keys");
    CHECK(pk1 && pk2 && strcmp(pk1, pk2) == 0 && strlen(pk1) == 64, "same key after round trip");
    conode_string_free(toml);
    conode_config_free(again);

    char dir[] = "/tmp/conode-c-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    ConodeNode *node = NULL;
    CHECK(conode_node_new(cfg, dir, &node) == CONODE_OK, "node_new");
    conode_config_free(cfg); /* the node keeps its own copy */

    bool running = true;
    CHECK(conode_node_is_running(node, &running) == CONODE_OK && !running, "not running before start");
    char *json = NULL;
    CHECK(conode_node_status_json(node, &json) == CONODE_ERR_STATE && json == NULL, "status needs a running node");
    CHECK(conode_node_stop(node) == CONODE_ERR_STATE, "stop before start");

    CHECK(conode_node_start(node) == CONODE_OK, "start");
    CHECK(conode_node_start(node) == CONODE_ERR_STATE, "second start");
    CHECK(strstr(conode_last_error_message(), "already running") != NULL, "already running message");
    CHECK(conode_node_is_running(node, &running) == CONODE_OK && running, "running");
    char *url = NULL;
    CHECK(conode_node_client_url(node, &url) == CONODE_OK && strncmp(url, "ws://127.0.0.1:", 15) == 0, "client url");
    CHECK(conode_node_status_json(node, &json) == CONODE_OK, "status");
    CHECK(json && strstr(json, "\"Generic\"") && strstr(json, "\"Description\":\"from C\""), "status content: %s", json ? json : "");
    CHECK(json && strstr(json, pk1) == NULL, "status does not leak the key as a field value"); /* id is sha256(pk) */
    conode_string_free(json);
    conode_string_free(url);
    conode_string_free(pk1);
    conode_string_free(pk2);

    CHECK(conode_node_stop(node) == CONODE_OK, "stop");
    CHECK(conode_node_start(node) == CONODE_OK, "restart");
    conode_node_free(node); /* frees a running node: stops it */
}

static void test_cluster(void) {
    ConodeCluster *cl = NULL;
    CHECK(conode_cluster_new(4, &cl) == CONODE_OK, "cluster");
    size_t n = 0;
    CHECK(conode_cluster_size(cl, &n) == CONODE_OK && n == 4, "size");
    char *roster = NULL;
    CHECK(conode_cluster_roster_toml(cl, &roster) == CONODE_OK, "roster");
    int servers = 0;
    for (const char *p = roster; p && (p = strstr(p, "[[servers]]")) != NULL; p++) servers++;
    CHECK(servers == 4, "4 servers in roster, got %d", servers);
    conode_string_free(roster);
    CHECK(conode_cluster_stop_node(cl, 1) == CONODE_OK, "stop 1");
    char *url = NULL;
    CHECK(conode_cluster_client_url(cl, 1, &url) == CONODE_ERR_STATE && url == NULL, "stopped node has no url");
    CHECK(conode_cluster_stop_node(cl, 9) == CONODE_ERR_INVALID, "index out of range");
    CHECK(conode_cluster_restart_node(cl, 1) == CONODE_OK, "restart 1");
    CHECK(conode_cluster_client_url(cl, 1, &url) == CONODE_OK && url != NULL, "url after restart");
    conode_string_free(url);
    conode_cluster_free(cl);
}

/* SIGPIPE as a C host has it: default action (dies), not blocked in this thread. */
static int sigpipe_as_the_host_set_it(void) {
    struct sigaction action;
    sigset_t mask;
    if (sigaction(SIGPIPE, NULL, &action) != 0 || pthread_sigmask(SIG_BLOCK, NULL, &mask) != 0) return 0;
    return action.sa_handler == SIG_DFL && !sigismember(&mask, SIGPIPE);
}

/* Members stop (their connections close under the others' writes) and come back between signing
 * rounds. Before the library blocked SIGPIPE in its threads, this killed the host now and then
 * (exit code 141); the Rust test `sigpipe` checks the mechanism deterministically. */
static void test_members_dropping_connections(void) {
    CHECK(sigpipe_as_the_host_set_it(), "the test starts as a C host");
    ConodeCluster *cl = NULL;
    CHECK(conode_cluster_new(4, &cl) == CONODE_OK, "cluster");
    const uint8_t message[] = "sigpipe";
    for (size_t round = 0; round < 30; round++) {
        size_t member = 1 + round % 3;
        uint8_t signature[CONODE_COSI_SIGNATURE_LEN];
        uint8_t *mask = NULL;
        size_t mask_len = 0;
        CHECK(conode_cluster_sign(cl, 0, message, sizeof message - 1, 3, signature, &mask, &mask_len) == CONODE_OK,
              "round %zu: %s", round, conode_last_error_message());
        conode_bytes_free(mask, mask_len);
        CHECK(conode_cluster_stop_node(cl, member) == CONODE_OK, "stop %zu", member);
        CHECK(conode_cluster_restart_node(cl, member) == CONODE_OK, "restart %zu", member);
    }
    conode_cluster_free(cl);
    CHECK(sigpipe_as_the_host_set_it(), "the library left SIGPIPE's action and this thread's mask as they were");
}

int main(void) {
    test_errors();
    test_node();
    test_cluster();
    test_members_dropping_connections();
    return check_summary();
}
