/* The README's "Embedding from C" example, kept compiling and running by tests/run-c.sh: one embedded
 * node (start, status, stop), then a local cothority whose collective signature and skipchain proof
 * are checked with the pure verifiers, as a light client would.
 *
 * Build against an installed or in-tree libconode:
 *   cc example_embed.c $(pkg-config --cflags --libs conode) -o example_embed */

#include <conode.h>
#include <stdio.h>
#include <stdlib.h>

/* Prints what failed and exits when a conode call did not return CONODE_OK. */
static void check(int rc, const char *what) {
    if (rc != CONODE_OK) {
        fprintf(stderr, "%s failed (%d): %s\n", what, rc, conode_last_error_message());
        exit(1);
    }
}

int main(void) {
    printf("libconode %s\n", conode_version());

    /* A node of our own: new keys, ephemeral ports on loopback, a temporary database. */
    ConodeConfig *config = NULL;
    check(conode_config_generate("127.0.0.1", 0, "embedded from C", &config), "config");
    char data_dir[] = "/tmp/conode-example-XXXXXX";
    if (!mkdtemp(data_dir)) {
        perror("mkdtemp");
        return 1;
    }
    ConodeNode *node = NULL;
    check(conode_node_new(config, data_dir, &node), "node");
    check(conode_node_start(node), "start"); /* returns once both ports accept connections */
    char *url = NULL, *status = NULL;
    check(conode_node_client_url(node, &url), "client url");
    check(conode_node_status_json(node, &status), "status");
    printf("node serving on %s\nstatus: %.120s...\n", url, status);
    conode_string_free(url);
    conode_string_free(status);
    check(conode_node_stop(node), "stop");
    conode_node_free(node);
    conode_config_free(config);

    /* A local cothority of 4 nodes in this process. */
    ConodeCluster *cluster = NULL;
    check(conode_cluster_new(4, &cluster), "cluster");
    char *roster = NULL;
    check(conode_cluster_roster_toml(cluster, &roster), "roster");

    /* Collective signature by the roster, verified offline against the roster. */
    const uint8_t message[] = "hello, cothority";
    uint8_t signature[CONODE_COSI_SIGNATURE_LEN];
    uint8_t *mask = NULL;
    size_t mask_len = 0, signers = 0;
    check(conode_cluster_sign(cluster, 0, message, sizeof message - 1, 0, signature, &mask, &mask_len), "sign");
    check(conode_verify_cosi(roster, message, sizeof message - 1, signature, sizeof signature, mask, mask_len, 0,
                             &signers),
          "verify signature");
    printf("collective signature by %zu of 4 members verifies\n", signers);
    conode_bytes_free(mask, mask_len);

    /* A skipchain: genesis, three blocks, and a proof from the genesis a light client can check. */
    uint8_t genesis[CONODE_HASH_LEN];
    const uint8_t genesis_data[] = "genesis";
    check(conode_cluster_skipchain_create(cluster, 0, 2, 4, genesis_data, sizeof genesis_data - 1, genesis),
          "create skipchain");
    for (int i = 1; i <= 3; i++) {
        char data[16];
        int len = snprintf(data, sizeof data, "entry %d", i);
        check(conode_cluster_skipchain_append(cluster, 0, genesis, sizeof genesis, (const uint8_t *)data,
                                              (size_t)len, NULL),
              "append");
    }
    uint8_t *proof = NULL;
    size_t proof_len = 0;
    uint64_t newest = 0;
    check(conode_cluster_skipchain_proof(cluster, 1, genesis, sizeof genesis, &proof, &proof_len), "proof");
    check(conode_verify_skipchain_proof(genesis, sizeof genesis, proof, proof_len, &newest, NULL), "verify proof");
    printf("skipchain proof (%zu bytes) from the genesis to block %llu verifies\n", proof_len,
           (unsigned long long)newest);
    conode_bytes_free(proof, proof_len);

    conode_string_free(roster);
    conode_cluster_free(cluster);
    return newest == 3 ? 0 : 1;
}
