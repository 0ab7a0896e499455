#ifndef SPK_COMBINER_H
#define SPK_COMBINER_H

/*
 * combiner: gathers shares of a split RSA key from share sources, rebuilds
 * the CRT tuple in locked memory, runs one or a batch of private-key
 * operations through the RSA engine (combiner/internal.h), and wipes the key
 * before anything else happens.
 *
 * Threading: a struct comb_ctx is single-threaded. Every call on one context,
 * and every callback, happens on the thread that drives it with
 * comb_process(). Run one context per thread if you need more cores.
 *
 * Event loop: comb_sign / comb_decrypt only queue an operation; its share
 * fetches start at the next comb_process() (comb_timeout_ms() is then 0),
 * so that operations queued together share one reconstruction. They never
 * call the completion callback themselves. The callback runs from
 * comb_process(), which the caller calls whenever one of
 * comb_poll_items() is ready (comb_poll_result() says which) or
 * comb_timeout_ms() has passed. The blocking
 * wrappers comb_sign_sync / comb_decrypt_sync run that loop themselves.
 *
 * Order of checks for every reconstruction: each share as it arrives against
 * the record (key id, split id, index, holder, commitment; a bad one is
 * dropped and counted against its source) -> k distinct indexes -> constant-
 * time interpolation into locked memory -> p * q == N -> the operation(s) ->
 * each result checked with e inside the engine -> wipe of the tuple, the
 * received shares and the interpolation arena.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "proto/proto.h"

/* ==== algorithms ========================================================== */

/*
 * enum comb_alg: the operations a caller may ask for. The values are the wire
 * protocol's operation kinds (enum proto_op), so an OP_REQUEST's op byte is a
 * comb_alg as it stands (check it with comb_alg_valid).
 */
enum comb_alg {
    COMB_ALG_NONE = 0,
    COMB_ALG_PKCS1_SHA1 = PROTO_OP_SIGN_PKCS1_SHA1,
    COMB_ALG_PKCS1_SHA224 = PROTO_OP_SIGN_PKCS1_SHA224,
    COMB_ALG_PKCS1_SHA256 = PROTO_OP_SIGN_PKCS1_SHA256,
    COMB_ALG_PKCS1_SHA384 = PROTO_OP_SIGN_PKCS1_SHA384,
    COMB_ALG_PKCS1_SHA512 = PROTO_OP_SIGN_PKCS1_SHA512,
    COMB_ALG_PKCS1_MD5SHA1 = PROTO_OP_SIGN_PKCS1_MD5SHA1,
    COMB_ALG_PSS_SHA256 = PROTO_OP_SIGN_PSS_SHA256,
    COMB_ALG_PSS_SHA384 = PROTO_OP_SIGN_PSS_SHA384,
    COMB_ALG_PSS_SHA512 = PROTO_OP_SIGN_PSS_SHA512,
    COMB_ALG_DECRYPT_PKCS1 = PROTO_OP_DECRYPT_PKCS1,
    COMB_ALG_DECRYPT_TLS = PROTO_OP_DECRYPT_TLS_PREMASTER,
    COMB_ALG_DECRYPT_OAEP_SHA1 = PROTO_OP_DECRYPT_OAEP_SHA1,
    COMB_ALG_DECRYPT_OAEP_SHA256 = PROTO_OP_DECRYPT_OAEP_SHA256,
    COMB_ALG_DECRYPT_RAW = PROTO_OP_DECRYPT_RAW,
};

/*
 * comb_alg_from_name maps a command-line name to its algorithm, or
 * COMB_ALG_NONE. Signatures: "pkcs1-sha1" "pkcs1-sha224" "pkcs1-sha256"
 * "pkcs1-sha384" "pkcs1-sha512" "pkcs1-md5sha1" "pss-sha256" "pss-sha384"
 * "pss-sha512". Decryptions: "pkcs1" "tls-premaster" "oaep-sha1"
 * "oaep-sha256" "raw". The wire names of proto_op_name ("sign-pkcs1-sha256",
 * "decrypt-oaep-sha1", ...) are accepted too.
 */
