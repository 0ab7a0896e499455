/*
 * edge_loop.c: the TLS-facing process. One epoll loop over non-blocking
 * sockets; every handshake runs with SSL_MODE_ASYNC, so a private-key
 * operation pauses its ASYNC job (edge_client.c) instead of the loop. While a
 * job is paused its client socket is masked in epoll and the job's wait fds
 * are watched instead; they are taken out of epoll before the job is resumed.
 * After the handshake the plaintext is relayed to the upstream with one
 * buffer per direction: a side is read only when the buffer towards the
 * other side is empty (backpressure), and an EOF on one side becomes a
 * half-close on the other.
 *
 * This process holds certificates and public keys only. It starts the
 * combiner (fork + exec: a fresh process image), restarts it when it dies,
 * and fails the handshakes that were waiting on it.
 */

/* accept4 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <zmq.h>

#include "edge/internal.h"
#include "split/split.h"

#define EDGE_BUF_LEN (64 * 1024)
#define EDGE_ASYNC_FDS_MAX 4
#define EDGE_EVENTS_MAX 256
#define EDGE_NAMES_MAX 64
#define EDGE_TICK_MS 100

enum edge_ev_kind {
    EDGE_EV_LISTEN = 1,
    EDGE_EV_CLIENT,
    EDGE_EV_UPSTREAM,
    EDGE_EV_ASYNC,
    EDGE_EV_COMBINER,
    EDGE_EV_SIGNAL,
    EDGE_EV_METRICS_LISTEN,
    EDGE_EV_METRICS,
};

struct edge_ev {
    enum edge_ev_kind kind;
    int fd;
    uint32_t events; /* what epoll watches now; 0 = not registered */
    void *ptr;
};

struct edge_site {
    SSL_CTX *ctx;
    EVP_PKEY *key; /* provider key: n, e, key id */
    char names[EDGE_NAMES_MAX][256];
    size_t num_names;
    struct sockaddr_storage up_addr;
    socklen_t up_len;
    char upstream[EDGE_HOSTPORT_MAX];
    struct edge_alpn alpn; /* the certificate's own `alpn` (if set) */
    struct edge_ocsp ocsp;
};

/*
 * struct edge_sites: the certificates of one configuration. SIGHUP makes a
 * new set; connections keep the set they were accepted with (a reference
 * each) and the old set is freed when the last of them closes.
 */
struct edge_sites {
    size_t refs;
    size_t num;
    struct edge_site *v;
};

/* One scrape of the metrics endpoint: read the request head, write the
 * answer, close. */
struct edge_mconn {
    struct edge_mconn *prev, *next;
    struct edge_ev ev;
    char req[2048];
    size_t req_len;
    struct spk_text out;
    size_t off;
    bool answering;
    uint64_t deadline_ms;
};

#define EDGE_MCONN_MAX 16

/* Handshake counters: [0] ok, [1] failed; version [0] 1.2, [1] 1.3, [2] other. */
#define EDGE_VER_NUM 3

enum edge_conn_state {
    EDGE_CONN_HANDSHAKE = 1,
    EDGE_CONN_CONNECTING,
    EDGE_CONN_RELAY,
};

struct edge_conn {
    struct edge_loop *loop;
    struct edge_conn *prev, *next;
    enum edge_conn_state state;
    size_t listen_index; /* which listen line accepted it */
    struct edge_ev cev;  /* client socket */
    struct edge_ev uev;  /* upstream socket (fd -1 until connecting) */
    struct edge_ev aev[EDGE_ASYNC_FDS_MAX];
    size_t num_aev;
    bool paused; /* an ASYNC job of this SSL waits; the client socket is masked */
    SSL *ssl;
    struct edge_sites *sites; /* referenced */
    struct edge_site *site;
    bool sni_matched;                  /* the client's name picked |site| */
    bool sid_ctx_set;                  /* sid_ctx holds the name's context */
    uint8_t sid_ctx[EDGE_SNI_CTX_LEN]; /* sessions are bound to the name */
    uint64_t deadline_ms;
    struct sockaddr_storage peer, local;
    /* relay */
    uint8_t *c2u;
    size_t c2u_len, c2u_off;
    size_t c2u_used; /* bytes of c2u ever written: all that needs wiping */
    uint8_t *u2c;
    size_t u2c_len, u2c_off;
    size_t u2c_used;
    bool client_eof, upstream_eof, up_shut, tls_shut;
    bool up_failed; /* no origin: what the client sends is dropped */
    bool want_c_in, want_c_out, want_u_in, want_u_out;
    bool dead; /* closed; freed after the current batch of events */
};

struct edge_loop {
    const struct edge_config *cfg;
    struct edge_config *owned_cfg; /* cfg after a reload */
    const char *config_path;
    const char *self_path;
    int epfd;
    struct edge_ev listen_ev[EDGE_LISTEN_MAX];
    size_t num_listen;
    bool listening;
    struct edge_ev comb_ev;
    struct edge_ev sig_ev;
    void *zctx;
    struct edge_client *client;
    struct edge_sites *sites; /* the serving set (one reference) */
    struct edge_conn *conns;
    size_t num_conns;
    struct edge_conn *dead; /* closed in this batch, linked through next */
    bool stop;
    uint64_t drain_deadline; /* != 0: SIGTERM came, finishing open connections */
    uint64_t reloads_ok, reloads_failed;
    pid_t comb_pid;
    uint64_t comb_restart_at; /* 0 = not waiting to restart */
    unsigned comb_backoff_ms;
    uint64_t comb_started_at;
    uint64_t last_tick;
    uint64_t num_accepted, num_handshakes, num_failed_handshakes;
    uint64_t hs[2][EDGE_VER_NUM][2]; /* [failed][version][resumed] */
    uint64_t hs_timeouts;
    uint64_t comb_restarts;
    uint64_t upstream_failures;
    struct edge_tickets *tickets;
    uint64_t ticket_rotate_at; /* 0: keys from ticket-key-file, not rotated */
    uint64_t ticket_rotations;
    struct edge_ev metrics_ev;
    struct edge_mconn *mconns;
    size_t num_mconns;
    struct spk_text mtext;
};

/* ---- epoll helpers ----------------------------------------------------------- */

static void edge_ev_set(struct edge_loop *L, struct edge_ev *ev, uint32_t events)
{
    struct epoll_event e;

    if (ev->fd < 0 || ev->events == events) {
        return;
    }
    memset(&e, 0, sizeof(e));
    e.events = events;
    e.data.ptr = ev;
    if (events == 0) {
        epoll_ctl(L->epfd, EPOLL_CTL_DEL, ev->fd, NULL);
    } else if (ev->events == 0) {
        if (epoll_ctl(L->epfd, EPOLL_CTL_ADD, ev->fd, &e) != 0) {
            spk_log("edge", "epoll add fd %d: %s", ev->fd, strerror(errno));
            return;
        }
    } else {
        epoll_ctl(L->epfd, EPOLL_CTL_MOD, ev->fd, &e);
    }
    ev->events = events;
}

/* ---- sites: certificates, keys, SNI ------------------------------------------ */

static int edge_resolve(struct sockaddr_storage *out, socklen_t *out_len, const char *hostport,
                        bool passive)
{
    char host[EDGE_HOSTPORT_MAX];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints, *res = NULL;
    size_t hlen;
    int rc;

    if (colon == NULL || (hlen = (size_t)(colon - hostport)) >= sizeof(host)) {
        return SPK_ERR_INVALID_ARG;
    }
    memcpy(host, hostport, hlen);
    host[hlen] = '\0';
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(*out)) {
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return SPK_ERR_INVALID_ARG;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void edge_site_add_name(struct edge_site *s, const char *name, size_t len)
{
    if (s->num_names == EDGE_NAMES_MAX || len == 0 || len >= sizeof(s->names[0])) {
        return;
    }
    memcpy(s->names[s->num_names], name, len);
    s->names[s->num_names][len] = '\0';
    s->num_names++;
}

static void edge_site_names(struct edge_site *s, X509 *leaf)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    int i;

    for (i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type == GEN_DNS) {
            edge_site_add_name(s, (const char *)ASN1_STRING_get0_data(gn->d.dNSName),
                               (size_t)ASN1_STRING_length(gn->d.dNSName));
        }
    }
    GENERAL_NAMES_free(sans);
    if (s->num_names == 0) {
        char cn[256];
        int len =
            X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn));
        if (len > 0) {
            edge_site_add_name(s, cn, (size_t)len);
        }
    }
}

