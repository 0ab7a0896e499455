/*
 * comb_batch.c: batches. An operation joins (or opens) a batch for its key;
 * a batch asks the sources for shares (the faster ones first, hedging after
 * a delay), takes the first k that pass the record's checks, rebuilds the
 * CRT tuple in locked memory, runs all its operations, wipes, and only then
 * calls back. The key exists between comb_batch_run's split_shares_combine
 * and its wipe, inside that one function. A threshold-mode key's batch
 * gathers signature shares instead and hands them to comb_tss.c, which
 * accepts each (comb_tss_accept) and combines them (comb_tss_run).
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/comb_private.h"

void comb_op_free(struct comb_op *op)
{
    if (op == NULL) {
        return;
    }
    OPENSSL_clear_free(op->label, op->label_len);
    OPENSSL_clear_free(op, sizeof(*op));
}

void comb_batch_unlink(struct comb_ctx *c, struct comb_batch *b)
{
    if (b->prev != NULL) {
        b->prev->next = b->next;
    } else {
        c->batches_head = b->next;
    }
    if (b->next != NULL) {
        b->next->prev = b->prev;
    } else {
        c->batches_tail = b->prev;
    }
    b->prev = b->next = NULL;
    if (b->key->open_batch == b) {
        b->key->open_batch = NULL;
    }
}

/* comb_src_note_latency folds one share's latency into |src|'s recent mean
 * and mean deviation (weights 1/8 and 1/4, as TCP's RTT estimate). */
static void comb_src_note_latency(struct comb_src *src, uint64_t ns)
{
    uint64_t diff;

    if (src->lat_mean_ns == 0 || src->probing) {
        /* A probe of a passed-over source starts its estimate afresh: one
         * answer brings back a holder whose slow spell is over. */
        src->lat_mean_ns = ns > 0 ? ns : 1;
        src->lat_dev_ns = ns / 2;
        src->probing = false;
        return;
    }
    diff = ns > src->lat_mean_ns ? ns - src->lat_mean_ns : src->lat_mean_ns - ns;
    src->lat_dev_ns = src->lat_dev_ns - src->lat_dev_ns / 4 + diff / 4;
    src->lat_mean_ns = src->lat_mean_ns - src->lat_mean_ns / 8 + ns / 8;
    if (src->lat_mean_ns == 0) {
        src->lat_mean_ns = 1;
    }
}

/* comb_batch_close_fetches cancels what is still running and wipes every slot. */
static void comb_batch_close_fetches(struct comb_ctx *c, struct comb_batch *b, bool count_cancel)
{
    size_t i;

    for (i = 0; i < b->num_fetches; i++) {
        struct comb_fetch_ent *ent = &b->fetches[i];
        struct comb_src *src = &c->srcs[ent->src];

        if (ent->state == COMB_FETCH_RUNNING) {
            if (src->ops->cancel != NULL) {
                src->ops->cancel(src->ctx, &ent->f);
            }
            if (count_cancel) {
                src->st.cancelled++;
            }
            b->num_running--;
            /* No answer until now: at least this slow (a holder that is
             * down stops being asked first). */
            comb_src_note_latency(src, spk_now_ns() - ent->t_start_ns);
        }
        ent->state = COMB_FETCH_CLOSED;
        ent->accepted = false;
        if (ent->f.out_y != NULL) {
            comb_slot_put(c, ent->f.out_y, ent->f.out_len);
            ent->f.out_y = NULL;
        }
    }
}

void comb_batch_free(struct comb_ctx *c, struct comb_batch *b)
{
    struct comb_op *op;

    if (b == NULL) {
        return;
    }
    comb_batch_close_fetches(c, b, false);
    while ((op = b->ops_head) != NULL) {
        b->ops_head = op->next;
        comb_op_free(op);
    }
    OPENSSL_free(b->fetches);
    OPENSSL_free(b->done_order);
    OPENSSL_clear_free(b, sizeof(*b));
}

