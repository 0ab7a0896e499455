/*
 * comb_source_file.c: a share source in the same process that serves shares
 * from share files with one holder's secret key. It stands in for a remote
 * holder in tests, benchmarks and the `combiner` command: answers come at
 * the next comb_process (or after a set delay, or inside start() in sync
 * mode), and faults can be injected.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/comb_private.h"

struct comb_file_share {
    struct proto_share_file sf; /* still sealed */
    uint8_t *y;                 /* preopened: locked, noaccess while idle; else NULL */
    size_t y_total;
};

struct comb_file_req {
    struct comb_file_req *next;
    struct comb_fetch *fetch;
    uint64_t due_ns;
};

struct comb_file_source {
    char name[PROTO_NAME_MAX + 1];
    struct proto_holder_secret *key; /* locked, noaccess while idle */
    struct comb_file_share *shares;
    size_t num_shares;
    enum comb_fault fault;
    unsigned delay_ms;
    bool sync;
    struct comb_file_req *queue; /* in arrival order */
};

struct comb_file_source *comb_file_source_new(const struct proto_holder_secret *holder_key)
{
    struct comb_file_source *fs = NULL;

    if (holder_key == NULL || (fs = OPENSSL_zalloc(sizeof(*fs))) == NULL) {
        return NULL;
    }
    fs->key = spk_secret_new(sizeof(*fs->key));
    if (fs->key == NULL) {
        OPENSSL_free(fs);
        return NULL;
    }
    memcpy(fs->key, holder_key, sizeof(*fs->key));
    snprintf(fs->name, sizeof(fs->name), "%s", holder_key->pub.name);
    if (spk_secret_noaccess(fs->key) != 0) {
        comb_file_source_free(fs);
        return NULL;
    }
    return fs;
}

void comb_file_source_free(struct comb_file_source *fs)
{
    struct comb_file_req *req;
    size_t i;

    if (fs == NULL) {
        return;
    }
    while ((req = fs->queue) != NULL) {
        fs->queue = req->next;
        OPENSSL_free(req);
    }
    for (i = 0; i < fs->num_shares; i++) {
        spk_secret_free(fs->shares[i].y);
    }
    OPENSSL_clear_free(fs->shares, fs->num_shares * sizeof(fs->shares[0]));
    spk_secret_free(fs->key);
    OPENSSL_clear_free(fs, sizeof(*fs));
}

static struct comb_file_share *comb_file_find(const struct comb_file_source *fs,
                                              const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    size_t i;

    for (i = 0; i < fs->num_shares; i++) {
        if (sodium_memcmp(fs->shares[i].sf.key_id, key_id, PROTO_KEY_ID_LEN) == 0) {
            return &fs->shares[i];
        }
    }
    return NULL;
}

/* comb_file_open: share |sh| in the clear into |out| (|out_len| bytes). */
static int comb_file_open(struct comb_file_source *fs, const struct comb_file_share *sh,
                          uint8_t *out, size_t out_len)
{
    int r;

    if (out_len != sh->y_total) {
        return SPK_ERR_INVALID_ARG;
    }
    if (sh->y != NULL) {
        if ((r = spk_secret_readwrite(sh->y)) != 0) {
            return r;
        }
        memcpy(out, sh->y, out_len);
        return spk_secret_noaccess(sh->y);
    }
    if ((r = spk_secret_readwrite(fs->key)) != 0) {
        return r;
    }
    r = split_share_open(out, out_len, &sh->sf, fs->key);
    if (spk_secret_noaccess(fs->key) != 0 && r == 0) {
        r = SPK_ERR_INTERNAL;
    }
    return r;
}

int comb_file_source_add_share(struct comb_file_source *fs, const struct proto_share_file *sf,
                               bool preopen)
{
    struct comb_file_share *shares;
    struct comb_file_share *sh;
    size_t y_len = proto_field_y_len(sf->field_bits);
    int r;

    if (strcmp(sf->holder, fs->name) != 0) {
        return SPK_ERR_WRONG_HOLDER;
    }
    if (sf->mode == PROTO_MODE_THRESHOLD) {
        return SPK_ERR_UNSUPPORTED; /* it would have to sign, not hand out its share */
    }
    if (y_len == 0) {
        return SPK_ERR_MALFORMED;
    }
    if (comb_file_find(fs, sf->key_id) != NULL) {
        return SPK_ERR_EXISTS;
    }
    shares = OPENSSL_realloc(fs->shares, (fs->num_shares + 1) * sizeof(shares[0]));
    if (shares == NULL) {
        return SPK_ERR_NOMEM;
    }
    fs->shares = shares;
    sh = &fs->shares[fs->num_shares];
    memset(sh, 0, sizeof(*sh));
    sh->sf = *sf;
    sh->y_total = PROTO_NUM_SECRETS * y_len;
    if (preopen) {
        uint8_t *y = spk_secret_new(sh->y_total);

        if (y == NULL) {
            return SPK_ERR_NOMEM;
        }
        if ((r = comb_file_open(fs, sh, y, sh->y_total)) != 0 ||
            (r = spk_secret_noaccess(y)) != 0) {
            spk_secret_free(y);
            return r;
        }
        sh->y = y;
    }
    fs->num_shares++;
    return 0;
}

void comb_file_source_set_fault(struct comb_file_source *fs, enum comb_fault fault)
{
    fs->fault = fault;
}