/* edge_name_match: |pattern| is a DNS name or "*.rest" matching one label. */
static bool edge_name_match(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

static struct edge_site *edge_site_find(struct edge_sites *S, const char *name)
{
    size_t i, j;

    /* Exact names first, then wildcards. */
    for (i = 0; i < S->num; i++) {
        for (j = 0; j < S->v[i].num_names; j++) {
            if (S->v[i].names[j][0] != '*' && strcasecmp(S->v[i].names[j], name) == 0) {
                return &S->v[i];
            }
        }
    }
    for (i = 0; i < S->num; i++) {
        for (j = 0; j < S->v[i].num_names; j++) {
            if (edge_name_match(S->v[i].names[j], name)) {
                return &S->v[i];
            }
        }
    }
    return NULL;
}

/*
 * edge_client_hello_cb picks the certificate (and upstream) for the name the
 * client asks for, before OpenSSL looks for a session to resume, and binds
 * the connection's sessions to that name (edge_sni.c). Runs again for the
 * second ClientHello after a HelloRetryRequest.
 */
static int edge_client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    struct edge_conn *conn = SSL_get_app_data(ssl);
    const unsigned char *ext = NULL;
    size_t ext_len = 0;
    char name[EDGE_SNI_NAME_MAX + 1] = "";
    struct edge_site *site = NULL;

    (void)arg;
    if (conn == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &ext_len) == 1 &&
        edge_sni_parse(name, ext, ext_len) != 0) {
        *alert = SSL_AD_DECODE_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (name[0] != '\0') {
        site = edge_site_find(conn->sites, name);
    }
    conn->sni_matched = site != NULL;
    if (site == NULL) {
        site = &conn->sites->v[0]; /* the default certificate answers */
    }
    if (site != conn->site) {
        if (SSL_set_SSL_CTX(ssl, site->ctx) == NULL) {
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        conn->site = site;
    }
    edge_sni_session_context(conn->sid_ctx, name);
    if (SSL_set_session_id_context(ssl, conn->sid_ctx, sizeof(conn->sid_ctx)) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    conn->sid_ctx_set = true;
    return SSL_CLIENT_HELLO_SUCCESS;
}

const uint8_t *edge_conn_session_context(const SSL *ssl)
{
    const struct edge_conn *conn = SSL_get_app_data(ssl);

    return conn != NULL && conn->sid_ctx_set ? conn->sid_ctx : NULL;
}

/* edge_servername_cb: the site was chosen from the ClientHello already;
 * this only acknowledges a name that matched a certificate. */
static int edge_servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct edge_conn *conn = SSL_get_app_data(ssl);

    (void)alert;
    (void)arg;
    return conn != NULL && conn->sni_matched ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
}

/*
 * edge_alpn_select_cb picks the first of our protocols the client offers:
 * the certificate's `alpn` if it has one, else its listen line's, else the
 * global one. A client whose list has none of them is refused with
 * no_application_protocol (RFC 7301), before any key operation.
 */
static int edge_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                               const unsigned char *in, unsigned int in_len, void *arg)
{
    const struct edge_conn *conn = SSL_get_app_data(ssl);
    const struct edge_config *cfg;
    const struct edge_alpn *a;
    unsigned char *sel = NULL;

    (void)arg;
    if (conn == NULL) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    cfg = conn->loop->cfg;
    a = &cfg->alpn;
    if (conn->site->alpn.set) {
        a = &conn->site->alpn;
    } else if (conn->listen_index < cfg->num_listen && cfg->listen_alpn[conn->listen_index].set) {
        a = &cfg->listen_alpn[conn->listen_index];
    }
    if (a->len == 0) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    if (SSL_select_next_proto(&sel, out_len, a->wire, (unsigned int)a->len, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int edge_check_record(const char *path, const uint8_t key_id[PROTO_KEY_ID_LEN], char *why,
                             size_t why_len)
{
    struct proto_record *rec = calloc(1, sizeof(*rec)); /* ~27 KB: too big for a stack */
    int r;

    if (rec == NULL) {
        snprintf(why, why_len, "%s: out of memory", path);
        return SPK_ERR_NOMEM;
    }
    if ((r = proto_record_load(rec, path, why, why_len)) != 0) {
        goto out;
    }
    if ((r = split_record_verify(rec)) != 0) {
        snprintf(why, why_len, "%s: the record's signature does not verify", path);
        goto out;
    }
    if (sodium_memcmp(rec->key_id, key_id, PROTO_KEY_ID_LEN) != 0) {
        snprintf(why, why_len, "%s: the record is for another key than the certificate", path);
        r = SPK_ERR_KEY_MISMATCH;
        goto out;
    }
    r = 0;
out:
    free(rec);
    return r;
}

static int edge_site_init(struct edge_loop *L, const struct edge_config *cfg, struct edge_site *s,
                          const struct edge_cert_conf *cc, char *why, size_t why_len)
{
    uint8_t key_id[PROTO_KEY_ID_LEN];
    FILE *fp = NULL;
    X509 *leaf = NULL;
    X509 *extra = NULL;
    int r = SPK_ERR_INTERNAL;

    fp = fopen(cc->chain_path, "r");
    if (fp == NULL) {
        snprintf(why, why_len, "%s: %s", cc->chain_path, strerror(errno));
        return SPK_ERR_IO;
    }
    leaf = PEM_read_X509(fp, NULL, NULL, NULL);
    if (leaf == NULL) {
        snprintf(why, why_len, "%s: no PEM certificate", cc->chain_path);
        r = SPK_ERR_MALFORMED;
        goto out;
    }
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (s->ctx == NULL || SSL_CTX_use_certificate(s->ctx, leaf) != 1) {
        snprintf(why, why_len, "%s: certificate refused by OpenSSL", cc->chain_path);
        r = SPK_ERR_CRYPTO;
        goto out;
    }
    while ((extra = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(s->ctx, extra) != 1) {
            X509_free(extra);
            snprintf(why, why_len, "%s: chain certificate refused", cc->chain_path);
            r = SPK_ERR_CRYPTO;
            goto out;
        }
    }
    ERR_clear_error();
    if ((r = prov_key_new(&s->key, key_id, X509_get0_pubkey(leaf))) != 0) {
        snprintf(why, why_len, "%s: the certificate's key is not RSA", cc->chain_path);
        goto out;
    }
    if ((r = edge_check_record(cc->record_path, key_id, why, why_len)) != 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (SSL_CTX_use_PrivateKey(s->ctx, s->key) != 1 || SSL_CTX_check_private_key(s->ctx) != 1) {
        snprintf(why, why_len, "%s: OpenSSL refused the split key", cc->chain_path);
        goto out;
    }
    if ((r = edge_tls_ctx_setup(s->ctx, cfg, why, why_len)) != 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (cc->ocsp_path[0] != '\0') {
        if ((r = edge_ocsp_load(&s->ocsp, cc->ocsp_path, leaf, s->ctx, why, why_len)) != 0) {
            goto out;
        }
        r = SPK_ERR_CRYPTO;
        if (edge_ocsp_install(s->ctx, &s->ocsp) != 0) {
            snprintf(why, why_len, "OCSP stapling: OpenSSL refused the callback");
            goto out;
        }
    }
    s->alpn = cc->alpn;
    SSL_CTX_set_alpn_select_cb(s->ctx, edge_alpn_select_cb, NULL);
    SSL_CTX_set_session_id_context(s->ctx, (const unsigned char *)"spk-edge", 8);
    if (edge_tickets_install(s->ctx) != 0 || edge_sni_install(s->ctx) != 0) {
        snprintf(why, why_len, "session tickets: OpenSSL refused the key callback");
        goto out;
    }
    SSL_CTX_set_client_hello_cb(s->ctx, edge_client_hello_cb, NULL);
    SSL_CTX_set_tlsext_servername_callback(s->ctx, edge_servername_cb);
    SSL_CTX_set_tlsext_servername_arg(s->ctx, L);
    edge_site_names(s, leaf);
    snprintf(s->upstream, sizeof(s->upstream), "%s",
             cc->upstream[0] != '\0' ? cc->upstream : cfg->upstream);
    if (edge_resolve(&s->up_addr, &s->up_len, s->upstream, false) != 0) {
        snprintf(why, why_len, "upstream %s: cannot resolve", s->upstream);
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    r = 0;
out:
    X509_free(leaf);
    fclose(fp);
    return r;
}

static void edge_sites_unref(struct edge_sites *S)
{
    size_t i;

    if (S == NULL || --S->refs > 0) {
        return;
    }
    for (i = 0; i < S->num; i++) {
        SSL_CTX_free(S->v[i].ctx);
        EVP_PKEY_free(S->v[i].key);
        edge_ocsp_cleanup(&S->v[i].ocsp);
    }
    free(S->v);
    free(S);
}

/* edge_sites_new: every certificate of |cfg|, or NULL with |why|. */
static struct edge_sites *edge_sites_new(struct edge_loop *L, const struct edge_config *cfg,
                                         char *why, size_t why_len)
{
    struct edge_sites *S = calloc(1, sizeof(*S));
    size_t i;

    if (S == NULL || (S->v = calloc(cfg->num_certs, sizeof(*S->v))) == NULL) {
        free(S);
        snprintf(why, why_len, "no memory");
        return NULL;
    }
    S->refs = 1;
    for (i = 0; i < cfg->num_certs; i++) {
        S->num = i + 1;
        if (edge_site_init(L, cfg, &S->v[i], &cfg->certs[i], why, why_len) != 0) {
            edge_sites_unref(S);
            return NULL;
        }
    }
    return S;
}

/* ---- connections ---------------------------------------------------------------- */

static void edge_conn_free(struct edge_conn *c);

static int edge_ver_index(const SSL *ssl)
{
    int v = SSL_version(ssl);

    return v == TLS1_2_VERSION ? 0 : v == TLS1_3_VERSION ? 1 : 2;
}

static const char *const edge_ver_names[EDGE_VER_NUM] = {"TLSv1.2", "TLSv1.3", "unknown"};

static void edge_addr_str(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else {
        snprintf(out, cap, "unknown");
    }
}

/*
 * edge_handshake_failed counts a failed handshake and logs one line with the
 * client's address and why: |reason| if given, else the first OpenSSL error
 * (with the provider's detail, e.g. the combiner's answer), else what
 * SSL_get_error said. Called before the error queue is cleared.
 */
static void edge_handshake_failed(struct edge_conn *c, int ssl_err, const char *reason)
{
    struct edge_loop *L = c->loop;
    char addr[INET6_ADDRSTRLEN + 16];
    char why[300] = "";
    const char *data = NULL;
    int flags = 0;
    unsigned long e = 0;

    L->num_failed_handshakes++;
    L->hs[1][edge_ver_index(c->ssl)][0]++;
    edge_addr_str(&c->peer, addr, sizeof(addr));
    if (reason == NULL) {
        /* The provider's failure carries the combiner's reason as data. */
        unsigned long first = 0;
        while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
            if (first == 0) {
                first = e;
                ERR_error_string_n(e, why, sizeof(why));
                if (ERR_reason_error_string(e) != NULL) {
                    snprintf(why, sizeof(why), "%s", ERR_reason_error_string(e));
                }
            }
            if ((flags & ERR_TXT_STRING) != 0 && data != NULL && data[0] != '\0' &&
                strncmp(data, "splitkey", 8) == 0) {
                snprintf(why, sizeof(why), "%s", data);
                break;
            }
        }
        if (first == 0) {
            snprintf(why, sizeof(why), "%s",
                     ssl_err == SSL_ERROR_SYSCALL       ? "the client closed the connection"
                     : ssl_err == SSL_ERROR_ZERO_RETURN ? "the client sent close_notify"
                                                        : "handshake error");
        }
        reason = why;
    }
    spk_log("edge", "handshake failed: client %s: %s", addr, reason);
}

static void edge_async_unwatch(struct edge_loop *L, struct edge_conn *c)
{
    size_t i;

    for (i = 0; i < c->num_aev; i++) {
        edge_ev_set(L, &c->aev[i], 0);
    }
    c->num_aev = 0;
}

/* edge_async_watch: the paused job's wait fds go into epoll; the client
 * socket is masked until the job is done. */
static bool edge_async_watch(struct edge_loop *L, struct edge_conn *c)
{
    OSSL_ASYNC_FD fds[EDGE_ASYNC_FDS_MAX];
    size_t n = 0, i;

    if (!SSL_get_all_async_fds(c->ssl, NULL, &n) || n == 0 || n > EDGE_ASYNC_FDS_MAX ||
        !SSL_get_all_async_fds(c->ssl, fds, &n)) {
        return false;
    }
    edge_async_unwatch(L, c);
    for (i = 0; i < n; i++) {
        c->aev[i].kind = EDGE_EV_ASYNC;
        c->aev[i].fd = fds[i];
        c->aev[i].events = 0;
        c->aev[i].ptr = c;
        edge_ev_set(L, &c->aev[i], EPOLLIN);
    }
    c->num_aev = n;
    c->paused = true;
    edge_ev_set(L, &c->cev, 0);
    return true;
}

static void edge_conn_close(struct edge_conn *c)
{
    struct edge_loop *L = c->loop;
    int tries;

    /* A job still waits for the combiner: end its operation and let the job
     * run to its end (it fails the handshake), so none is left behind. */
    for (tries = 0; c->paused && tries < 4; tries++) {
        OSSL_ASYNC_FD fds[EDGE_ASYNC_FDS_MAX];
        size_t n = 0, k;
        int rc;
        edge_async_unwatch(L, c);
        if (SSL_get_all_async_fds(c->ssl, NULL, &n) && n > 0 && n <= EDGE_ASYNC_FDS_MAX &&
            SSL_get_all_async_fds(c->ssl, fds, &n)) {
            for (k = 0; k < n; k++) {
                (void)edge_client_cancel_fd(L->client, fds[k]);
            }
        }
        rc = SSL_do_handshake(c->ssl);
        c->paused = rc != 1 && SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_ASYNC;
    }
    ERR_clear_error();
    edge_conn_free(c);
}

static void edge_conn_free(struct edge_conn *c)
{
    struct edge_loop *L = c->loop;
    bool was_full = L->num_conns >= L->cfg->max_connections;

    edge_async_unwatch(L, c);
    edge_ev_set(L, &c->cev, 0);
    edge_ev_set(L, &c->uev, 0);
    SSL_free(c->ssl);
    edge_sites_unref(c->sites);
    c->sites = NULL;
    if (c->cev.fd >= 0) {
        close(c->cev.fd);
    }
    if (c->uev.fd >= 0) {
        close(c->uev.fd);
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        L->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    L->num_conns--;
    if (c->c2u != NULL) {
        OPENSSL_cleanse(c->c2u, c->c2u_used);
    }
    if (c->u2c != NULL) {
        OPENSSL_cleanse(c->u2c, c->u2c_used);
    }
    free(c->c2u);
    free(c->u2c);
    c->c2u = c->u2c = NULL;
    c->ssl = NULL;
    c->dead = true;
    c->next = L->dead;
    c->prev = NULL;
    L->dead = c;
    if (was_full && !L->stop && L->drain_deadline == 0) {
        size_t i;
        for (i = 0; i < L->num_listen; i++) {
            edge_ev_set(L, &L->listen_ev[i], EPOLLIN);
        }
        L->listening = true;
    }
}

/* edge_proxy_header writes a PROXY protocol v2 header for |c| into |out|. */
static size_t edge_proxy_header(const struct edge_conn *c, uint8_t *out)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    size_t len = 16;

    memcpy(out, sig, sizeof(sig));
    out[12] = 0x21; /* version 2, PROXY */
    if (c->peer.ss_family == AF_INET && c->local.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&c->peer;
        const struct sockaddr_in *d = (const struct sockaddr_in *)&c->local;
        out[13] = 0x11; /* TCP over IPv4 */
        out[14] = 0;
        out[15] = 12;
        memcpy(out + 16, &s->sin_addr, 4);
        memcpy(out + 20, &d->sin_addr, 4);
        memcpy(out + 24, &s->sin_port, 2);
        memcpy(out + 26, &d->sin_port, 2);
        len += 12;
    } else if (c->peer.ss_family == AF_INET6 && c->local.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&c->peer;
        const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&c->local;
        out[13] = 0x21; /* TCP over IPv6 */
        out[14] = 0;
        out[15] = 36;
        memcpy(out + 16, &s->sin6_addr, 16);
        memcpy(out + 32, &d->sin6_addr, 16);
        memcpy(out + 48, &s->sin6_port, 2);
        memcpy(out + 50, &d->sin6_port, 2);
        len += 36;
    } else {
        out[12] = 0x20; /* LOCAL: no addresses */
        out[13] = 0x00;
        out[14] = 0;
        out[15] = 0;
    }
    return len;
}

/*
 * edge_conn_note_used: every write into a relay buffer starts at its first
 * byte, so the longest one bounds what the buffer ever held. On close only
 * that much is wiped: wiping both 64 KiB buffers of every connection cost
 * about 6.5% of the edge's CPU under a one-request-per-connection load.
 */
static void edge_conn_note_used(size_t *used, size_t len)
{
    if (len > *used) {
        *used = len;
    }
}

/*
 * edge_conn_upstream_failed: the origin could not be reached. With
 * `upstream-failure http502` the client gets a 502 response and close_notify
 * (the relay sends them; what the client sends is dropped); with reset, the
 * default, its TCP connection is reset, so that it cannot take the close for
 * an empty answer whatever the protocol. False when |c| is to be closed now.
 */
static bool edge_conn_upstream_failed(struct edge_conn *c)
{
    static const char body[] = "502 Bad Gateway: the origin cannot be reached\n";
    struct edge_loop *L = c->loop;
    struct linger reset = {1, 0};
    int n;

    L->upstream_failures++;
    if (c->uev.fd >= 0) {
        edge_ev_set(L, &c->uev, 0);
        close(c->uev.fd);
        c->uev.fd = -1;
    }
    if (L->cfg->upstream_failure != EDGE_UPSTREAM_FAILURE_HTTP502 || c->u2c == NULL) {
        setsockopt(c->cev.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        return false;
    }
    n = snprintf((char *)c->u2c, EDGE_BUF_LEN,
                 "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 sizeof(body) - 1, body);
    c->u2c_len = n > 0 ? (size_t)n : 0;
    edge_conn_note_used(&c->u2c_used, c->u2c_len);
    c->u2c_off = 0;
    c->c2u_len = c->c2u_off = 0;
    c->up_failed = true;
    c->upstream_eof = true;
    c->up_shut = true;
    c->state = EDGE_CONN_RELAY;
    c->deadline_ms = spk_now_ms() + L->cfg->idle_timeout_ms;
    return true;
}

static bool edge_conn_start_upstream(struct edge_conn *c)
{
    struct edge_site *s = c->site;
    int one = 1;
    int fd;

    c->c2u = malloc(EDGE_BUF_LEN);
    c->u2c = malloc(EDGE_BUF_LEN);
    if (c->c2u == NULL || c->u2c == NULL) {
        return false;
    }
    fd = socket(s->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->uev.fd = fd;
    if (connect(fd, (const struct sockaddr *)&s->up_addr, s->up_len) != 0 && errno != EINPROGRESS) {
        spk_log("edge", "upstream %s: %s", s->upstream, strerror(errno));
        return edge_conn_upstream_failed(c);
    }
    if (c->loop->cfg->proxy_protocol) {
        c->c2u_len = edge_proxy_header(c, c->c2u);
        edge_conn_note_used(&c->c2u_used, c->c2u_len);
    }
    c->state = EDGE_CONN_CONNECTING;
    c->deadline_ms = spk_now_ms() + c->loop->cfg->handshake_timeout_ms;
    return true;
}

/* edge_conn_handshake: one step; false when the connection is finished. */
static bool edge_conn_handshake(struct edge_conn *c)
{
    struct edge_loop *L = c->loop;
    int rc = SSL_do_handshake(c->ssl);
    int err;

    if (rc == 1) {
        c->paused = false;
        L->num_handshakes++;
        L->hs[0][edge_ver_index(c->ssl)][SSL_session_reused(c->ssl) ? 1 : 0]++;
        if (!edge_conn_start_upstream(c)) {
            return false;
        }
        return true;
    }
    err = SSL_get_error(c->ssl, rc);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        c->paused = false;
        c->want_c_in = true;
        return true;
    case SSL_ERROR_WANT_WRITE:
        c->paused = false;
        c->want_c_out = true;
        return true;
    case SSL_ERROR_WANT_ASYNC:
        return edge_async_watch(L, c);
    default:
        /* OpenSSL has sent its alert (a failed key operation is an internal
         * error alert); nothing else goes to the client. */
        c->paused = false;
        edge_handshake_failed(c, err, NULL);
        ERR_clear_error();
        return false;
    }
}

/* edge_conn_relay: move what can be moved; false when the connection is
 * finished. Sets the want_* flags for what it waits on. */
static bool edge_conn_relay(struct edge_conn *c)
{
    bool progress = true;
    uint64_t now = spk_now_ms();

    while (progress) {
        progress = false;
        c->want_c_in = c->want_c_out = c->want_u_in = c->want_u_out = false;
        /* client -> upstream */
        if (!c->client_eof && c->c2u_len == 0) {
            int n = SSL_read(c->ssl, c->c2u, EDGE_BUF_LEN);
            if (n > 0) {
                c->c2u_len = (size_t)n;
                edge_conn_note_used(&c->c2u_used, c->c2u_len);
                c->c2u_off = 0;
                progress = true;
            } else {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_READ) {
                    c->want_c_in = true;
                } else if (e == SSL_ERROR_WANT_WRITE) {
                    c->want_c_out = true;
                } else if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
                    c->client_eof = true; /* close_notify, or a plain TCP close */
                    progress = true;
                    if (e == SSL_ERROR_SYSCALL) {
                        c->tls_shut = true; /* nothing more can be written */
                    }
                } else {
                    ERR_clear_error();
                    return false;
                }
            }
        }
        if (c->up_failed) {
            c->c2u_len = c->c2u_off = 0; /* nowhere to send it */
        }
        if (c->c2u_off < c->c2u_len) {
            ssize_t n = write(c->uev.fd, c->c2u + c->c2u_off, c->c2u_len - c->c2u_off);
            if (n > 0) {
                c->c2u_off += (size_t)n;
                if (c->c2u_off == c->c2u_len) {
                    c->c2u_off = c->c2u_len = 0;
                }
                progress = true;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->want_u_out = true;
            } else {
                return false;
            }
        }
        if (c->client_eof && c->c2u_len == 0 && !c->up_shut) {
            shutdown(c->uev.fd, SHUT_WR);
            c->up_shut = true;
        }
        /* upstream -> client */
        if (!c->upstream_eof && c->u2c_len == 0) {
            ssize_t n = read(c->uev.fd, c->u2c, EDGE_BUF_LEN);
            if (n > 0) {
                c->u2c_len = (size_t)n;
                edge_conn_note_used(&c->u2c_used, c->u2c_len);
                c->u2c_off = 0;
                progress = true;
            } else if (n == 0) {
                c->upstream_eof = true;
                progress = true;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->want_u_in = true;
            } else {
                c->upstream_eof = true;
                progress = true;
            }
        }
        if (c->u2c_off < c->u2c_len) {
            int n;
            if (c->tls_shut) {
                return false; /* the client is gone: drop the rest */
            }
            n = SSL_write(c->ssl, c->u2c + c->u2c_off, (int)(c->u2c_len - c->u2c_off));
            if (n > 0) {
                c->u2c_off += (size_t)n;
                if (c->u2c_off == c->u2c_len) {
                    c->u2c_off = c->u2c_len = 0;
                }
                progress = true;
            } else {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE) {
                    c->want_c_out = true;
                } else if (e == SSL_ERROR_WANT_READ) {
                    c->want_c_in = true;
                } else {
                    ERR_clear_error();
                    return false;
                }
            }
        }
        if (c->upstream_eof && c->u2c_len == 0 && !c->tls_shut) {
            (void)SSL_shutdown(c->ssl); /* close_notify: the origin is done */
            ERR_clear_error();
            c->tls_shut = true;
            progress = true;
        }
        if (progress) {
            c->deadline_ms = now + c->loop->cfg->idle_timeout_ms;
        }
    }
    if (c->client_eof && c->upstream_eof && c->c2u_len == 0 && c->u2c_len == 0) {
        return false;
    }
    return true;
}

/* edge_conn_run drives |c| as far as it goes, then sets its epoll interest. */
static void edge_conn_run(struct edge_conn *c)
{
    struct edge_loop *L = c->loop;
    bool alive = true;

    c->want_c_in = c->want_c_out = c->want_u_in = c->want_u_out = false;
    if (c->state == EDGE_CONN_HANDSHAKE) {
        alive = edge_conn_handshake(c);
    }
    if (alive && c->state == EDGE_CONN_CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(c->uev.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
            spk_log("edge", "upstream %s: %s", c->site->upstream,
                    strerror(soerr != 0 ? soerr : errno));
            alive = edge_conn_upstream_failed(c);
        } else {
            struct sockaddr_storage sa;
            socklen_t sl = sizeof(sa);
            if (getpeername(c->uev.fd, (struct sockaddr *)&sa, &sl) == 0) {
                c->state = EDGE_CONN_RELAY;
                c->deadline_ms = spk_now_ms() + L->cfg->idle_timeout_ms;
            } else {
                c->want_u_out = true; /* still connecting */
            }
        }
    }
    if (alive && c->state == EDGE_CONN_RELAY) {
        alive = edge_conn_relay(c);
    }
    if (!alive) {
        edge_conn_close(c);
        return;
    }
    if (!c->paused) {
        edge_ev_set(L, &c->cev, (c->want_c_in ? EPOLLIN : 0) | (c->want_c_out ? EPOLLOUT : 0));
    }
    edge_ev_set(L, &c->uev, (c->want_u_in ? EPOLLIN : 0) | (c->want_u_out ? EPOLLOUT : 0));
}

/* At most this many accepts per readiness event: clients that fail fast and
 * reconnect at once would otherwise keep the loop in accept() forever (and
 * SIGCHLD, timers and the combiner's answers would wait). The listener is
 * level-triggered: the rest comes on the next turn. */
#define EDGE_ACCEPT_BATCH 32

static void edge_accept(struct edge_loop *L, struct edge_ev *lev)
{
    unsigned batch = 0;

    while (L->num_conns < L->cfg->max_connections) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        struct edge_conn *c;
        socklen_t llen;
        int one = 1;
        int fd = accept4(lev->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            return; /* EAGAIN, or a transient error (EMFILE...): try again later */
        }

        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->loop = L;
        c->listen_index = (size_t)(lev - L->listen_ev);
        c->state = EDGE_CONN_HANDSHAKE;
        c->cev = (struct edge_ev){EDGE_EV_CLIENT, fd, 0, c};
        c->uev = (struct edge_ev){EDGE_EV_UPSTREAM, -1, 0, c};
        c->peer = peer;
        llen = sizeof(c->local);
        getsockname(fd, (struct sockaddr *)&c->local, &llen);
        c->sites = L->sites;
        c->sites->refs++;
        c->site = &c->sites->v[0];
        c->ssl = SSL_new(c->site->ctx);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
            edge_sites_unref(c->sites);
            SSL_free(c->ssl);
            close(fd);
            free(c);
            continue;
        }
        SSL_set_app_data(c->ssl, c);
        SSL_set_accept_state(c->ssl);
        c->deadline_ms = spk_now_ms() + L->cfg->handshake_timeout_ms;
        c->next = L->conns;
        if (L->conns != NULL) {
            L->conns->prev = c;
        }
        L->conns = c;
        L->num_conns++;
        L->num_accepted++;
        edge_conn_run(c);
        if (++batch >= EDGE_ACCEPT_BATCH) {
            return;
        }
    }
    /* Full: stop accepting; the kernel backlog holds the rest. */
    if (L->listening) {
        size_t i;
        for (i = 0; i < L->num_listen; i++) {
            edge_ev_set(L, &L->listen_ev[i], 0);
        }
        L->listening = false;
    }
}

/* ---- the combiner process --------------------------------------------------------- */

static int edge_combiner_start(struct edge_loop *L)
{
    const struct edge_config *cfg = L->cfg;
    pid_t pid;

    pid = fork();
    if (pid < 0) {
        return SPK_ERR_INTERNAL;
    }
    if (pid == 0) {
        sigset_t all;
        /* SIGHUP stays blocked across exec: one that comes while the
         * combiner starts waits for its signalfd instead of killing it. */
        sigemptyset(&all);
        sigaddset(&all, SIGHUP);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl(cfg->combiner_binary, cfg->combiner_binary, "run", "--config", cfg->combiner_config,
              "--listen", cfg->combiner_endpoint, (char *)NULL);
        fprintf(stderr, "edge: cannot run combiner %s: %s\n",
                cfg->combiner_binary[0] != '\0' ? cfg->combiner_binary : "(none found)",
                strerror(errno));
        _exit(127);
    }
    L->comb_pid = pid;
    L->comb_started_at = spk_now_ms();
    if (L->comb_restarts > 0) {
        spk_log("edge", "combiner restarted (pid %ld)", (long)pid);
    }
    return 0;
}

static void edge_reap(struct edge_loop *L)
{
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return;
        }
        if (pid == L->comb_pid) {
            L->comb_pid = 0;
            if (L->stop) {
                continue;
            }
            /* A combiner that stopped cleanly (SIGTERM) answered what it had
             * in flight before it exited, but those last answers may still be
             * on their way through ZeroMQ's I/O threads: take them for as
             * long as the combiner lingers to deliver them (1 s) before
             * sending what is left to the restarted one, which may still be
             * connecting to its holders. 200 ms lost answers on a loaded
             * machine. A rare event, so blocking the loop is the simpler price. */
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                uint64_t until = spk_now_ms() + 1000;

                edge_client_process(L->client);
                while (edge_client_pending(L->client) > 0 && spk_now_ms() < until) {
                    struct timespec pause = {0, 5 * 1000 * 1000};

                    nanosleep(&pause, NULL);
                    edge_client_process(L->client);
                }
            }
            spk_log("edge",
                    "combiner exited (%s %d); %zu operation(s) in flight go to the restarted "
                    "one, restarting",
                    WIFSIGNALED(status) ? "signal" : "status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                    edge_client_pending(L->client));
            edge_client_requeue_all(L->client);
            L->comb_restarts++;
            /* A combiner that ran a while is started again at once: service
             * is back as soon as it has its shares. One that keeps dying
             * right away is restarted less and less often (up to 5 s). */
            if (spk_now_ms() - L->comb_started_at >= 10000) {
                L->comb_backoff_ms = 0;
            }
            if (L->comb_backoff_ms == 0 && edge_combiner_start(L) == 0) {
                L->comb_backoff_ms = 100;
                continue;
            }
            L->comb_restart_at = spk_now_ms() + (L->comb_backoff_ms > 0 ? L->comb_backoff_ms : 100);
            L->comb_backoff_ms = L->comb_backoff_ms * 2 > 5000 ? 5000 : L->comb_backoff_ms * 2;
            if (L->comb_backoff_ms == 0) {
                L->comb_backoff_ms = 100;
            }
        }
    }
}

