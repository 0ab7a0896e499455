/*
 * Share-holder allow-lists (sh_allow_parse): there is no encoder, so a list
 * that parses is checked against what the format promises instead: unique
 * names and keys, each client found by its key, every listed key id allowed,
 * every range holding its own address; a refused list leaves nothing behind
 * and says which line. The input's first bytes are also asked as a peer
 * address, since ZeroMQ hands that text over as it came.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "share-holder/share-holder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_client(const struct sh_allow *allow, const struct sh_allow_client *c)
{
    char addr[INET6_ADDRSTRLEN];

    if (sh_allow_find(allow, c->curve_pk) != c || !proto_name_str_valid(c->name)) {
        abort();
    }
    if (c->all_keys != (c->key_ids == NULL) || (c->all_keys && c->num_key_ids != 0) ||
        (!c->all_keys && c->num_key_ids == 0)) {
        abort();
    }
    for (size_t k = 0; k < c->num_key_ids; k++) {
        if (!sh_allow_key(c, c->key_ids[k])) {
            abort();
        }
    }
    if ((c->ranges == NULL) != (c->num_ranges == 0)) {
        abort();
    }
    for (size_t k = 0; k < c->num_ranges; k++) {
        if (c->ranges[k].prefix > 128 ||
            inet_ntop(AF_INET6, c->ranges[k].addr, addr, sizeof(addr)) == NULL ||
            !sh_allow_address(c, addr)) {
            abort();
        }
    }
    if (c->num_ranges > 0 && sh_allow_address(c, "not an address")) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct sh_allow zero;
    struct sh_allow allow;
    char why[256];
    char peer[64];
    size_t peer_len = size < sizeof(peer) - 1 ? size : sizeof(peer) - 1;
    int r;

    why[0] = '\0';
    r = sh_allow_parse(&allow, data, size, why, sizeof(why));
    if (r != 0) {
        if ((r != SPK_ERR_MALFORMED && r != SPK_ERR_NOMEM) ||
            memcmp(&allow, &zero, sizeof(allow)) != 0 ||
            (r == SPK_ERR_MALFORMED && strncmp(why, "line ", 5) != 0)) {
            abort();
        }
        return 0;
    }
    memcpy(peer, data, peer_len);
    peer[peer_len] = '\0';
    for (size_t i = 0; i < allow.num_clients; i++) {
        const struct sh_allow_client *c = &allow.clients[i];

        for (size_t j = 0; j < i; j++) {
            if (strcmp(allow.clients[j].name, c->name) == 0 ||
                memcmp(allow.clients[j].curve_pk, c->curve_pk, PROTO_X25519_LEN) == 0) {
                abort();
            }
        }
        check_client(&allow, c);
        (void)sh_allow_address(c, peer);
    }
    sh_allow_cleanup(&allow);
    if (memcmp(&allow, &zero, sizeof(allow)) != 0) {
        abort();
    }
    return 0;
}
