#ifndef SPK_EDGE_H
#define SPK_EDGE_H

/*
 * edge: the TLS terminator of splitkey. The edge's TLS-facing process holds
 * only certificates and public keys; every private-key operation goes as an
 * OP_REQUEST to the combiner process, which the edge starts and supervises.
 * After the handshake the plaintext is relayed to an upstream TCP origin.
 *
 * The configuration file is described at edge_config_load and printed by
 * `edge --help`.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define EDGE_PATH_MAX 1024
#define EDGE_LISTEN_MAX 16
#define EDGE_CERT_MAX 256
#define EDGE_HOSTPORT_MAX 300

#define EDGE_ALPN_MAX 128
#define EDGE_CIPHERS_MAX 512

/* An `alpn` line: the protocols the edge selects, in its order of preference. */
struct edge_alpn {
    bool set;                    /* given for this listen/certificate (else inherited) */
    uint8_t wire[EDGE_ALPN_MAX]; /* ALPN wire format; len 0 = do not negotiate ALPN */
    size_t len;
};

/* What a client gets when the origin cannot be reached. */
enum edge_upstream_failure {
    EDGE_UPSTREAM_FAILURE_RESET = 0, /* TCP reset: the protocol is unknown */
    EDGE_UPSTREAM_FAILURE_HTTP502,   /* an HTTP/1.1 502 response, then close_notify */
};

struct edge_cert_conf {
    char chain_path[EDGE_PATH_MAX];   /* PEM: leaf first, then intermediates */
    char record_path[EDGE_PATH_MAX];  /* KEYID.record of the leaf's key */
    char upstream[EDGE_HOSTPORT_MAX]; /* "" = the global upstream */
    struct edge_alpn alpn;            /* overrides the listen's and the global one */
    char ocsp_path[EDGE_PATH_MAX];    /* DER OCSP response to staple; "" = none */
};

struct edge_config {
    char path[EDGE_PATH_MAX]; /* the file it was loaded from (for reloads) */
    char listen[EDGE_LISTEN_MAX][EDGE_HOSTPORT_MAX];
    size_t num_listen;
    struct edge_cert_conf certs[EDGE_CERT_MAX]; /* certs[0] is the default */
    size_t num_certs;
    char upstream[EDGE_HOSTPORT_MAX]; /* global upstream */
    bool proxy_protocol;              /* PROXY protocol v2 header to the upstream */
    char combiner_endpoint[EDGE_PATH_MAX];
    char combiner_binary[EDGE_PATH_MAX]; /* the `combiner` command */
    char combiner_config[EDGE_PATH_MAX]; /* the combiner's own file, for `combiner run` */
    bool combiner_external;              /* "combiner-external yes": do not start one */
    /* tcp:// combiner-endpoint: CURVE with the combiner's key and the edge's own. */
    uint8_t combiner_curve_pk[PROTO_X25519_LEN];
    bool have_combiner_curve_pk;
    char combiner_client_key[EDGE_PATH_MAX];
    unsigned handshake_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned op_timeout_ms;
    unsigned max_connections;
    unsigned drain_timeout_ms;           /* SIGTERM: how long open connections may finish */
    char tls_min[8];                     /* "1.2" or "1.3" */
    char ticket_key_file[EDGE_PATH_MAX]; /* "" = one random key per process */
    char metrics[EDGE_HOSTPORT_MAX];     /* "" = no metrics endpoint */
    char log_level[8];
    struct edge_alpn alpn;                         /* global; default http/1.1 */
    struct edge_alpn listen_alpn[EDGE_LISTEN_MAX]; /* per listen line */
    char tls_max[8];                               /* "1.2" or "1.3" */
    char tls12_ciphers[EDGE_CIPHERS_MAX];          /* OpenSSL cipher list for TLS 1.2 */
    bool tls12_rsa_key_exchange;                   /* adds the kRSA suites; else all are cut */
    char tls13_ciphersuites[EDGE_CIPHERS_MAX];     /* OpenSSL TLS 1.3 suite list */
    char tls_groups[EDGE_CIPHERS_MAX];             /* key exchange groups */
    unsigned ticket_lifetime_s;                    /* session (ticket) lifetime */
    unsigned ticket_key_rotate_s; /* no ticket-key-file: a new random key this often */
    enum edge_upstream_failure upstream_failure;
};

/* edge_config_init: no listeners or certificates, default timeouts. */
void edge_config_init(struct edge_config *cfg);

/*
 * edge_config_load parses the file |path| into |cfg| (edge_config_init
 * first). Returns 0, or SPK_ERR_IO / SPK_ERR_MALFORMED / SPK_ERR_INVALID_ARG
 * with "PATH:LINE: reason" in |why|. Only names files; opens none of them.
 */
SPK_WUR int edge_config_load(struct edge_config *cfg, const char *path, char *why, size_t why_len);

/* edge_config_help: the text of the configuration format for --help. */
const char *edge_config_help(void);

/*
 * edge_run runs the TLS-facing daemon with |cfg| until SIGTERM/SIGINT,
 * starting and supervising the combiner process unless combiner_external.
 * |config_path| is passed to the combiner. Returns the exit status.
 */
int edge_run(const struct edge_config *cfg, const char *config_path, const char *self_path);

#endif
