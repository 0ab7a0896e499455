/*
 * Splitting a loaded RSA key into a record and sealed share files, and
 * putting opened shares back together with every check the design asks for,
 * in its order: same key and split, known index, commitment, distinct
 * indexes, threshold, interpolation, p * q == N.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "split/split.h"

__attribute__((format(printf, 3, 4))) static void split_why(char *why, size_t why_len,
                                                            const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || why_len == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

static int split_holders_check(const struct proto_holder_pub *holders, unsigned n, char *why,
                               size_t why_len)
{
    unsigned i;
    unsigned j;

    for (i = 0; i < n; i++) {
        struct proto_rd rd;
        size_t len = strnlen(holders[i].name, sizeof(holders[i].name));

        proto_rd_init(&rd, (const uint8_t *)holders[i].name, len);
        if (len >= sizeof(holders[i].name) || !proto_name_valid(&rd)) {
            split_why(why, why_len, "holder %u has an invalid name", i + 1);
            return SPK_ERR_INVALID_ARG;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(holders[i].name, holders[j].name) == 0) {
                split_why(why, why_len, "holder name %s given twice", holders[i].name);
                return SPK_ERR_INVALID_ARG;
            }
            if (sodium_memcmp(holders[i].storage_pk, holders[j].storage_pk, PROTO_X25519_LEN) ==
                    0 ||
                sodium_memcmp(holders[i].curve_pk, holders[j].curve_pk, PROTO_X25519_LEN) == 0) {
                split_why(why, why_len, "holders %s and %s have the same key", holders[j].name,
                          holders[i].name);
                return SPK_ERR_INVALID_ARG;
            }
        }
    }
    return 0;
}

/* split_self_check: the first k shares must give back |tuple|, before anything is written. */
static int split_self_check(const struct split_field *f, unsigned k, const uint8_t *xs,
                            const uint8_t *ys, const uint8_t *tuple)
{
    const uint8_t *yp[PROTO_SHARES_MAX];
    size_t tlen = split_tuple_len(f);
    struct spk_arena *arena = NULL;
    uint8_t *back = NULL;
    unsigned i;
    int r = SPK_ERR_NOMEM;

    if ((arena = spk_arena_new(split_interpolate_scratch_len(f, k))) == NULL ||
        (back = spk_secret_new(tlen)) == NULL) {
        goto out;
    }
    for (i = 0; i < k; i++) {
        yp[i] = ys + (size_t)i * tlen;
    }
    if ((r = split_interpolate(f, k, xs, yp, back, arena)) != 0) {
        goto out;
    }
    r = sodium_memcmp(back, tuple, tlen) == 0 ? 0 : SPK_ERR_INTERNAL;
out:
    spk_secret_free(back);
    spk_arena_free(arena);
    return r;
}

/*
 * split_finish fills |rec| (header, one share line with its commitment per
 * holder, the signature by |key|) and |out_shares| (each secret sealed to
 * its holder) for a split whose n secrets of |secret_len| bytes are at
 * |secrets|, holder i getting index i + 1; then checks the record verifies.
 */
static int split_finish(struct proto_record *rec, struct proto_share_file *out_shares,
                        const struct split_rsa_key *key, unsigned k,
                        const struct proto_holder_pub *holders, unsigned n, uint8_t mode,
                        unsigned field_bits, const uint8_t *secrets, size_t secret_len,
                        const uint8_t *vkeys, char *why, size_t why_len)
{
    int r;

    sodium_memzero(rec, sizeof(*rec));
    memcpy(rec->key_id, key->key_id, PROTO_KEY_ID_LEN);
    randombytes_buf(rec->split_id, PROTO_SPLIT_ID_LEN);
    memcpy(rec->modulus, key->modulus, key->modulus_len);
    rec->modulus_len = key->modulus_len;
    memcpy(rec->exponent, key->exponent, key->exponent_len);
    rec->exponent_len = key->exponent_len;
    rec->threshold = k;
    rec->num_shares = n;
    rec->mode = mode;
    rec->field_bits = field_bits;
    /* |vkeys|: v, then v_1 .. v_n, modulus_len bytes each (threshold mode, safe primes). */
    if (vkeys != NULL) {
        rec->has_vkeys = true;
        memcpy(rec->vkey_base, vkeys, key->modulus_len);
        memcpy(rec->vkeys, vkeys + key->modulus_len, (size_t)n * key->modulus_len);
    }
    for (unsigned i = 0; i < n; i++) {
        struct proto_record_share *rs = &rec->shares[i];
        struct proto_share_file *sf = &out_shares[i];
        const uint8_t *y = secrets + (size_t)i * secret_len;

        rs->index = (uint8_t)(i + 1);
        memcpy(rs->holder, holders[i].name, strlen(holders[i].name) + 1);
        split_commitment(rs->commitment, rec->key_id, rec->split_id, rs->index, y, secret_len);

        sodium_memzero(sf, sizeof(*sf));
        memcpy(sf->key_id, rec->key_id, PROTO_KEY_ID_LEN);
        memcpy(sf->split_id, rec->split_id, PROTO_SPLIT_ID_LEN);
        sf->index = rs->index;
        sf->threshold = k;
        sf->num_shares = n;
        sf->mode = mode;
        sf->field_bits = field_bits;
        if ((r = split_share_seal(sf, &holders[i], y, secret_len)) != 0) {
            split_why(why, why_len, "cannot seal the share of %s: %s", holders[i].name,
                      spk_strerror(r));
            return r;
        }
    }
    if ((r = split_record_sign(rec, key->pkey)) != 0) {
        split_why(why, why_len, "cannot sign the record: %s", spk_strerror(r));
        return r;
    }
    /* Checks the encoding round trip as much as the signature. */
    if ((r = split_record_verify(rec)) != 0) {
        split_why(why, why_len, "the new record does not verify: %s", spk_strerror(r));
        return r;
    }
    return 0;
}

