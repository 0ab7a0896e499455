#ifndef SPK_COMB_PRIVATE_H
#define SPK_COMB_PRIVATE_H

/*
 * combiner/comb_private.h: the combiner's own structures, shared by
 * comb_core.c (the context and its API), comb_batch.c (batches and their
 * fetches, reconstruction), comb_key.c, comb_source.c
 * (share slots, the source table, the local share; it sees no batch),
 * comb_stats.c, comb_alg.c and comb_tss.c (threshold-mode keys). Nothing
 * here is API.
 *
 * Memory: everything that ever holds a share, a tuple or a decrypted result
 * is spk_secret_new / spk_arena memory owned by struct comb_ctx (slots,
 * tuple, results, arena). Bookkeeping (keys, batches, operations) is public
 * data and comes from OPENSSL_zalloc, whose free hook wipes anyway.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "combiner/combiner.h"
#include "combiner/internal.h"
#include "split/split.h"

/* One share slot: the largest y (5 * 532 bytes) rounded up to 64. */
#define COMB_SLOT_LEN 2688
#define COMB_SLOTS_PER_CHUNK 32
#define COMB_SLOTS_MAX 1024
/* A rebuild may ask every source: at least that many slots, in chunks. */
#define COMB_SLOTS_MIN                                                                             \
    ((COMB_SOURCES_MAX + COMB_SLOTS_PER_CHUNK - 1) / COMB_SLOTS_PER_CHUNK * COMB_SLOTS_PER_CHUNK)
#define COMB_BATCH_MAX 64
#define COMB_STACK_WIPE (32 * 1024)
#define COMB_FETCH_DETAIL_MAX 96
/* comb_src.late: 1 in fixed point. */
#define COMB_LATE_ONE 256u

struct comb_key {
    struct proto_record rec;
    struct split_field f; /* rebuild mode */
    size_t tuple_len;     /* rebuild mode */
    /* What a source writes for this key: the tuple (rebuild mode) or a
     * signature share (threshold mode: the modulus length). */
    size_t answer_len;
    /* Threshold mode: the combiner's own key share, if it holds one, lives
     * only inside |signer| (secure-heap BIGNUMs); NULL if none. */
    struct split_tss_signer *signer;
    unsigned mod_bits;
    struct comb_rsa_pub *pub;
    /* The combiner's own share: locked, noaccess while idle; NULL if none. */
    uint8_t *local_y;
    uint8_t local_index;
    /* The batch that new operations on this key may join, or NULL. */
    struct comb_batch *open_batch;
    char short_id[17]; /* first 8 bytes of the key id in hex, for messages */
};

struct comb_src {
    char name[PROTO_NAME_MAX + 1];
    const struct comb_source_ops *ops;
    void *ctx;
    struct comb_source_stats st;
    size_t num_poll_items; /* filled by the last comb_poll_items */
    /* Recent share latency (exponentially weighted mean and mean deviation
     * of the answers), for holder-fanout needed: whom to ask and when to
     * hedge. */
    uint64_t lat_mean_ns;
    uint64_t lat_dev_ns;
    uint64_t last_asked_ns;
    /* How often it was late recently: asks that failed, or were still open
     * when the hedge went out, weighted 1/4 (0 .. COMB_LATE_ONE). */
    unsigned late;
    bool probing;          /* asked though passed over: its next answer replaces the estimate */
    uint64_t probe_gap_ns; /* passed over: probed when not asked for this long */
    unsigned probes_open;  /* probes not answered (or examined) yet: one at a time */
};

enum comb_fetch_state {
    COMB_FETCH_UNUSED = 0,
    COMB_FETCH_RUNNING, /* started, no answer yet */
    COMB_FETCH_DONE,    /* answered; result queued for the batch */
    COMB_FETCH_CLOSED,  /* answered and examined, cancelled, or never started */
};