enum comb_alg comb_alg_from_name(const char *name);
/* comb_alg_name: the command-line name of |alg| (static), or "unknown". */
const char *comb_alg_name(enum comb_alg alg);
/* comb_alg_valid: |alg| is one of the values above other than NONE. */
bool comb_alg_valid(int alg);
/* comb_alg_is_sign: |alg| is a signature (its input is a digest). */
bool comb_alg_is_sign(enum comb_alg alg);
/* comb_alg_digest_len: the digest length a signature takes (36 for
 * MD5+SHA-1), 0 for a decryption or NONE. */
size_t comb_alg_digest_len(enum comb_alg alg);
/*
 * comb_alg_md: the OpenSSL digest name that hashes a message for signature
 * |alg| ("SHA256", ...; "MD5-SHA1" for the TLS 1.0 form), or NULL for a
 * decryption. For tools that take a message rather than a digest.
 */
const char *comb_alg_md(enum comb_alg alg);

/* ==== share sources ======================================================= */

/*
 * struct comb_fetch: one request for one share, from the combiner to one
 * source. The combiner owns it; a source reads the request fields, writes
 * the share into |out_y| and reports with comb_fetch_done. From comb_fetch_done
 * or the source's cancel() on, the source must not touch the fetch again.
 */
struct comb_fetch {
    /* The request (read-only for the source). */
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t op;                             /* enum comb_alg == enum proto_op */
    uint8_t input_digest[PROTO_SHA256_LEN]; /* proto_ops_digest of the operations' inputs */
    unsigned op_count;                      /* operations the share serves, 1..64 */
    unsigned field_bits;                    /* the record's field (0 for a threshold key) */
    /*
     * A threshold-mode key (|sigshare|): the source returns a signature share
     * of one signature, not a key share: SIGSHARE_REQUEST(op, digest, salt),
     * the salt drawn once by the combiner for every source (PSS; none for
     * PKCS#1). The pointers stay valid until the fetch ends.
     */
    bool sigshare;
    const uint8_t *digest;
    size_t digest_len;
    const uint8_t *salt;
    size_t salt_len;
    /*
     * Where the answer goes, locked memory (spk_secret_new): the opened share,
     * exactly 5 * y_len bytes, or a signature share, exactly the modulus
     * length. The combiner wipes it after use. WARNING: never copy the share
     * anywhere else in the clear.
     */
    uint8_t *out_y;
    size_t out_len;
    /* Free for the source to use, e.g. its own request id. */
    uint64_t source_tag;
    void *source_data;
    /* The combiner's (do not touch). */
    void *comb_priv;
};

/* What a source says about the share it wrote to out_y. */
struct comb_share_info {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t index;       /* x, 1..255 (a threshold key: the party i) */
    unsigned field_bits; /* must be the record's (threshold keys: ignored, as is split_id) */
    /* A signature share's proof of correctness (PROTOCOL.md 5.1), required
     * from remote sources when the key's record has verification keys. */
    bool has_proof;
    uint8_t proof_c[PROTO_TSS_C_LEN];
    uint8_t proof_z[PROTO_TSS_Z_MAX]; /* modulus length + PROTO_TSS_Z_EXTRA bytes */
};

/*
 * comb_fetch_done reports the end of |fetch|: |status| 0 with |info| set and
 * the share in fetch->out_y, or a negative SPK_ERR_* (info may be NULL;
 * SPK_ERR_UNKNOWN_KEY, NOT_ALLOWED, TIMEOUT, UNAVAILABLE, UNSEAL, ...).
 * |detail| is an optional short public text for error messages (copied; no
 * secrets). May be called from the source's start() (a synchronous source)
 * or from its process(); the combiner only records the result there and acts
 * on it in comb_process, so this never re-enters the source or the caller.
 */
void comb_fetch_done(struct comb_fetch *fetch, int status, const struct comb_share_info *info,
                     const char *detail);