__attribute__((format(printf, 3, 4))) void comb_batch_note(struct comb_batch *b, const char *name,
                                                           const char *fmt, ...)
{
    size_t used = strlen(b->failures);
    va_list ap;
    int n;

    if (used + 4 >= sizeof(b->failures)) {
        return;
    }
    n = snprintf(b->failures + used, sizeof(b->failures) - used, "%s%s: ", used > 0 ? "; " : "",
                 name);
    if (n < 0 || (size_t)n >= sizeof(b->failures) - used) {
        return;
    }
    used += (size_t)n;
    va_start(ap, fmt);
    vsnprintf(b->failures + used, sizeof(b->failures) - used, fmt, ap);
    va_end(ap);
}

struct comb_batch *comb_batch_new(struct comb_ctx *c, struct comb_key *key,
                                  const struct comb_op *first)
{
    struct comb_batch *b = OPENSSL_zalloc(sizeof(*b));
    size_t n = c->num_srcs > 0 ? c->num_srcs : 1;

    if (b == NULL) {
        return NULL;
    }
    b->fetches = OPENSSL_zalloc(n * sizeof(b->fetches[0]));
    b->done_order = OPENSSL_zalloc(n * sizeof(b->done_order[0]));
    if (b->fetches == NULL || b->done_order == NULL) {
        OPENSSL_free(b->fetches);
        OPENSSL_free(b->done_order);
        OPENSSL_free(b);
        return NULL;
    }
    b->cap_fetches = n;
    b->key = key;
    b->need_good = key->rec.threshold;
    b->state = COMB_BATCH_WAITING;
    b->t_start_ns = spk_now_ns();
    b->deadline_ns = b->t_start_ns + (uint64_t)c->cfg.timeout_ms * 1000000u;
    /* One kind per batch: a holder's audit line names the kind it released for. */
    b->op_kind = (uint8_t)first->alg;
    b->prev = c->batches_tail;
    if (c->batches_tail != NULL) {
        c->batches_tail->next = b;
    } else {
        c->batches_head = b;
    }
    c->batches_tail = b;
    return b;
}

static bool comb_src_asked(const struct comb_src *src, const struct comb_key *key)
{
    return src->ops->has_key == NULL || src->ops->has_key(src->ctx, key->rec.key_id);
}

/* comb_batch_sources: how many sources |b| may ask (those added after it was made are not). */
static size_t comb_batch_sources(const struct comb_ctx *c, const struct comb_batch *b)
{
    return c->num_srcs < b->cap_fetches ? c->num_srcs : b->cap_fetches;
}

/* comb_batch_digest: op_count and input_digest of |b| over every operation in it. */
static int comb_batch_digest(struct comb_batch *b)
{
    struct proto_ops_digest digest;

    proto_ops_digest_init(&digest);
    for (const struct comb_op *op = b->ops_head; op != NULL; op = op->next) {
        if (!proto_ops_digest_add(&digest, (uint8_t)op->alg, op->in, op->in_len)) {
            proto_ops_digest_final(&digest, b->input_digest);
            return SPK_ERR_INTERNAL;
        }
    }
    proto_ops_digest_final(&digest, b->input_digest);
    b->op_count = (unsigned)b->num_ops;
    return 0;
}