struct comb_fetch_ent {
    struct comb_fetch f; /* what the source sees; f.comb_priv points here */
    struct comb_batch *batch;
    size_t src;
    enum comb_fetch_state state;
    int status;
    struct comb_share_info info;
    char detail[COMB_FETCH_DETAIL_MAX];
    bool accepted; /* counted among the batch's good shares */
    bool proven;   /* a signature share whose proof was checked and holds */
    bool hedge;    /* asked by the hedge, after the first ones */
    bool probe;    /* a passed-over holder asked on top of the needed ones */
    bool judged;   /* on time or late already counted for its source */
    uint64_t t_start_ns, t_done_ns;
};

struct comb_op {
    struct comb_op *next;
    uint64_t id;
    enum comb_alg alg;
    uint8_t in[PROTO_BN_MAX];
    size_t in_len;
    /* A threshold key's PSS salt, drawn once for every source (comb_submit). */
    uint8_t salt[PROTO_DIGEST_MAX];
    size_t salt_len;
    uint8_t *label; /* OPENSSL_malloc, label_len bytes, or NULL */
    size_t label_len;
    uint16_t tls_version;
    uint16_t tls_alt_version;
    comb_done_cb cb;
    void *arg;
    uint64_t t_submit_ns;
    int status;
    uint8_t *out; /* into comb_ctx.results while the batch delivers */
    size_t out_len;
    /* comb_batch_prepare's, while the batch's shares travel: the input
     * encoded and blinded (prep), or why it could not be (prep_status). */
    bool prepared;
    int prep_status;
    struct comb_rsa_prep prep;
};

enum comb_batch_state {
    COMB_BATCH_WAITING = 0, /* no share slots yet, or gated (comb_batch_gate_ns) */
    COMB_BATCH_GATHERING,
    COMB_BATCH_READY,
    COMB_BATCH_FAILED,
    COMB_BATCH_PROBING, /* delivered; waits only for its probes' answers */
};

struct comb_batch {
    struct comb_batch *prev, *next; /* comb_ctx.batches */
    struct comb_key *key;
    enum comb_batch_state state;
    struct comb_op *ops_head, *ops_tail;
    size_t num_ops;
    uint64_t t_start_ns;
    uint64_t deadline_ns;
    uint8_t input_digest[PROTO_SHA256_LEN];
    unsigned op_count; /* the operations input_digest covers */
    uint8_t op_kind;
    /* One fetch per source asked. */
    struct comb_fetch_ent *fetches;
    size_t cap_fetches; /* sources there were when the batch was made */
    size_t num_fetches;
    size_t slots_needed;  /* while WAITING: how many sources will be asked */
    uint64_t hedge_at_ns; /* != 0: the sources not asked yet are asked then */
    size_t num_running;
    /* Answers in the order they came, examined up to |num_examined|. */
    size_t *done_order;
    size_t num_done;
    size_t num_examined;
    size_t good[PROTO_SHARES_MAX]; /* indexes into fetches, arrival order */
    size_t num_good;
    /* Good answers the batch waits for: k, or more for a threshold key
     * without verification keys whose first k signature shares did not
     * combine (comb_tss_run). */
    size_t need_good;
    uint64_t check_ns;
    int fail_status;
    char failures[COMB_DETAIL_MAX]; /* "name: reason; ..." */
};

/* A window of timing samples. */
struct comb_series {
    double *samples; /* OPENSSL_malloc, |cap| entries */
    size_t cap;
    size_t num; /* valid samples, <= cap */
    size_t pos; /* next write */
    uint64_t count;
    double max;
};

struct comb_ctx {
    struct comb_config cfg;
    struct comb_key **keys;
    size_t num_keys, cap_keys;
    struct comb_src *srcs;
    size_t num_srcs;
    bool have_local_src;
    size_t local_src;
    /* Threshold keys: the local source's signature shares still to compute,
     * linked through comb_fetch.source_data, done at its next process() so
     * that the holders' requests go out first. */
    struct comb_fetch *local_queue;
    struct comb_batch *batches_head, *batches_tail;
    size_t num_pending;
    uint64_t next_op_id;
    bool in_process;
    /* Locked memory. */
    uint8_t *tuple;   /* PROTO_SHARE_Y_MAX */
    uint8_t *results; /* COMB_BATCH_MAX * PROTO_BN_MAX */
    struct spk_arena *arena;
    size_t arena_cap;
    uint8_t **slot_chunks;
    size_t num_chunks;
    uint8_t **free_slots; /* stack */
    size_t num_free_slots;
    /* Statistics. */
    struct comb_stats counters;         /* the counters; timings come from the series */
    struct comb_rsa_helper *rsa_helper; /* cfg.crt_helper's thread, or NULL */
    struct comb_series s_gather, s_check, s_interp, s_op, s_wipe, s_life, s_total;
    char last_error[COMB_DETAIL_MAX];
};

