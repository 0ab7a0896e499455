#ifndef SPK_EDGE_INTERNAL_H
#define SPK_EDGE_INTERNAL_H

/*
 * edge/internal.h: the parts of the edge daemon. The TLS-facing process is
 * the provider (provider/: RSA keys that hold only n, e and a key id),
 * the combiner connection (edge_client.c: OP_REQUEST over a ZeroMQ DEALER,
 * the calling ASYNC job paused until the answer), the configuration
 * (edge_config.c) and the event loop (edge_loop.c). The combiner is another
 * program (combiner/, `combiner run`): no code here ever touches a share.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "edge/edge.h"
#include "proto/proto.h"
#include "proto/spk_metrics.h"
#include "provider/provider.h"

/* ---- combiner connection (edge_client.c) ---------------------------------- */

struct edge_client;

/* CURVE keys of a tcp:// combiner connection (locked memory while used). */
struct edge_client_curve {
    uint8_t server_pk[PROTO_X25519_LEN];
    uint8_t client_pk[PROTO_X25519_LEN];
    uint8_t client_sk[PROTO_X25519_LEN];
};

/*
 * edge_client_new connects a SOCK_SEQPACKET socket to a unix:// |endpoint|
 * (at once if the combiner listens, else when the first operation is sent)
 * or a DEALER to an ipc:// or tcp:// one, with CURVE when |curve| is not
 * NULL. Each operation waits at most |timeout_ms|.
 * NULL on failure.
 */
struct edge_client *edge_client_new(void *zmq_ctx, const char *endpoint, int timeout_ms,
                                    const struct edge_client_curve *curve);

/*
 * edge_client_open: edge_client_new for |endpoint| with |cfg|'s op timeout
 * and, for tcp://, CURVE with combiner-curve-public and the key file
 * combiner-client-key. 0 or SPK_ERR_* with |why|.
 */
SPK_WUR int edge_client_open(struct edge_client **out, void *zmq_ctx, const struct edge_config *cfg,
                             const char *endpoint, char *why, size_t why_len);
void edge_client_free(struct edge_client *c);

/* edge_client_connected: false only for a unix:// client whose connection
 * ended (it connects again when it next has something to send). */
bool edge_client_connected(const struct edge_client *c);

/* edge_client_conn_gen changes whenever edge_client_fd is a new socket. */
uint64_t edge_client_conn_gen(const struct edge_client *c);

/*
 * edge_client_keyop is a prov_keyop_fn (|arg| is the struct edge_client).
 * Inside an ASYNC job it sends OP_REQUEST, and pauses the job until the
 * answer, an error, or the timeout, then calls the job's wait-context
 * callback (the SSL's async callback, which must be set): the job can go on.
 * Outside a job it blocks on the combiner connection (processing other
 * answers as they come).
 */
int edge_client_keyop(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                      const uint8_t *in, size_t in_len, uint16_t client_version, uint8_t *out,
                      size_t out_cap, size_t *out_len);

/* edge_client_fd: what the event loop watches: the DEALER's ZMQ_FD, or the
 * unix:// socket, which changes when the combiner is restarted (-1 while
 * not connected). */
int edge_client_fd(const struct edge_client *c);

/*
 * edge_client_process reads every answer without blocking and expires
 * operations past their deadline, waking their jobs. Call when the fd is
 * readable, and edge_client_tick once per loop turn (ZMQ_FD is
 * edge-triggered; unix:// requests of the turn leave then).
 */
void edge_client_process(struct edge_client *c);

/* edge_client_tick: edge_client_process for the end of a loop turn (sends
 * what the turn queued, expires, resends), reading a unix:// socket only
 * when the loop saw it readable (edge_client_process). */
void edge_client_tick(struct edge_client *c);

/* edge_client_fail_all ends every operation in flight with |err|. */
void edge_client_fail_all(struct edge_client *c, int err);

/*
 * edge_client_requeue_all: the combiner died and its answers will never
 * come; every operation in flight is sent again, to the restarted (or
 * external) combiner once one is connected, within its own deadline.
 * Signing and decrypting are idempotent, so a second answer is harmless
 * (it is dropped). The client does this by itself when the connection
 * drops and again when a new one is up (a socket monitor:
 * spk_resend_due); the edge calls it when its child exits.
 */
void edge_client_requeue_all(struct edge_client *c);

/*
 * edge_client_set_owner: operations that ASYNC jobs start from now on belong
 * to |owner| (the edge's connection whose SSL call runs), so that
 * edge_client_cancel finds them.
 */