/*
 * struct comb_source_ops: the vtable of a share source. |ctx| is the source's
 * own state, given to comb_add_source.
 *
 *   start       begin fetching the share for |fetch|. Return 0 when the
 *               fetch will complete (now or later) through comb_fetch_done,
 *               or a negative SPK_ERR_* when it cannot start (then it must
 *               not call comb_fetch_done for it; the combiner counts it as
 *               that error). Required.
 *   cancel      forget |fetch| (its share is no longer wanted, or the
 *               combiner is being freed); no comb_fetch_done afterwards.
 *               Required for sources that complete later.
 *   has_key     optional: false when this source cannot have a share of
 *               |key_id|, so it is not asked (NULL: ask for every key).
 *   poll_items  optional: fill up to |cap| zmq_pollitem_t (sockets or fds) to
 *               wait on; returns how many. Sources that share one transport
 *               may give it from only one of them.
 *   poll_result optional: the |num| items poll_items filled, after zmq_poll,
 *               with their revents (comb_poll_result): process() may then
 *               skip reading what was not readable. It must still do its
 *               timed work (deadlines) whatever the revents.
 *   timeout_ms  optional: ms until the source needs process() again (0 now,
 *               -1 never).
 *   process     optional: do pending work without blocking; may call
 *               comb_fetch_done. 0 or SPK_ERR_* (an error is counted and
 *               ignored).
 *   free        optional: release |ctx| (at comb_free, after every fetch was
 *               cancelled or done).
 */
struct comb_source_ops {
    int (*start)(void *ctx, struct comb_fetch *fetch);
    void (*cancel)(void *ctx, struct comb_fetch *fetch);
    bool (*has_key)(void *ctx, const uint8_t key_id[PROTO_KEY_ID_LEN]);
    size_t (*poll_items)(void *ctx, zmq_pollitem_t *items, size_t cap);
    void (*poll_result)(void *ctx, const zmq_pollitem_t *items, size_t num);
    long (*timeout_ms)(void *ctx);
    int (*process)(void *ctx);
    void (*free)(void *ctx);
};

/* ==== the combiner ======================================================== */

struct comb_ctx;

#define COMB_SOURCES_MAX PROTO_SHARES_MAX
#define COMB_DETAIL_MAX 512 /* error-detail strings, with the NUL */

/*
 * struct comb_config: tunables; comb_config_init sets the defaults given
 * here.
 *   timeout_ms     a batch that has not got k good shares this long after its
 *                  fetches started fails with SPK_ERR_THRESHOLD (default 2000).
 *   max_pending    operations queued or in flight at once; more are refused
 *                  with SPK_ERR_RATE_LIMITED (default 1024).
 *   max_batch      operations that may share one reconstruction (default 8;
 *                  1 turns batching off). An operation joins its key's batch
 *                  only if that batch is of the same kind (operation) and has
 *                  not sent its share requests yet, so each request says
 *                  truthfully how many operations its share serves and
 *                  carries one digest over all their inputs.
 *   stats_window   samples kept per timing for p50 / p99 (default 4096).
 *   max_slots      share slots at most: each holds one fetched share in
 *                  locked memory (2,688 bytes), allocated 32 at a time as
 *                  needed, and a rebuild waits while too few are free
 *                  (default and at most 1024; at least 256, rounded up to
 *                  a multiple of 32: enough for a rebuild that asks every
 *                  one of COMB_SOURCES_MAX sources).
 */
struct comb_config {
    unsigned timeout_ms;
    unsigned max_pending;
    unsigned max_batch;
    unsigned stats_window;
    unsigned max_slots;
    /* false (`holder-fanout needed`): a rebuild asks the local share and
     * only as many holders as the threshold still needs, the fastest by
     * recent latency (compared among holders), and the others after a
     * hedge delay or at once on an error; true (the library's default,
     * `all`): every source. */
    bool fanout_all;
    /* true (`crt-threads 2`): an RSA operation that finds the combiner
     * otherwise idle runs its CRT halves on two threads (this one and a
     * helper), where comb_rsa_pub_calibrate finds that faster; false (the
     * library's default, `crt-threads 1`): both on this thread. */
    bool crt_helper;
};

void comb_config_init(struct comb_config *cfg);

/*
 * comb_new makes a combiner with |cfg| (NULL: defaults). Allocates its locked
 * memory (tuple, result, interpolation arena, share slots) through
 * spk_secret_new, so spk_mem_init and, in daemons, spk_process_harden come
 * first. Returns NULL on failure (no memory, or memory that cannot be locked).
 */
struct comb_ctx *comb_new(const struct comb_config *cfg);

