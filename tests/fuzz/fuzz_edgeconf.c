/*
 * The edge's configuration file (edge_config_load). The loader takes only a
 * path, so each input is written to one memfd made at the first call and read
 * back through /proc/self/fd; relative paths then resolve under /proc/self/fd,
 * which the loader only names and never opens. There is no encoder: a file
 * that loads must satisfy the checks the loader promises (a listener, a
 * certificate with an upstream, a combiner endpoint and key), with bounded
 * counts and NUL-terminated strings; a refused one must say why.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edge/edge.h"

#include "fuzz_memfd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t cap, size_t min_len)
{
    size_t n = strnlen(s, cap);

    if (n == cap || n < min_len) {
        abort();
    }
}

/* check_alpn: ALPN wire format, as OpenSSL takes it: non-empty names. */
static void check_alpn(const struct edge_alpn *a)
{
    size_t pos = 0;

    if (a->len > sizeof(a->wire) || (!a->set && a->len != 0)) {
        abort();
    }
    while (pos < a->len) {
        if (a->wire[pos] == 0 || pos + 1 + a->wire[pos] > a->len) {
            abort();
        }
        pos += 1 + (size_t)a->wire[pos];
    }
}

static void check_config(const struct edge_config *cfg)
{
    if (cfg->num_listen == 0 || cfg->num_listen > EDGE_LISTEN_MAX || cfg->num_certs == 0 ||
        cfg->num_certs > EDGE_CERT_MAX) {
        abort();
    }
    if (strcmp(cfg->path, fuzz_path) != 0 ||
        (strcmp(cfg->tls_min, "1.2") != 0 && strcmp(cfg->tls_min, "1.3") != 0)) {
        abort();
    }
    check_str(cfg->combiner_endpoint, sizeof(cfg->combiner_endpoint), 7);
    if (!cfg->combiner_external) {
        check_str(cfg->combiner_config, sizeof(cfg->combiner_config), 1);
    }
    if (strncmp(cfg->combiner_endpoint, "tcp://", 6) == 0) {
        check_str(cfg->combiner_client_key, sizeof(cfg->combiner_client_key), 1);
        if (!cfg->have_combiner_curve_pk) {
            abort();
        }
    }
    check_str(cfg->upstream, sizeof(cfg->upstream), 0);
    check_str(cfg->combiner_binary, sizeof(cfg->combiner_binary), 0);
    check_str(cfg->combiner_config, sizeof(cfg->combiner_config), 0);
    check_str(cfg->ticket_key_file, sizeof(cfg->ticket_key_file), 0);
    check_str(cfg->metrics, sizeof(cfg->metrics), 0);
    check_str(cfg->tls12_ciphers, sizeof(cfg->tls12_ciphers), 1);
    check_str(cfg->tls13_ciphersuites, sizeof(cfg->tls13_ciphersuites), 1);
    check_str(cfg->tls_groups, sizeof(cfg->tls_groups), 1);
    check_alpn(&cfg->alpn);
    if (strcmp(cfg->tls_max, "1.2") != 0 && strcmp(cfg->tls_max, "1.3") != 0) {
        abort();
    }
    for (size_t i = 0; i < cfg->num_listen; i++) {
        check_str(cfg->listen[i], sizeof(cfg->listen[i]), 3);
        check_alpn(&cfg->listen_alpn[i]);
    }
    for (size_t i = 0; i < cfg->num_certs; i++) {
        const struct edge_cert_conf *c = &cfg->certs[i];

        check_str(c->chain_path, sizeof(c->chain_path), 1);
        check_str(c->record_path, sizeof(c->record_path), 1);
        check_str(c->upstream, sizeof(c->upstream), 0);
        check_str(c->ocsp_path, sizeof(c->ocsp_path), 0);
        check_alpn(&c->alpn);
        if (c->upstream[0] == '\0' && cfg->upstream[0] == '\0') {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct edge_config cfg; /* about 1.7 MB */
    char why[512];
    int r;

    input_to_file(data, size);
    edge_config_init(&cfg);
    why[0] = '\0';
    r = edge_config_load(&cfg, fuzz_path, why, sizeof(why));
    if (r != 0) {
        if ((r != SPK_ERR_MALFORMED && r != SPK_ERR_INVALID_ARG) || why[0] == '\0') {
            abort();
        }
        return 0;
    }
    check_config(&cfg);
    return 0;
}
