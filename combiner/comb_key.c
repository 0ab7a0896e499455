/*
 * comb_key.c: the combiner's keys: each split key's record with its public
 * key for the RSA engine, and the combiner's own share of it if it holds one
 * (locked memory, no access while idle). Threshold-mode keys are finished by
 * comb_tss_key_init (comb_tss.c).
 */

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/comb_private.h"

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

void comb_hex(char *out, size_t cap, const uint8_t *p, size_t n)
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
        if ((r = comb_tss_key_init(c, key, local, holder_key)) != 0) {
            goto out;
        }
        goto add;
    }
    if ((r = split_field_init(&key->f, rec->field_bits)) != 0 || rec->threshold < 2 ||
        rec->threshold > rec->num_shares || rec->num_shares > PROTO_SHARES_MAX) {
        r = r != 0 ? r : SPK_ERR_MALFORMED;
        comb_set_error(c, "key %s: the record's field or threshold is not one we take", short_id);
        goto out;
    }
    key->tuple_len = split_tuple_len(&key->f);
    key->answer_len = key->tuple_len;
    if (key->tuple_len > COMB_SLOT_LEN) {
        r = SPK_ERR_KEY_UNSUPPORTED;
        goto out;
    }
    if ((r = comb_rsa_pub_new(&key->pub, rec->modulus, rec->modulus_len, rec->exponent,
                              rec->exponent_len)) != 0) {
        comb_set_error(c, "key %s: cannot set up the public key: %s", short_id, spk_strerror(r));
        goto out;
    }
    if (c->rsa_helper != NULL) {
        /* Measured now, not at the key's first operation. */
        (void)comb_rsa_pub_calibrate(key->pub, c->rsa_helper);
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
add:
    if ((key->local_y != NULL || key->signer != NULL) && !c->have_local_src) {
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
        split_tss_signer_free(key->signer);
        comb_rsa_pub_free(key->pub);
        OPENSSL_clear_free(key, sizeof(*key));
    }
    return r;
}