/*
 * comb_free cancels every fetch, fails every pending operation WITHOUT
 * calling its callback, frees every source (ops->free), wipes and frees all
 * secret memory (local shares included). NULL is fine. Must not be called
 * from a completion callback.
 */
void comb_free(struct comb_ctx *c);

/*
 * comb_add_key adds the key of record |rec| (copied) after
 * split_record_verify: key id, modulus and the record's own signature. Builds
 * the key's long-lived public half (Montgomery context for n, blinding pair)
 * once. If |local| is not NULL, it is the combiner's own share of this key:
 * opened with |holder_key| straight into locked memory, checked against the
 * record (split id, holder name, commitment), and kept behind
 * sodium_mprotect_noaccess between operations; the share file's sealed bytes
 * are not kept. |local| and |holder_key| are not referenced after the call.
 * Returns 0, SPK_ERR_EXISTS (key already added), SPK_ERR_BAD_SIGNATURE,
 * SPK_ERR_MIXED_SPLIT, SPK_ERR_WRONG_HOLDER, SPK_ERR_UNSEAL,
 * SPK_ERR_COMMITMENT, SPK_ERR_KEY_UNSUPPORTED, SPK_ERR_NOMEM, ... with a
 * reason in comb_last_error().
 */
SPK_WUR int comb_add_key(struct comb_ctx *c, const struct proto_record *rec,
                         const struct proto_share_file *local,
                         const struct proto_holder_secret *holder_key);

/* comb_has_key: a key with |key_id| was added. */
bool comb_has_key(const struct comb_ctx *c, const uint8_t key_id[PROTO_KEY_ID_LEN]);

/*
 * comb_add_source adds a share source called |name| (a holder name,
 * PROTO_NAME_MAX at most; it names the source in errors and stats) with
 * vtable |ops| (not copied: it must outlive the combiner) and state |ctx|,
 * which the combiner now owns (ops->free at comb_free; also on failure here).
 * Every key is asked of every source (unless has_key says no), in parallel.
 * Sets *out_id (may be NULL) for comb_source_stats. 0, SPK_ERR_INVALID_ARG or
 * SPK_ERR_NOMEM.
 */
SPK_WUR int comb_add_source(struct comb_ctx *c, size_t *out_id, const char *name,
                            const struct comb_source_ops *ops, void *ctx);

/* ==== operations ========================================================== */

/*
 * struct comb_result: what a completion callback gets.
 *   status   0, or SPK_ERR_*: THRESHOLD (too few good shares; |detail| names
 *            the sources that failed and why), TIMEOUT, UNKNOWN_KEY,
 *            DECRYPT (bad ciphertext or padding for DECRYPT_PKCS1 / OAEP),
 *            FAULT, KEY_MISMATCH, ...
 *   out      the signature or plaintext; locked memory that is wiped when the
 *            callback returns: copy it out. NULL on error.
 *   detail   a NUL-terminated public description ("" on success).
 *   op_id    as returned by comb_sign / comb_decrypt.
 */
struct comb_result {
    int status;
    const uint8_t *out;
    size_t out_len;
    const char *detail;
    uint64_t op_id;
};

/* comb_done_cb: a completion callback. It may start new operations; it must
 * not call comb_free or comb_process. */
typedef void (*comb_done_cb)(void *arg, const struct comb_result *res);

/*
 * comb_sign queues a signature with key |key_id| over |digest| (exactly
 * comb_alg_digest_len(alg) bytes; copied); the share fetches start at the
 * next comb_process.
 * Returns 0 and sets *out_op_id (may be NULL): |cb| will be called exactly
 * once, from comb_process, with the result. Or returns SPK_ERR_UNKNOWN_KEY,
 * SPK_ERR_UNSUPPORTED (|alg| is not a signature), SPK_ERR_INVALID_ARG (digest
 * length), SPK_ERR_RATE_LIMITED (max_pending reached), SPK_ERR_NOMEM: then
 * |cb| is never called.
 */
SPK_WUR int comb_sign(struct comb_ctx *c, uint64_t *out_op_id,
                      const uint8_t key_id[PROTO_KEY_ID_LEN], enum comb_alg alg,
                      const uint8_t *digest, size_t digest_len, comb_done_cb cb, void *arg);