/* ---- the metrics endpoint ------------------------------------------------------------ */

static void edge_metrics_render(struct edge_loop *L, struct spk_text *t)
{
    static const char *const kinds[2] = {"sign", "decrypt"};
    static const char *const results[EDGE_OPRES_NUM] = {"ok", "error", "timeout", "unavailable"};
    struct edge_keyop_stats ks;
    uint64_t issued, accepted, unknown;
    int f, v, res, k;

    edge_client_stats(L->client, &ks);
    edge_tickets_stats(&issued, &accepted, &unknown);
    spk_text_reset(t);
    spk_text_printf(t,
                    "# HELP spk_edge_connections_accepted_total TCP connections accepted.\n"
                    "# TYPE spk_edge_connections_accepted_total counter\n"
                    "spk_edge_connections_accepted_total %llu\n"
                    "# HELP spk_edge_connections_open Client connections open now.\n"
                    "# TYPE spk_edge_connections_open gauge\n"
                    "spk_edge_connections_open %zu\n",
                    (unsigned long long)L->num_accepted, L->num_conns);
    spk_text_printf(t, "# HELP spk_edge_handshakes_total TLS handshakes by result, version and "
                       "whether the session was resumed.\n"
                       "# TYPE spk_edge_handshakes_total counter\n");
    for (f = 0; f < 2; f++) {
        for (v = 0; v < EDGE_VER_NUM; v++) {
            for (res = 0; res < 2; res++) {
                if (f == 1 && res == 1) {
                    continue;
                }
                spk_text_printf(t,
                                "spk_edge_handshakes_total{result=\"%s\",version=\"%s\","
                                "resumed=\"%s\"} %llu\n",
                                f == 0 ? "ok" : "failed", edge_ver_names[v],
                                res == 1 ? "yes" : "no", (unsigned long long)L->hs[f][v][res]);
            }
        }
    }
    spk_text_printf(t,
                    "# HELP spk_edge_handshake_timeouts_total Handshakes that ran out of "
                    "handshake-timeout-ms (counted as failed too).\n"
                    "# TYPE spk_edge_handshake_timeouts_total counter\n"
                    "spk_edge_handshake_timeouts_total %llu\n",
                    (unsigned long long)L->hs_timeouts);
    spk_text_printf(t, "# HELP spk_edge_key_operations_total Private-key operations sent to the "
                       "combiner, by kind and result.\n"
                       "# TYPE spk_edge_key_operations_total counter\n");
    for (k = 0; k < 2; k++) {
        for (res = 0; res < EDGE_OPRES_NUM; res++) {
            spk_text_printf(t, "spk_edge_key_operations_total{kind=\"%s\",result=\"%s\"} %llu\n",
                            kinds[k], results[res], (unsigned long long)ks.ops[k][res]);
        }
    }
    spk_text_printf(t, "# HELP spk_edge_key_operation_seconds Private-key operation latency "
                       "seen by the edge (answered operations).\n"
                       "# TYPE spk_edge_key_operation_seconds histogram\n");
    for (k = 0; k < 2; k++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "kind=\"%s\"", kinds[k]);
        spk_text_hist(t, "spk_edge_key_operation_seconds", labels, &ks.latency[k]);
    }
    spk_text_printf(t,
                    "# HELP spk_edge_key_operations_in_flight Operations waiting for the "
                    "combiner.\n"
                    "# TYPE spk_edge_key_operations_in_flight gauge\n"
                    "spk_edge_key_operations_in_flight %zu\n",
                    edge_client_pending(L->client));
    spk_text_printf(t,
                    "# HELP spk_edge_session_tickets_total Session tickets issued, opened, "
                    "refused for an unknown key, and opened but made for another server name.\n"
                    "# TYPE spk_edge_session_tickets_total counter\n"
                    "spk_edge_session_tickets_total{event=\"issued\"} %llu\n"
                    "spk_edge_session_tickets_total{event=\"opened\"} %llu\n"
                    "spk_edge_session_tickets_total{event=\"unknown_key\"} %llu\n"
                    "spk_edge_session_tickets_total{event=\"other_server_name\"} %llu\n"
                    "# HELP spk_edge_ticket_keys Session ticket keys loaded.\n"
                    "# TYPE spk_edge_ticket_keys gauge\n"
                    "spk_edge_ticket_keys %zu\n"
                    "# HELP spk_edge_ticket_key_rotations_total New random ticket keys made "
                    "(no ticket-key-file: every ticket-key-rotate-s).\n"
                    "# TYPE spk_edge_ticket_key_rotations_total counter\n"
                    "spk_edge_ticket_key_rotations_total %llu\n",
                    (unsigned long long)issued, (unsigned long long)accepted,
                    (unsigned long long)unknown, (unsigned long long)edge_sni_refused_count(),
                    edge_tickets_count(L->tickets), (unsigned long long)L->ticket_rotations);
    spk_text_printf(t,
                    "# HELP spk_edge_combiner_restarts_total Times the combiner process "
                    "died and was restarted.\n"
                    "# TYPE spk_edge_combiner_restarts_total counter\n"
                    "spk_edge_combiner_restarts_total %llu\n"
                    "# HELP spk_edge_upstream_failures_total Connections whose origin could "
                    "not be reached (answered as upstream-failure says).\n"
                    "# TYPE spk_edge_upstream_failures_total counter\n"
                    "spk_edge_upstream_failures_total %llu\n"
                    "# HELP spk_edge_certificates Certificates served.\n"
                    "# TYPE spk_edge_certificates gauge\n"
                    "spk_edge_certificates %zu\n",
                    (unsigned long long)L->comb_restarts, (unsigned long long)L->upstream_failures,
                    L->sites != NULL ? L->sites->num : 0);
    spk_text_printf(t,
                    "# HELP spk_edge_reloads_total Configuration reloads (SIGHUP).\n"
                    "# TYPE spk_edge_reloads_total counter\n"
                    "spk_edge_reloads_total{result=\"ok\"} %llu\n"
                    "spk_edge_reloads_total{result=\"failed\"} %llu\n",
                    (unsigned long long)L->reloads_ok, (unsigned long long)L->reloads_failed);
}