/* comb_batch_ask_one starts the fetch of source |i| for |b| in its own slot. */
static void comb_batch_ask_one(struct comb_ctx *c, struct comb_batch *b, size_t i, uint64_t now)
{
    struct comb_key *key = b->key;
    struct comb_src *src = &c->srcs[i];
    struct comb_fetch_ent *ent;
    int r;

    ent = &b->fetches[b->num_fetches++];
    ent->batch = b;
    ent->src = i;
    ent->t_start_ns = now;
    memcpy(ent->f.key_id, key->rec.key_id, PROTO_KEY_ID_LEN);
    ent->f.op = b->op_kind;
    memcpy(ent->f.input_digest, b->input_digest, PROTO_SHA256_LEN);
    ent->f.op_count = b->op_count;
    ent->f.field_bits = key->rec.field_bits;
    ent->f.out_len = key->answer_len;
    if (key->rec.mode == PROTO_MODE_THRESHOLD) {
        /* A threshold batch has one operation: its digest and salt go to every source. */
        ent->f.sigshare = true;
        ent->f.digest = b->ops_head->in;
        ent->f.digest_len = b->ops_head->in_len;
        ent->f.salt = b->ops_head->salt;
        ent->f.salt_len = b->ops_head->salt_len;
    }
    ent->f.comb_priv = ent;
    ent->f.out_y = comb_slot_get(c);
    src->st.requests++;
    src->last_asked_ns = now;
    if (ent->f.out_y == NULL) {
        ent->state = COMB_FETCH_CLOSED;
        src->st.errors++;
        src->st.last_error = SPK_ERR_NOMEM;
        comb_batch_note(b, src->name, "%s", spk_strerror(SPK_ERR_NOMEM));
        return;
    }
    ent->state = COMB_FETCH_RUNNING;
    b->num_running++;
    r = src->ops->start(src->ctx, &ent->f);
    if (r != 0 && ent->state == COMB_FETCH_RUNNING) {
        ent->state = COMB_FETCH_CLOSED;
        b->num_running--;
        src->st.errors++;
        src->st.last_error = r;
        c->counters.shares_error++;
        comb_batch_note(b, src->name, "%s", spk_strerror(r));
        comb_slot_put(c, ent->f.out_y, ent->f.out_len);
        ent->f.out_y = NULL;
    }
}

static bool comb_batch_has_asked(const struct comb_batch *b, size_t i)
{
    size_t j;

    for (j = 0; j < b->num_fetches; j++) {
        if (b->fetches[j].src == i) {
            return true;
        }
    }
    return false;
}

/* A source not asked for this long is asked again whatever its latency, so
 * one that was slow or down once is tried again. */
#define COMB_FANOUT_PROBE_NS (100u * 1000u * 1000u)

/*
 * comb_batch_pick: the next source to ask for |b|, or SIZE_MAX. Among the
 * sources not asked yet, those whose recent latency is under four times the
 * fastest's plus 5 ms plus 8 of its mean deviations (only a clearly slower
 * holder, not one in a scheduling hiccup), or unknown, or not asked for
 * 100 ms, are
 * eligible, and the one asked longest ago wins: equally fast holders take
 * turns, a slow one is left alone (a source picked only because it was not
 * asked for 100 ms is a probe: see comb_src_note_latency).
 */
static size_t comb_batch_pick(struct comb_ctx *c, const struct comb_batch *b, uint64_t now,
                              bool *out_probe)
{
    uint64_t fastest = UINT64_MAX, noise = 0, limit;
    size_t i, best = SIZE_MAX;

    for (i = 0; i < comb_batch_sources(c, b); i++) {
        if (comb_src_asked(&c->srcs[i], b->key) && !comb_batch_has_asked(b, i) &&
            c->srcs[i].lat_mean_ns < fastest) {
            fastest = c->srcs[i].lat_mean_ns;
            noise = c->srcs[i].lat_dev_ns;
        }
    }
    limit = fastest == UINT64_MAX ? UINT64_MAX : 4 * fastest + 8 * noise + 5000000u;
    for (i = 0; i < comb_batch_sources(c, b); i++) {
        const struct comb_src *src = &c->srcs[i];
        bool eligible;

        if (!comb_src_asked(src, b->key) || comb_batch_has_asked(b, i)) {
            continue;
        }
        eligible = src->lat_mean_ns <= limit || now - src->last_asked_ns >= COMB_FANOUT_PROBE_NS;
        if (eligible && (best == SIZE_MAX || src->last_asked_ns < c->srcs[best].last_asked_ns)) {
            best = i;
        }
    }
    *out_probe = best != SIZE_MAX && c->srcs[best].lat_mean_ns > limit;
    if (*out_probe) {
        c->srcs[best].probing = true;
    }
    return best;
}

/* comb_hedge_delay_ns: how long the first sources asked may take before the
 * others are asked too: the slowest one's recent mean + 3 mean deviations
 * (about its p95), at least 1 ms, at most half the batch's timeout. */
