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

/* A holder is passed over (see comb_src_passed_over) while more than half
 * of its recent asks were late: three in a row from none, which a sound
 * holder seldom is (the hedge goes out after about its p95), and a probe
 * takes it back within milliseconds if it was. */
#define COMB_LATE_PASS (COMB_LATE_ONE / 2)

/* A passed-over holder is probed (asked on top of the holders an operation
 * needs, so that a recovered one is noticed) when not asked for 10 ms, then
 * 20, 40 ... 160 ms while its probes bring no good answer: a hiccup is
 * forgiven at once (a probe answers only when it beats the holders asked
 * with it), a holder that stays slow or down costs a few shares a second. */
#define COMB_PROBE_GAP_MIN_NS (10u * 1000u * 1000u)
#define COMB_PROBE_GAP_MAX_NS (160u * 1000u * 1000u)

void comb_op_free(struct comb_op *op)
{
    if (op == NULL) {
        return;
    }
    comb_rsa_prep_clear(&op->prep);
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

/* comb_src_fold folds one sample into |src|'s recent mean and mean
 * deviation (weights 1/8 and 1/4, as TCP's RTT estimate). */
static void comb_src_fold(struct comb_src *src, uint64_t ns)
{
    uint64_t diff;

    if (src->lat_mean_ns == 0) {
        src->lat_mean_ns = ns > 0 ? ns : 1;
        src->lat_dev_ns = ns / 2;
        return;
    }
    diff = ns > src->lat_mean_ns ? ns - src->lat_mean_ns : src->lat_mean_ns - ns;
    src->lat_dev_ns = src->lat_dev_ns - src->lat_dev_ns / 4 + diff / 4;
    src->lat_mean_ns = src->lat_mean_ns - src->lat_mean_ns / 8 + ns / 8;
    if (src->lat_mean_ns == 0) {
        src->lat_mean_ns = 1;
    }
}

/* comb_src_note_latency: an answer after |ns|. */
static void comb_src_note_latency(struct comb_src *src, uint64_t ns)
{
    if (src->probing) {
        /* A probe of a passed-over source starts its record afresh: one
         * answer brings back a holder whose slow spell is over. */
        src->lat_mean_ns = 0;
        src->late = 0;
        src->probing = false;
    }
    src->probe_gap_ns = COMB_PROBE_GAP_MIN_NS;
    comb_src_fold(src, ns);
}

/* comb_src_note_unanswered: a fetch called off after |ns| without an answer.
 * The source is at least that slow, which says something only when it is
 * more than the estimate (a holder that is down stops being asked first); a
 * probe that lost the race says nothing, and a later one tries again. */
static void comb_src_note_unanswered(struct comb_src *src, uint64_t ns)
{
    if (ns > src->lat_mean_ns) {
        comb_src_fold(src, ns);
    }
}

/* comb_src_note_error: a source failed a request (a refusal, not connected,
 * a timeout). For whom to ask first that is as bad as an answer at the
 * latest hedge (a quarter of the timeout): a failing holder is passed over
 * at once, and does not stay the fastest on its answers of before. A
 * probe's answer brings it back. */
static void comb_src_note_error(const struct comb_ctx *c, struct comb_src *src)
{
    comb_src_note_unanswered(src, (uint64_t)c->cfg.timeout_ms * 250000u);
}

static bool comb_src_is_holder(const struct comb_ctx *c, size_t i)
{
    return !c->have_local_src || i != c->local_src;
}

/* comb_fetch_judge counts |ent| as late (failed, or still open when the
 * hedge went out) or on time for its source, once per fetch. The local share
 * is never late; a probe's answer resets its source (comb_src_note_latency). */
static void comb_fetch_judge(struct comb_ctx *c, struct comb_fetch_ent *ent, bool late)
{
    struct comb_src *src = &c->srcs[ent->src];

    if (ent->judged || !comb_src_is_holder(c, ent->src)) {
        return;
    }
    ent->judged = true;
    src->late = src->late - src->late / 4 + (late ? COMB_LATE_ONE / 4 : 0);
}

void comb_src_note_bad(struct comb_ctx *c, size_t i)
{
    struct comb_src *src = &c->srcs[i];

    if (!comb_src_is_holder(c, i)) {
        return;
    }
    comb_src_note_error(c, src);
    src->late = src->late - src->late / 4 + COMB_LATE_ONE / 4;
}

/* comb_batch_close_fetches cancels what is still running (but probes, with
 * |keep_probes|) and wipes every other slot. */
static void comb_batch_close_fetches(struct comb_ctx *c, struct comb_batch *b, bool count_cancel,
                                     bool keep_probes)
{
    size_t i;

    for (i = 0; i < b->num_fetches; i++) {
        struct comb_fetch_ent *ent = &b->fetches[i];
        struct comb_src *src = &c->srcs[ent->src];

        if (ent->state == COMB_FETCH_RUNNING && ent->probe && keep_probes) {
            continue;
        }
        if (ent->probe && (ent->state == COMB_FETCH_RUNNING || ent->state == COMB_FETCH_DONE)) {
            src->probes_open--;
        }
        if (ent->state == COMB_FETCH_RUNNING) {
            if (src->ops->cancel != NULL) {
                src->ops->cancel(src->ctx, &ent->f);
            }
            if (count_cancel) {
                src->st.cancelled++;
            }
            b->num_running--;
            comb_src_note_unanswered(src, spk_now_ns() - ent->t_start_ns);
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
    comb_batch_close_fetches(c, b, false, false);
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

/* comb_batch_link puts |b| at the end of the context's batches. */
static void comb_batch_link(struct comb_ctx *c, struct comb_batch *b)
{
    b->next = NULL;
    b->prev = c->batches_tail;
    if (c->batches_tail != NULL) {
        c->batches_tail->next = b;
    } else {
        c->batches_head = b;
    }
    c->batches_tail = b;
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
    comb_batch_link(c, b);
    return b;
}

/* comb_src_asked: |src| may have |key| (NULL: any key). */
static bool comb_src_asked(const struct comb_src *src, const struct comb_key *key)
{
    return key == NULL || src->ops->has_key == NULL || src->ops->has_key(src->ctx, key->rec.key_id);
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

/* comb_batch_ask_one starts the fetch of source |i| for |b| in its own slot.
 * True when it was started or answered at once with a share; false when the
 * source failed it at once (an error the batch notes, and a late answer). */
static bool comb_batch_ask_one(struct comb_ctx *c, struct comb_batch *b, size_t i, uint64_t now)
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
        return false;
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
        comb_src_note_error(c, src);
        comb_fetch_judge(c, ent, true);
        return false;
    }
    return ent->state == COMB_FETCH_RUNNING || ent->status == 0;
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

/* comb_batch_may_ask: source |i| has |b|'s key and was not asked for it yet. */
static bool comb_batch_may_ask(const struct comb_ctx *c, const struct comb_batch *b, size_t i)
{
    return comb_src_asked(&c->srcs[i], b->key) && !comb_batch_has_asked(b, i);
}

/* comb_src_p95_ns: about |src|'s recent p95 (mean + 3 mean deviations), 0
 * when nothing is known yet. */
static uint64_t comb_src_p95_ns(const struct comb_src *src)
{
    return src->lat_mean_ns == 0 ? 0 : src->lat_mean_ns + 3 * src->lat_dev_ns;
}

/* comb_fanout_fastest: the recent mean and mean deviation of the fastest
 * holder with |key|, among holders only (the local share answers in
 * microseconds and would make every holder look slow); false when no holder
 * has an estimate. */
static bool comb_fanout_fastest(const struct comb_ctx *c, const struct comb_key *key,
                                uint64_t *out_mean, uint64_t *out_dev)
{
    bool found = false;
    size_t i;

    for (i = 0; i < c->num_srcs; i++) {
        const struct comb_src *src = &c->srcs[i];

        if (!comb_src_is_holder(c, i) || !comb_src_asked(src, key) || src->lat_mean_ns == 0 ||
            (found && src->lat_mean_ns >= *out_mean)) {
            continue;
        }
        *out_mean = src->lat_mean_ns;
        *out_dev = src->lat_dev_ns;
        found = true;
    }
    return found;
}

/*
 * comb_src_passed_over: |src| is left out of first asks: late for most of
 * its recent asks, or its recent mean over four times the fastest holder's
 * plus 5 ms plus 8 of that one's mean deviations (a clearly slower holder,
 * not one in a scheduling hiccup).
 */
bool comb_src_passed_over(const struct comb_ctx *c, const struct comb_key *key,
                          const struct comb_src *src)
{
    uint64_t fastest = 0, noise = 0;

    if (src->late >= COMB_LATE_PASS) {
        return true;
    }
    return src->lat_mean_ns != 0 && comb_fanout_fastest(c, key, &fastest, &noise) &&
           src->lat_mean_ns > 4 * fastest + 8 * noise + 5000000u;
}

static uint64_t comb_src_probe_gap_ns(const struct comb_src *src)
{
    return src->probe_gap_ns > COMB_PROBE_GAP_MIN_NS ? src->probe_gap_ns : COMB_PROBE_GAP_MIN_NS;
}

/*
 * comb_batch_pick: the next holder to ask first for |b|, or SIZE_MAX. Of the
 * holders not asked yet and not passed over, the one asked longest ago:
 * equally fast holders take turns. A passed-over one with no probe open and
 * not asked for its probe gap is picked as a probe (*out_probe). When every
 * holder left is passed over and none is due for a probe, the one with the
 * lowest recent mean is asked anyway (the threshold still needs one).
 */
static size_t comb_batch_pick(struct comb_ctx *c, const struct comb_batch *b, uint64_t now,
                              bool *out_probe)
{
    size_t i, best = SIZE_MAX, fallback = SIZE_MAX;
    bool best_probe = false;

    for (i = 0; i < comb_batch_sources(c, b); i++) {
        const struct comb_src *src = &c->srcs[i];
        bool passed, eligible;

        if (!comb_src_is_holder(c, i) || !comb_batch_may_ask(c, b, i)) {
            continue;
        }
        passed = comb_src_passed_over(c, b->key, src);
        eligible = !passed || (src->probes_open == 0 &&
                               now - src->last_asked_ns >= comb_src_probe_gap_ns(src));
        if (eligible && (best == SIZE_MAX || src->last_asked_ns < c->srcs[best].last_asked_ns)) {
            best = i;
            best_probe = passed;
        }
        if (fallback == SIZE_MAX || src->lat_mean_ns < c->srcs[fallback].lat_mean_ns ||
            (src->lat_mean_ns == c->srcs[fallback].lat_mean_ns &&
             src->last_asked_ns < c->srcs[fallback].last_asked_ns)) {
            fallback = i;
        }
    }
    if (best == SIZE_MAX) {
        best = fallback;
        best_probe = false;
    }
    *out_probe = best_probe;
    if (best_probe) {
        struct comb_src *src = &c->srcs[best];

        src->probing = true;
        src->probe_gap_ns = 2 * comb_src_probe_gap_ns(src);
        if (src->probe_gap_ns > COMB_PROBE_GAP_MAX_NS) {
            src->probe_gap_ns = COMB_PROBE_GAP_MAX_NS;
        }
    }
    return best;
}

/*
 * comb_hedge_delay_ns: how long the holders asked first for |b| may take
 * before the others are asked too: how long a sound holder takes, the
 * recent p95 of the fastest holder with the key. Not the p95 of the holder
 * asked: it rises with the very slowness the hedge is for. 20 ms while no
 * holder has answered yet; at least 1 ms, at most a quarter of the batch's
 * timeout.
 */
static uint64_t comb_hedge_delay_ns(const struct comb_ctx *c, const struct comb_batch *b)
{
    uint64_t d = UINT64_MAX, cap = (uint64_t)c->cfg.timeout_ms * 250000u;
    size_t i;

    for (i = 0; i < comb_batch_sources(c, b); i++) {
        const struct comb_src *src = &c->srcs[i];
        uint64_t p95 = comb_src_p95_ns(src);

        if (comb_src_is_holder(c, i) && comb_src_asked(src, b->key) && p95 != 0 && p95 < d) {
            d = p95;
        }
    }
    if (d == UINT64_MAX) {
        d = 20u * 1000u * 1000u;
    }
    if (d < 1000000u) {
        d = 1000000u;
    }
    return d < cap ? d : cap;
}

/* comb_batch_may_ask_local: |b| may have the combiner's own share. */
static bool comb_batch_may_ask_local(const struct comb_ctx *c, const struct comb_batch *b)
{
    return c->have_local_src && c->local_src < comb_batch_sources(c, b) &&
           comb_batch_may_ask(c, b, c->local_src);
}

/* comb_batch_ask_rest asks every source of |b| not asked yet (as a hedge:
 * counted as such), the holders before the local share: it answers at once,
 * so it is opened (two mprotect calls) while their requests travel. */
static void comb_batch_ask_rest(struct comb_ctx *c, struct comb_batch *b, uint64_t now,
                                bool count_as_hedge)
{
    bool ask_local = comb_batch_may_ask_local(c, b);
    size_t i;

    for (i = 0; i < comb_batch_sources(c, b); i++) {
        if (!comb_batch_may_ask(c, b, i) || (ask_local && i == c->local_src)) {
            continue;
        }
        if (count_as_hedge) {
            c->srcs[i].st.hedged++;
            b->fetches[b->num_fetches].hedge = true;
        }
        (void)comb_batch_ask_one(c, b, i, now);
    }
    if (ask_local) {
        (void)comb_batch_ask_one(c, b, c->local_src, now);
    }
}

/* comb_batch_ask_needed asks holders picked by comb_batch_pick until |*got|
 * of |b|'s threshold are asked. A probe is asked on top of the holders
 * needed, so an operation never waits on a probe's answer. */
static void comb_batch_ask_needed(struct comb_ctx *c, struct comb_batch *b, uint64_t now,
                                  size_t *got)
{
    bool probe = false;
    size_t i;

    while (*got < b->need_good && (i = comb_batch_pick(c, b, now, &probe)) != SIZE_MAX) {
        struct comb_fetch_ent *ent = &b->fetches[b->num_fetches];
        bool asked;

        ent->probe = probe;
        c->srcs[i].st.probes += probe ? 1 : 0;
        asked = comb_batch_ask_one(c, b, i, now);
        if (probe && ent->state != COMB_FETCH_CLOSED) {
            c->srcs[i].probes_open++;
        }
        *got += asked && !probe ? 1 : 0;
    }
}

/* comb_batch_hedge asks every source of |b| not asked yet. When its time has
 * come (not an error's early call), the fetches still open are late. */
void comb_batch_hedge(struct comb_ctx *c, struct comb_batch *b, uint64_t now)
{
    size_t i;

    if (b->hedge_at_ns != 0 && now >= b->hedge_at_ns) {
        for (i = 0; i < b->num_fetches; i++) {
            if (b->fetches[i].state == COMB_FETCH_RUNNING && !b->fetches[i].probe) {
                comb_fetch_judge(c, &b->fetches[i], true);
            }
        }
    }
    b->hedge_at_ns = 0;
    comb_batch_ask_rest(c, b, now, true);
}

/* comb_batch_needed_running: fetches of |b| still open that count toward
 * its threshold (not probes). */
size_t comb_batch_needed_running(const struct comb_batch *b)
{
    size_t i, n = 0;

    for (i = 0; i < b->num_fetches; i++) {
        n += b->fetches[i].state == COMB_FETCH_RUNNING && !b->fetches[i].probe ? 1 : 0;
    }
    return n;
}

/*
 * comb_batch_gate_ns: while another batch of |b|'s key is waiting for its
 * shares, |b| waits too, taking the operations that come meanwhile, until
 * that batch has its shares or is late (its hedge delay), or |b| is full:
 * under load one reconstruction and one share per holder then serve what
 * came during a whole round trip, instead of a batch each for what one
 * read of the caller's socket brought. Unloaded no other batch is out and
 * nothing waits. Returns when the wait ends, or 0 when |b| need not wait.
 */
uint64_t comb_batch_gate_ns(const struct comb_ctx *c, const struct comb_batch *b)
{
    uint64_t until = 0;

    if (b->key->open_batch != b || b->num_ops >= c->cfg.max_batch) {
        return 0;
    }
    for (const struct comb_batch *o = c->batches_head; o != NULL; o = o->next) {
        if (o != b && o->key == b->key && o->state == COMB_BATCH_GATHERING) {
            uint64_t end = o->t_start_ns + comb_hedge_delay_ns(c, o);

            until = end > until ? end : until;
        }
    }
    return until;
}

/*
 * comb_batch_start asks the sources that may have the key, each into its
 * own slot (slots are reserved for all of them: a hedge may ask the rest).
 * With holder-fanout needed the local share and only as many holders as the
 * threshold still needs are asked now (see comb_batch_pick; a holder that
 * fails at once is replaced at once), the rest at hedge_at_ns, or as soon
 * as one of the first fails. A batch stays WAITING while too few slots are
 * free.
 */
int comb_batch_start(struct comb_ctx *c, struct comb_batch *b)
{
    struct comb_key *key = b->key;
    size_t need = 0, got, i;
    bool ask_local;
    uint64_t now;
    int r;

    for (i = 0; i < comb_batch_sources(c, b); i++) {
        need += comb_src_asked(&c->srcs[i], key) ? 1 : 0;
    }
    b->slots_needed = need;
    if (need > comb_slots_available(c) || spk_now_ns() < comb_batch_gate_ns(c, b)) {
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
    if (c->cfg.fanout_all || b->need_good >= need) {
        /* holder-fanout all (or a threshold that needs every source): every
         * source is asked now, however slow its recent answers were. */
        comb_batch_ask_rest(c, b, now, false);
        return 0;
    }
    /* The local share counts first (it answers at once and exposes
     * nothing) but is asked last, opened while the holders' requests
     * travel; should it fail, a holder is asked in its place. */
    ask_local = comb_batch_may_ask_local(c, b);
    got = ask_local ? 1 : 0;
    comb_batch_ask_needed(c, b, now, &got);
    if (ask_local && !comb_batch_ask_one(c, b, c->local_src, now)) {
        got--;
        comb_batch_ask_needed(c, b, now, &got);
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
    uint64_t lat;
    bool late;
    size_t i;
    int r;

    ent->state = COMB_FETCH_CLOSED;
    if (ent->probe) {
        src->probes_open--;
    }
    /* Only a share tells how fast a holder serves; an error (a refusal, a
     * timeout) counts as very slow (see comb_src_note_error). A probe's
     * share brings its holder back only when it came in the time a sound
     * holder takes (the hedge delay); a later one says it is still slow. */
    lat = ent->t_done_ns > ent->t_start_ns ? ent->t_done_ns - ent->t_start_ns : 0;
    late = ent->status != 0 || (ent->probe && lat > comb_hedge_delay_ns(c, b));
    if (ent->status != 0) {
        comb_src_note_error(c, src);
    } else if (late) {
        src->probing = false;
        comb_src_fold(src, lat);
    } else {
        comb_src_note_latency(src, lat);
    }
    comb_fetch_judge(c, ent, late);
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
            comb_tss_refuse(c, b, ent, r, why);
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
        comb_src_note_bad(c, ent->src);
        c->counters.shares_bad++;
        comb_batch_note(b, src->name, "share %u dropped: %s", (unsigned)share.index,
                        spk_strerror(r));
        goto drop;
    }
accept:
    ent->accepted = true;
    src->st.hedge_won += ent->hedge ? 1 : 0;
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

        if (ent->state != COMB_FETCH_RUNNING || ent->probe) {
            continue; /* a probe's answer is awaited after all (comb_batch_linger) */
        }
        if (src->ops->cancel != NULL) {
            src->ops->cancel(src->ctx, &ent->f);
        }
        src->st.cancelled++;
        ent->state = COMB_FETCH_CLOSED;
        b->num_running--;
        comb_src_note_unanswered(src, spk_now_ns() - ent->t_start_ns);
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

    /* What still runs is called off but probes, awaited below; a signature
     * share request points into its operation (digest, salt: struct
     * comb_fetch), about to be freed, so a threshold key's probes too. */
    comb_batch_close_fetches(c, b, false, b->key->rec.mode != PROTO_MODE_THRESHOLD);
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
    if (b->num_running > 0) {
        /* Only probes still run: their answers say whether a passed-over
         * holder has recovered, which a probe called off would not. */
        b->state = COMB_BATCH_PROBING;
        comb_batch_link(c, b);
        return;
    }
    comb_batch_free(c, b);
}

/*
 * comb_batch_linger: a delivered batch whose probes have not answered yet
 * takes their answers (the shares are wiped unused) and is freed once none
 * runs or its deadline has passed.
 */
void comb_batch_linger(struct comb_ctx *c, struct comb_batch *b, uint64_t now)
{
    while (b->num_examined < b->num_done) {
        comb_batch_take(c, b, &b->fetches[b->done_order[b->num_examined++]]);
    }
    if (b->num_running > 0 && now < b->deadline_ns) {
        return;
    }
    comb_batch_unlink(c, b);
    comb_batch_free(c, b);
}

void comb_batch_fail(struct comb_ctx *c, struct comb_batch *b, int status, const char *detail)
{
    struct comb_op *op;

    comb_batch_unlink(c, b);
    comb_batch_close_fetches(c, b, true, false);
    for (op = b->ops_head; op != NULL; op = op->next) {
        op->status = status;
    }
    comb_batch_deliver(c, b, detail);
}

void comb_batch_fail_threshold(struct comb_ctx *c, struct comb_batch *b, const char *why)
{
    char detail[COMB_DETAIL_MAX];
    const struct comb_key *key = b->key;

    if (b->need_good > key->rec.threshold) {
        /* k were in but did not combine (a threshold key), and no more came. */
        comb_tss_fail(c, b, SPK_ERR_FAULT, why);
        return;
    }
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

/* comb_op_req: the engine's request for |op|; 0, or why there is none. */
static int comb_op_req(const struct comb_op *op, struct comb_rsa_req *req)
{
    int r;

    memset(req, 0, sizeof(*req));
    if ((r = comb_alg_engine_req(req, op->alg)) != 0) {
        return r;
    }
    req->in = op->in;
    req->in_len = op->in_len;
    req->label = op->label;
    req->label_len = op->label_len;
    req->tls_version = op->tls_version;
    req->tls_alt_version = op->tls_alt_version;
    return 0;
}

void comb_batch_prepare(struct comb_batch *b)
{
    struct comb_rsa_req req;
    bool any = false;

    if (b->key->rec.mode == PROTO_MODE_THRESHOLD) {
        return;
    }
    for (struct comb_op *op = b->ops_head; op != NULL; op = op->next) {
        if (op->prepared) {
            continue;
        }
        op->prep_status = comb_op_req(op, &req);
        if (op->prep_status == 0) {
            op->prep_status = comb_rsa_prepare(b->key->pub, &req, PROTO_BN_MAX, &op->prep);
        }
        op->prepared = true;
        any = true;
    }
    if (any) {
        /* The blinding's temporaries were below this frame. */
        spk_stack_wipe(COMB_STACK_WIPE);
    }
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
    uint64_t t_life, t0, t1, wipe_ns, back0;
    size_t i;
    int r;

    if (key->rec.mode == PROTO_MODE_THRESHOLD) {
        comb_tss_run(c, b);
        return;
    }
    comb_batch_unlink(c, b);
    /* Any operation not prepared while the shares travelled is prepared
     * now, still before the key exists. */
    comb_batch_prepare(b);
    for (i = 0; i < k; i++) {
        const struct comb_fetch_ent *ent = &b->fetches[b->good[i]];

        sodium_memzero(&shares[i], sizeof(shares[i]));
        memcpy(shares[i].key_id, ent->info.key_id, PROTO_KEY_ID_LEN);
        memcpy(shares[i].split_id, ent->info.split_id, PROTO_SPLIT_ID_LEN);
        shares[i].index = ent->info.index;
        shares[i].y = ent->f.out_y;
    }

    t_life = spk_now_ns();
    /* Each share passed split_share_check as it came (comb_batch_take). */
    r = split_shares_combine_checked(c->tuple, &key->rec, &key->f, shares, k, c->arena);
    t0 = spk_now_ns();
    comb_series_add(&c->s_interp, t0 - t_life);
    /* The received shares are not needed once the tuple exists (or failed to). */
    comb_batch_close_fetches(c, b, false, true);
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
        /* One operation and no other batch: nothing else wants the CPUs,
         * and a second thread nearly halves this one's time. Under load a
         * batch holds more, or the next is waiting, and the other CPUs have
         * their own work. */
        if (r == 0 && c->rsa_helper != NULL && b->num_ops == 1 && c->batches_head == NULL &&
            comb_rsa_pub_calibrate(key->pub, c->rsa_helper) &&
            comb_rsa_key_set_helper(rsa_key, c->rsa_helper)) {
            c->counters.halves_apart++;
        }
        back0 = c->rsa_helper != NULL ? comb_rsa_helper_taken_back(c->rsa_helper) : 0;
        for (op = b->ops_head, i = 0; op != NULL; op = op->next, i++) {
            t1 = spk_now_ns();
            op->out = c->results + i * PROTO_BN_MAX;
            op->status = r != 0                 ? r
                         : op->prep_status != 0 ? op->prep_status
                                                : comb_op_req(op, &req);
            if (op->status == 0) {
                op->status = comb_rsa_key_op_prepared(rsa_key, &req, &op->prep, op->out,
                                                      PROTO_BN_MAX, &op->out_len);
            }
            /* A blinded input serves one operation. */
            comb_rsa_prep_clear(&op->prep);
            comb_series_add(&c->s_op, spk_now_ns() - t1);
            if (op->status != 0) {
                op->out_len = 0;
            }
        }
        comb_rsa_key_free(rsa_key);
        rsa_key = NULL;
        if (c->rsa_helper != NULL) {
            c->counters.halves_taken_back += comb_rsa_helper_taken_back(c->rsa_helper) - back0;
        }
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