static void edge_mconn_free(struct edge_loop *L, struct edge_mconn *m)
{
    edge_ev_set(L, &m->ev, 0);
    close(m->ev.fd);
    if (m->prev != NULL) {
        m->prev->next = m->next;
    } else {
        L->mconns = m->next;
    }
    if (m->next != NULL) {
        m->next->prev = m->prev;
    }
    L->num_mconns--;
    spk_text_free(&m->out);
    free(m);
}

static void edge_mconn_run(struct edge_loop *L, struct edge_mconn *m)
{
    if (!m->answering) {
        ssize_t n = read(m->ev.fd, m->req + m->req_len, sizeof(m->req) - m->req_len);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            edge_mconn_free(L, m);
            return;
        }
        if (n > 0) {
            m->req_len += (size_t)n;
        }
        if (m->req_len == sizeof(m->req)) {
            edge_mconn_free(L, m); /* no scrape sends that much */
            return;
        }
        edge_metrics_render(L, &L->mtext);
        if (spk_http_answer(m->req, m->req_len, &L->mtext, &m->out) == 0) {
            return;
        }
        if (m->out.failed) {
            edge_mconn_free(L, m);
            return;
        }
        m->answering = true;
        edge_ev_set(L, &m->ev, EPOLLOUT);
    }
    while (m->off < m->out.len) {
        ssize_t n = write(m->ev.fd, m->out.buf + m->off, m->out.len - m->off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            break;
        }
        m->off += (size_t)n;
    }
    edge_mconn_free(L, m);
}