/*
 * struct comb_decrypt_params: extra inputs of a decryption (all optional;
 * NULL params means all zero).
 *   label, label_len   OAEP label.
 *   tls_version        COMB_ALG_DECRYPT_TLS: the ClientHello's
 *                      client_version (default 0x0303 when 0).
 *   tls_alt_version    COMB_ALG_DECRYPT_TLS: a second accepted version, or 0.
 */
struct comb_decrypt_params {
    const uint8_t *label;
    size_t label_len;
    uint16_t tls_version;
    uint16_t tls_alt_version;
};

#define COMB_LABEL_MAX 1024

/*
 * comb_decrypt queues a decryption of |in| (exactly the modulus length;
 * copied, as are the params) with key |key_id|. Same contract as comb_sign.
 * COMB_ALG_DECRYPT_TLS always yields 48 bytes (random ones on any padding or
 * version error, RFC 5246 7.4.7.1). A result is secret: wipe your copy.
 */
SPK_WUR int comb_decrypt(struct comb_ctx *c, uint64_t *out_op_id,
                         const uint8_t key_id[PROTO_KEY_ID_LEN], enum comb_alg alg,
                         const uint8_t *in, size_t in_len, const struct comb_decrypt_params *params,
                         comb_done_cb cb, void *arg);

/* comb_pending: operations queued or in flight. */
size_t comb_pending(const struct comb_ctx *c);

/*
 * comb_crt_report writes for the log how operations run their CRT halves:
 * "on one thread (crt-threads 1)" (or why not two), or with crt-threads 2
 * the key sizes for which two threads were found faster and those for which
 * not, e.g. "on two threads when idle for RSA-2048, RSA-4096". Truncated to
 * |cap| bytes.
 */
void comb_crt_report(const struct comb_ctx *c, char *out, size_t cap);

/*
 * comb_rsa_time_ns: the fastest of |runs| constant-time exponentiations
 * (OpenSSL's, as the combiner runs them) on a random |bits|-bit modulus and
 * exponent, one half or, with |both|, two at once as one thread runs an
 * operation's two CRT halves. Public values: only the time is wanted.
 * UINT64_MAX on failure.
 */
uint64_t comb_rsa_time_ns(unsigned bits, bool both, unsigned runs);

/*
 * comb_poll_items fills up to |cap| zmq_pollitem_t (ZMQ_POLLIN) with what the
 * sources wait on, and returns how many.
 */
size_t comb_poll_items(struct comb_ctx *c, zmq_pollitem_t *items, size_t cap);

/*
 * comb_poll_result takes back, after zmq_poll returned (not after an
 * error), the |num| items the last comb_poll_items filled, with their
 * revents: the next comb_process reads only the sources' sockets that were
 * readable. Deadlines, hedges and probes run by time in comb_process
 * whatever the revents. Optional: without it comb_process reads every
 * source.
 */
void comb_poll_result(struct comb_ctx *c, const zmq_pollitem_t *items, size_t num);

/*
 * comb_timeout_ms: ms until comb_process must run again: 0 when work is
 * ready now (results to deliver, a deadline passed), -1 when nothing is in
 * flight.
 */
long comb_timeout_ms(const struct comb_ctx *c);

/*
 * comb_process lets every source do its work, takes in finished fetches,
 * rebuilds keys whose batches have k good shares, runs their operations,
 * wipes, fails batches past their deadline, and calls the completion
 * callbacks. Never blocks. 0, or SPK_ERR_* for an internal failure (the
 * operations concerned have been failed through their callbacks).
 */
SPK_WUR int comb_process(struct comb_ctx *c);

/*
 * comb_wait polls and processes until nothing is pending or |timeout_ms|
 * passes (-1: no limit). For tools and tests. 0 or SPK_ERR_TIMEOUT.
 */
SPK_WUR int comb_wait(struct comb_ctx *c, int timeout_ms);

/*
 * comb_sign_sync / comb_decrypt_sync: one operation, blocking until it is
 * done (driving comb_process; other operations in flight progress too). The
 * result goes to |out| (|out_cap| bytes: the modulus length for a signature
 * or a raw decryption, 48 for TLS) and *out_len. Returns 0 or the operation's
 * SPK_ERR_* (|out| then zeroed), with a reason in comb_last_error(). A
 * decrypted result is secret: the caller wipes it.
 */