void comb_file_source_set_delay_ms(struct comb_file_source *fs, unsigned ms)
{
    fs->delay_ms = ms;
}

void comb_file_source_set_sync(struct comb_file_source *fs, bool sync)
{
    fs->sync = sync;
}

/* comb_file_serve answers |fetch| now, with the configured fault. */
static void comb_file_serve(struct comb_file_source *fs, struct comb_fetch *fetch)
{
    const struct comb_file_share *sh = comb_file_find(fs, fetch->key_id);
    struct comb_share_info info;
    int r;

    if (sh == NULL) {
        comb_fetch_done(fetch, SPK_ERR_UNKNOWN_KEY, NULL, "no share of this key here");
        return;
    }
    switch (fs->fault) {
    case COMB_FAULT_FAIL:
        comb_fetch_done(fetch, SPK_ERR_UNAVAILABLE, NULL, "injected failure");
        return;
    case COMB_FAULT_NONE:
    case COMB_FAULT_CORRUPT_Y:
    case COMB_FAULT_WRONG_SHARE:
    case COMB_FAULT_SILENT:
        break;
    default:
        comb_fetch_done(fetch, SPK_ERR_INTERNAL, NULL, NULL);
        return;
    }
    if ((r = comb_file_open(fs, sh, fetch->out_y, fetch->out_len)) != 0) {
        sodium_memzero(fetch->out_y, fetch->out_len);
        comb_fetch_done(fetch, r, NULL, NULL);
        return;
    }
    memcpy(info.key_id, sh->sf.key_id, PROTO_KEY_ID_LEN);
    memcpy(info.split_id, sh->sf.split_id, PROTO_SPLIT_ID_LEN);
    info.index = sh->sf.index;
    info.field_bits = sh->sf.field_bits;
    if (fs->fault == COMB_FAULT_CORRUPT_Y) {
        fetch->out_y[fetch->out_len / 2] ^= 0x01;
    } else if (fs->fault == COMB_FAULT_WRONG_SHARE) {
        /* The right y under another index: only the commitment can tell. */
        info.index = (uint8_t)(info.index == 255 ? 1 : info.index + 1);
    }
    comb_fetch_done(fetch, 0, &info, NULL);
}

static bool comb_file_has_key(void *ctx, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    return comb_file_find(ctx, key_id) != NULL;
}

static int comb_file_start(void *ctx, struct comb_fetch *fetch)
{
    struct comb_file_source *fs = ctx;
    struct comb_file_req *req;
    struct comb_file_req **tail;

    if (fs->sync && fs->fault != COMB_FAULT_SILENT && fs->delay_ms == 0) {
        comb_file_serve(fs, fetch);
        return 0;
    }
    req = OPENSSL_zalloc(sizeof(*req));
    if (req == NULL) {
        return SPK_ERR_NOMEM;
    }
    req->fetch = fetch;
    req->due_ns = spk_now_ns() + (uint64_t)fs->delay_ms * 1000000u;
    for (tail = &fs->queue; *tail != NULL; tail = &(*tail)->next) {
    }
    *tail = req;
    return 0;
}

static void comb_file_cancel(void *ctx, struct comb_fetch *fetch)
{
    struct comb_file_source *fs = ctx;
    struct comb_file_req **pp;

    for (pp = &fs->queue; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->fetch == fetch) {
            struct comb_file_req *req = *pp;

            *pp = req->next;
            OPENSSL_free(req);
            return;
        }
    }
}

static long comb_file_timeout_ms(void *ctx)
{
    const struct comb_file_source *fs = ctx;
    const struct comb_file_req *req;
    uint64_t now = spk_now_ns();
    long t = -1;

    if (fs->fault == COMB_FAULT_SILENT) {
        return -1;
    }
    for (req = fs->queue; req != NULL; req = req->next) {
        long left = req->due_ns <= now ? 0 : (long)((req->due_ns - now + 999999) / 1000000);

        if (t < 0 || left < t) {
            t = left;
        }
    }
    return t;
}

static int comb_file_process(void *ctx)
{
    struct comb_file_source *fs = ctx;
    struct comb_file_req **pp = &fs->queue;
    uint64_t now = spk_now_ns();

    if (fs->fault == COMB_FAULT_SILENT) {
        return 0;
    }
    while (*pp != NULL) {
        struct comb_file_req *req = *pp;

        if (req->due_ns > now) {
            pp = &req->next;
            continue;
        }
        *pp = req->next;
        comb_file_serve(fs, req->fetch);
        OPENSSL_free(req);
    }
    return 0;
}

static void comb_file_free_ops(void *ctx)
{
    comb_file_source_free(ctx);
}

static const struct comb_source_ops comb_file_ops = {
    .start = comb_file_start,
    .cancel = comb_file_cancel,
    .has_key = comb_file_has_key,
    .timeout_ms = comb_file_timeout_ms,
    .process = comb_file_process,
    .free = comb_file_free_ops,
};

int comb_add_file_source(struct comb_ctx *c, size_t *out_id, const char *name,
                         struct comb_file_source *fs)
{
    if (fs == NULL) {
        return SPK_ERR_INVALID_ARG;
    }
    return comb_add_source(c, out_id, name != NULL ? name : fs->name, &comb_file_ops, fs);
}