static void edge_metrics_accept(struct edge_loop *L)
{
    for (;;) {
        struct edge_mconn *m;
        int fd = accept4(L->metrics_ev.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        if (L->num_mconns >= EDGE_MCONN_MAX || (m = calloc(1, sizeof(*m))) == NULL) {
            close(fd);
            continue;
        }
        m->ev = (struct edge_ev){EDGE_EV_METRICS, fd, 0, m};
        m->deadline_ms = spk_now_ms() + 5000;
        m->next = L->mconns;
        if (L->mconns != NULL) {
            L->mconns->prev = m;
        }
        L->mconns = m;
        L->num_mconns++;
        edge_ev_set(L, &m->ev, EPOLLIN);
    }
}

/* ---- reload and drain ----------------------------------------------------------------- */

/* edge_tickets_schedule: the edge's own keys (no ticket-key-file) are replaced
 * every ticket-key-rotate-s; a shorter period from a reload applies at once. */
static void edge_tickets_schedule(struct edge_loop *L)
{
    uint64_t next = spk_now_ms() + (uint64_t)L->cfg->ticket_key_rotate_s * 1000;

    if (L->cfg->ticket_key_file[0] != '\0') {
        L->ticket_rotate_at = 0;
    } else if (L->ticket_rotate_at == 0 || next < L->ticket_rotate_at) {
        L->ticket_rotate_at = next;
    }
}

static void edge_tickets_maybe_rotate(struct edge_loop *L, uint64_t now)
{
    if (L->ticket_rotate_at == 0 || now < L->ticket_rotate_at) {
        return;
    }
    L->ticket_rotate_at = now + (uint64_t)L->cfg->ticket_key_rotate_s * 1000;
    if (edge_tickets_rotate(L->tickets) != 0) {
        spk_log("edge", "ticket key rotation: no randomness; keeping the current key");
        return;
    }
    L->ticket_rotations++;
}

/*
 * edge_reload: SIGHUP. The file is read again and every certificate, record
 * and the ticket keys are loaded anew; only if all of that works are they
 * swapped in, else the edge goes on as it was and says why. Connections keep
 * the certificates they started with. The combiner gets the SIGHUP too and
 * reloads keys, shares and holders itself. listen, metrics and
 * combiner-endpoint only change with a restart.
 */
static void edge_reload(struct edge_loop *L)
{
    struct edge_config *cfg = malloc(sizeof(*cfg));
    struct edge_tickets *tickets = NULL;
    struct edge_sites *sites = NULL;
    char why[4096] = "";
    size_t i;
    bool same_listen, keep_own_keys;

    if (L->comb_pid > 0) {
        kill(L->comb_pid, SIGHUP);
    }
    if (cfg == NULL) {
        L->reloads_failed++;
        spk_log("edge", "reload failed: no memory; serving the previous configuration");
        return;
    }
    edge_config_init(cfg);
    if (edge_config_load(cfg, L->config_path, why, sizeof(why)) != 0) {
        free(cfg);
        L->reloads_failed++;
        spk_log("edge", "reload failed: %s; serving the previous configuration", why);
        return;
    }
    /* The edge's own keys stay: a reload does not end its clients' sessions. */
    keep_own_keys = cfg->ticket_key_file[0] == '\0' && L->cfg->ticket_key_file[0] == '\0';
    if ((!keep_own_keys &&
         edge_tickets_load(&tickets, cfg->ticket_key_file, why, sizeof(why)) != 0) ||
        (sites = edge_sites_new(L, cfg, why, sizeof(why))) == NULL) {
        edge_tickets_free(tickets);
        free(cfg);
        L->reloads_failed++;
        spk_log("edge", "reload failed: %s; serving the previous configuration", why);
        return;
    }
    same_listen = cfg->num_listen == L->cfg->num_listen;
    for (i = 0; same_listen && i < cfg->num_listen; i++) {
        same_listen = strcmp(cfg->listen[i], L->cfg->listen[i]) == 0;
    }
    if (!same_listen || strcmp(cfg->metrics, L->cfg->metrics) != 0 ||
        strcmp(cfg->combiner_endpoint, L->cfg->combiner_endpoint) != 0) {
        spk_log("edge", "reload: listen, metrics and combiner-endpoint change only with a restart");
    }
    /* Kept from start-up: where the combiner is and how it is started. */
    memcpy(cfg->combiner_endpoint, L->cfg->combiner_endpoint, sizeof(cfg->combiner_endpoint));
    memcpy(cfg->combiner_config, L->cfg->combiner_config, sizeof(cfg->combiner_config));
    if (cfg->combiner_binary[0] == '\0') {
        memcpy(cfg->combiner_binary, L->cfg->combiner_binary, sizeof(cfg->combiner_binary));
    }
    if (!keep_own_keys) {
        edge_tickets_use(tickets);
        edge_tickets_free(L->tickets);
        L->tickets = tickets;
        L->ticket_rotate_at = 0;
    }
    edge_sites_unref(L->sites);
    L->sites = sites;
    free(L->owned_cfg);
    L->owned_cfg = cfg;
    L->cfg = cfg;
    edge_tickets_schedule(L);
    L->reloads_ok++;
    spk_log("edge", "reloaded: %zu certificate(s), %zu ticket key(s)", sites->num,
            edge_tickets_count(L->tickets));
}

/* edge_drain_start: SIGTERM. Listeners close (new connections are refused),
 * open ones finish, up to drain-timeout-ms. */
static void edge_drain_start(struct edge_loop *L)
{
    size_t i;

    L->drain_deadline = spk_now_ms() + L->cfg->drain_timeout_ms;
    for (i = 0; i < L->num_listen; i++) {
        edge_ev_set(L, &L->listen_ev[i], 0);
        close(L->listen_ev[i].fd);
        L->listen_ev[i].fd = -1;
    }
    L->num_listen = 0;
    L->listening = false;
    spk_log("edge", "draining: %zu connection(s) open, up to %u ms", L->num_conns,
            L->cfg->drain_timeout_ms);
}

/* ---- set-up and the loop ------------------------------------------------------------- */

static int edge_listen_socket(const char *hostport, int *out_fd, char *why, size_t why_len)
{
    struct sockaddr_storage sa;
    socklen_t len = 0;
    int one = 1;
    int fd;

    if (edge_resolve(&sa, &len, hostport, true) != 0) {
        snprintf(why, why_len, "listen %s: cannot resolve", hostport);
        return SPK_ERR_INVALID_ARG;
    }
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 1024) != 0) {
        snprintf(why, why_len, "listen %s: %s", hostport, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return SPK_ERR_IO;
    }
    *out_fd = fd;
    return 0;
}