SPK_WUR int comb_sign_sync(struct comb_ctx *c, uint8_t *out, size_t out_cap, size_t *out_len,
                           const uint8_t key_id[PROTO_KEY_ID_LEN], enum comb_alg alg,
                           const uint8_t *digest, size_t digest_len);
SPK_WUR int comb_decrypt_sync(struct comb_ctx *c, uint8_t *out, size_t out_cap, size_t *out_len,
                              const uint8_t key_id[PROTO_KEY_ID_LEN], enum comb_alg alg,
                              const uint8_t *in, size_t in_len,
                              const struct comb_decrypt_params *params);

/*
 * comb_last_error: the detail of the last failure of a call on |c| or of an
 * operation that completed with an error ("" if none). Valid until the next
 * call on |c|.
 */
const char *comb_last_error(const struct comb_ctx *c);

/* comb_key_size: the modulus length in bytes of |key_id|, or 0 if unknown. */
size_t comb_key_size(const struct comb_ctx *c, const uint8_t key_id[PROTO_KEY_ID_LEN]);

/* ==== statistics ========================================================== */

/* One timing over the last stats_window samples (count and max: all time). */
struct comb_timing {
    uint64_t count;
    double mean_us;
    double p50_us;
    double p99_us;
    double max_us;
};

/*
 * struct comb_stats: what the combiner measured (CLOCK_MONOTONIC).
 *   gather       per batch: first fetch started -> k-th good share checked.
 *   check        per batch: checking arrived shares against the record.
 *   interpolate  per batch: interpolation and the p * q == N check.
 *   op           per operation, with the key: the RSA engine (CRT
 *                exponentiation, e-check, unblinding, a decryption's
 *                padding check; the input was encoded and blinded while
 *                the shares travelled).
 *   wipe         per batch: wiping tuple, shares, arena and stack.
 *   lifetime     per batch: reconstruction start -> wipe end (how long a
 *                whole key existed).
 *   total        per operation: comb_sign/comb_decrypt -> callback.
 */
/* Upper bounds, in microseconds, of the key-lifetime histogram's buckets;
 * one more bucket counts every lifetime above the last bound. */
#define COMB_LIFETIME_BOUNDS_US                                                                    \
    {                                                                                              \
        100, 250, 500, 750, 1000, 1500, 2500, 5000, 10000                                          \
    }
#define COMB_LIFETIME_NUM_BOUNDS 9

struct comb_stats {
    uint64_t ops_ok;
    uint64_t ops_failed;
    uint64_t batches;           /* reconstructions */
    uint64_t batched_ops;       /* operations that shared a reconstruction with another */
    uint64_t shares_good;       /* accepted */
    uint64_t shares_bad;        /* failed the record checks (commitment, split, index, ...) */
    uint64_t shares_error;      /* a source reported an error or timed out */
    uint64_t halves_apart;      /* operations whose CRT halves ran on two threads */
    uint64_t halves_taken_back; /* of those: the q half done here, the helper late */
    struct comb_timing gather;
    struct comb_timing check;
    struct comb_timing interpolate;
    struct comb_timing op;
    struct comb_timing wipe;
    struct comb_timing lifetime;
    struct comb_timing total;
    /* Every batch since start or comb_stats_reset (not a window): lifetimes
     * by COMB_LIFETIME_BOUNDS_US, not cumulative, and their sum. */
    uint64_t lifetime_buckets[COMB_LIFETIME_NUM_BOUNDS + 1];
    uint64_t lifetime_ns_sum;
};

/* comb_stats_get fills |out|. */
void comb_stats_get(const struct comb_ctx *c, struct comb_stats *out);
/* comb_stats_reset clears every counter and sample. */
void comb_stats_reset(struct comb_ctx *c);

