/*
 * edge_config.c: the edge's configuration file. One directive per line,
 * words separated by spaces or tabs; '#' starts a comment only as the first
 * non-blank character of a line (Z85 keys may hold '#'). Relative paths are
 * taken from the directory of the configuration file. Parsing names files
 * but opens none. Keys, shares and holders are not here: they are the
 * combiner's, in its own file (combiner-config).
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/internal.h"
#include "proto/spk_metrics.h"

#define EDGE_LINE_MAX 4096
#define EDGE_WORDS_MAX 8

static const char edge_help_text[] =
    "Configuration file (one directive per line; '#' at the start of a line is a comment;\n"
    "relative paths are relative to the file's directory):\n"
    "\n"
    "  listen HOST:PORT               address to accept TLS on (repeatable, at least one)\n"
    "  certificate CHAIN.pem RECORD [HOST:PORT]\n"
    "                                 certificate chain (leaf first) and the key record of\n"
    "                                 its key (keysplit split); optional upstream for it.\n"
    "                                 SNI names come from the leaf's subjectAltName DNS\n"
    "                                 names (or CN), matched without case and without a\n"
    "                                 trailing dot. The first certificate is the default.\n"
    "                                 A key split in threshold mode (keysplit split --mode\n"
    "                                 threshold) only signs: its certificate is served with\n"
    "                                 TLS 1.3 and TLS 1.2 ECDHE (or DHE) only, never with\n"
    "                                 RSA key exchange, chosen per connection after SNI\n"
    "  alpn PROTO[,PROTO...]|off      ALPN protocols the edge selects, its preference first\n"
    "                                 (http/1.1). Written after a listen or certificate\n"
    "                                 line it applies to that line only (a certificate's\n"
    "                                 beats its listen's), before any to all. A client that\n"
    "                                 offers ALPN but none of these protocols is refused in\n"
    "                                 the handshake, before any key operation; `off` does\n"
    "                                 not negotiate ALPN. The origin must speak the protocol.\n"
    "  ocsp-response FILE             after a certificate line: a DER OCSP response for it\n"
    "                                 (e.g. from `openssl ocsp -respout`), stapled to\n"
    "                                 handshakes; re-read on SIGHUP (refresh it before it\n"
    "                                 expires: an expired one is not stapled)\n"
    "  upstream HOST:PORT             origin for certificates without their own\n"
    "  upstream-failure reset|http502 when the origin cannot be reached (refused, or no\n"
    "                                 connection within handshake-timeout-ms): reset the\n"
    "                                 client's TCP connection (reset, the default: right\n"
    "                                 for any protocol), or answer an HTTP/1.1 502 and\n"
    "                                 close (http502: for HTTP/1.x origins only)\n"
    "  proxy-protocol yes|no          send a PROXY protocol v2 header upstream (no)\n"
    "  tls-min 1.2|1.3                lowest TLS version offered (1.2)\n"
    "  tls-max 1.2|1.3                highest TLS version offered (1.3)\n"
    "  tls12-ciphers LIST             OpenSSL cipher list for TLS 1.2 (Mozilla's\n"
    "                                 \"intermediate\": ECDHE and DHE with AES-GCM or\n"
    "                                 ChaCha20-Poly1305; no RSA key exchange, no CBC);\n"
    "                                 RSA key exchange suites are cut from any list\n"
    "                                 unless tls12-rsa-key-exchange is yes\n"
    "  tls12-rsa-key-exchange yes|no  add TLS 1.2 RSA key exchange with AES-GCM\n"
    "                                 (AES128-GCM-SHA256, AES256-GCM-SHA384) for old\n"
    "                                 clients (no). Off because it has no forward secrecy\n"
    "                                 (whoever gets the key later reads every recorded\n"
    "                                 session) and it makes the combiner a decryption\n"
    "                                 oracle: any client has it decrypt RSA ciphertexts\n"
    "                                 of its choosing (Bleichenbacher-style attacks).\n"
    "                                 Never for a threshold-mode key's certificate\n"
    "  tls13-ciphersuites LIST        TLS 1.3 suites (TLS_AES_128_GCM_SHA256:\n"
    "                                 TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256)\n"
    "  tls-groups LIST                key exchange groups (X25519:prime256v1:secp384r1)\n"
    "  ticket-lifetime-s N            how long a session (id or ticket) resumes (86400)\n"
    "  ticket-key-file FILE           session ticket keys, shared by edges that should\n"
    "                                 resume each other's sessions: one key per line, 160\n"
    "                                 hex digits (80 bytes: 16 name, 32 HMAC-SHA256 key,\n"
    "                                 32 AES-256 key; make one with `openssl rand -hex 80`),\n"
    "                                 newest first. New tickets use the first key; tickets\n"
    "                                 of any listed key resume (and are renewed). Re-read on\n"
    "                                 SIGHUP. Without it the edge makes its own random key\n"
    "                                 and replaces it every ticket-key-rotate-s, keeping\n"
    "                                 the previous one: a ticket resumes for up to two\n"
    "                                 periods; retired keys are wiped.\n"
    "                                 Resumed sessions (TLS 1.2 and 1.3) need no key operation.\n"
    "                                 A session (id or ticket) resumes only for the server\n"
    "                                 name it was made for (RFC 6066 section 3).\n"
    "  ticket-key-rotate-s N          without ticket-key-file: seconds between new ticket\n"
    "                                 keys (3600; 1 to 86400, small values are for tests)\n"
    "  metrics HOST:PORT              the edge's Prometheus endpoint (GET /metrics):\n"
    "                                 handshakes, key operations, latency; a numeric\n"
    "                                 loopback address only (127.A.B.C:PORT, [::1]:PORT)\n"
    "  handshake-timeout-ms N         whole handshake, including key operations (10000)\n"
    "  idle-timeout-ms N              relay with no traffic either way (60000)\n"
    "  op-timeout-ms N                one private-key operation (3000); an operation in\n"
    "                                 flight when the combiner dies is sent again to the\n"
    "                                 restarted (or external) combiner within this time\n"
    "  drain-timeout-ms N             after SIGTERM: how long open connections may finish\n"
    "                                 before the edge exits (30000)\n"
    "  max-connections N              connections at once; more wait in the backlog (4096)\n"
    "  combiner-endpoint ENDPOINT     where the combiner listens: unix:///run/edge/comb (a\n"
    "                                 SOCK_SEQPACKET socket, the cheapest), ipc://PATH\n"
    "                                 (ZeroMQ) or tcp://HOST:PORT (ZeroMQ with CURVE)\n"
    "  combiner-config FILE           the combiner's own file (keys, shares, holders,\n"
    "                                 clients: `combiner run --help`); the edge starts\n"
    "                                 `combiner run --config FILE --listen ENDPOINT`\n"
    "  combiner-external yes|no       yes: start no combiner, one runs on its own (e.g.\n"
    "                                 spk-combiner.service as its own user) (no)\n"
    "  combiner-binary PATH           the combiner command; default: `combiner` next to\n"
    "                                 the edge binary, in the build tree or in PATH\n"
    "  combiner-curve-public Z85      tcp:// combiner-endpoint: the combiner's CURVE key\n"
    "  combiner-client-key NAME.key   tcp:// combiner-endpoint: the edge's own key file\n"
    "                                 (keysplit keygen), in the combiner's allow file\n"
    "\n"
    "Signals (the edge and its combiner process alike):\n"
    "  SIGHUP   read the file again: certificates, key records and ticket keys in the edge\n"
    "           (open connections keep what they started with); the combiner reads its own\n"
    "           file again (keys, shares, holders, clients: it warms up the new holder\n"
    "           sessions, then switches, and the old set answers what it has in flight).\n"
    "           A file that does not load is refused with the reason and the old\n"
    "           configuration stays. listen, metrics and combiner-endpoint change only\n"
    "           with a restart.\n"
    "           The edge passes SIGHUP on to the combiner it started.\n"
    "  SIGTERM  the edge closes its listeners, lets open connections finish (up to\n"
    "           drain-timeout-ms), stops its combiner and exits 0; a second SIGTERM stops\n"
    "           at once. The combiner stops taking requests, answers those in flight\n"
    "           (up to op-timeout-ms) and exits 0.\n"
    "\n"
    "Metrics (Prometheus text format, GET /metrics, loopback only):\n"
    "  metrics           spk_edge_handshakes_total{result,version,resumed},\n"
    "                    spk_edge_key_operations_total{kind,result},\n"
    "                    spk_edge_key_operation_seconds (histogram), session tickets,\n"
    "                    spk_edge_ticket_key_rotations_total,\n"
    "                    connections, reloads, combiner restarts\n"
    "  the combiner's own metrics line: see `combiner run --help` and README\n"
    "Every failed handshake is one log line: \"handshake failed: client ADDR:PORT: reason\".\n";

const char *edge_config_help(void)
{
    return edge_help_text;
}

void edge_config_init(struct edge_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->handshake_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->op_timeout_ms = 3000;
    cfg->max_connections = 4096;
    cfg->drain_timeout_ms = 30000;
    memcpy(cfg->tls_min, "1.2", 4);
    memcpy(cfg->tls_max, "1.3", 4);
    /* Mozilla's "intermediate" profile (version 5.7). */
    snprintf(cfg->tls12_ciphers, sizeof(cfg->tls12_ciphers), "%s",
             "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
             "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
             "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
             "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305");
    snprintf(cfg->tls13_ciphersuites, sizeof(cfg->tls13_ciphersuites), "%s",
             "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    snprintf(cfg->tls_groups, sizeof(cfg->tls_groups), "%s", "X25519:prime256v1:secp384r1");
    cfg->ticket_lifetime_s = 86400;
    cfg->ticket_key_rotate_s = 3600;
    cfg->alpn.set = true;
    cfg->alpn.len = 9;
    memcpy(cfg->alpn.wire, "\x08http/1.1", 9);
}