void edge_client_set_owner(struct edge_client *c, const void *owner);

/*
 * edge_client_cancel ends the operation of |owner| that a paused job waits
 * for with SPK_ERR_TIMEOUT (waking the job), so its connection can be
 * resumed and freed. True if there was one.
 */
bool edge_client_cancel(struct edge_client *c, const void *owner);

/* edge_client_ping: PING/PONG with the combiner, blocking up to |timeout_ms|. */
SPK_WUR int edge_client_ping(struct edge_client *c, int timeout_ms);

/* edge_client_timeout_ms: ms to the earliest deadline, or -1. */
long edge_client_timeout_ms(const struct edge_client *c);

/* edge_client_pending: operations in flight. */
size_t edge_client_pending(const struct edge_client *c);

/* ---- time ------------------------------------------------------------------ */

/* ---- session tickets (edge_ticket.c) ---------------------------------------- */

#define EDGE_TICKET_KEYS_MAX 16

struct edge_tickets;

/*
 * edge_tickets_load reads the ticket key file |path| (format at the top of
 * edge_ticket.c and in `edge --help`); "" or NULL makes one random key.
 * *out is the caller's (edge_tickets_free). 0 or SPK_ERR_* with |why|.
 */
SPK_WUR int edge_tickets_load(struct edge_tickets **out, const char *path, char *why,
                              size_t why_len);
/*
 * edge_tickets_rotate: a new random key seals from now on, the newest one
 * before it still opens, any older one is wiped. For the edge's own keys
 * (no ticket-key-file). 0, or SPK_ERR_CRYPTO with the set unchanged.
 */
SPK_WUR int edge_tickets_rotate(struct edge_tickets *t);
void edge_tickets_free(struct edge_tickets *t);
size_t edge_tickets_count(const struct edge_tickets *t);
/* edge_tickets_use: the set the ticket callback seals and opens with. */
void edge_tickets_use(const struct edge_tickets *t);
/* edge_tickets_install sets the ticket callback on |ctx|. 0 or SPK_ERR_CRYPTO. */
SPK_WUR int edge_tickets_install(SSL_CTX *ctx);
/* edge_tickets_stats: tickets sealed, opened, and refused for an unknown key. */
void edge_tickets_stats(uint64_t *issued, uint64_t *accepted, uint64_t *unknown);

/* ---- server names and sessions (edge_sni.c) ---------------------------------- */

#define EDGE_SNI_NAME_MAX 255
#define EDGE_SNI_CTX_LEN 32 /* SSL_MAX_SID_CTX_LENGTH */

/*
 * edge_sni_parse reads the body of a ClientHello's server_name extension
 * (|ext|, |ext_len| bytes) into |out|: the host_name lowercased, without a
 * trailing dot; "" when the list names no host. SPK_ERR_MALFORMED for a list
 * that does not parse, two host names, an empty or over-long name, bytes that
 * are not printable ASCII, or a name that is only dots.
 */
SPK_WUR int edge_sni_parse(char out[EDGE_SNI_NAME_MAX + 1], const uint8_t *ext, size_t ext_len);

/* edge_sni_session_context: the session id context for server name |name|
 * (from edge_sni_parse; "" without SNI). */
void edge_sni_session_context(uint8_t out[EDGE_SNI_CTX_LEN], const char *name);

/* edge_sni_install sets on |ctx| the ticket callback that refuses to resume a
 * ticket made for another server name. 0 or SPK_ERR_CRYPTO. */
SPK_WUR int edge_sni_install(SSL_CTX *ctx);

/* edge_sni_refused_count: tickets that opened but were for another name. */
uint64_t edge_sni_refused_count(void);

/* edge_conn_session_context (edge_site.c): the session id context of the
 * connection of |ssl|, set from its ClientHello; NULL before that. */
const uint8_t *edge_conn_session_context(const SSL *ssl);

/* ---- TLS settings and OCSP stapling (edge_tls.c) ----------------------------- */

/* Room for tls12-ciphers plus what edge_tls12_cipher_list appends. */
#define EDGE_TLS12_LIST_MAX (EDGE_CIPHERS_MAX + 16)

/*
 * edge_tls12_cipher_list writes into |out| the TLS 1.2 cipher list of a
 * certificate: tls12-ciphers with RSA key exchange added behind (|rsa_kx|)
 * or cut. |rsa_kx| is tls12-rsa-key-exchange for a rebuild-mode key and
 * false for a threshold-mode one, which signs but never decrypts.
 */
