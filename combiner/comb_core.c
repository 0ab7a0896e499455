/*
 * comb_core.c: keys, operations and batches. An operation joins (or opens) a
 * batch for its key; a batch asks every source for a share at once, takes
 * the first k that pass the record's checks, rebuilds the CRT tuple in locked
 * memory, runs all its operations, wipes, and only then calls back. The key
 * exists between comb_batch_run's split_shares_combine and its wipe, inside
 * that one function.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/comb_private.h"

#define COMB_TIMEOUT_DEFAULT_MS 2000
#define COMB_PENDING_DEFAULT 1024
#define COMB_BATCH_DEFAULT 8
#define COMB_WINDOW_DEFAULT 4096
#define COMB_POLL_ITEMS_MAX 512

void comb_config_init(struct comb_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->timeout_ms = COMB_TIMEOUT_DEFAULT_MS;
    cfg->max_pending = COMB_PENDING_DEFAULT;
    cfg->max_batch = COMB_BATCH_DEFAULT;
    cfg->stats_window = COMB_WINDOW_DEFAULT;
    /* The library asks every source unless told; a combiner file's
     * holder-fanout (default needed) decides for comb_conf_open. */
    cfg->fanout_all = true;
}

void comb_set_error(struct comb_ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
    va_end(ap);
}

const char *comb_last_error(const struct comb_ctx *c)
{
    return c->last_error;
}

/* ---- the context ------------------------------------------------------------------ */

struct comb_ctx *comb_new(const struct comb_config *cfg)
{
    struct comb_ctx *c = OPENSSL_zalloc(sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    if (cfg != NULL) {
        c->cfg = *cfg;
    } else {
        comb_config_init(&c->cfg);
    }
    if (c->cfg.timeout_ms == 0) {
        c->cfg.timeout_ms = COMB_TIMEOUT_DEFAULT_MS;
    }
    if (c->cfg.max_pending == 0) {
        c->cfg.max_pending = COMB_PENDING_DEFAULT;
    }
    if (c->cfg.max_batch == 0) {
        c->cfg.max_batch = 1;
    }
    if (c->cfg.max_batch > COMB_BATCH_MAX) {
        c->cfg.max_batch = COMB_BATCH_MAX;
    }
    if (c->cfg.stats_window == 0) {
        c->cfg.stats_window = COMB_WINDOW_DEFAULT;
    }
    c->next_op_id = 1;
    c->tuple = spk_secret_new(COMB_SLOT_LEN);
    c->results = spk_secret_new((size_t)c->cfg.max_batch * PROTO_BN_MAX);
    if (c->tuple == NULL || c->results == NULL) {
        goto fail;
    }
    if (comb_series_init(&c->s_gather, c->cfg.stats_window) != 0 ||
        comb_series_init(&c->s_check, c->cfg.stats_window) != 0 ||
        comb_series_init(&c->s_interp, c->cfg.stats_window) != 0 ||
        comb_series_init(&c->s_op, c->cfg.stats_window) != 0 ||
        comb_series_init(&c->s_wipe, c->cfg.stats_window) != 0 ||
        comb_series_init(&c->s_life, c->cfg.stats_window) != 0 ||
        comb_series_init(&c->s_total, c->cfg.stats_window) != 0) {
        goto fail;
    }
    return c;
fail:
    comb_free(c);
    return NULL;
}

static void comb_op_free(struct comb_op *op)
{
    if (op == NULL) {
        return;
    }
    OPENSSL_clear_free(op->label, op->label_len);
    OPENSSL_clear_free(op, sizeof(*op));
}

static void comb_batch_unlink(struct comb_ctx *c, struct comb_batch *b)
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

static void comb_batch_free(struct comb_ctx *c, struct comb_batch *b)
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

void comb_free(struct comb_ctx *c)
{
    struct comb_batch *b;
    size_t i;

    if (c == NULL) {
        return;
    }
    while ((b = c->batches_head) != NULL) {
        comb_batch_unlink(c, b);
        comb_batch_free(c, b);
    }
    for (i = 0; i < c->num_srcs; i++) {
        if (c->srcs[i].ops->free != NULL) {
            c->srcs[i].ops->free(c->srcs[i].ctx);
        }
    }
    OPENSSL_free(c->srcs);
    for (i = 0; i < c->num_keys; i++) {
        struct comb_key *key = c->keys[i];

        spk_secret_free(key->local_y);
        comb_rsa_pub_free(key->pub);
        OPENSSL_clear_free(key, sizeof(*key));
    }
    OPENSSL_free(c->keys);
    spk_secret_free(c->tuple);
    spk_secret_free(c->results);
    spk_arena_free(c->arena);
    comb_slots_free(c);
    comb_series_cleanup(&c->s_gather);
    comb_series_cleanup(&c->s_check);
    comb_series_cleanup(&c->s_interp);
    comb_series_cleanup(&c->s_op);
    comb_series_cleanup(&c->s_wipe);
    comb_series_cleanup(&c->s_life);
    comb_series_cleanup(&c->s_total);
    OPENSSL_clear_free(c, sizeof(*c));
}

/* ---- keys ---------------------------------------------------------------------- */

struct comb_key *comb_key_find(const struct comb_ctx *c, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    size_t i;

    for (i = 0; i < c->num_keys; i++) {
        /* Key ids are public; sodium_memcmp only because memcmp is banned here. */
        if (sodium_memcmp(c->keys[i]->rec.key_id, key_id, PROTO_KEY_ID_LEN) == 0) {
            return c->keys[i];
        }
    }
    return NULL;
}

bool comb_has_key(const struct comb_ctx *c, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    return comb_key_find(c, key_id) != NULL;
}

size_t comb_key_size(const struct comb_ctx *c, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    const struct comb_key *key = comb_key_find(c, key_id);

    return key != NULL ? key->rec.modulus_len : 0;
}

static void comb_hex(char *out, size_t cap, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n && 2 * i + 2 < cap; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * i] = '\0';
}