/* Which line `alpn` and `ocsp-response` lines below it belong to. */
enum edge_cfg_scope {
    EDGE_SCOPE_GLOBAL = 0,
    EDGE_SCOPE_LISTEN,
    EDGE_SCOPE_CERT,
};

struct edge_cfg_parse {
    const char *path;
    unsigned line;
    enum edge_cfg_scope scope;
    size_t scope_index;
    char dir[EDGE_PATH_MAX];
    char *why;
    size_t why_len;
};

static int edge_cfg_fail(struct edge_cfg_parse *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int edge_cfg_fail(struct edge_cfg_parse *ps, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ps->why, ps->why_len, "%s:%u: %s", ps->path, ps->line, msg);
    return SPK_ERR_MALFORMED;
}

static int edge_cfg_path(struct edge_cfg_parse *ps, char out[EDGE_PATH_MAX], const char *word)
{
    int n;

    if (word[0] == '/' || ps->dir[0] == '\0') {
        n = snprintf(out, EDGE_PATH_MAX, "%s", word);
    } else {
        n = snprintf(out, EDGE_PATH_MAX, "%s/%s", ps->dir, word);
    }
    if (n < 0 || n >= EDGE_PATH_MAX) {
        return edge_cfg_fail(ps, "path too long");
    }
    return 0;
}

