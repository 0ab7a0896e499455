/*
 * comb_source_remote.c: a share source backed by one share-holder daemon,
 * through the holder client of share-holder/ (one DEALER, CURVE, crypto_kx
 * sealed shares opened straight into the fetch's locked slot).
 *
 * The combiner starts every source of a key at once and keeps the first k
 * good shares, so this source only has to answer each fetch exactly once and
 * quickly: with the share, with the holder's error, with SPK_ERR_TIMEOUT at
 * its deadline, or at once with SPK_ERR_UNAVAILABLE when the holder is not
 * connected (ZMQ_IMMEDIATE makes the send fail rather than queue). A holder
 * that is down is thus no cost to an operation as long as k shares are
 * reachable elsewhere.
 *
 * Reconnecting: ZeroMQ reconnects by itself, but backs off up to
 * RECONNECT_IVL_MAX while the holder refuses connections, which would leave a
 * restarted holder unused for seconds. So when a request finds the holder
 * unreachable and the connection is older than COMB_REMOTE_RECONNECT_MS, the
 * client is made anew, whose first connect attempt is immediate.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <sodium.h>
#include <zmq.h>

#include "combiner/comb_config.h"
#include "share-holder/share-holder.h"
#include "base/base.h"

struct comb_remote {
    struct comb_remote *next; /* the registry of comb_remote_wait_connected */
    struct comb_ctx *comb;
    struct sh_client *cl;
    void *zctx;
    bool shared_zctx;
    struct proto_holder_secret *me; /* spk_secret_new: to make the client anew */
    struct comb_conf_holder holder;
    uint8_t (*key_ids)[PROTO_KEY_ID_LEN]; /* sorted; NULL with all_keys */
    size_t num_key_ids;
    bool all_keys;
    unsigned timeout_ms;
    uint64_t client_made_us;
    uint64_t reconnects;
    struct spk_hist latency; /* share request to share, answered ones */
    bool connected;          /* a probe was accepted since the client was made */
};

static pthread_mutex_t remote_lock = PTHREAD_MUTEX_INITIALIZER;
static struct comb_remote *remote_registry;
static void *remote_zctx;
static unsigned remote_zctx_refs;

/* Key ids are public: an ordinary byte order for sorting and search. */
static int remote_key_cmp(const void *a, const void *b)
{
    const uint8_t *x = a;
    const uint8_t *y = b;

    for (size_t i = 0; i < PROTO_KEY_ID_LEN; i++) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}

/* ---- the holder client's callback ------------------------------------------------ */

static void remote_result(void *ctx, const struct sh_result *res)
{
    struct comb_remote *rs = ctx;
    struct comb_fetch *f = res->user;
    struct comb_share_info info;
    char detail[COMB_DETAIL_MAX];
    int status = res->status;

    if (f == NULL) {
        return; /* a connection probe (PING) */
    }
    if (status == 0 && res->type == PROTO_MSG_SIGSHARE_RESPONSE) {
        spk_hist_observe(&rs->latency, (double)res->latency_us / 1e6);
        memset(&info, 0, sizeof(info));
        memcpy(info.key_id, res->key_id, PROTO_KEY_ID_LEN);
        info.index = res->index;
        info.has_proof = res->has_proof;
        if (res->has_proof) {
            memcpy(info.proof_c, res->proof_c, PROTO_TSS_C_LEN);
            memcpy(info.proof_z, res->proof_z, res->y_len + PROTO_TSS_Z_EXTRA);
        }
        comb_fetch_done(f, 0, &info, NULL);
        return;
    }
    if (status == 0 && res->type == PROTO_MSG_SHARE_RESPONSE) {
        spk_hist_observe(&rs->latency, (double)res->latency_us / 1e6);
        memcpy(info.key_id, res->key_id, PROTO_KEY_ID_LEN);
        memcpy(info.split_id, res->split_id, PROTO_SPLIT_ID_LEN);
        info.index = res->index;
        info.field_bits = res->field_bits;
        comb_fetch_done(f, 0, &info, NULL);
        return;
    }
    if (status == 0) {
        status = SPK_ERR_MALFORMED; /* a PONG to a share request */
    }
    if (status == SPK_ERR_TIMEOUT) {
        snprintf(detail, sizeof(detail), "no answer in %u ms", rs->timeout_ms);
    } else if (res->text[0] != '\0') {
        snprintf(detail, sizeof(detail), "%s (holder says: %s)", spk_strerror(status), res->text);
    } else {
        snprintf(detail, sizeof(detail), "%s", spk_strerror(status));
    }
    comb_fetch_done(f, status, NULL, detail);
}

