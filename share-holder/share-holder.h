#ifndef SPK_SHARE_HOLDER_H
#define SPK_SHARE_HOLDER_H

/*
 * share-holder: the daemon that serves one holder's shares over ZeroMQ with
 * CURVE to allow-listed clients (sh_run), and the client side that fetches
 * shares from a set of holders (struct sh_client). proto/PROTOCOL.md ("Wire
 * protocol", "Allow-list file") is normative for the bytes; this header is the
 * C API.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "proto/proto.h"

/* ==== the daemon ========================================================= */

#define SH_PATH_MAX 4096
#define SH_RATE_DEFAULT 1000.0 /* share requests per second per client: one per full handshake */
#define SH_BURST_DEFAULT 2000

struct sh_options {
    char key_path[SH_PATH_MAX];   /* NAME.key of this holder */
    char shares_dir[SH_PATH_MAX]; /* KEYID.NAME.share files (and *.record) */
    char allow_path[SH_PATH_MAX]; /* allow-list */
    char bind[SH_PATH_MAX];       /* ZeroMQ endpoint, e.g. tcp://127.0.0.1:7001 */
    char audit_path[SH_PATH_MAX]; /* "" = audit lines go to stderr */
    char metrics[SH_PATH_MAX];    /* loopback HOST:PORT of the metrics endpoint, "" = none */
    double rate;                  /* tokens per second per client */
    unsigned burst;               /* bucket size */
    bool allow_unlocked;          /* run even if memory cannot be locked */
    bool set_rate, set_burst;     /* given on the command line (config must not override) */
};

/* sh_options_init: empty paths, default rate and burst. */
void sh_options_init(struct sh_options *opt);

/*
 * sh_config_load reads "OPTION VALUE" lines (the long option names without
 * "--": key, shares, allow, bind, audit-log, metrics, rate, burst, allow-unlocked
 * with value yes/no; '#' comments, blank lines) from |path| into |opt|,
 * leaving alone every option already set (non-empty path, set_rate,
 * set_burst), so the command line wins. 0, or SPK_ERR_* with a reason in |why|.
 */
SPK_WUR int sh_config_load(struct sh_options *opt, const char *path, char *why, size_t why_len);

/*
 * sh_run runs the daemon until SIGTERM or SIGINT: process hardening, loading
 * key, shares and allow-list, serving. Returns the process exit status: 0
 * after a clean shutdown, 1 when start-up fails (one line on stderr says why).
 */
int sh_run(const struct sh_options *opt);

/* ==== allow-list (sh_allow.c) ============================================= */

struct sh_cidr {
    uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
    unsigned prefix;  /* 0..128, counted in the 16-byte form */
};

struct sh_allow_client {
    char name[PROTO_NAME_MAX + 1];
    uint8_t curve_pk[PROTO_X25519_LEN];
    bool all_keys; /* KEYIDS was "*" */
    uint8_t (*key_ids)[PROTO_KEY_ID_LEN];
    size_t num_key_ids;
    struct sh_cidr *ranges; /* none: any address */
    size_t num_ranges;
};

struct sh_allow {
    struct sh_allow_client *clients;
    size_t num_clients;
};

/*
 * sh_allow_parse parses allow-list text into |out| (release with
 * sh_allow_cleanup, also safe after a failure). Returns 0 or
 * SPK_ERR_MALFORMED with "line N: reason" in |why|; duplicate names or keys
 * are refused.
 */
SPK_WUR int sh_allow_parse(struct sh_allow *out, const uint8_t *in, size_t in_len, char *why,
                           size_t why_len);
/* sh_allow_load: sh_allow_parse of the file |path| (SPK_ERR_IO if unreadable). */
SPK_WUR int sh_allow_load(struct sh_allow *out, const char *path, char *why, size_t why_len);
void sh_allow_cleanup(struct sh_allow *allow);
/* sh_allow_check is `share-holder check --allow FILE`: loads |path| and
 * prints "ok: N clients" (exit status 0) or the reason on stderr (1). */
int sh_allow_check(const char *path);
/* sh_allow_find: the client with CURVE key |pk|, or NULL. */
const struct sh_allow_client *sh_allow_find(const struct sh_allow *allow,
                                            const uint8_t pk[PROTO_X25519_LEN]);
/* sh_allow_key: |client| may fetch shares of |key_id|. */
bool sh_allow_key(const struct sh_allow_client *client, const uint8_t key_id[PROTO_KEY_ID_LEN]);
/* sh_allow_address: |address| (a textual IPv4 or IPv6 address, as ZeroMQ's
 * ZAP and Peer-Address give it) is in one of |client|'s ranges, or it has
 * none. False for anything that is not an IP address when ranges are set. */
bool sh_allow_address(const struct sh_allow_client *client, const char *address);

/* ==== ZAP, the wire side (sh_zap.c) ========================================= */

#define SH_ZAP_FRAMES_MAX 8
#define SH_ZAP_ADDRESS_MAX 128

