#ifndef SPK_SHARE_HOLDER_INTERNAL_H
#define SPK_SHARE_HOLDER_INTERNAL_H

/* Private declarations of the share-holder library, visible to its unit tests. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <zmq.h>

#include "proto/proto.h"
#include "proto/spk_metrics.h"
#include "share-holder/share-holder.h"

/* ---- the shares this holder serves (sh_store.c) ---------------------------- */

struct split_tss_signer; /* split/split_tss.h */

struct sh_share {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t index;
    unsigned field_bits;
    unsigned threshold;
    unsigned num_shares;
    uint8_t *y; /* spk_secret_new, kept noaccess while idle; NULL in threshold mode */
    size_t y_len;
    bool readable; /* opened by sh_store_share_open until sh_store_close */
    /* threshold mode (sh_sigshare.c): the key share lives only in |signer| */
    uint8_t mode; /* enum proto_mode */
    struct split_tss_signer *signer;
    uint8_t modulus[PROTO_BN_MAX];
    size_t modulus_len;
    unsigned mod_bits;
};

struct sh_store {
    struct sh_share *shares;
    size_t num_shares;
    size_t num_skipped; /* files reported and not loaded */
    size_t num_open;    /* shares readable now */
    uint64_t opened_ms; /* when the first of them was opened */
    uint64_t used_ms;   /* when one was last opened or used */
};

/*
 * Idle shares are noaccess. A busy holder keeps a share it serves readable
 * between requests instead of two mprotect calls per request (each one a
 * syscall and, with ZeroMQ's I/O thread on another core, a TLB shootdown):
 * the share is closed again once no request used it for SH_SHARE_IDLE_MS,
 * and at the latest SH_SHARE_OPEN_MAX_MS after it was opened, whatever the
 * load. The cost is that a stray read in this process (the protection
 * noaccess gives) can see a share during those few milliseconds after a
 * fetch, as it could during the fetch itself before; the share stays in
 * guarded, locked memory and is wiped at exit as before.
 */
#define SH_SHARE_IDLE_MS 2
#define SH_SHARE_OPEN_MAX_MS 100

/*
 * sh_store_load opens every *.share file in |dir| addressed to |key|'s holder
 * into secret memory (noaccess when idle). Files for other holders, files that
 * do not decode or open, and shares that do not match a KEYID.record in |dir|
 * (when there is one) are reported on |report| and skipped; of two shares of
 * one key id, the first by file name is kept. Returns 0 when at least one
 * share was loaded, SPK_ERR_UNKNOWN_KEY when none was, or another SPK_ERR_*.
 * Release with sh_store_cleanup (wipes; safe after zero-init or failure).
 */
SPK_WUR int sh_store_load(struct sh_store *out, const char *dir,
                          const struct proto_holder_secret *key, FILE *report);
void sh_store_cleanup(struct sh_store *store);
struct sh_share *sh_store_find(const struct sh_store *store,
                               const uint8_t key_id[PROTO_KEY_ID_LEN]);

/* sh_store_share_open makes |share| (of |store|) readable, if it is not yet,
 * and marks it used at |now_ms|. 0 or SPK_ERR_INTERNAL. */
SPK_WUR int sh_store_share_open(struct sh_store *store, struct sh_share *share, uint64_t now_ms);
/* sh_store_close_in_ms: -1 when no share is readable, else how many ms
 * from |now_ms| until sh_store_close is due (0: now). */
long sh_store_close_in_ms(const struct sh_store *store, uint64_t now_ms);
/* sh_store_close makes every readable share noaccess again. 0, or
 * SPK_ERR_INTERNAL if one could not be (the caller must stop serving). */
SPK_WUR int sh_store_close(struct sh_store *store);

/* ---- threshold mode (sh_sigshare.c) ------------------------------------------ */

/*
 * sh_sigshare_load fills |sh| from the threshold-mode share file |sf|: reads
 * and verifies DIR/KEYID.record (required: it gives the modulus), opens the
 * key share with |key|, checks its commitment and makes its signer. The key
 * share itself is wiped; only the signer keeps it. On failure a reason is in
 * |why| and |sh| holds nothing to free. 0 or SPK_ERR_*.
 */
SPK_WUR int sh_sigshare_load(struct sh_share *sh, const struct proto_share_file *sf,
                             const char *dir, const struct proto_holder_secret *key, char *why,
                             size_t why_len);

/*
 * sh_sigshare_build encodes the message of |req| itself (split_pad_encode)
 * and writes the SIGSHARE_RESPONSE with the signature share of |share| into
 * |out|. Refuses a share that is not threshold-mode and an op that is not a
 * signature (SPK_ERR_UNSUPPORTED), a digest or salt of the wrong length
 * (SPK_ERR_MALFORMED); *why is a short text for the ERROR reply.
 */