static uint64_t comb_hedge_delay_ns(const struct comb_ctx *c, const struct comb_batch *b)
{
    uint64_t d = 0, cap = (uint64_t)c->cfg.timeout_ms * 500000u;
    size_t j;

    for (j = 0; j < b->num_fetches; j++) {
        const struct comb_src *src = &c->srcs[b->fetches[j].src];
        uint64_t p95 = src->lat_mean_ns + 3 * src->lat_dev_ns;

        if (src->probing) {
            continue; /* a probe of a slow holder sets no one's pace */
        }
        if (src->lat_mean_ns == 0) {
            p95 = 20u * 1000u * 1000u; /* nothing known yet */
        }
        d = p95 > d ? p95 : d;
    }
    if (d < 1000000u) {
        d = 1000000u;
    }
    return d < cap ? d : cap;
}

/* comb_batch_hedge asks every source of |b| not asked yet. */
void comb_batch_hedge(struct comb_ctx *c, struct comb_batch *b, uint64_t now)
{
    size_t i;

    b->hedge_at_ns = 0;
    for (i = 0; i < comb_batch_sources(c, b); i++) {
        if (comb_src_asked(&c->srcs[i], b->key) && !comb_batch_has_asked(b, i)) {
            c->srcs[i].st.hedged++;
            comb_batch_ask_one(c, b, i, now);
        }
    }
}

/*
 * comb_batch_start asks the sources that may have the key, each into its
 * own slot (slots are reserved for all of them: a hedge may ask the rest).
 * With holder-fanout needed only |threshold| of them are asked now (see
 * comb_batch_pick) and the rest at hedge_at_ns, or at once when one of the
 * first fails. A batch stays WAITING while too few slots are free.
 */
int comb_batch_start(struct comb_ctx *c, struct comb_batch *b)
{
    struct comb_key *key = b->key;
    size_t need = 0, want, asked = 0, i;
    bool probe = false;
    uint64_t now;
    int r;

    for (i = 0; i < comb_batch_sources(c, b); i++) {
        need += comb_src_asked(&c->srcs[i], key) ? 1 : 0;
    }
    b->slots_needed = need;
    if (need > comb_slots_available(c)) {
        return 0;
    }
    /* From here the batch takes no more operations, so the share requests
     * can say truthfully what they are for: how many operations and one
     * digest over all their inputs (the holders' audit lines). */
    if (key->open_batch == b) {
        key->open_batch = NULL;
    }
    if ((r = comb_batch_digest(b)) != 0) {
        return r;
    }
    b->state = COMB_BATCH_GATHERING;
    now = spk_now_ns();
    b->t_start_ns = now;
    want = c->cfg.fanout_all || key->rec.threshold >= need ? need : key->rec.threshold;
    if (want == need) {
        /* holder-fanout all (or a threshold that needs every source): every
         * source is asked now, however slow its recent answers were. */
        for (i = 0; i < comb_batch_sources(c, b); i++) {
            if (comb_src_asked(&c->srcs[i], key)) {
                comb_batch_ask_one(c, b, i, now);
            }
        }
    }
    /* A probe of a passed-over (slow) holder is asked on top of the |want|
     * others, so an operation never waits on a probe's answer. */
    while (asked < want && (i = comb_batch_pick(c, b, now, &probe)) != SIZE_MAX) {
        comb_batch_ask_one(c, b, i, now);
        asked += probe ? 0 : 1;
    }
    if (b->num_fetches < need) {
        b->hedge_at_ns = now + comb_hedge_delay_ns(c, b);
    }
    return 0;
}

/*
 * comb_fetch_done: a source's answer, recorded in its batch (the batch's
 * state is the core's: here, not in comb_source.c) and examined at the next
 * comb_process.
 */