static int edge_listen_open(struct edge_loop *L, const char *hostport, char *why, size_t why_len)
{
    int fd = -1;
    int r;

    if ((r = edge_listen_socket(hostport, &fd, why, why_len)) != 0) {
        return r;
    }
    L->listen_ev[L->num_listen] = (struct edge_ev){EDGE_EV_LISTEN, fd, 0, NULL};
    edge_ev_set(L, &L->listen_ev[L->num_listen], EPOLLIN);
    L->num_listen++;
    return 0;
}

static void edge_tick(struct edge_loop *L)
{
    uint64_t now = spk_now_ms();
    struct edge_conn *c, *next;

    edge_client_process(L->client);
    if (now - L->last_tick < EDGE_TICK_MS) {
        return;
    }
    L->last_tick = now;
    {
        struct edge_mconn *m, *mnext;
        for (m = L->mconns; m != NULL; m = mnext) {
            mnext = m->next;
            if (m->deadline_ms <= now) {
                edge_mconn_free(L, m);
            }
        }
    }
    for (c = L->conns; c != NULL; c = next) {
        next = c->next;
        if (c->deadline_ms <= now) {
            if (c->state == EDGE_CONN_HANDSHAKE) {
                L->hs_timeouts++;
                edge_handshake_failed(c, 0, "handshake timeout");
            }
            if (c->state == EDGE_CONN_CONNECTING) {
                spk_log("edge", "upstream %s: no connection within %u ms", c->site->upstream,
                        L->cfg->handshake_timeout_ms);
                if (edge_conn_upstream_failed(c)) {
                    edge_conn_run(c);
                    continue;
                }
            }
            edge_conn_close(c);
        }
    }
    edge_tickets_maybe_rotate(L, now);
    if (L->comb_restart_at != 0 && now >= L->comb_restart_at && !L->stop) {
        L->comb_restart_at = 0;
        if (edge_combiner_start(L) != 0) {
            L->comb_restart_at = now + L->comb_backoff_ms;
        }
    }
}