/* One ZAP request (ZeroMQ RFC 27) as read from the handler's REP socket. */
struct sh_zap_req {
    zmq_msg_t f[SH_ZAP_FRAMES_MAX];
    size_t num;
    char
        address[SH_ZAP_ADDRESS_MAX]; /* the peer: "IP" over tcp://, "...:UID:GID:PID" over ipc:// */
    bool null_mechanism;             /* a version 1.0 request for the NULL mechanism */
    const uint8_t *curve_pk;         /* a version 1.0 CURVE request: the client's key; else NULL */
};

/*
 * sh_zap_recv reads one request from the ZAP socket |zap| without blocking.
 * False when there is none that can be answered (then nothing is held);
 * else it must be answered with sh_zap_reply, which releases it.
 */
SPK_WUR bool sh_zap_recv(void *zap, struct sh_zap_req *req);
/* sh_zap_reply answers |req|: 200 with |user_id| (ZeroMQ's User-Id of the
 * connection's messages) when |ok|, else 400; |text| says why. 0 or
 * SPK_ERR_IO. */
SPK_WUR int sh_zap_reply(void *zap, struct sh_zap_req *req, bool ok, const char *text,
                         const char *user_id);

/* ==== the client (sh_client.c) ============================================= */

/*
 * struct sh_client keeps one DEALER socket with CURVE client security per
 * holder, connected once and reconnected by ZeroMQ, and a table of requests in
 * flight. Single-threaded: every call on one client from one thread.
 *
 * Event-loop use:
 *   sh_client_poll_items() gives the sockets to zmq_poll (or take ZMQ_FD of
 *   each and watch it for reading; as with any ZMQ_FD, call
 *   sh_client_process() whenever it is readable and after every send, since
 *   the fd is edge-triggered), sh_client_poll_result() hands zmq_poll's
 *   revents back, sh_client_timeout_ms() bounds the poll wait,
 *   and sh_client_process() reads every reply without blocking, runs the
 *   callback once per finished request (share, error, or timeout) and
 *   expires requests past their deadline. Replies that arrive after their
 *   request finished or was cancelled are dropped.
 *
 * A share is decrypted straight from the frame into the caller's |out_y|
 * (locked memory the caller owns), so the only copy of its plain bytes is
 * there; ZeroMQ's buffers hold ciphertext only.
 */
struct sh_client;

#define SH_CLIENT_HOLDERS_MAX PROTO_SHARES_MAX
#define SH_CLIENT_PENDING_MAX 4096

struct sh_result {
    size_t holder;   /* index from sh_client_add_holder */
    uint64_t req_id; /* from sh_client_request / sh_client_ping */
    void *user;      /* as given with the request */
    int status;      /* 0, or SPK_ERR_* (the holder's ERROR code, TIMEOUT, UNSEAL, ...) */
    uint8_t type;    /* PROTO_MSG_SHARE_RESPONSE, SIGSHARE_RESPONSE or PONG when status == 0 */
    /* status == 0 and a share (a signature share: key_id, index, y and y_len only): */
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t index;
    unsigned field_bits;
    uint8_t *y;   /* the caller's out_y */
    size_t y_len; /* 5 * y_len of field_bits */
    /* a signature share of a key with verification keys: Shoup's proof (public) */
    bool has_proof;
    uint8_t proof_c[PROTO_TSS_C_LEN];
    uint8_t proof_z[PROTO_TSS_Z_MAX];  /* y_len + PROTO_TSS_Z_EXTRA bytes */
    char text[PROTO_ERR_TEXT_MAX + 1]; /* the holder's ERROR text, if any */
    uint64_t latency_us;
};

/* sh_result_cb: called from sh_client_process (never re-entered); it may
 * issue new requests and cancel others. */
typedef void (*sh_result_cb)(void *ctx, const struct sh_result *res);

struct sh_holder_health {
    char name[PROTO_NAME_MAX + 1];
    uint64_t last_latency_us;
    uint64_t ewma_latency_us; /* weight 1/8 per reply */
    uint64_t num_ok, num_errors, num_timeouts, num_unavailable, num_bad;
    int last_error; /* SPK_ERR_* of the last failure, 0 if none */
};

/*
 * sh_client_new makes a client that authenticates with |me|'s CURVE keypair
 * (a combiner's or edge's key file; copied into ZeroMQ's socket options).
 * |cb| receives every result. Returns NULL on failure. Free with
 * sh_client_free, which closes the sockets (linger 0) and wipes session keys.
 */
struct sh_client *sh_client_new(void *zmq_ctx, const struct proto_holder_secret *me,
                                sh_result_cb cb, void *cb_ctx);
void sh_client_free(struct sh_client *c);

/*
 * sh_client_add_holder connects a DEALER to |endpoint| expecting the
 * holder's CURVE key |server_pk| and sets *out_index. A fresh crypto_kx
 * keypair for share sessions is made for this holder. 0 or SPK_ERR_*.
 */
SPK_WUR int sh_client_add_holder(struct sh_client *c, size_t *out_index, const char *name,
                                 const char *endpoint, const uint8_t server_pk[PROTO_X25519_LEN]);