int split_key_split(struct proto_record *rec, struct proto_share_file *out_shares,
                    const struct split_rsa_key *key, unsigned k,
                    const struct proto_holder_pub *holders, unsigned n, char *why, size_t why_len)
{
    struct split_field f;
    uint8_t xs[PROTO_SHARES_MAX];
    uint8_t *tuple = NULL;
    uint8_t *ys = NULL;
    size_t tlen;
    unsigned i;
    int r = SPK_ERR_INVALID_ARG;

    split_why(why, why_len, "unexpected error");
    if (n > PROTO_SHARES_MAX) {
        split_why(why, why_len, "%u holders; at most %d", n, PROTO_SHARES_MAX);
        goto out;
    }
    if (k < 2) {
        split_why(why, why_len, "threshold %u; it must be at least 2", k);
        goto out;
    }
    if (k > n) {
        split_why(why, why_len, "threshold %u exceeds the %u holders", k, n);
        goto out;
    }
    if ((r = split_holders_check(holders, n, why, why_len)) != 0) {
        goto out;
    }
    if ((r = split_field_for_primes(&f, key->prime_bits)) != 0) {
        split_why(why, why_len, "no field for %u-bit primes", key->prime_bits);
        r = SPK_ERR_KEY_UNSUPPORTED;
        goto out;
    }
    tlen = split_tuple_len(&f);
    r = SPK_ERR_NOMEM;
    if ((tuple = spk_secret_new(tlen)) == NULL || (ys = spk_secret_new((size_t)n * tlen)) == NULL) {
        split_why(why, why_len, "cannot allocate locked memory");
        goto out;
    }
    if ((r = split_rsa_tuple_export(tuple, &f, key)) != 0) {
        split_why(why, why_len, "cannot export the key's CRT values");
        goto out;
    }
    for (i = 0; i < n; i++) {
        xs[i] = (uint8_t)(i + 1);
    }
    if ((r = split_make_shares(&f, k, n, xs, tuple, ys)) != 0 ||
        (r = split_self_check(&f, k, xs, ys, tuple)) != 0) {
        split_why(why, why_len, "sharing failed its own check: %s", spk_strerror(r));
        goto out;
    }

    if ((r = split_finish(rec, out_shares, key, k, holders, n, PROTO_MODE_REBUILD, f.bits, ys, tlen,
                          NULL, why, why_len)) != 0) {
        goto out;
    }
    if (why != NULL && why_len > 0) {
        why[0] = '\0';
    }
    r = 0;
out:
    spk_secret_free(tuple);
    spk_secret_free(ys);
    spk_stack_wipe(32768);
    return r;
}