static void edge_reap_dead(struct edge_loop *L)
{
    while (L->dead != NULL) {
        struct edge_conn *c = L->dead;
        L->dead = c->next;
        free(c);
    }
}

static void edge_loop_cleanup(struct edge_loop *L)
{
    size_t i;

    while (L->conns != NULL) {
        edge_conn_close(L->conns);
    }
    edge_reap_dead(L);
    if (L->comb_pid > 0) {
        int status;
        kill(L->comb_pid, SIGTERM);
        waitpid(L->comb_pid, &status, 0);
        L->comb_pid = 0;
    }
    for (i = 0; i < L->num_listen; i++) {
        close(L->listen_ev[i].fd);
    }
    while (L->mconns != NULL) {
        edge_mconn_free(L, L->mconns);
    }
    if (L->metrics_ev.fd >= 0) {
        close(L->metrics_ev.fd);
    }
    spk_text_free(&L->mtext);
    edge_sites_unref(L->sites);
    L->sites = NULL;
    free(L->owned_cfg);
    edge_client_free(L->client);
    edge_tickets_use(NULL);
    edge_tickets_free(L->tickets);
    if (L->zctx != NULL) {
        zmq_ctx_term(L->zctx);
    }
    if (L->sig_ev.fd >= 0) {
        close(L->sig_ev.fd);
    }
    if (L->epfd >= 0) {
        close(L->epfd);
    }
}