/* sh_client_num_holders: how many holders were added. */
size_t sh_client_num_holders(const struct sh_client *c);

/*
 * sh_client_request sends SHARE_REQUEST(|key_id|, |op|, |op_count|, |digest|)
 * to |holder| with a deadline |timeout_ms| from now: the share will serve
 * |op_count| (1..PROTO_OP_COUNT_MAX) operations of kind |op| whose inputs
 * |digest| covers (proto_ops_digest), as the holder's audit line records. The share will be written
 * to |out_y| (|out_cap| bytes; it must stay valid until the result or
 * sh_client_cancel). Sets *out_req_id. Returns 0 (the result comes through
 * the callback), SPK_ERR_UNAVAILABLE (not connected: nothing queued, no
 * callback), or another SPK_ERR_*.
 */
SPK_WUR int sh_client_request(struct sh_client *c, uint64_t *out_req_id, size_t holder,
                              const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op, unsigned op_count,
                              const uint8_t digest[PROTO_SHA256_LEN], uint8_t *out_y,
                              size_t out_cap, int timeout_ms, void *user);

/*
 * sh_client_request_all sends the same request to every holder at once;
 * holder i writes into out_ys[i] and gets request id out_req_ids[i] (0 for a
 * holder it could not be sent to). Sets *out_num_sent. 0 if at least one was
 * sent, else SPK_ERR_UNAVAILABLE.
 */
SPK_WUR int sh_client_request_all(struct sh_client *c, uint64_t *out_req_ids, size_t *out_num_sent,
                                  const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                                  unsigned op_count, const uint8_t digest[PROTO_SHA256_LEN],
                                  uint8_t *const *out_ys, size_t out_cap, int timeout_ms,
                                  void *user);

/*
 * sh_client_sigshare sends SIGSHARE_REQUEST(|key_id|, |op|, |digest|, |salt|)
 * to |holder| (a threshold-mode key: the holder encodes the message itself
 * and answers with its signature share). The share, exactly |out_len| bytes
 * (the modulus length; an answer of another length is SPK_ERR_MALFORMED), is
 * copied to |out|, which must stay valid until the result or
 * sh_client_cancel; the result has type PROTO_MSG_SIGSHARE_RESPONSE and the
 * holder's index, and the share's proof when the holder sent one (has_proof).
 * Same returns as sh_client_request.
 */
SPK_WUR int sh_client_sigshare(struct sh_client *c, uint64_t *out_req_id, size_t holder,
                               const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                               const uint8_t *digest, size_t digest_len, const uint8_t *salt,
                               size_t salt_len, uint8_t *out, size_t out_len, int timeout_ms,
                               void *user);

/* sh_client_ping sends PING to |holder|; the result has type PROTO_MSG_PONG. */
SPK_WUR int sh_client_ping(struct sh_client *c, uint64_t *out_req_id, size_t holder, int timeout_ms,
                           void *user);

/* sh_client_cancel forgets request |req_id| (no callback; a late reply is
 * dropped). Unknown ids are ignored. */
void sh_client_cancel(struct sh_client *c, uint64_t req_id);

/* sh_client_pending: requests in flight. */
size_t sh_client_pending(const struct sh_client *c);

/*
 * sh_client_poll_items fills up to |cap| zmq_pollitem_t with the holders'
 * sockets (ZMQ_POLLIN) and returns how many it filled.
 */
size_t sh_client_poll_items(const struct sh_client *c, zmq_pollitem_t *items, size_t cap);

/*
 * sh_client_poll_result takes back, after zmq_poll returned (not after an
 * error), the |num| items sh_client_poll_items filled, with their revents:
 * the next sh_client_process reads only the holders whose item was
 * readable, and skips the others (a receive on an empty socket costs two
 * system calls). Nothing is missed: zmq_poll asks every socket for
 * ZMQ_EVENTS before it returns, so a holder it found idle had nothing
 * waiting, and a reply that arrives later makes the next zmq_poll report it.
 * Optional: without it sh_client_process asks every holder.
 */
void sh_client_poll_result(struct sh_client *c, const zmq_pollitem_t *items, size_t num);

/* sh_client_timeout_ms: ms until the earliest deadline (0 if one passed), or
 * -1 with nothing in flight. */
long sh_client_timeout_ms(const struct sh_client *c);

/* sh_client_process reads all replies without blocking (from every holder,
 * or those sh_client_poll_result found readable) and expires late
 * requests, running the callback for each finished one. 0 or SPK_ERR_*. */
SPK_WUR int sh_client_process(struct sh_client *c);

/*
 * sh_client_wait: a small blocking loop for tools and tests: polls and
 * processes until nothing is in flight or |timeout_ms| passes.
 */
SPK_WUR int sh_client_wait(struct sh_client *c, int timeout_ms);

/* sh_client_health copies |holder|'s counters into |out|. 0 or SPK_ERR_INVALID_ARG. */
SPK_WUR int sh_client_health(const struct sh_client *c, size_t holder,
                             struct sh_holder_health *out);

#endif
