/*
 * comb_core.c: the combiner context and its public API: operations are
 * queued into batches (comb_batch.c) on the keys of comb_key.c, and the
 * event loop drives the sources, the batches' deadlines and the blocking
 * wrappers.
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
    cfg->max_slots = COMB_SLOTS_MAX;
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
    if (c->cfg.max_slots == 0 || c->cfg.max_slots > COMB_SLOTS_MAX) {
        c->cfg.max_slots = COMB_SLOTS_MAX;
    }
    if (c->cfg.max_slots < COMB_SLOTS_MIN) {
        c->cfg.max_slots = COMB_SLOTS_MIN;
    }
    c->cfg.max_slots =
        (c->cfg.max_slots + COMB_SLOTS_PER_CHUNK - 1) / COMB_SLOTS_PER_CHUNK * COMB_SLOTS_PER_CHUNK;
    if (c->cfg.stats_window == 0) {
        c->cfg.stats_window = COMB_WINDOW_DEFAULT;
    }
    c->next_op_id = 1;
    /* Without a helper thread (a thread limit, say) both halves run here;
     * comb_crt_report says so. */
    if (c->cfg.crt_helper && comb_rsa_helper_new(&c->rsa_helper) != 0) {
        c->rsa_helper = NULL;
    }
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
        split_tss_signer_free(key->signer);
        comb_rsa_pub_free(key->pub);
        OPENSSL_clear_free(key, sizeof(*key));
    }
    OPENSSL_free(c->keys);
    comb_rsa_helper_free(c->rsa_helper);
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
    if (key->rec.mode == PROTO_MODE_THRESHOLD && !comb_alg_is_sign(alg)) {
        /* Refused before any holder is asked: a holder never exponentiates a
         * value it did not encode, so no decryption exists for such a key. */
        r = SPK_ERR_UNSUPPORTED;
        comb_set_error(c,
                       "key %s is in threshold mode: it signs (PKCS#1 v1.5, PSS) and never "
                       "decrypts; '%s' refused",
                       key->short_id, comb_alg_name(alg));
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
    if (key->rec.mode == PROTO_MODE_THRESHOLD && proto_op_info((uint8_t)alg) != NULL &&
        proto_op_info((uint8_t)alg)->kind == PROTO_OP_KIND_SIGN_PSS) {
        /* One salt for every holder: their signature shares must be of one encoded message. */
        op->salt_len = in_len;
        randombytes_buf(op->salt, op->salt_len);
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
        /* A threshold key's request names one digest: one operation per batch. */
        key->open_batch = c->cfg.max_batch > 1 && key->rec.mode != PROTO_MODE_THRESHOLD ? b : NULL;
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

void comb_crt_report(const struct comb_ctx *c, char *out, size_t cap)
{
    unsigned seen[2][16];
    size_t num[2] = {0, 0};
    size_t len;

    if (c->rsa_helper == NULL) {
        snprintf(out, cap, "on one thread (%s)",
                 c->cfg.crt_helper ? "crt-threads 2, but no thread could be started"
                                   : "crt-threads 1");
        return;
    }
    for (size_t i = 0; i < c->num_keys; i++) {
        struct comb_rsa_pub *pub = c->keys[i]->pub;
        unsigned bits;
        size_t apart, j;

        if (pub == NULL || c->keys[i]->rec.mode == PROTO_MODE_THRESHOLD) {
            continue;
        }
        bits = comb_rsa_pub_bits(pub);
        apart = comb_rsa_pub_calibrate(pub, c->rsa_helper) ? 1 : 0;
        for (j = 0; j < num[apart] && seen[apart][j] != bits; j++) {
        }
        if (j == num[apart] && num[apart] < 16) {
            seen[apart][num[apart]++] = bits;
        }
    }
    out[0] = '\0';
    len = 0;
    for (size_t a = 2; a-- > 0;) {
        if (num[a] == 0 || len >= cap) {
            continue;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len > 0 ? "; " : "",
                                a == 1 ? "on two threads when idle for" : "on one thread for");
        for (size_t j = 0; j < num[a] && len < cap; j++) {
            len +=
                (size_t)snprintf(out + len, cap - len, "%s RSA-%u", j > 0 ? "," : "", seen[a][j]);
        }
        if (a == 0 && len < cap) {
            len += (size_t)snprintf(out + len, cap - len, " (two threads are not faster here)");
        }
    }
    if (num[0] == 0 && num[1] == 0) {
        snprintf(out, cap, "no RSA key (crt-threads 2)");
    }
}

size_t comb_pending(const struct comb_ctx *c)
{
    return c->num_pending;
}

/* ---- the event loop --------------------------------------------------------------------- */

size_t comb_poll_items(struct comb_ctx *c, zmq_pollitem_t *items, size_t cap)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < c->num_srcs; i++) {
        struct comb_src *src = &c->srcs[i];

        src->num_poll_items = 0;
        if (src->ops->poll_items != NULL && n < cap) {
            src->num_poll_items = src->ops->poll_items(src->ctx, items + n, cap - n);
            n += src->num_poll_items;
        }
    }
    return n;
}

void comb_poll_result(struct comb_ctx *c, const zmq_pollitem_t *items, size_t num)
{
    size_t at = 0;

    for (size_t i = 0; i < c->num_srcs && at < num; i++) {
        const struct comb_src *src = &c->srcs[i];
        size_t mine = src->num_poll_items < num - at ? src->num_poll_items : num - at;

        if (src->ops->poll_result != NULL && mine > 0) {
            src->ops->poll_result(src->ctx, items + at, mine);
        }
        at += mine;
    }
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
        if (b->state == COMB_BATCH_WAITING && comb_slots_available(c) >= b->slots_needed) {
            uint64_t gate = comb_batch_gate_ns(c, b);

            if (gate <= now) {
                return 0;
            }
            t = comb_min_timeout(t, (long)((gate - now + 999999) / 1000000));
        }
        if (b->num_done > b->num_examined || b->state == COMB_BATCH_READY ||
            b->state == COMB_BATCH_FAILED ||
            ((b->state == COMB_BATCH_GATHERING || b->state == COMB_BATCH_PROBING) &&
             b->num_running == 0) ||
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
        if (b->state == COMB_BATCH_PROBING) {
            comb_batch_linger(c, b, now);
            continue;
        }
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
            (now >= b->hedge_at_ns || b->num_good + comb_batch_needed_running(b) < b->need_good)) {
            comb_batch_hedge(c, b, now);
        }
        if (b->state == COMB_BATCH_READY) {
            /* The key's next batch, gated on this one, asks for its shares
             * before this one's operations run, not after. (Should it fail,
             * it is still WAITING: the loop comes to it below and fails it.) */
            if (b->key->open_batch != NULL && b->key->open_batch->state == COMB_BATCH_WAITING) {
                (void)comb_batch_start(c, b->key->open_batch);
            }
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
    /* With every request out and every ready batch run: what the gathering
     * batches can do before their shares come. */
    for (b = c->batches_head; b != NULL; b = b->next) {
        if (b->state == COMB_BATCH_GATHERING) {
            comb_batch_prepare(b);
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
                if (zmq_poll(items, (int)n, t) >= 0) {
                    comb_poll_result(c, items, n);
                }
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
                if (zmq_poll(items, (int)n, t) >= 0) {
                    comb_poll_result(c, items, n);
                }
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