int edge_run(const struct edge_config *cfg, const char *config_path, const char *self_path)
{
    struct edge_loop loop;
    struct edge_loop *L = &loop;
    char why[4096] = "";
    sigset_t set;
    size_t i;
    int status = 1;
    int r;

    memset(L, 0, sizeof(*L));
    L->cfg = cfg;
    L->config_path = config_path;
    L->self_path = self_path;
    L->sig_ev.fd = -1;
    L->metrics_ev.fd = -1;
    L->comb_backoff_ms = 100;
    L->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (L->epfd < 0) {
        spk_log("edge", "epoll: %s", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    L->sig_ev =
        (struct edge_ev){EDGE_EV_SIGNAL, signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC), 0, NULL};
    if (L->sig_ev.fd < 0) {
        spk_log("edge", "signalfd: %s", strerror(errno));
        goto out;
    }
    edge_ev_set(L, &L->sig_ev, EPOLLIN);

    L->zctx = zmq_ctx_new();
    if (L->zctx == NULL) {
        spk_log("edge", "cannot make a ZeroMQ context");
        goto out;
    }
    if (edge_client_open(&L->client, L->zctx, cfg, cfg->combiner_endpoint, why, sizeof(why)) != 0) {
        spk_log("edge", "%s", why);
        goto out;
    }
    /* Benchmark-only baseline (edge_bench.c): keys answered in-process, no
     * combiner is started or asked. */
    if ((r = edge_bench_active() ? prov_builtin_load(edge_bench_keyop, NULL)
                                 : prov_builtin_load(edge_client_keyop, L->client)) != 0) {
        spk_log("edge", "cannot load the OpenSSL provider");
        goto out;
    }
    if ((r = edge_tickets_load(&L->tickets, cfg->ticket_key_file, why, sizeof(why))) != 0) {
        spk_log("edge", "%s", why);
        goto out;
    }
    edge_tickets_use(L->tickets);
    edge_tickets_schedule(L);
    L->sites = edge_sites_new(L, cfg, why, sizeof(why));
    if (L->sites == NULL) {
        spk_log("edge", "%s", why);
        goto out;
    }
    for (i = 0; i < cfg->num_listen; i++) {
        if ((r = edge_listen_open(L, cfg->listen[i], why, sizeof(why))) != 0) {
            spk_log("edge", "%s", why);
            goto out;
        }
    }
    L->listening = true;
    if (cfg->metrics[0] != '\0') {
        int fd = -1;
        if ((r = edge_listen_socket(cfg->metrics, &fd, why, sizeof(why))) != 0) {
            spk_log("edge", "metrics: %s", why);
            goto out;
        }
        L->metrics_ev = (struct edge_ev){EDGE_EV_METRICS_LISTEN, fd, 0, NULL};
        edge_ev_set(L, &L->metrics_ev, EPOLLIN);
    }
    if (!cfg->combiner_external && !edge_bench_active() && edge_combiner_start(L) != 0) {
        spk_log("edge", "cannot start the combiner: %s", strerror(errno));
        goto out;
    }
    if (!edge_bench_active() && edge_client_ping(L->client, 15000) != 0) {
        spk_log("edge", "the combiner at %s does not answer (see its messages above)",
                cfg->combiner_endpoint);
        goto out;
    }
    L->comb_ev = (struct edge_ev){EDGE_EV_COMBINER, edge_client_fd(L->client), 0, NULL};
    edge_ev_set(L, &L->comb_ev, EPOLLIN);
    spk_log("edge", "serving %zu certificate(s) on %zu address(es); combiner at %s", L->sites->num,
            L->num_listen, cfg->combiner_endpoint);

    while (!L->stop) {
        struct epoll_event evs[EDGE_EVENTS_MAX];
        long wait = edge_client_timeout_ms(L->client);
        int n, k;

        if (wait < 0 || wait > EDGE_TICK_MS) {
            wait = EDGE_TICK_MS;
        }
        n = epoll_wait(L->epfd, evs, EDGE_EVENTS_MAX, (int)wait);
        if (n < 0 && errno != EINTR) {
            spk_log("edge", "epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (k = 0; k < n; k++) {
            struct edge_ev *ev = evs[k].data.ptr;
            struct edge_conn *c = ev->ptr;
            if (c != NULL &&
                (ev->kind == EDGE_EV_CLIENT || ev->kind == EDGE_EV_UPSTREAM ||
                 ev->kind == EDGE_EV_ASYNC) &&
                c->dead) {
                continue;
            }
            switch (ev->kind) {
            case EDGE_EV_LISTEN:
                edge_accept(L, ev);
                break;
            case EDGE_EV_CLIENT:
            case EDGE_EV_UPSTREAM:
                edge_conn_run(c);
                break;
            case EDGE_EV_ASYNC:
                /* The operation is done: out of epoll, then resume the job. */
                edge_async_unwatch(L, c);
                c->paused = false;
                edge_conn_run(c);
                break;
            case EDGE_EV_COMBINER:
                edge_client_process(L->client);
                break;
            case EDGE_EV_METRICS_LISTEN:
                edge_metrics_accept(L);
                break;
            case EDGE_EV_METRICS:
                edge_mconn_run(L, ev->ptr);
                break;
            case EDGE_EV_SIGNAL: {
                struct signalfd_siginfo si;
                while (read(L->sig_ev.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                    if (si.ssi_signo == SIGCHLD) {
                        edge_reap(L);
                    } else if (si.ssi_signo == SIGHUP) {
                        edge_reload(L);
                    } else if (L->drain_deadline == 0) {
                        edge_drain_start(L);
                    } else {
                        L->stop = true; /* a second SIGTERM: now */
                    }
                }
                break;
            }
            default:
                break;
            }
        }
        edge_tick(L);
        edge_reap_dead(L);
        if (L->drain_deadline != 0 && (L->num_conns == 0 || spk_now_ms() >= L->drain_deadline)) {
            L->stop = true;
        }
    }
    spk_log("edge", "stopping: %llu connection(s), %llu handshake(s), %llu failed",
            (unsigned long long)L->num_accepted, (unsigned long long)L->num_handshakes,
            (unsigned long long)L->num_failed_handshakes);
    status = 0;
out:
    edge_loop_cleanup(L);
    return status;
}