/* comb_set_error formats comb_ctx.last_error. */
__attribute__((format(printf, 2, 3))) void comb_set_error(struct comb_ctx *c, const char *fmt, ...);

/* comb_alg_engine_req fills the engine request kind and hashes for |alg|. */
SPK_WUR int comb_alg_engine_req(struct comb_rsa_req *req, enum comb_alg alg);

/* Statistics (comb_stats.c). */
SPK_WUR int comb_series_init(struct comb_series *s, size_t cap);
void comb_series_cleanup(struct comb_series *s);
void comb_series_add(struct comb_series *s, uint64_t ns);
void comb_series_clear(struct comb_series *s);
/* comb_lifetime_observe counts one key lifetime of |ns| in |st|'s histogram. */
void comb_lifetime_observe(struct comb_stats *st, uint64_t ns);
void comb_series_get(const struct comb_series *s, struct comb_timing *out);

/* Share slots (comb_source.c): COMB_SLOT_LEN bytes of locked memory each. */
uint8_t *comb_slot_get(struct comb_ctx *c);
/* comb_slot_put wipes |len| bytes of |slot| and returns it to the pool. */
void comb_slot_put(struct comb_ctx *c, uint8_t *slot, size_t len);
/* comb_slots_available: how many slots could be had now (growing the pool). */
size_t comb_slots_available(const struct comb_ctx *c);
void comb_slots_free(struct comb_ctx *c);

/* The local share's built-in source (comb_source.c). */
extern const struct comb_source_ops comb_local_source_ops;

/* The configuration file's helpers (comb_config.c), also used by
 * comb_conf_open.c. comb_conf_why formats into |why| if it is not NULL. */
__attribute__((format(printf, 3, 4))) void comb_conf_why(char *why, size_t why_len, const char *fmt,
                                                         ...);
/* comb_conf_cap: the capacity an array of |num| elements has (grown by doubling). */
size_t comb_conf_cap(size_t num);

/* Batches (comb_batch.c), driven by comb_core.c. */
void comb_op_free(struct comb_op *op);
struct comb_batch *comb_batch_new(struct comb_ctx *c, struct comb_key *key,
                                  const struct comb_op *first);
void comb_batch_unlink(struct comb_ctx *c, struct comb_batch *b);
void comb_batch_free(struct comb_ctx *c, struct comb_batch *b);
__attribute__((format(printf, 3, 4))) void comb_batch_note(struct comb_batch *b, const char *name,
                                                           const char *fmt, ...);
uint64_t comb_batch_gate_ns(const struct comb_ctx *c, const struct comb_batch *b);
int comb_batch_start(struct comb_ctx *c, struct comb_batch *b);
void comb_batch_hedge(struct comb_ctx *c, struct comb_batch *b, uint64_t now);
size_t comb_batch_needed_running(const struct comb_batch *b);
/* comb_src_note_bad: source |i| sent a share or signature share shown
 * wrong: for holder-fanout needed it counts as failed and late. */
void comb_src_note_bad(struct comb_ctx *c, size_t i);
/* comb_src_passed_over: holder-fanout needed leaves |src| out of first asks
 * for |key| (NULL: compared with every holder). */
bool comb_src_passed_over(const struct comb_ctx *c, const struct comb_key *key,
                          const struct comb_src *src);