void comb_fetch_done(struct comb_fetch *fetch, int status, const struct comb_share_info *info,
                     const char *detail)
{
    struct comb_fetch_ent *ent;
    struct comb_batch *b;

    if (fetch == NULL || (ent = fetch->comb_priv) == NULL || ent->state != COMB_FETCH_RUNNING) {
        /* A source answering twice or after cancel: ignore it rather than trust it. */
        return;
    }
    b = ent->batch;
    ent->state = COMB_FETCH_DONE;
    ent->status = status;
    if (status == 0 && info == NULL) {
        ent->status = SPK_ERR_INTERNAL;
    }
    if (info != NULL) {
        ent->info = *info;
    }
    if (detail != NULL) {
        snprintf(ent->detail, sizeof(ent->detail), "%s", detail);
    }
    ent->t_done_ns = spk_now_ns();
    b->done_order[b->num_done++] = (size_t)(ent - b->fetches);
    b->num_running--;
}

/* comb_batch_take checks one answered fetch against the record. */
static void comb_batch_take(struct comb_ctx *c, struct comb_batch *b, struct comb_fetch_ent *ent)
{
    struct comb_key *key = b->key;
    struct comb_src *src = &c->srcs[ent->src];
    struct split_opened_share share;
    size_t i;
    int r;

    ent->state = COMB_FETCH_CLOSED;
    if (ent->t_done_ns > ent->t_start_ns) {
        comb_src_note_latency(src, ent->t_done_ns - ent->t_start_ns);
    }
    if (ent->status != 0) {
        src->st.errors++;
        src->st.last_error = ent->status;
        c->counters.shares_error++;
        comb_batch_note(b, src->name, "%s",
                        ent->detail[0] != '\0' ? ent->detail : spk_strerror(ent->status));
        goto drop;
    }
    if (b->num_good >= b->need_good) {
        /* Enough already: this one is not needed, nor checked. */
        goto drop;
    }
    if (key->rec.mode == PROTO_MODE_THRESHOLD) {
        const char *why = "";

        if ((r = comb_tss_accept(c, b, ent, &why)) != 0) {
            src->st.bad++;
            src->st.bad_sigshares++;
            src->st.last_error = r;
            c->counters.shares_bad++;
            comb_batch_note(b, src->name, "signature share %u dropped: %s",
                            (unsigned)ent->info.index, why);
            spk_log("combiner", "key %s: %s sent a bad signature share (index %u): %s",
                    key->short_id, src->name, (unsigned)ent->info.index, why);
            goto drop;
        }
        goto accept;
    }
    sodium_memzero(&share, sizeof(share));
    memcpy(share.key_id, ent->info.key_id, PROTO_KEY_ID_LEN);
    memcpy(share.split_id, ent->info.split_id, PROTO_SPLIT_ID_LEN);
    share.index = ent->info.index;
    share.y = ent->f.out_y;
    r = ent->info.field_bits == key->rec.field_bits ? split_share_check(&key->rec, &key->f, &share)
                                                    : SPK_ERR_MIXED_SPLIT;
    for (i = 0; r == 0 && i < b->num_good; i++) {
        if (b->fetches[b->good[i]].info.index == share.index) {
            r = SPK_ERR_DUP_INDEX;
        }
    }
    if (r != 0) {
        src->st.bad++;
        src->st.last_error = r;
        c->counters.shares_bad++;
        comb_batch_note(b, src->name, "share %u dropped: %s", (unsigned)share.index,
                        spk_strerror(r));
        goto drop;
    }
accept:
    ent->accepted = true;
    b->good[b->num_good++] = (size_t)(ent - b->fetches);
    src->st.good++;
    c->counters.shares_good++;
    return;
drop:
    comb_slot_put(c, ent->f.out_y, ent->f.out_len);
    ent->f.out_y = NULL;
}

