/*
 * comb_source.c: what every share source shares: the locked slots that
 * fetched shares land in, adding sources, and the built-in source for the
 * combiner's own (local) shares. It sees no batch: a source's answer goes
 * through comb_fetch_done (comb_core.c), like any other source's.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/comb_private.h"

/* ---- slots -------------------------------------------------------------------- */

static int comb_slots_grow(struct comb_ctx *c)
{
    uint8_t **chunks = NULL;
    uint8_t **free_slots = NULL;
    uint8_t *mem = NULL;
    size_t total = (c->num_chunks + 1) * COMB_SLOTS_PER_CHUNK;
    size_t i;

    if (total > c->cfg.max_slots) {
        return SPK_ERR_RATE_LIMITED;
    }
    chunks = OPENSSL_realloc(c->slot_chunks, (c->num_chunks + 1) * sizeof(chunks[0]));
    if (chunks == NULL) {
        return SPK_ERR_NOMEM;
    }
    c->slot_chunks = chunks;
    free_slots = OPENSSL_realloc(c->free_slots, total * sizeof(free_slots[0]));
    if (free_slots == NULL) {
        return SPK_ERR_NOMEM;
    }
    c->free_slots = free_slots;
    mem = spk_secret_new((size_t)COMB_SLOT_LEN * COMB_SLOTS_PER_CHUNK);
    if (mem == NULL) {
        return SPK_ERR_NOMEM;
    }
    c->slot_chunks[c->num_chunks++] = mem;
    for (i = 0; i < COMB_SLOTS_PER_CHUNK; i++) {
        c->free_slots[c->num_free_slots++] = mem + i * COMB_SLOT_LEN;
    }
    return 0;
}

uint8_t *comb_slot_get(struct comb_ctx *c)
{
    if (c->num_free_slots == 0 && comb_slots_grow(c) != 0) {
        return NULL;
    }
    return c->free_slots[--c->num_free_slots];
}

void comb_slot_put(struct comb_ctx *c, uint8_t *slot, size_t len)
{
    if (slot == NULL) {
        return;
    }
    sodium_memzero(slot, len < COMB_SLOT_LEN ? len : COMB_SLOT_LEN);
    c->free_slots[c->num_free_slots++] = slot;
}

size_t comb_slots_available(const struct comb_ctx *c)
{
    return c->num_free_slots + (c->cfg.max_slots - c->num_chunks * COMB_SLOTS_PER_CHUNK);
}

void comb_slots_free(struct comb_ctx *c)
{
    size_t i;

    for (i = 0; i < c->num_chunks; i++) {
        spk_secret_free(c->slot_chunks[i]);
    }
    OPENSSL_free(c->slot_chunks);
    OPENSSL_free(c->free_slots);
    c->slot_chunks = NULL;
    c->free_slots = NULL;
    c->num_chunks = 0;
    c->num_free_slots = 0;
}

/* ---- sources ------------------------------------------------------------------- */

int comb_add_source(struct comb_ctx *c, size_t *out_id, const char *name,
                    const struct comb_source_ops *ops, void *ctx)
{
    struct comb_src *srcs;
    struct comb_src *s;
    int r = SPK_ERR_INVALID_ARG;

    if (name == NULL || ops == NULL || ops->start == NULL || strlen(name) == 0 ||
        strlen(name) > PROTO_NAME_MAX) {
        comb_set_error(c, "a share source needs a name of 1 to %d characters and a start function",
                       PROTO_NAME_MAX);
        goto fail;
    }
    if (c->num_srcs >= COMB_SOURCES_MAX) {
        comb_set_error(c, "too many share sources (at most %d)", COMB_SOURCES_MAX);
        goto fail;
    }
    srcs = OPENSSL_realloc(c->srcs, (c->num_srcs + 1) * sizeof(srcs[0]));
    if (srcs == NULL) {
        r = SPK_ERR_NOMEM;
        goto fail;
    }
    c->srcs = srcs;
    s = &c->srcs[c->num_srcs];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->st.name, sizeof(s->st.name), "%s", name);
    s->ops = ops;
    s->ctx = ctx;
    if (out_id != NULL) {
        *out_id = c->num_srcs;
    }
    c->num_srcs++;
    return 0;
fail:
    if (ops != NULL && ops->free != NULL) {
        ops->free(ctx);
    }
    return r;
}

/* ---- the local share ------------------------------------------------------------ */

/*
 * The combiner's own share of a key sits in locked memory behind
 * sodium_mprotect_noaccess; a fetch opens it just long enough to copy it into
 * the fetch's slot, and completes at once. A threshold key's share signs
 * instead (comb_tss.c), at the source's next process(), once the holders'
 * requests are out: a full-size exponentiation should not hold them back.
 */
static bool comb_local_has_key(void *ctx, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    const struct comb_key *key = comb_key_find(ctx, key_id);

    return key != NULL && (key->local_y != NULL || key->signer != NULL);
}

static int comb_local_start(void *ctx, struct comb_fetch *fetch)
{
    struct comb_key *key = comb_key_find(ctx, fetch->key_id);
    struct comb_share_info info;
    int r;

    if (key != NULL && key->signer != NULL && fetch->sigshare) {
        comb_tss_local_queue(ctx, fetch);
        return 0;
    }
    if (key == NULL || key->local_y == NULL || fetch->sigshare) {
        return SPK_ERR_UNKNOWN_KEY;
    }
    if (fetch->out_len != key->tuple_len) {
        return SPK_ERR_INTERNAL;
    }
    if ((r = spk_secret_readwrite(key->local_y)) != 0) {
        return r;
    }
    memcpy(fetch->out_y, key->local_y, key->tuple_len);
    if ((r = spk_secret_noaccess(key->local_y)) != 0) {
        sodium_memzero(fetch->out_y, fetch->out_len);
        return r;
    }
    memcpy(info.key_id, key->rec.key_id, sizeof(info.key_id));
    memcpy(info.split_id, key->rec.split_id, sizeof(info.split_id));
    info.index = key->local_index;
    info.field_bits = key->rec.field_bits;
    comb_fetch_done(fetch, 0, &info, NULL);
    return 0;
}

static void comb_local_cancel(void *ctx, struct comb_fetch *fetch)
{
    /* A key share completes before start returns; only a signature share waits. */
    comb_tss_local_cancel(ctx, fetch);
}

static long comb_local_timeout_ms(void *ctx)
{
    const struct comb_ctx *c = ctx;

    return c->local_queue != NULL ? 0 : -1;
}

static int comb_local_process(void *ctx)
{
    comb_tss_local_process(ctx);
    return 0;
}

const struct comb_source_ops comb_local_source_ops = {
    .start = comb_local_start,
    .cancel = comb_local_cancel,
    .has_key = comb_local_has_key,
    .timeout_ms = comb_local_timeout_ms,
    .process = comb_local_process,
};