void comb_batch_examine(struct comb_ctx *c, struct comb_batch *b);
void comb_batch_run(struct comb_ctx *c, struct comb_batch *b);
/* comb_batch_prepare encodes and blinds the operations of |b| not yet
 * prepared (comb_rsa_prepare), for comb_batch_run: called once its share
 * requests are out, it takes that work off the path from the last share to
 * the answers (comb_batch_run calls it for any it missed, before the key
 * exists). A threshold key's batch has nothing to prepare. */
void comb_batch_prepare(struct comb_batch *b);
void comb_batch_linger(struct comb_ctx *c, struct comb_batch *b, uint64_t now);
void comb_batch_fail(struct comb_ctx *c, struct comb_batch *b, int status, const char *detail);
/* comb_batch_deliver calls back every operation of an unlinked batch and frees it
 * (after its probes have answered: comb_batch_linger). */
void comb_batch_deliver(struct comb_ctx *c, struct comb_batch *b, const char *fail_detail);
void comb_batch_fail_threshold(struct comb_ctx *c, struct comb_batch *b, const char *why);

/* ---- threshold-mode keys (comb_tss.c) ---- */

/*
 * comb_tss_key_init finishes |key| from a threshold-mode record: answer
 * length, modulus bits, and with |local| the combiner's own key share opened
 * with |holder_key|, checked against the record's commitment and turned
 * into key->signer (the opened share is wiped). Error text via comb_set_error.
 */
SPK_WUR int comb_tss_key_init(struct comb_ctx *c, struct comb_key *key,
                              const struct proto_share_file *local,
                              const struct proto_holder_secret *holder_key);
/*
 * comb_tss_accept is the one place a received signature share is taken or
 * refused before any combining: of this key, an index the record gives to
 * the source that sent it, below N, with a proof when the record has
 * verification keys (the proof itself is checked only if the combination
 * fails: comb_tss_run), not a second one of the same index.
 * 0, or SPK_ERR_* with a short public reason in *why.
 */
SPK_WUR int comb_tss_accept(const struct comb_ctx *c, const struct comb_batch *b,
                            const struct comb_fetch_ent *ent, const char **why);
/*
 * comb_tss_refuse counts and logs the signature share |ent| of |b| as bad
 * (SPK_ERR_* |status|, |why| public) against its source; the caller drops it.
 */
void comb_tss_refuse(struct comb_ctx *c, struct comb_batch *b, const struct comb_fetch_ent *ent,
                     int status, const char *why);
/*
 * comb_tss_run combines the good signature shares of the READY batch |b|
 * (one signature) and delivers it once it passes the check with e. When they
 * do not combine: for a record with verification keys the proofs not checked
 * yet are checked now and each share whose proof fails is refused and
 * dropped (comb_tss_refuse), |b| going back to gathering k good ones; without
 * verification keys each holder whose share the subsets show wrong is counted
 * and logged and |b| gathers one more share. Either way its hedge is asked at
 * once, and when no other source may answer it fails.
 */
void comb_tss_run(struct comb_ctx *c, struct comb_batch *b);
/*
 * comb_tss_fail fails |b| with |status| (SPK_ERR_FAULT: the shares received
 * did not combine and no other came, |why| saying more, may be NULL), naming
 * the sources that failed. comb_batch_fail_threshold comes here for a batch
 * that was waiting for one more share after a failed combination.
 */
void comb_tss_fail(struct comb_ctx *c, struct comb_batch *b, int status, const char *why);
/* The local source's threshold side (comb_source.c calls these). */
void comb_tss_local_queue(struct comb_ctx *c, struct comb_fetch *fetch);
void comb_tss_local_cancel(struct comb_ctx *c, struct comb_fetch *fetch);
void comb_tss_local_process(struct comb_ctx *c);

/* comb_hex (comb_key.c) writes |n| bytes of |p| as hex into |out|. */
void comb_hex(char *out, size_t cap, const uint8_t *p, size_t n);

/* comb_key_find (comb_key.c): the key with |key_id|, or NULL. */
struct comb_key *comb_key_find(const struct comb_ctx *c, const uint8_t key_id[PROTO_KEY_ID_LEN]);

#endif