/* comb_key_open_local opens and checks the combiner's own share of |key|. */
static int comb_key_open_local(struct comb_ctx *c, struct comb_key *key,
                               const struct proto_share_file *local,
                               const struct proto_holder_secret *holder_key)
{
    struct split_opened_share share;
    int r = SPK_ERR_INVALID_ARG;

    if (holder_key == NULL) {
        comb_set_error(c, "key %s: a local share needs the combiner's holder key", key->short_id);
        goto out;
    }
    if (sodium_memcmp(local->key_id, key->rec.key_id, PROTO_KEY_ID_LEN) != 0 ||
        sodium_memcmp(local->split_id, key->rec.split_id, PROTO_SPLIT_ID_LEN) != 0 ||
        local->field_bits != key->rec.field_bits) {
        r = SPK_ERR_MIXED_SPLIT;
        comb_set_error(c, "key %s: the local share belongs to another key or split", key->short_id);
        goto out;
    }
    key->local_y = spk_secret_new(key->tuple_len);
    if (key->local_y == NULL) {
        r = SPK_ERR_NOMEM;
        comb_set_error(c, "key %s: no locked memory for the local share", key->short_id);
        goto out;
    }
    if ((r = split_share_open(key->local_y, key->tuple_len, local, holder_key)) != 0) {
        comb_set_error(c, "key %s: cannot open the local share with holder key '%s': %s",
                       key->short_id, holder_key->pub.name, spk_strerror(r));
        goto out;
    }
    sodium_memzero(&share, sizeof(share));
    memcpy(share.key_id, local->key_id, PROTO_KEY_ID_LEN);
    memcpy(share.split_id, local->split_id, PROTO_SPLIT_ID_LEN);
    share.index = local->index;
    share.holder = local->holder;
    share.y = key->local_y;
    if ((r = split_share_check(&key->rec, &key->f, &share)) != 0) {
        comb_set_error(c, "key %s: the local share (index %u) fails the record's check: %s",
                       key->short_id, (unsigned)local->index, spk_strerror(r));
        goto out;
    }
    key->local_index = local->index;
    if ((r = spk_secret_noaccess(key->local_y)) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0 && key->local_y != NULL) {
        spk_secret_free(key->local_y);
        key->local_y = NULL;
    }
    return r;
}