static int remote_client_make(struct comb_remote *rs)
{
    struct sh_client *cl;
    size_t index = 0;
    int r;

    if ((cl = sh_client_new(rs->zctx, rs->me, remote_result, rs)) == NULL) {
        return SPK_ERR_NOMEM;
    }
    if ((r = sh_client_add_holder(cl, &index, rs->holder.name, rs->holder.endpoint,
                                  rs->holder.curve_pk)) != 0) {
        sh_client_free(cl);
        return r;
    }
    sh_client_free(rs->cl);
    rs->cl = cl;
    rs->client_made_us = spk_now_us();
    rs->connected = false;
    return 0;
}

/*
 * remote_maybe_reconnect makes the client anew when the holder was found
 * unreachable, nothing is in flight on the old connection, and the old one
 * has had COMB_REMOTE_RECONNECT_MS to connect by itself.
 */
static void remote_maybe_reconnect(struct comb_remote *rs)
{
    if (sh_client_pending(rs->cl) != 0 ||
        spk_now_us() - rs->client_made_us < (uint64_t)COMB_REMOTE_RECONNECT_MS * 1000u) {
        return;
    }
    if (remote_client_make(rs) == 0) {
        rs->reconnects++;
    }
}

/* ---- the source vtable -------------------------------------------------------------- */

static int remote_start(void *ctx, struct comb_fetch *fetch)
{
    struct comb_remote *rs = ctx;
    uint64_t id = 0;
    int r;

    if (fetch->sigshare) {
        r = sh_client_sigshare(rs->cl, &id, 0, fetch->key_id, fetch->op, fetch->digest,
                               fetch->digest_len, fetch->salt, fetch->salt_len, fetch->out_y,
                               fetch->out_len, (int)rs->timeout_ms, fetch);
    } else {
        r = sh_client_request(rs->cl, &id, 0, fetch->key_id, fetch->op, fetch->op_count,
                              fetch->input_digest, fetch->out_y, fetch->out_len,
                              (int)rs->timeout_ms, fetch);
    }
    if (r == 0) {
        fetch->source_tag = id;
        return 0;
    }
    if (r == SPK_ERR_UNAVAILABLE) {
        remote_maybe_reconnect(rs);
    }
    return r;
}

static void remote_cancel(void *ctx, struct comb_fetch *fetch)
{
    struct comb_remote *rs = ctx;

    sh_client_cancel(rs->cl, fetch->source_tag);
}

static bool remote_has_key(void *ctx, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    const struct comb_remote *rs = ctx;

    if (rs->all_keys) {
        return true;
    }
    return rs->num_key_ids > 0 &&
           bsearch(key_id, rs->key_ids, rs->num_key_ids, PROTO_KEY_ID_LEN, remote_key_cmp) != NULL;
}

static size_t remote_poll_items(void *ctx, zmq_pollitem_t *items, size_t cap)
{
    const struct comb_remote *rs = ctx;

    return sh_client_poll_items(rs->cl, items, cap);
}

static void remote_poll_result(void *ctx, const zmq_pollitem_t *items, size_t num)
{
    struct comb_remote *rs = ctx;

    sh_client_poll_result(rs->cl, items, num);
}

static long remote_timeout_ms(void *ctx)
{
    const struct comb_remote *rs = ctx;

    return sh_client_timeout_ms(rs->cl);
}

static int remote_process(void *ctx)
{
    struct comb_remote *rs = ctx;

    return sh_client_process(rs->cl);
}

static void remote_zctx_release(struct comb_remote *rs)
{
    if (!rs->shared_zctx) {
        return;
    }
    pthread_mutex_lock(&remote_lock);
    if (--remote_zctx_refs == 0) {
        zmq_ctx_term(remote_zctx);
        remote_zctx = NULL;
    }
    pthread_mutex_unlock(&remote_lock);
    rs->shared_zctx = false;
}

static void remote_free(void *ctx)
{
    struct comb_remote *rs = ctx;
    struct comb_remote **pp;

    if (rs == NULL) {
        return;
    }
    pthread_mutex_lock(&remote_lock);
    for (pp = &remote_registry; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == rs) {
            *pp = rs->next;
            break;
        }
    }
    pthread_mutex_unlock(&remote_lock);
    sh_client_free(rs->cl);
    rs->cl = NULL;
    remote_zctx_release(rs);
    spk_secret_free(rs->me);
    OPENSSL_free(rs->key_ids);
    OPENSSL_clear_free(rs, sizeof(*rs));
}

static const struct comb_source_ops remote_ops = {
    .start = remote_start,
    .cancel = remote_cancel,
    .has_key = remote_has_key,
    .poll_items = remote_poll_items,
    .poll_result = remote_poll_result,
    .timeout_ms = remote_timeout_ms,
    .process = remote_process,
    .free = remote_free,
};