static int edge_cfg_copy(struct edge_cfg_parse *ps, char *out, size_t cap, const char *word)
{
    size_t len = strlen(word);

    if (len >= cap) {
        return edge_cfg_fail(ps, "value too long: %.40s...", word);
    }
    memcpy(out, word, len + 1);
    return 0;
}

/* edge_hostport_valid: "HOST:PORT" with a non-empty host and a port 1..65535;
 * an IPv6 host is bracketed. */
static bool edge_hostport_valid(const char *s)
{
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    long port;

    if (colon == NULL || colon == s || strlen(s) >= EDGE_HOSTPORT_MAX) {
        return false;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    return errno == 0 && end != colon + 1 && *end == '\0' && port >= 1 && port <= 65535;
}

static int edge_cfg_hostport(struct edge_cfg_parse *ps, char out[EDGE_HOSTPORT_MAX],
                             const char *word)
{
    if (!edge_hostport_valid(word)) {
        return edge_cfg_fail(ps, "'%s' is not HOST:PORT", word);
    }
    return edge_cfg_copy(ps, out, EDGE_HOSTPORT_MAX, word);
}

static int edge_cfg_bool(struct edge_cfg_parse *ps, bool *out, const char *word)
{
    if (strcmp(word, "yes") == 0 || strcmp(word, "on") == 0) {
        *out = true;
    } else if (strcmp(word, "no") == 0 || strcmp(word, "off") == 0) {
        *out = false;
    } else {
        return edge_cfg_fail(ps, "'%s' is not yes or no", word);
    }
    return 0;
}

static int edge_cfg_uint(struct edge_cfg_parse *ps, unsigned *out, const char *word, unsigned min,
                         unsigned max)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(word, &end, 10);
    if (errno != 0 || end == word || *end != '\0' || word[0] == '-' || v < min || v > max) {
        return edge_cfg_fail(ps, "'%s' is not a number in %u..%u", word, min, max);
    }
    *out = (unsigned)v;
    return 0;
}