SPK_WUR int sh_sigshare_build(uint8_t *out, size_t cap, size_t *out_len, uint64_t req_id,
                              struct sh_share *share, const struct proto_sigshare_req *req,
                              const char **why);

/* ---- share sessions, holder side (sh_session.c) ---------------------------- */

#define SH_SESSIONS_MAX 256
/* sessions one client (CURVE key) may hold: a combiner needs one per
 * connection it keeps to this holder, and reconnects make a few more */
#define SH_SESSIONS_PER_CLIENT 16

struct sh_session {
    uint8_t client_pk[PROTO_X25519_LEN];    /* CURVE key of the connection */
    uint8_t requester_pk[PROTO_X25519_LEN]; /* crypto_kx client key it sent */
    uint8_t session_pk[PROTO_X25519_LEN];   /* our crypto_kx server key */
    uint64_t last_used;
    bool used;
};

#define SH_NONCE_POOL_LEN (24 * 170)

struct sh_sessions {
    struct sh_session entries[SH_SESSIONS_MAX];
    uint8_t *tx; /* SH_SESSIONS_MAX * crypto_kx_SESSIONKEYBYTES, secret memory */
    uint64_t clock;
    uint64_t num_made; /* sessions made (one X25519 key exchange each) */
    /* public random nonces, drawn in bulk: one randombytes_buf (getpid and
     * getrandom calls) per 170 responses instead of per response */
    uint8_t nonces[SH_NONCE_POOL_LEN];
    size_t nonces_used;
    /* the response being built: 3 KB of public fields and ciphertext (heap) */
    struct proto_msg *msg;
};

SPK_WUR int sh_sessions_init(struct sh_sessions *s);
void sh_sessions_cleanup(struct sh_sessions *s);

/*
 * sh_share_response_build writes the SHARE_RESPONSE frame for |share| into
 * |out| (PROTO_MSG_MAX bytes): the share sealed with the session of
 * (|client_pk|, |requester_pk|), made and cached on first use (least recently
 * used session evicted). A share that is not |readable| is made readable
 * only while it is being encrypted; a readable one (sh_store_share_open) is
 * left so. 0 or SPK_ERR_*.
 */
SPK_WUR int sh_share_response_build(struct sh_sessions *s, uint8_t *out, size_t cap,
                                    size_t *out_len, uint64_t req_id,
                                    const uint8_t client_pk[PROTO_X25519_LEN],
                                    const uint8_t requester_pk[PROTO_X25519_LEN],
                                    const struct sh_share *share);

/* ---- the audit log (sh_audit.c) -------------------------------------------- */

/* What a summary line counts, per client and interval. */
enum sh_audit_kind {
    SH_AUDIT_NOT_ALLOWED = 0, /* SHARE_REQUEST for a key the client may not fetch, or a
                                 request from a client no longer in the allow-list */
    SH_AUDIT_UNKNOWN_KEY,
    SH_AUDIT_RATE_LIMITED,
    SH_AUDIT_ERROR,   /* a request that failed here (bad requester key, internal) */
    SH_AUDIT_REFUSED, /* a CURVE handshake the ZAP handler refused */
    SH_AUDIT_NUM_KINDS,
};

#define SH_AUDIT_SUMS_MAX 256
#define SH_AUDIT_INTERVAL_DEFAULT 60 /* seconds */

struct sh_audit_sum {
    char who[PROTO_NAME_MAX + 8]; /* the client's name, or "key:" and its Z85 key */
    char addr[64];                /* the last address it came from */
    uint64_t first_ms;
    uint64_t counts[SH_AUDIT_NUM_KINDS];
};

/* Lines waiting for the next write(): a round's releases (at most
 * SH_BATCH_MAX, a few hundred bytes each) fit in one. */
#define SH_AUDIT_PENDING_MAX (64 * 1024)

struct sh_audit {
    int fd; /* -1 until opened */
    bool is_file;
    bool unsynced;   /* written since the last sh_audit_sync */
    bool write_lost; /* a write failed since the last sh_audit_sync */
    size_t pending_len;
    char pending[SH_AUDIT_PENDING_MAX];
    uint64_t interval_ms;
    time_t sec;
    char base[32];
    struct sh_audit_sum sums[SH_AUDIT_SUMS_MAX];
    size_t num_sums;
    uint64_t num_lost; /* summaries that could not be written */
};