int comb_add_remote_source(struct comb_ctx *c, size_t *out_id, void *zmq_ctx,
                           const struct proto_holder_secret *me,
                           const struct comb_conf_holder *holder,
                           const uint8_t (*key_ids)[PROTO_KEY_ID_LEN], size_t num_key_ids,
                           unsigned timeout_ms)
{
    struct comb_remote *rs = NULL;
    int r = SPK_ERR_NOMEM;

    if (me == NULL || holder == NULL || !holder->have_pk || timeout_ms == 0 ||
        timeout_ms > COMB_CONF_TIMEOUT_MAX || !proto_name_str_valid(holder->name) ||
        (key_ids == NULL && num_key_ids != 0)) {
        /* comb_add_source with a NULL ops reports the argument error. */
        return comb_add_source(c, out_id, NULL, NULL, NULL);
    }
    if ((rs = OPENSSL_zalloc(sizeof(*rs))) == NULL) {
        return r;
    }
    rs->comb = c;
    rs->holder = *holder;
    rs->timeout_ms = timeout_ms;
    rs->all_keys = key_ids == NULL;
    if (num_key_ids > 0) {
        if ((rs->key_ids = OPENSSL_malloc(num_key_ids * PROTO_KEY_ID_LEN)) == NULL) {
            goto fail;
        }
        memcpy(rs->key_ids, key_ids, num_key_ids * PROTO_KEY_ID_LEN);
        qsort(rs->key_ids, num_key_ids, PROTO_KEY_ID_LEN, remote_key_cmp);
        rs->num_key_ids = num_key_ids;
    }
    if ((rs->me = spk_secret_new(sizeof(*rs->me))) == NULL) {
        goto fail;
    }
    memcpy(rs->me, me, sizeof(*rs->me));
    if (zmq_ctx != NULL) {
        rs->zctx = zmq_ctx;
    } else {
        pthread_mutex_lock(&remote_lock);
        if (remote_zctx == NULL) {
            remote_zctx = zmq_ctx_new();
        }
        if (remote_zctx != NULL) {
            remote_zctx_refs++;
            rs->zctx = remote_zctx;
            rs->shared_zctx = true;
        }
        pthread_mutex_unlock(&remote_lock);
        if (rs->zctx == NULL) {
            goto fail;
        }
    }
    if ((r = remote_client_make(rs)) != 0) {
        goto fail;
    }
    pthread_mutex_lock(&remote_lock);
    rs->next = remote_registry;
    remote_registry = rs;
    pthread_mutex_unlock(&remote_lock);
    /* From here the combiner owns rs, also when adding fails. */
    return comb_add_source(c, out_id, holder->name, &remote_ops, rs);
fail:
    remote_free(rs);
    return r;
}

/* remote_probe: with ZMQ_IMMEDIATE a send succeeds only once the CURVE
 * handshake and the holder's ZAP check are done, so a PING that is taken
 * (and called off at once) says the holder is connected. */
static bool remote_probe(struct comb_remote *rs)
{
    uint64_t id = 0;

    if (!rs->connected && sh_client_ping(rs->cl, &id, 0, 1000, NULL) == 0) {
        sh_client_cancel(rs->cl, id);
        rs->connected = true;
    }
    return rs->connected;
}

size_t comb_remote_connected(struct comb_ctx *c, size_t *out_total)
{
    size_t connected = 0;
    size_t total = 0;

    /* A remote source's registry entry is only removed by comb_free, which
     * must not run concurrently with calls on the same combiner. */
    pthread_mutex_lock(&remote_lock);
    for (struct comb_remote *rs = remote_registry; rs != NULL; rs = rs->next) {
        if (rs->comb != c) {
            continue;
        }
        total++;
        connected += remote_probe(rs) ? 1 : 0;
    }
    pthread_mutex_unlock(&remote_lock);
    if (out_total != NULL) {
        *out_total = total;
    }
    return connected;
}

size_t comb_remote_wait_connected(struct comb_ctx *c, int timeout_ms)
{
    uint64_t end = spk_now_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000u;
    struct timespec pause = {0, 2 * 1000 * 1000};

    for (;;) {
        size_t total = 0;
        size_t connected = comb_remote_connected(c, &total);

        if (connected == total || spk_now_us() >= end) {
            return connected;
        }
        nanosleep(&pause, NULL);
    }
}

size_t comb_remote_each(struct comb_ctx *c, comb_remote_fn fn, void *arg)
{
    size_t n = 0;

    pthread_mutex_lock(&remote_lock);
    for (struct comb_remote *rs = remote_registry; rs != NULL; rs = rs->next) {
        if (rs->comb == c) {
            fn(arg, rs->holder.name, rs->holder.endpoint, rs->connected, &rs->latency);
            n++;
        }
    }
    pthread_mutex_unlock(&remote_lock);
    return n;
}