void edge_tls12_cipher_list(char *out, size_t out_cap, const struct edge_config *cfg, bool rsa_kx);

/*
 * edge_tls_ctx_setup applies |cfg|'s versions, cipher lists (RSA key exchange
 * as |rsa_kx| says: edge_tls12_cipher_list), groups, session lifetime and
 * options to |ctx|. 0, or SPK_ERR_* with |why| (a list OpenSSL refuses).
 */
SPK_WUR int edge_tls_ctx_setup(SSL_CTX *ctx, const struct edge_config *cfg, bool rsa_kx, char *why,
                               size_t why_len);

/* A DER OCSP response to staple; len 0 = none. */
struct edge_ocsp {
    uint8_t *der;
    size_t len;
};

/*
 * edge_ocsp_load reads the OCSP response file |path| for |leaf|, whose
 * issuer is the first chain certificate of |ctx|, into |o|
 * (edge_ocsp_cleanup). SPK_ERR_* with |why| for a file that is not a
 * successful response for this certificate; an expired one is logged and
 * left out (0, o->len 0). The response's signature is the client's to check.
 */
SPK_WUR int edge_ocsp_load(struct edge_ocsp *o, const char *path, X509 *leaf, SSL_CTX *ctx,
                           char *why, size_t why_len);
void edge_ocsp_cleanup(struct edge_ocsp *o);
/* edge_ocsp_install: |ctx| staples |o| (which must outlive it) to clients
 * that ask. 0 or SPK_ERR_CRYPTO. */
SPK_WUR int edge_ocsp_install(SSL_CTX *ctx, const struct edge_ocsp *o);

/* ---- metrics (proto/spk_metrics.h and edge_metrics.c) ----------------------  */

/* Private-key operations as the TLS process saw them (edge_client.c). */
enum edge_op_result {
    EDGE_OPRES_OK = 0,
    EDGE_OPRES_ERROR,
    EDGE_OPRES_TIMEOUT,
    EDGE_OPRES_UNAVAILABLE,
    EDGE_OPRES_TOO_FEW_SHARES, /* the combiner's too-few-shares: the holders' state */
    EDGE_OPRES_NUM,
};

struct edge_keyop_stats {
    uint64_t ops[2][EDGE_OPRES_NUM]; /* [0] sign, [1] decrypt */
    struct spk_hist latency[2];      /* answered operations (ok or error) */
};

/* edge_client_stats copies the counters of |c|. */
void edge_client_stats(const struct edge_client *c, struct edge_keyop_stats *out);

/* ---- the event loop and its parts ------------------------------------------
 * edge_loop.c: set-up, reload, drain and the loop; edge_site.c: certificates
 * and SNI; edge_conn.c: one client connection; edge_child.c: the combiner
 * process; edge_metrics.c: the metrics endpoint. */

#define EDGE_BUF_LEN (64 * 1024)
/* Relay buffers kept for reuse (edge_loop.buf_pool): 4 MiB at most. */
#define EDGE_BUF_POOL 64
#define EDGE_EVENTS_MAX 256
#define EDGE_NAMES_MAX 64
#define EDGE_TICK_MS 100