int comb_add_key(struct comb_ctx *c, const struct proto_record *rec,
                 const struct proto_share_file *local, const struct proto_holder_secret *holder_key)
{
    struct comb_key *key = NULL;
    struct comb_key **keys;
    struct spk_arena *arena;
    size_t need;
    char short_id[17];
    int r = SPK_ERR_INVALID_ARG;

    if (rec == NULL) {
        goto out;
    }
    comb_hex(short_id, sizeof(short_id), rec->key_id, 8);
    if (comb_key_find(c, rec->key_id) != NULL) {
        r = SPK_ERR_EXISTS;
        comb_set_error(c, "key %s: already added", short_id);
        goto out;
    }
    if ((r = split_record_verify(rec)) != 0) {
        comb_set_error(c, "key %s: the record does not verify: %s", short_id, spk_strerror(r));
        goto out;
    }
    key = OPENSSL_zalloc(sizeof(*key));
    if (key == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    key->rec = *rec;
    memcpy(key->short_id, short_id, sizeof(short_id));
    if (rec->mode == PROTO_MODE_THRESHOLD) {
        r = SPK_ERR_UNSUPPORTED;
        comb_set_error(c,
                       "key %s: a threshold-mode key (signature shares); this combiner serves "
                       "rebuild-mode keys only",
                       short_id);
        goto out;
    }
    if ((r = split_field_init(&key->f, rec->field_bits)) != 0 || rec->threshold < 2 ||
        rec->threshold > rec->num_shares || rec->num_shares > PROTO_SHARES_MAX) {
        r = r != 0 ? r : SPK_ERR_MALFORMED;
        comb_set_error(c, "key %s: the record's field or threshold is not one we take", short_id);
        goto out;
    }
    key->tuple_len = split_tuple_len(&key->f);
    if (key->tuple_len > COMB_SLOT_LEN) {
        r = SPK_ERR_KEY_UNSUPPORTED;
        goto out;
    }
    if ((r = comb_rsa_pub_new(&key->pub, rec->modulus, rec->modulus_len, rec->exponent,
                              rec->exponent_len)) != 0) {
        comb_set_error(c, "key %s: cannot set up the public key: %s", short_id, spk_strerror(r));
        goto out;
    }
    need = split_interpolate_scratch_len(&key->f, rec->threshold);
    if (need > c->arena_cap) {
        /* Only comb_batch_run uses the arena, and never across calls: safe to replace. */
        arena = spk_arena_new(need);
        if (arena == NULL) {
            r = SPK_ERR_NOMEM;
            comb_set_error(c, "key %s: no locked memory for interpolation", short_id);
            goto out;
        }
        spk_arena_free(c->arena);
        c->arena = arena;
        c->arena_cap = need;
    }
    if (local != NULL && (r = comb_key_open_local(c, key, local, holder_key)) != 0) {
        goto out;
    }
    if (key->local_y != NULL && !c->have_local_src) {
        if ((r = comb_add_source(c, &c->local_src, "local", &comb_local_source_ops, c)) != 0) {
            goto out;
        }
        c->have_local_src = true;
    }
    if (c->num_keys == c->cap_keys) {
        size_t cap = c->cap_keys == 0 ? 8 : 2 * c->cap_keys;

        keys = OPENSSL_realloc(c->keys, cap * sizeof(keys[0]));
        if (keys == NULL) {
            r = SPK_ERR_NOMEM;
            goto out;
        }
        c->keys = keys;
        c->cap_keys = cap;
    }
    c->keys[c->num_keys++] = key;
    key = NULL;
    r = 0;
out:
    if (key != NULL) {
        spk_secret_free(key->local_y);
        comb_rsa_pub_free(key->pub);
        OPENSSL_clear_free(key, sizeof(*key));
    }
    return r;
}

/* ---- batches ---------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void
comb_batch_note(struct comb_batch *b, const char *name, const char *fmt, ...)
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

static struct comb_batch *comb_batch_new(struct comb_ctx *c, struct comb_key *key,
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
    ent->f.out_len = key->tuple_len;
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
static size_t comb_batch_pick(struct comb_ctx *c, const struct comb_batch *b, uint64_t now)
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
    if (best != SIZE_MAX && c->srcs[best].lat_mean_ns > limit) {
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
static void comb_batch_hedge(struct comb_ctx *c, struct comb_batch *b, uint64_t now)
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
static int comb_batch_start(struct comb_ctx *c, struct comb_batch *b)
{
    struct comb_key *key = b->key;
    size_t need = 0, want, i;
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
    while (b->num_fetches < want && (i = comb_batch_pick(c, b, now)) != SIZE_MAX) {
        comb_batch_ask_one(c, b, i, now);
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
    if (b->num_good >= key->rec.threshold) {
        /* Enough already: this one is not needed, nor checked. */
        goto drop;
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
static void comb_batch_examine(struct comb_ctx *c, struct comb_batch *b)
{
    uint64_t t0 = spk_now_ns();
    size_t i;

    while (b->num_examined < b->num_done) {
        comb_batch_take(c, b, &b->fetches[b->done_order[b->num_examined++]]);
    }
    b->check_ns += spk_now_ns() - t0;
    if (b->num_good < b->key->rec.threshold) {
        return;
    }
    /* The first k win; the rest are called off. */
    for (i = 0; i < b->num_fetches; i++) {
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

/* comb_batch_deliver calls back every operation of an unlinked batch and frees it. */
static void comb_batch_deliver(struct comb_ctx *c, struct comb_batch *b, const char *fail_detail)
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

static void comb_batch_fail(struct comb_ctx *c, struct comb_batch *b, int status,
                            const char *detail)
{
    struct comb_op *op;

    comb_batch_unlink(c, b);
    comb_batch_close_fetches(c, b, true);
    for (op = b->ops_head; op != NULL; op = op->next) {
        op->status = status;
    }
    comb_batch_deliver(c, b, detail);
}

static void comb_batch_fail_threshold(struct comb_ctx *c, struct comb_batch *b, const char *why)
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
static void comb_batch_run(struct comb_ctx *c, struct comb_batch *b)
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

/* ---- operations --------------------------------------------------------------------- */

static int comb_submit(struct comb_ctx *c, uint64_t *out_op_id,
                       const uint8_t key_id[PROTO_KEY_ID_LEN], enum comb_alg alg, const uint8_t *in,
                       size_t in_len, const struct comb_decrypt_params *params, comb_done_cb cb,
                       void *arg)
{
    struct comb_key *key;
    struct comb_op *op = NULL;
    struct comb_batch *b;
    int r = SPK_ERR_INVALID_ARG;

    if (key_id == NULL || cb == NULL || (in == NULL && in_len > 0)) {
        comb_set_error(c, "missing key id, input or callback");
        goto out;
    }
    if ((key = comb_key_find(c, key_id)) == NULL) {
        char short_id[17];

        comb_hex(short_id, sizeof(short_id), key_id, 8);
        r = SPK_ERR_UNKNOWN_KEY;
        comb_set_error(c, "key %s: not known to this combiner", short_id);
        goto out;
    }
    if (comb_alg_is_sign(alg)) {
        if (in_len != comb_alg_digest_len(alg)) {
            comb_set_error(c, "%s takes a %zu-byte digest, not %zu bytes", comb_alg_name(alg),
                           comb_alg_digest_len(alg), in_len);
            goto out;
        }
    } else if (in_len != key->rec.modulus_len) {
        comb_set_error(c, "key %s: a ciphertext must be %zu bytes, not %zu", key->short_id,
                       key->rec.modulus_len, in_len);
        goto out;
    }
    if (params != NULL && params->label_len > COMB_LABEL_MAX) {
        comb_set_error(c, "an OAEP label is at most %d bytes", COMB_LABEL_MAX);
        goto out;
    }
    if (c->num_pending >= c->cfg.max_pending) {
        r = SPK_ERR_RATE_LIMITED;
        comb_set_error(c, "too many operations in flight (%u)", c->cfg.max_pending);
        goto out;
    }
    op = OPENSSL_zalloc(sizeof(*op));
    if (op == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    op->alg = alg;
    memcpy(op->in, in, in_len);
    op->in_len = in_len;
    op->cb = cb;
    op->arg = arg;
    op->t_submit_ns = spk_now_ns();
    if (params != NULL) {
        if (params->label_len > 0) {
            op->label = OPENSSL_memdup(params->label, params->label_len);
            if (op->label == NULL) {
                r = SPK_ERR_NOMEM;
                goto out;
            }
            op->label_len = params->label_len;
        }
        op->tls_version = params->tls_version;
        op->tls_alt_version = params->tls_alt_version;
    }
    if (alg == COMB_ALG_DECRYPT_TLS && op->tls_version == 0) {
        op->tls_version = 0x0303;
    }

    /* An operation joins the key's batch only while that batch has not sent
     * its share requests yet, and only one of the same kind: a signature and
     * a decryption never share one released share. The requests go out at
     * the next comb_process, so operations that arrive together (one read
     * of the caller's socket) share one reconstruction. */
    b = key->open_batch;
    if (b == NULL || b->num_ops >= c->cfg.max_batch || b->op_kind != (uint8_t)alg) {
        if ((b = comb_batch_new(c, key, op)) == NULL) {
            r = SPK_ERR_NOMEM;
            goto out;
        }
        key->open_batch = c->cfg.max_batch > 1 ? b : NULL;
    } else {
        c->counters.batched_ops++;
    }
    op->id = c->next_op_id++;
    if (b->ops_tail != NULL) {
        b->ops_tail->next = op;
    } else {
        b->ops_head = op;
    }
    b->ops_tail = op;
    b->num_ops++;
    c->num_pending++;
    if (out_op_id != NULL) {
        *out_op_id = op->id;
    }
    op = NULL;
    r = 0;
out:
    comb_op_free(op);
    return r;
}

int comb_sign(struct comb_ctx *c, uint64_t *out_op_id, const uint8_t key_id[PROTO_KEY_ID_LEN],
              enum comb_alg alg, const uint8_t *digest, size_t digest_len, comb_done_cb cb,
              void *arg)
{
    if (!comb_alg_is_sign(alg)) {
        comb_set_error(c, "'%s' is not a signature algorithm", comb_alg_name(alg));
        return SPK_ERR_UNSUPPORTED;
    }
    return comb_submit(c, out_op_id, key_id, alg, digest, digest_len, NULL, cb, arg);
}

int comb_decrypt(struct comb_ctx *c, uint64_t *out_op_id, const uint8_t key_id[PROTO_KEY_ID_LEN],
                 enum comb_alg alg, const uint8_t *in, size_t in_len,
                 const struct comb_decrypt_params *params, comb_done_cb cb, void *arg)
{
    if (!comb_alg_valid((int)alg) || comb_alg_is_sign(alg)) {
        comb_set_error(c, "'%s' is not a decryption algorithm", comb_alg_name(alg));
        return SPK_ERR_UNSUPPORTED;
    }
    return comb_submit(c, out_op_id, key_id, alg, in, in_len, params, cb, arg);
}

size_t comb_pending(const struct comb_ctx *c)
{
    return c->num_pending;
}

/* ---- the event loop --------------------------------------------------------------------- */

size_t comb_poll_items(const struct comb_ctx *c, zmq_pollitem_t *items, size_t cap)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < c->num_srcs && n < cap; i++) {
        const struct comb_src *src = &c->srcs[i];

        if (src->ops->poll_items != NULL) {
            n += src->ops->poll_items(src->ctx, items + n, cap - n);
        }
    }
    return n;
}

static long comb_min_timeout(long a, long b)
{
    if (a < 0) {
        return b;
    }
    if (b < 0) {
        return a;
    }
    return a < b ? a : b;
}

long comb_timeout_ms(const struct comb_ctx *c)
{
    const struct comb_batch *b;
    uint64_t now = spk_now_ns();
    long t = -1;
    size_t i;

    if (c->batches_head == NULL) {
        return -1;
    }
    for (b = c->batches_head; b != NULL; b = b->next) {
        if (b->num_done > b->num_examined || b->state == COMB_BATCH_READY ||
            b->state == COMB_BATCH_FAILED ||
            (b->state == COMB_BATCH_GATHERING && b->num_running == 0) ||
            (b->state == COMB_BATCH_WAITING && comb_slots_available(c) >= b->slots_needed) ||
            now >= b->deadline_ns || (b->hedge_at_ns != 0 && now >= b->hedge_at_ns)) {
            return 0;
        }
        t = comb_min_timeout(t, (long)((b->deadline_ns - now + 999999) / 1000000));
        if (b->hedge_at_ns != 0) {
            t = comb_min_timeout(t, (long)((b->hedge_at_ns - now + 999999) / 1000000));
        }
    }
    for (i = 0; i < c->num_srcs; i++) {
        if (c->srcs[i].ops->timeout_ms != NULL) {
            t = comb_min_timeout(t, c->srcs[i].ops->timeout_ms(c->srcs[i].ctx));
        }
    }
    return t;
}

int comb_process(struct comb_ctx *c)
{
    struct comb_batch *b, *next;
    uint64_t now;
    size_t i;
    int r = 0;

    if (c->in_process) {
        comb_set_error(c, "comb_process called from a completion callback");
        return SPK_ERR_INTERNAL;
    }
    c->in_process = true;
    for (i = 0; i < c->num_srcs; i++) {
        if (c->srcs[i].ops->process != NULL && c->srcs[i].ops->process(c->srcs[i].ctx) != 0) {
            /* A source's own trouble shows up as failed fetches; keep going. */
            c->srcs[i].st.errors++;
        }
    }
    now = spk_now_ns();
    for (b = c->batches_head; b != NULL; b = next) {
        next = b->next;
        if (b->state == COMB_BATCH_WAITING) {
            if (now >= b->deadline_ns) {
                comb_batch_fail(c, b, SPK_ERR_TIMEOUT,
                                "no free share slots before the deadline (too many in flight)");
                continue;
            }
            if (comb_batch_start(c, b) != 0) {
                comb_batch_fail(c, b, SPK_ERR_INTERNAL, "cannot digest the batch's inputs");
                continue;
            }
            if (b->state == COMB_BATCH_WAITING) {
                continue;
            }
        }
        if (b->state == COMB_BATCH_GATHERING) {
            comb_batch_examine(c, b);
        }
        if (b->state == COMB_BATCH_GATHERING && b->hedge_at_ns != 0 &&
            (now >= b->hedge_at_ns || b->num_good + b->num_running < b->key->rec.threshold)) {
            comb_batch_hedge(c, b, now);
        }
        if (b->state == COMB_BATCH_READY) {
            comb_batch_run(c, b);
        } else if (b->num_running == 0) {
            comb_batch_fail_threshold(c, b, NULL);
        } else if (now >= b->deadline_ns) {
            for (i = 0; i < b->num_fetches; i++) {
                if (b->fetches[i].state == COMB_FETCH_RUNNING) {
                    comb_batch_note(b, c->srcs[b->fetches[i].src].name, "no answer in time");
                    c->srcs[b->fetches[i].src].st.errors++;
                    c->srcs[b->fetches[i].src].st.last_error = SPK_ERR_TIMEOUT;
                    c->counters.shares_error++;
                }
            }
            comb_batch_fail_threshold(c, b, "deadline passed");
        }
    }
    c->in_process = false;
    return r;
}

int comb_wait(struct comb_ctx *c, int timeout_ms)
{
    zmq_pollitem_t items[COMB_POLL_ITEMS_MAX];
    uint64_t end = spk_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
    size_t n;
    long t;
    int r;

    while (c->num_pending > 0) {
        uint64_t now = spk_now_ns();

        if (timeout_ms >= 0 && now >= end) {
            return SPK_ERR_TIMEOUT;
        }
        t = comb_timeout_ms(c);
        if (timeout_ms >= 0) {
            t = comb_min_timeout(t, (long)((end - now + 999999) / 1000000));
        }
        n = comb_poll_items(c, items, COMB_POLL_ITEMS_MAX);
        if (t != 0) {
            if (n > 0) {
                (void)zmq_poll(items, (int)n, t);
            } else {
                (void)poll(NULL, 0, t < 0 ? 10 : (int)t);
            }
        }
        if ((r = comb_process(c)) != 0) {
            return r;
        }
    }
    return 0;
}

/* ---- blocking wrappers ------------------------------------------------------------------ */

struct comb_sync_state {
    bool done;
    int status;
    uint8_t *out;
    size_t out_cap;
    size_t out_len;
};

static void comb_sync_done(void *arg, const struct comb_result *res)
{
    struct comb_sync_state *st = arg;

    st->done = true;
    st->status = res->status;
    if (res->status == 0) {
        if (res->out_len > st->out_cap) {
            st->status = SPK_ERR_INVALID_ARG;
            return;
        }
        memcpy(st->out, res->out, res->out_len);
        st->out_len = res->out_len;
    }
}

static int comb_sync_run(struct comb_ctx *c, struct comb_sync_state *st, size_t *out_len)
{
    zmq_pollitem_t items[COMB_POLL_ITEMS_MAX];
    size_t n;
    long t;
    int r;

    while (!st->done) {
        t = comb_timeout_ms(c);
        n = comb_poll_items(c, items, COMB_POLL_ITEMS_MAX);
        if (t != 0) {
            if (n > 0) {
                (void)zmq_poll(items, (int)n, t);
            } else {
                (void)poll(NULL, 0, t < 0 ? 10 : (int)t);
            }
        }
        if ((r = comb_process(c)) != 0) {
            return r;
        }
    }
    if (st->status != 0) {
        sodium_memzero(st->out, st->out_cap);
        if (st->status == SPK_ERR_INVALID_ARG) {
            comb_set_error(c, "the output buffer is too small for the result");
        }
        return st->status;
    }
    *out_len = st->out_len;
    return 0;
}

int comb_sign_sync(struct comb_ctx *c, uint8_t *out, size_t out_cap, size_t *out_len,
                   const uint8_t key_id[PROTO_KEY_ID_LEN], enum comb_alg alg, const uint8_t *digest,
                   size_t digest_len)
{
    struct comb_sync_state st = {false, 0, out, out_cap, 0};
    int r;

    *out_len = 0;
    if (c->in_process) {
        comb_set_error(c, "comb_sign_sync called from a completion callback");
        return SPK_ERR_INTERNAL;
    }
    if ((r = comb_sign(c, NULL, key_id, alg, digest, digest_len, comb_sync_done, &st)) != 0) {
        return r;
    }
    return comb_sync_run(c, &st, out_len);
}

int comb_decrypt_sync(struct comb_ctx *c, uint8_t *out, size_t out_cap, size_t *out_len,
                      const uint8_t key_id[PROTO_KEY_ID_LEN], enum comb_alg alg, const uint8_t *in,
                      size_t in_len, const struct comb_decrypt_params *params)
{
    struct comb_sync_state st = {false, 0, out, out_cap, 0};
    int r;

    *out_len = 0;
    if (c->in_process) {
        comb_set_error(c, "comb_decrypt_sync called from a completion callback");
        return SPK_ERR_INTERNAL;
    }
    if ((r = comb_decrypt(c, NULL, key_id, alg, in, in_len, params, comb_sync_done, &st)) != 0) {
        return r;
    }
    return comb_sync_run(c, &st, out_len);
}