/* comb_batch_examine takes in new answers; READY once k good shares are in. */
void comb_batch_examine(struct comb_ctx *c, struct comb_batch *b)
{
    uint64_t t0 = spk_now_ns();
    size_t i;

    while (b->num_examined < b->num_done) {
        if (b->key->rec.mode == PROTO_MODE_THRESHOLD && b->num_good >= b->need_good) {
            /* Kept for comb_tss_run, should these not combine. */
            break;
        }
        comb_batch_take(c, b, &b->fetches[b->done_order[b->num_examined++]]);
    }
    b->check_ns += spk_now_ns() - t0;
    if (b->num_good < b->need_good) {
        return;
    }
    /* The first k win; the rest are called off, except for a threshold key,
     * whose next answer is still wanted if these do not combine. */
    for (i = 0; i < b->num_fetches && b->key->rec.mode != PROTO_MODE_THRESHOLD; i++) {
        struct comb_fetch_ent *ent = &b->fetches[i];
        struct comb_src *src = &c->srcs[ent->src];

        if (ent->state != COMB_FETCH_RUNNING) {
            continue;
        }
        if (src->ops->cancel != NULL) {
            src->ops->cancel(src->ctx, &ent->f);
        }
        src->st.cancelled++;
        ent->state = COMB_FETCH_CLOSED;
        b->num_running--;
        comb_src_note_latency(src, spk_now_ns() - ent->t_start_ns);
        comb_slot_put(c, ent->f.out_y, ent->f.out_len);
        ent->f.out_y = NULL;
    }
    b->state = COMB_BATCH_READY;
    if (b->key->open_batch == b) {
        b->key->open_batch = NULL;
    }
    comb_series_add(&c->s_gather, spk_now_ns() - b->t_start_ns);
    comb_series_add(&c->s_check, b->check_ns);
}

void comb_batch_deliver(struct comb_ctx *c, struct comb_batch *b, const char *fail_detail)
{
    struct comb_result res;
    struct comb_op *op;

    while ((op = b->ops_head) != NULL) {
        b->ops_head = op->next;
        memset(&res, 0, sizeof(res));
        res.status = op->status;
        res.op_id = op->id;
        res.detail = "";
        if (op->status == 0) {
            res.out = op->out;
            res.out_len = op->out_len;
            c->counters.ops_ok++;
        } else {
            res.detail = fail_detail != NULL ? fail_detail : spk_strerror(op->status);
            comb_set_error(c, "%s", res.detail);
            c->counters.ops_failed++;
        }
        c->num_pending--;
        comb_series_add(&c->s_total, spk_now_ns() - op->t_submit_ns);
        op->cb(op->arg, &res);
        if (op->out != NULL) {
            sodium_memzero(op->out, PROTO_BN_MAX);
        }
        comb_op_free(op);
    }
    b->ops_tail = NULL;
    comb_batch_free(c, b);
}

void comb_batch_fail(struct comb_ctx *c, struct comb_batch *b, int status, const char *detail)
{
    struct comb_op *op;

    comb_batch_unlink(c, b);
    comb_batch_close_fetches(c, b, true);
    for (op = b->ops_head; op != NULL; op = op->next) {
        op->status = status;
    }
    comb_batch_deliver(c, b, detail);
}

void comb_batch_fail_threshold(struct comb_ctx *c, struct comb_batch *b, const char *why)
{
    char detail[COMB_DETAIL_MAX];
    const struct comb_key *key = b->key;

    snprintf(detail, sizeof(detail), "key %s: %zu good share%s of %u needed%s%s%s%s", key->short_id,
             b->num_good, b->num_good == 1 ? "" : "s", key->rec.threshold, why != NULL ? " (" : "",
             why != NULL ? why : "", why != NULL ? ")" : "",
             b->failures[0] != '\0' ? "; failed: " : "; no other source has a share of it");
    if (b->failures[0] != '\0') {
        size_t used = strlen(detail);

        snprintf(detail + used, sizeof(detail) - used, "%s", b->failures);
    }
    comb_batch_fail(c, b, SPK_ERR_THRESHOLD, detail);
}

/*
 * comb_batch_run: the only place a whole key exists. Rebuild, run every
 * operation of the batch into locked result buffers, wipe, and only then
 * hand the results out.
 */