/*
 * sh_audit_open opens (or, on SIGHUP for logrotate, opens again) the audit
 * log |path|: "stderr" for stderr, else a file created 0600, appended to,
 * and never through a symbolic link. An empty |path| is refused: a holder
 * without an audit trail must be asked for explicitly. Summaries of
 * refusals cover |interval_s| seconds (0: SH_AUDIT_INTERVAL_DEFAULT).
 * 0, or SPK_ERR_* with a reason in |why|.
 */
SPK_WUR int sh_audit_open(struct sh_audit *a, const char *path, unsigned interval_s, char *why,
                          size_t why_len);
void sh_audit_close(struct sh_audit *a);
/* sh_audit_line adds "TIME " and the formatted line to the lines pending,
 * which go to the file, whole and in order, with one write() at the next
 * sh_audit_sync or sh_audit_write (or earlier, when they would not fit).
 * 0 or SPK_ERR_INTERNAL (the line is too long). */
SPK_WUR int sh_audit_line(struct sh_audit *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* sh_audit_write writes the pending lines with one write(), no sync. 0 or
 * SPK_ERR_IO (they are dropped, and the next sh_audit_sync fails). */
int sh_audit_write(struct sh_audit *a);
/* sh_audit_sync writes the pending lines and makes them durable with
 * fdatasync (a file only). 0 or SPK_ERR_IO: then no line added since the
 * last sh_audit_sync may be relied on, and those still pending are dropped
 * unwritten. */
SPK_WUR int sh_audit_sync(struct sh_audit *a);
/* sh_audit_count counts one |kind| for |who| from |addr|; true when it opened
 * a new summary for |who| (the first in this interval: worth one log line). */
bool sh_audit_count(struct sh_audit *a, const char *who, const char *addr, enum sh_audit_kind kind,
                    uint64_t now_ms);
/* sh_audit_due_in_ms: ms until a summary is due (0: now), or -1 for none. */
long sh_audit_due_in_ms(const struct sh_audit *a, uint64_t now_ms);
/* sh_audit_summaries_write writes the summaries that are due (|all|: every
 * one, at reload and stop) and forgets them. */
void sh_audit_summaries_write(struct sh_audit *a, uint64_t now_ms, bool all);

/* ---- token buckets (sh_server.c) ------------------------------------------ */

struct sh_bucket {
    uint8_t pk[PROTO_X25519_LEN];
    double tokens;
    uint64_t last_ms;
};

/* sh_bucket_take refills |b| at |rate| per second up to |burst| as of
 * |now_ms| and takes one token: true if there was one. */
bool sh_bucket_take(struct sh_bucket *b, double rate, unsigned burst, uint64_t now_ms);

/* ---- the daemon (sh_server.c: start, loop, reload, stop; sh_request.c: frames) */

#define SH_BUCKETS_MAX 4096
#define SH_BATCH_MAX 256 /* frames per poll round, so signals and ZAP get a turn */
/* a SHARE_RESPONSE of the largest field is 2821 bytes */
#define SH_REPLY_MAX 4096

/* A released share waiting for its audit line to reach the disk. */
struct sh_queued {
    zmq_msg_t id;
    uint64_t req_id;
    size_t len;
    uint8_t frame[SH_REPLY_MAX];
};

struct sh_server {
    const struct sh_options *opt;
    struct proto_holder_secret *key;
    struct sh_store store;
    struct sh_allow allow;
    struct sh_sessions sessions;
    struct sh_bucket *buckets;
    size_t num_buckets;
    void *ctx;
    void *router;
    void *zap;
    struct spk_mserver metrics; /* stream NULL: no --metrics */
    int sigfd;
    struct sh_audit audit;
    bool stop;
    /* the last User-Id decoded: most frames come from the same few clients,
     * and the constant-time Z85 decode of a public key is not needed twice */
    char user_z85[PROTO_Z85_KEY_LEN];
    uint8_t user_pk[PROTO_X25519_LEN];
    bool have_user;
    uint64_t num_bad, num_refused, num_released, num_denied, num_rate_limited;
    uint64_t num_reload_failures;
    struct sh_queued *queue; /* SH_BATCH_MAX */
    size_t num_queued;
    uint8_t out[PROTO_MSG_MAX];
    struct proto_msg msg;
};

/* sh_router_read (sh_request.c): one message from the ROUTER. False when
 * there is none. */
bool sh_router_read(struct sh_server *s);
/* sh_queue_flush (sh_request.c): the queued shares' audit lines are written
 * and synced, then the shares are sent (or ERROR internal if either fails). */
void sh_queue_flush(struct sh_server *s);

#endif