int split_key_split_threshold(struct proto_record *rec, struct proto_share_file *out_shares,
                              const struct split_rsa_key *key, unsigned k,
                              const struct proto_holder_pub *holders, unsigned n, char *why,
                              size_t why_len)
{
    uint8_t *s = NULL;
    uint8_t *vkeys = NULL;
    size_t s_len = key->modulus_len;
    int r = SPK_ERR_INVALID_ARG;

    split_why(why, why_len, "unexpected error");
    if (n > PROTO_SHARES_MAX || k < 2 || k > n) {
        split_why(why, why_len, "threshold %u of %u holders; 2 <= k <= n <= %d", k, n,
                  PROTO_SHARES_MAX);
        goto out;
    }
    if ((r = split_holders_check(holders, n, why, why_len)) != 0) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((s = spk_secret_new((size_t)n * s_len)) == NULL) {
        split_why(why, why_len, "cannot allocate locked memory");
        goto out;
    }
    if ((r = split_tss_deal(s, key, k, n, why, why_len)) != 0) {
        goto out;
    }
    /* Safe primes: the record gets Shoup's verification keys, so that every
     * signature share can come with its proof. */
    if ((vkeys = calloc(n + 1, s_len)) == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    r = split_tss_vkeys_make(vkeys, vkeys + s_len, key, s, n);
    if (r == SPK_ERR_KEY_UNSUPPORTED) {
        free(vkeys);
        vkeys = NULL;
    } else if (r == SPK_ERR_INVALID_ARG) {
        split_why(why, why_len,
                  "the verification keys of %u shares of this safe-prime key take %zu bytes, "
                  "more than %d; split among fewer holders",
                  n, (size_t)n * s_len, PROTO_VKEYS_MAX);
        goto out;
    } else if (r != 0) {
        split_why(why, why_len, "cannot make the verification keys: %s", spk_strerror(r));
        goto out;
    }

    if ((r = split_finish(rec, out_shares, key, k, holders, n, PROTO_MODE_THRESHOLD, 0, s, s_len,
                          vkeys, why, why_len)) != 0) {
        goto out;
    }
    if (why != NULL && why_len > 0) {
        why[0] = '\0';
    }
    r = 0;
out:
    spk_secret_free(s);
    free(vkeys);
    return r;
}

int split_share_check(const struct proto_record *rec, const struct split_field *f,
                      const struct split_opened_share *share)
{
    const struct proto_record_share *entry;
    /* Threshold mode has no field: a key share is as long as the modulus. */
    bool threshold = rec->mode == PROTO_MODE_THRESHOLD;

    if (!threshold && (f == NULL || f->bits != rec->field_bits)) {
        return SPK_ERR_INVALID_ARG;
    }
    if (sodium_memcmp(share->key_id, rec->key_id, PROTO_KEY_ID_LEN) != 0 ||
        sodium_memcmp(share->split_id, rec->split_id, PROTO_SPLIT_ID_LEN) != 0) {
        return SPK_ERR_MIXED_SPLIT;
    }
    if (share->index == 0 || (entry = proto_record_find_share(rec, share->index)) == NULL) {
        return SPK_ERR_COMMITMENT;
    }
    if (share->holder != NULL &&
        strncmp(share->holder, entry->holder, sizeof(entry->holder)) != 0) {
        return SPK_ERR_WRONG_HOLDER;
    }
    if (!threshold && split_share_y_check(f, share->y) != 0) {
        return SPK_ERR_MALFORMED;
    }
    return split_commitment_check(entry->commitment, rec->key_id, rec->split_id, share->index,
                                  share->y, threshold ? rec->modulus_len : split_tuple_len(f));
}

static int shares_combine(uint8_t *out_tuple, const struct proto_record *rec,
                          const struct split_field *f, const struct split_opened_share *shares,
                          size_t num_shares, struct spk_arena *arena, bool checked)
{
    const uint8_t *ys[PROTO_SHARES_MAX];
    uint8_t xs[PROTO_SHARES_MAX];
    bool seen[256] = {false};
    size_t i;
    int r = SPK_ERR_INVALID_ARG;

    if (f->bits != rec->field_bits || rec->threshold < 2 || rec->threshold > PROTO_SHARES_MAX) {
        goto out;
    }
    for (i = 0; i < num_shares; i++) {
        if (!checked && (r = split_share_check(rec, f, &shares[i])) != 0) {
            goto out;
        }
        if (seen[shares[i].index]) {
            r = SPK_ERR_DUP_INDEX;
            goto out;
        }
        seen[shares[i].index] = true;
    }
    if (num_shares < rec->threshold) {
        r = SPK_ERR_THRESHOLD;
        goto out;
    }
    for (i = 0; i < rec->threshold; i++) {
        xs[i] = shares[i].index;
        ys[i] = shares[i].y;
    }
    if ((r = split_interpolate(f, rec->threshold, xs, ys, out_tuple, arena)) != 0) {
        goto out;
    }
    if ((r = split_rsa_tuple_check(f, out_tuple, rec->modulus, rec->modulus_len)) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        sodium_memzero(out_tuple, split_tuple_len(f));
    }
    spk_arena_reset(arena);
    return r;
}

int split_shares_combine(uint8_t *out_tuple, const struct proto_record *rec,
                         const struct split_field *f, const struct split_opened_share *shares,
                         size_t num_shares, struct spk_arena *arena)
{
    return shares_combine(out_tuple, rec, f, shares, num_shares, arena, false);
}

int split_shares_combine_checked(uint8_t *out_tuple, const struct proto_record *rec,
                                 const struct split_field *f,
                                 const struct split_opened_share *shares, size_t num_shares,
                                 struct spk_arena *arena)
{
    return shares_combine(out_tuple, rec, f, shares, num_shares, arena, true);
}