void comb_batch_run(struct comb_ctx *c, struct comb_batch *b)
{
    struct split_opened_share shares[PROTO_SHARES_MAX];
    struct comb_key *key = b->key;
    unsigned k = key->rec.threshold;
    struct comb_rsa_crt crt;
    struct comb_rsa_key *rsa_key = NULL;
    struct comb_rsa_req req;
    struct comb_op *op;
    char detail[COMB_DETAIL_MAX] = "";
    uint64_t t_life, t0, t1, wipe_ns;
    size_t i;
    int r;

    if (key->rec.mode == PROTO_MODE_THRESHOLD) {
        comb_tss_run(c, b);
        return;
    }
    comb_batch_unlink(c, b);
    for (i = 0; i < k; i++) {
        const struct comb_fetch_ent *ent = &b->fetches[b->good[i]];

        sodium_memzero(&shares[i], sizeof(shares[i]));
        memcpy(shares[i].key_id, ent->info.key_id, PROTO_KEY_ID_LEN);
        memcpy(shares[i].split_id, ent->info.split_id, PROTO_SPLIT_ID_LEN);
        shares[i].index = ent->info.index;
        shares[i].y = ent->f.out_y;
    }

    t_life = spk_now_ns();
    r = split_shares_combine(c->tuple, &key->rec, &key->f, shares, k, c->arena);
    t0 = spk_now_ns();
    comb_series_add(&c->s_interp, t0 - t_life);
    /* The received shares are not needed once the tuple exists (or failed to). */
    comb_batch_close_fetches(c, b, false);
    sodium_memzero(shares, sizeof(shares));
    wipe_ns = spk_now_ns() - t0;

    if (r != 0) {
        snprintf(detail, sizeof(detail), "key %s: the shares did not rebuild the key: %s",
                 key->short_id, spk_strerror(r));
        for (op = b->ops_head; op != NULL; op = op->next) {
            op->status = r;
        }
    } else {
        /* One private key object (Montgomery contexts mod p and q) for the whole batch. */
        comb_rsa_crt_from_tuple(&crt, c->tuple, key->f.y_len);
        r = comb_rsa_key_new(&rsa_key, key->pub, &crt);
        sodium_memzero(&crt, sizeof(crt));
        for (op = b->ops_head, i = 0; op != NULL; op = op->next, i++) {
            t1 = spk_now_ns();
            memset(&req, 0, sizeof(req));
            op->out = c->results + i * PROTO_BN_MAX;
            op->status = r != 0 ? r : comb_alg_engine_req(&req, op->alg);
            if (op->status == 0) {
                req.in = op->in;
                req.in_len = op->in_len;
                req.label = op->label;
                req.label_len = op->label_len;
                req.tls_version = op->tls_version;
                req.tls_alt_version = op->tls_alt_version;
                op->status = comb_rsa_key_op(rsa_key, &req, op->out, PROTO_BN_MAX, &op->out_len);
            }
            comb_series_add(&c->s_op, spk_now_ns() - t1);
            if (op->status != 0) {
                op->out_len = 0;
            }
        }
        comb_rsa_key_free(rsa_key);
        rsa_key = NULL;
    }

    /* Wipe: the tuple, the arena (split_shares_combine reset it), the stack below us. */
    t0 = spk_now_ns();
    sodium_memzero(c->tuple, key->tuple_len);
    spk_arena_reset(c->arena);
    spk_stack_wipe(COMB_STACK_WIPE);
    t1 = spk_now_ns();
    wipe_ns += t1 - t0;
    comb_series_add(&c->s_wipe, wipe_ns);
    comb_series_add(&c->s_life, t1 - t_life);
    comb_lifetime_observe(&c->counters, t1 - t_life);
    c->counters.batches++;

    /* A failed rebuild has one text for all; per-operation errors use spk_strerror. */
    comb_batch_deliver(c, b, detail[0] != '\0' ? detail : NULL);
    /* With the results out: a blinding pair that has served its uses is made again. */
    if (comb_rsa_pub_maintain(key->pub) != 0) {
        comb_set_error(c, "key %s: the blinding pair could not be made again", key->short_id);
    }
}