/* edge_cfg_alpn: "off" or a comma-separated list of protocol names. */
static int edge_cfg_alpn(struct edge_cfg_parse *ps, struct edge_alpn *out, const char *word)
{
    const char *p = word;

    memset(out, 0, sizeof(*out));
    out->set = true;
    if (strcmp(word, "off") == 0) {
        return 0;
    }
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t i;
        if (n == 0 || n > 255) {
            return edge_cfg_fail(ps, "alpn: '%s' is not a comma-separated list of protocols", word);
        }
        for (i = 0; i < n; i++) {
            if (p[i] < 0x21 || p[i] > 0x7e) {
                return edge_cfg_fail(ps, "alpn: protocol names are printable ASCII");
            }
        }
        if (out->len + 1 + n > sizeof(out->wire)) {
            return edge_cfg_fail(ps, "alpn: more than %d bytes of protocols", EDGE_ALPN_MAX);
        }
        out->wire[out->len++] = (uint8_t)n;
        memcpy(out->wire + out->len, p, n);
        out->len += n;
        p += n;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                return edge_cfg_fail(ps, "alpn: '%s' ends with a comma", word);
            }
        }
    }
    return 0;
}

static size_t edge_cfg_split(char *line, char *words[EDGE_WORDS_MAX + 1])
{
    size_t n = 0;
    char *p = line;

    for (;;) {
        while (*p == ' ' || *p == '\t') {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        if (n == EDGE_WORDS_MAX + 1) {
            return n; /* too many: the caller refuses */
        }
        words[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t') {
            p++;
        }
    }
    return n;
}

static int edge_cfg_directive(struct edge_config *cfg, struct edge_cfg_parse *ps, char **w,
                              size_t n)
{
    const char *d = w[0];
    int r;

#define NEED(lo, hi)                                                                               \
    do {                                                                                           \
        if (n < (lo) + 1 || n > (hi) + 1) {                                                        \
            return edge_cfg_fail(ps, "%s takes %d to %d values", d, (lo), (hi));                   \
        }                                                                                          \
    } while (0)

    if (strcmp(d, "listen") == 0) {
        NEED(1, 1);
        if (cfg->num_listen == EDGE_LISTEN_MAX) {
            return edge_cfg_fail(ps, "more than %d listen lines", EDGE_LISTEN_MAX);
        }
        ps->scope = EDGE_SCOPE_LISTEN;
        ps->scope_index = cfg->num_listen;
        return edge_cfg_hostport(ps, cfg->listen[cfg->num_listen++], w[1]);
    }
    if (strcmp(d, "certificate") == 0) {
        struct edge_cert_conf *c;
        NEED(2, 3);
        if (cfg->num_certs == EDGE_CERT_MAX) {
            return edge_cfg_fail(ps, "more than %d certificates", EDGE_CERT_MAX);
        }
        ps->scope = EDGE_SCOPE_CERT;
        ps->scope_index = cfg->num_certs;
        c = &cfg->certs[cfg->num_certs++];
        if ((r = edge_cfg_path(ps, c->chain_path, w[1])) != 0 ||
            (r = edge_cfg_path(ps, c->record_path, w[2])) != 0) {
            return r;
        }
        return n == 4 ? edge_cfg_hostport(ps, c->upstream, w[3]) : 0;
    }
    if (strcmp(d, "upstream") == 0) {
        NEED(1, 1);
        return edge_cfg_hostport(ps, cfg->upstream, w[1]);
    }
    if (strcmp(d, "upstream-failure") == 0) {
        NEED(1, 1);
        if (strcmp(w[1], "reset") == 0) {
            cfg->upstream_failure = EDGE_UPSTREAM_FAILURE_RESET;
        } else if (strcmp(w[1], "http502") == 0) {
            cfg->upstream_failure = EDGE_UPSTREAM_FAILURE_HTTP502;
        } else {
            return edge_cfg_fail(ps, "upstream-failure is reset or http502, not '%s'", w[1]);
        }
        return 0;
    }
    if (strcmp(d, "proxy-protocol") == 0) {
        NEED(1, 1);
        return edge_cfg_bool(ps, &cfg->proxy_protocol, w[1]);
    }
    if (strcmp(d, "tls-min") == 0) {
        NEED(1, 1);
        if (strcmp(w[1], "1.2") != 0 && strcmp(w[1], "1.3") != 0) {
            return edge_cfg_fail(ps, "tls-min is 1.2 or 1.3");
        }
        return edge_cfg_copy(ps, cfg->tls_min, sizeof(cfg->tls_min), w[1]);
    }
    if (strcmp(d, "tls-max") == 0) {
        NEED(1, 1);
        if (strcmp(w[1], "1.2") != 0 && strcmp(w[1], "1.3") != 0) {
            return edge_cfg_fail(ps, "tls-max is 1.2 or 1.3");
        }
        return edge_cfg_copy(ps, cfg->tls_max, sizeof(cfg->tls_max), w[1]);
    }
    if (strcmp(d, "tls12-ciphers") == 0) {
        NEED(1, 1);
        return edge_cfg_copy(ps, cfg->tls12_ciphers, sizeof(cfg->tls12_ciphers), w[1]);
    }
    if (strcmp(d, "tls12-rsa-key-exchange") == 0) {
        NEED(1, 1);
        return edge_cfg_bool(ps, &cfg->tls12_rsa_key_exchange, w[1]);
    }
    if (strcmp(d, "tls13-ciphersuites") == 0) {
        NEED(1, 1);
        return edge_cfg_copy(ps, cfg->tls13_ciphersuites, sizeof(cfg->tls13_ciphersuites), w[1]);
    }
    if (strcmp(d, "tls-groups") == 0) {
        NEED(1, 1);
        return edge_cfg_copy(ps, cfg->tls_groups, sizeof(cfg->tls_groups), w[1]);
    }
    if (strcmp(d, "ticket-lifetime-s") == 0) {
        NEED(1, 1);
        return edge_cfg_uint(ps, &cfg->ticket_lifetime_s, w[1], 1, 604800);
    }
    if (strcmp(d, "ticket-key-rotate-s") == 0) {
        NEED(1, 1);
        return edge_cfg_uint(ps, &cfg->ticket_key_rotate_s, w[1], 1, 86400);
    }
    if (strcmp(d, "alpn") == 0) {
        NEED(1, 1);
        switch (ps->scope) {
        case EDGE_SCOPE_LISTEN:
            return edge_cfg_alpn(ps, &cfg->listen_alpn[ps->scope_index], w[1]);
        case EDGE_SCOPE_CERT:
            return edge_cfg_alpn(ps, &cfg->certs[ps->scope_index].alpn, w[1]);
        case EDGE_SCOPE_GLOBAL:
        default:
            return edge_cfg_alpn(ps, &cfg->alpn, w[1]);
        }
    }
    if (strcmp(d, "ocsp-response") == 0) {
        NEED(1, 1);
        if (ps->scope != EDGE_SCOPE_CERT) {
            return edge_cfg_fail(ps, "ocsp-response belongs after the certificate line it is for");
        }
        return edge_cfg_path(ps, cfg->certs[ps->scope_index].ocsp_path, w[1]);
    }
    if (strcmp(d, "ticket-key-file") == 0) {
        NEED(1, 1);
        return edge_cfg_path(ps, cfg->ticket_key_file, w[1]);
    }
    if (strcmp(d, "metrics") == 0) {
        char *out = cfg->metrics;
        NEED(1, 1);
        if (!spk_metrics_hostport_ok(w[1])) {
            return edge_cfg_fail(ps,
                                 "%s must be a numeric loopback HOST:PORT (127.A.B.C:PORT or "
                                 "[::1]:PORT), not '%s'",
                                 d, w[1]);
        }
        return edge_cfg_hostport(ps, out, w[1]);
    }
    if (strcmp(d, "handshake-timeout-ms") == 0) {
        NEED(1, 1);
        return edge_cfg_uint(ps, &cfg->handshake_timeout_ms, w[1], 100, 600000);
    }
    if (strcmp(d, "idle-timeout-ms") == 0) {
        NEED(1, 1);
        return edge_cfg_uint(ps, &cfg->idle_timeout_ms, w[1], 100, 86400000);
    }
    if (strcmp(d, "op-timeout-ms") == 0) {
        NEED(1, 1);
        return edge_cfg_uint(ps, &cfg->op_timeout_ms, w[1], 10, 600000);
    }
    if (strcmp(d, "drain-timeout-ms") == 0) {
        NEED(1, 1);
        return edge_cfg_uint(ps, &cfg->drain_timeout_ms, w[1], 0, 86400000);
    }
    if (strcmp(d, "max-connections") == 0) {
        NEED(1, 1);
        return edge_cfg_uint(ps, &cfg->max_connections, w[1], 1, 1000000);
    }
    if (strcmp(d, "combiner-endpoint") == 0) {
        NEED(1, 1);
        if (strncmp(w[1], "ipc://", 6) != 0 && strncmp(w[1], "tcp://", 6) != 0 &&
            !spk_endpoint_is_unix(w[1])) {
            return edge_cfg_fail(ps, "combiner-endpoint must be unix://, ipc:// or tcp://");
        }
        return edge_cfg_copy(ps, cfg->combiner_endpoint, sizeof(cfg->combiner_endpoint), w[1]);
    }
    if (strcmp(d, "combiner-binary") == 0) {
        NEED(1, 1);
        return edge_cfg_path(ps, cfg->combiner_binary, w[1]);
    }
    if (strcmp(d, "combiner-config") == 0) {
        NEED(1, 1);
        return edge_cfg_path(ps, cfg->combiner_config, w[1]);
    }
    if (strcmp(d, "combiner-external") == 0) {
        NEED(1, 1);
        return edge_cfg_bool(ps, &cfg->combiner_external, w[1]);
    }
    if (strcmp(d, "combiner-curve-public") == 0) {
        struct proto_rd rd;
        NEED(1, 1);
        proto_rd_init(&rd, (const uint8_t *)w[1], strlen(w[1]));
        if (!proto_z85_decode_key(&rd, cfg->combiner_curve_pk)) {
            return edge_cfg_fail(ps, "combiner-curve-public: not a 40-character Z85 key");
        }
        cfg->have_combiner_curve_pk = true;
        return 0;
    }
    if (strcmp(d, "combiner-client-key") == 0) {
        NEED(1, 1);
        return edge_cfg_path(ps, cfg->combiner_client_key, w[1]);
    }
    /* What only the combiner reads lives in its own file now. */
    if (strcmp(d, "combiner-key") == 0 || strcmp(d, "allow-unlocked") == 0 ||
        strcmp(d, "holder") == 0 || strcmp(d, "share") == 0 || strcmp(d, "share-timeout-ms") == 0 ||
        strcmp(d, "combiner-metrics") == 0) {
        return edge_cfg_fail(ps,
                             "'%s' belongs in the combiner's own file (combiner-config FILE; "
                             "see `combiner run --help`)",
                             d);
    }
#undef NEED
    return edge_cfg_fail(ps, "unknown directive '%s'", d);
}

int edge_config_load(struct edge_config *cfg, const char *path, char *why, size_t why_len)
{
    struct edge_cfg_parse ps;
    FILE *fp = NULL;
    char line[EDGE_LINE_MAX];
    char *raw = NULL;
    size_t raw_cap = 0;
    ssize_t got;
    const char *slash;
    size_t i;
    int r = SPK_ERR_INTERNAL;

    memset(&ps, 0, sizeof(ps));
    ps.path = path;
    ps.why = why;
    ps.why_len = why_len;
    slash = strrchr(path, '/');
    if (slash != NULL) {
        size_t dlen = (size_t)(slash - path);
        if (dlen >= sizeof(ps.dir)) {
            snprintf(why, why_len, "%s: path too long", path);
            return SPK_ERR_INVALID_ARG;
        }
        memcpy(ps.dir, path, dlen);
        ps.dir[dlen] = '\0';
        if (dlen == 0) {
            memcpy(ps.dir, "/", 2);
        }
    }
    if (strlen(path) >= sizeof(cfg->path)) {
        snprintf(why, why_len, "%s: path too long", path);
        return SPK_ERR_INVALID_ARG;
    }
    memcpy(cfg->path, path, strlen(path) + 1);
    fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        return SPK_ERR_IO;
    }
    /* getline, not fgets: it reports how many bytes it read, so a NUL byte
     * inside a line is refused instead of silently cutting the line short. */
    while ((got = getline(&raw, &raw_cap, fp)) > 0) {
        char *words[EDGE_WORDS_MAX + 1];
        size_t len = (size_t)got;
        size_t n;
        ps.line++;
        if (strlen(raw) != len) {
            r = edge_cfg_fail(&ps, "NUL byte in line");
            goto out;
        }
        if (raw[len - 1] == '\n') {
            raw[--len] = '\0';
        }
        if (len >= sizeof(line)) {
            r = edge_cfg_fail(&ps, "line too long");
            goto out;
        }
        memcpy(line, raw, len + 1);
        if (len > 0 && line[len - 1] == '\r') {
            line[--len] = '\0';
        }
        n = edge_cfg_split(line, words);
        if (n == 0 || words[0][0] == '#') {
            continue;
        }
        if (n > EDGE_WORDS_MAX) {
            r = edge_cfg_fail(&ps, "too many words");
            goto out;
        }
        if ((r = edge_cfg_directive(cfg, &ps, words, n)) != 0) {
            goto out;
        }
    }
    ps.line = 0;
    r = SPK_ERR_INVALID_ARG;
    if (cfg->num_listen == 0) {
        snprintf(why, why_len, "%s: no listen line", path);
        goto out;
    }
    if (cfg->num_certs == 0) {
        snprintf(why, why_len, "%s: no certificate line", path);
        goto out;
    }
    for (i = 0; i < cfg->num_certs; i++) {
        if (cfg->certs[i].upstream[0] == '\0' && cfg->upstream[0] == '\0') {
            snprintf(why, why_len, "%s: certificate %s has no upstream and there is no global one",
                     path, cfg->certs[i].chain_path);
            goto out;
        }
    }
    if (strcmp(cfg->tls_max, "1.2") == 0 && strcmp(cfg->tls_min, "1.3") == 0) {
        snprintf(why, why_len, "%s: tls-max 1.2 is below tls-min 1.3", path);
        goto out;
    }
    if (cfg->combiner_endpoint[0] == '\0') {
        snprintf(why, why_len, "%s: no combiner-endpoint line", path);
        goto out;
    }
    if (spk_endpoint_is_unix(cfg->combiner_endpoint)) {
        struct sockaddr_un sa;
        socklen_t sa_len = 0;

        if (spk_unix_addr(&sa, &sa_len, cfg->combiner_endpoint) != 0) {
            snprintf(why, why_len,
                     "%s: combiner-endpoint '%s': the path is empty or longer than %zu bytes", path,
                     cfg->combiner_endpoint, sizeof(sa.sun_path) - 1);
            goto out;
        }
    } else if ((strncmp(cfg->combiner_endpoint, "ipc://", 6) != 0 &&
                strncmp(cfg->combiner_endpoint, "tcp://", 6) != 0) ||
               cfg->combiner_endpoint[6] == '\0') {
        snprintf(why, why_len,
                 "%s: combiner-endpoint '%s' is not unix://PATH, ipc://PATH or tcp://HOST:PORT",
                 path, cfg->combiner_endpoint);
        goto out;
    }
    if (!cfg->combiner_external && cfg->combiner_config[0] == '\0') {
        snprintf(why, why_len, "%s: no combiner-config line (or combiner-external yes)", path);
        goto out;
    }
    if (strncmp(cfg->combiner_endpoint, "tcp://", 6) == 0 &&
        (!cfg->have_combiner_curve_pk || cfg->combiner_client_key[0] == '\0')) {
        snprintf(why, why_len,
                 "%s: a tcp:// combiner-endpoint needs combiner-curve-public and "
                 "combiner-client-key (the combiner serves tcp:// over CURVE only)",
                 path);
        goto out;
    }
    r = 0;
out:
    free(raw);
    fclose(fp);
    return r;
}