enum edge_ev_kind {
    EDGE_EV_LISTEN = 1,
    EDGE_EV_CLIENT,
    EDGE_EV_UPSTREAM,
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
    EVP_PKEY *key;  /* provider key: n, e, key id */
    bool threshold; /* the key record is in threshold mode: signatures only */
    bool rsa_kx;    /* TLS 1.2 RSA key exchange offered (never when threshold) */
    char tls12_ciphers[EDGE_TLS12_LIST_MAX]; /* its SSL_CTX's list, for edge_client_hello_cb */
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
    bool paused; /* an ASYNC job of this SSL waits; the client socket is masked once it stirs */
    /* On the loop's ready list: the paused job's operation ended (the SSL's
     * async callback) and the job is resumed in this loop turn. */
    bool ready;
    struct edge_conn *ready_prev, *ready_next;
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
    int up_errno;   /* the upstream connection failed while CONNECTING */
    bool want_c_in, want_c_out, want_u_in, want_u_out;
    /* What the SSL wrote to the client in this run (edge_out_write), sent
     * when the run ends (edge_out_flush); a pool buffer while it holds any. */
    uint8_t *out;
    size_t out_len, out_off;
    size_t out_used;
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
    uint64_t comb_gen; /* edge_client_conn_gen of comb_ev's fd */
    struct edge_ev sig_ev;
    void *zctx;
    struct edge_client *client;
    struct edge_sites *sites; /* the serving set (one reference) */
    struct edge_conn *conns;
    size_t num_conns;
    struct edge_conn *dead; /* closed in this batch, linked through next */
    /* Relay buffers of closed connections, wiped, for the next ones: a
     * 64 KiB malloc and free per direction and connection made glibc
     * consolidate its free lists on every close. */
    uint8_t *buf_pool[EDGE_BUF_POOL];
    size_t buf_pool_len;
    struct edge_conn *ready; /* paused jobs that can go on (edge_conn_run_ready) */
    BIO_METHOD *out_method;  /* the client connections' write side (edge_out_method_new) */
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

/* edge_ev_set (edge_loop.c) makes epoll watch |events| on |ev| (0: none). */
void edge_ev_set(struct edge_loop *L, struct edge_ev *ev, uint32_t events);

/* edge_site.c */
int edge_resolve(struct sockaddr_storage *out, socklen_t *out_len, const char *hostport,
                 bool passive);
struct edge_sites *edge_sites_new(struct edge_loop *L, const struct edge_config *cfg, char *why,
                                  size_t why_len);
void edge_sites_unref(struct edge_sites *S);

/* edge_conn.c */
extern const char *const edge_ver_names[EDGE_VER_NUM];
void edge_accept(struct edge_loop *L, struct edge_ev *lev);
void edge_conn_run(struct edge_conn *c);
void edge_conn_close(struct edge_conn *c);
void edge_handshake_failed(struct edge_conn *c, int ssl_err, const char *reason);
/* edge_conn_event: epoll reported |ev| (its client or upstream socket) of |c|. */
void edge_conn_event(struct edge_conn *c, struct edge_ev *ev);
/* edge_buf_pool_free frees the relay buffers kept for reuse. */
void edge_buf_pool_free(struct edge_loop *L);

/* edge_out_method_new makes the BIO method of the client connections' write
 * side (L->out_method, freed with BIO_meth_free). */
BIO_METHOD *edge_out_method_new(void);
/* edge_conn_run_ready resumes every connection whose paused job's operation
 * ended; the loop does not wait in epoll while L->ready is not empty. */
void edge_conn_run_ready(struct edge_loop *L);
bool edge_conn_upstream_failed(struct edge_conn *c);

/* edge_child.c */
int edge_combiner_start(struct edge_loop *L);
void edge_reap(struct edge_loop *L);

/* edge_metrics.c */
void edge_metrics_accept(struct edge_loop *L);
void edge_mconn_run(struct edge_loop *L, struct edge_mconn *m);
void edge_mconn_free(struct edge_loop *L, struct edge_mconn *m);

/* ---- edge check (edge_check.c) ----------------------------------------------- */

/*
 * edge_check runs every start-up step of |cfg| without serving: certificates
 * and records, ticket keys, `combiner check` of the combiner's file, and one
 * test signature per key, verified with the certificate, through a combiner
 * started for the check in a private directory (or the external one).
 * Prints what is wrong in plain words to stderr and a summary to stdout.
 * Returns 0 only when all is well.
 */
int edge_check(const struct edge_config *cfg, const char *config_path);

/* ---- benchmark-only local keys (edge_bench.c) ------------------------------- */

/*
 * edge_bench_keys_load loads whole RSA private keys (unencrypted PEM) into
 * this process for `edge run CONFIG --benchmark-local-keys KEY.pem...`, the
 * baseline of tools/bench-edge. WARNING: benchmarks only; it puts the key in
 * the TLS-facing process, which splitkey exists to prevent. 0 or SPK_ERR_*
 * with |why|. The keys live until edge_bench_keys_free.
 */
SPK_WUR int edge_bench_keys_load(const char *const *paths, size_t num_paths, char *why,
                                 size_t why_len);
void edge_bench_keys_free(void);
/* edge_bench_active: keys were loaded; edge_run then starts no combiner. */
bool edge_bench_active(void);
/* edge_bench_keyop is a prov_keyop_fn answered with the loaded key whose key
 * id is |key_id| (|arg| unused); SPK_ERR_UNKNOWN_KEY if none. */
int edge_bench_keyop(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                     const uint8_t *in, size_t in_len, uint16_t client_version, uint8_t *out,
                     size_t out_cap, size_t *out_len);

#endif