/* Per-source counters. */
struct comb_source_stats {
    char name[PROTO_NAME_MAX + 1];
    uint64_t requests; /* fetches started */
    uint64_t good;     /* shares accepted */
    uint64_t bad;      /* shares dropped: commitment, split id, index, duplicate */
    uint64_t errors;   /* errors and timeouts reported */
    uint64_t cancelled;
    /* holder-fanout needed: */
    uint64_t hedged;    /* asked by a hedge, after the first ones */
    uint64_t hedge_won; /* of those, shares among the k a rebuild used */
    uint64_t probes;    /* asked while passed over, on top of the needed ones */
    /* threshold keys: signature shares shown wrong (refused on arrival, or
     * outside every k-subset that yields a valid signature); also in |bad| */
    uint64_t bad_sigshares;
    int last_error; /* SPK_ERR_* of the last bad share or error, 0 if none */
    /* The current estimate (filled by comb_source_stats): recent mean and
     * about p95 (mean + 3 mean deviations) of its answers, 0 if none yet;
     * passed_over: left out of first asks (slow or late) but probed. */
    uint64_t latency_mean_ns;
    uint64_t latency_p95_ns;
    bool passed_over;
};

/* comb_num_sources: sources added (ids are 0 .. n-1; the local share's
 * built-in source, if any key has one, is among them, named "local"). */
size_t comb_num_sources(const struct comb_ctx *c);
/* comb_source_stats copies source |id|'s counters. 0 or SPK_ERR_INVALID_ARG. */
SPK_WUR int comb_source_stats(const struct comb_ctx *c, size_t id, struct comb_source_stats *out);

/* ==== the in-process file source (comb_source_file.c) ===================== */

/*
 * struct comb_file_source serves shares from share files opened with one
 * holder's secret key, in the same process: for tests, benchmarks and
 * recovery drills (the `combiner` command uses it for every --share after the
 * first). By default each request opens the sealed share anew into the
 * fetch's locked memory and completes at the next comb_process (so it is
 * asynchronous like a remote holder). Faults can be injected for tests.
 */
struct comb_file_source;

enum comb_fault {
    COMB_FAULT_NONE = 0,
    COMB_FAULT_FAIL,        /* answer with SPK_ERR_UNAVAILABLE */
    COMB_FAULT_CORRUPT_Y,   /* flip a bit of y (fails its commitment) */
    COMB_FAULT_WRONG_SHARE, /* send the right y under the next index (commitment fails) */
    COMB_FAULT_SILENT,      /* never answer (the batch deadline decides) */
};

/*
 * comb_file_source_new makes a source that opens shares with |holder_key|
 * (copied into locked memory). Not yet attached: add shares, then give it to
 * comb_add_file_source. NULL on failure.
 */
struct comb_file_source *comb_file_source_new(const struct proto_holder_secret *holder_key);
/* comb_file_source_free frees a source never attached (NULL is fine). */
void comb_file_source_free(struct comb_file_source *fs);

/*
 * comb_file_source_add_share adds share file |sf| (copied; still sealed).
 * With |preopen| it is opened now into locked memory and served from there
 * (a holder that keeps its shares open, as a real one does), else it is
 * opened per request. SPK_ERR_WRONG_HOLDER (the share is another holder's),
 * SPK_ERR_UNSEAL (preopen failed), SPK_ERR_EXISTS (key already has a share
 * here), SPK_ERR_NOMEM.
 */
SPK_WUR int comb_file_source_add_share(struct comb_file_source *fs,
                                       const struct proto_share_file *sf, bool preopen);

/* comb_file_source_set_fault: the fault every later request gets. */
void comb_file_source_set_fault(struct comb_file_source *fs, enum comb_fault fault);
/* comb_file_source_set_delay_ms: answer no sooner than |ms| after a request
 * (0: at the next comb_process). */
void comb_file_source_set_delay_ms(struct comb_file_source *fs, unsigned ms);
/* comb_file_source_set_sync: answer inside start() (as the local share does). */
void comb_file_source_set_sync(struct comb_file_source *fs, bool sync);

/*
 * comb_add_file_source attaches |fs| under |name| (NULL: the holder key's
 * name). The combiner owns |fs| from now on, also on failure; the pointer
 * stays usable for the set_* calls until comb_free.
 */
SPK_WUR int comb_add_file_source(struct comb_ctx *c, size_t *out_id, const char *name,
                                 struct comb_file_source *fs);

#endif
