/*
 * The RSA private-key primitive of the combiner: per-key public state with a
 * long-lived blinding pair, and one constant-time CRT exponentiation per
 * operation on a tuple that exists only for that operation.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/internal.h"

struct comb_rsa_pub {
    BIGNUM *n;
    BIGNUM *e;
    BN_MONT_CTX *mont_n;
    BN_BLINDING *blinding;
    /* Under the blinding's lock: operations since the pair was made, and how
     * many times it was made again (comb_rsa_pub_maintain). */
    uint64_t blinding_uses;
    uint64_t blinding_renewals;
    size_t n_len;
    uint8_t n_bin[PROTO_BN_MAX]; /* n, big-endian, n_len bytes */
};

void comb_rsa_crt_from_tuple(struct comb_rsa_crt *crt, const uint8_t *tuple, size_t y_len)
{
    crt->p = tuple;
    crt->p_len = y_len;
    crt->q = tuple + y_len;
    crt->q_len = y_len;
    crt->dp = tuple + 2 * y_len;
    crt->dp_len = y_len;
    crt->dq = tuple + 3 * y_len;
    crt->dq_len = y_len;
    crt->qinv = tuple + 4 * y_len;
    crt->qinv_len = y_len;
}

size_t comb_rsa_pub_size(const struct comb_rsa_pub *pub)
{
    return pub->n_len;
}

unsigned comb_rsa_pub_bits(const struct comb_rsa_pub *pub)
{
    return (unsigned)BN_num_bits(pub->n);
}

void comb_rsa_pub_free(struct comb_rsa_pub *pub)
{
    if (pub == NULL) {
        return;
    }
    BN_free(pub->n);
    BN_free(pub->e);
    BN_MONT_CTX_free(pub->mont_n);
    /* BN_BLINDING_free clears A and Ai: the blinding factor is secret. */
    BN_BLINDING_free(pub->blinding);
    OPENSSL_free(pub);
}

int comb_rsa_pub_new(struct comb_rsa_pub **out, const uint8_t *n, size_t n_len, const uint8_t *e,
                     size_t e_len)
{
    struct comb_rsa_pub *pub = NULL;
    BN_CTX *ctx = NULL;
    BIGNUM *n_ct = NULL;
    int r = SPK_ERR_INTERNAL;

    *out = NULL;
    if (n == NULL || e == NULL || n_len == 0 || e_len == 0 || n_len > PROTO_BN_MAX + 1 ||
        e_len > PROTO_BN_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    r = SPK_ERR_NOMEM;
    if ((pub = OPENSSL_zalloc(sizeof(*pub))) == NULL || (ctx = BN_CTX_new()) == NULL ||
        (pub->mont_n = BN_MONT_CTX_new()) == NULL) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if ((pub->n = BN_bin2bn(n, (int)n_len, NULL)) == NULL ||
        (pub->e = BN_bin2bn(e, (int)e_len, NULL)) == NULL) {
        goto out;
    }
    r = SPK_ERR_KEY_UNSUPPORTED;
    pub->n_len = (size_t)BN_num_bytes(pub->n);
    if (pub->n_len > PROTO_BN_MAX || BN_num_bits(pub->n) < 512 || !BN_is_odd(pub->n) ||
        !BN_is_odd(pub->e) || BN_is_one(pub->e) || BN_ucmp(pub->e, pub->n) >= 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (BN_bn2binpad(pub->n, pub->n_bin, (int)pub->n_len) != (int)pub->n_len ||
        !BN_MONT_CTX_set(pub->mont_n, pub->n, ctx)) {
        goto out;
    }
    /*
     * The random r of the blinding pair must stay secret, so its inverse is
     * taken in constant time (a copy of n flagged BN_FLG_CONSTTIME, as
     * OpenSSL's own RSA does). This costs a few hundred microseconds, once
     * per key rather than once per operation.
     */
    if ((n_ct = BN_dup(pub->n)) == NULL) {
        goto out;
    }
    BN_set_flags(n_ct, BN_FLG_CONSTTIME);
    pub->blinding = BN_BLINDING_create_param(NULL, pub->e, n_ct, ctx, BN_mod_exp_mont, pub->mont_n);
    if (pub->blinding == NULL) {
        goto out;
    }
    /*
     * Refresh by squaring on every use, and never re-create inside an
     * operation: that would put a constant-time inverse on the hot path every
     * 32 operations. comb_rsa_pub_maintain re-creates the pair from fresh
     * randomness every COMB_BLINDING_RENEW_USES operations instead, between
     * batches, so a pair is never squared forever.
     */
    BN_BLINDING_set_flags(pub->blinding, BN_BLINDING_NO_RECREATE);

    *out = pub;
    pub = NULL;
    r = 0;
out:
    BN_free(n_ct);
    BN_CTX_free(ctx);
    comb_rsa_pub_free(pub);
    return r;
}

int comb_rsa_pub_maintain(struct comb_rsa_pub *pub)
{
    BN_CTX *ctx = NULL;
    bool due;
    int r = 0;

    if (!BN_BLINDING_lock(pub->blinding)) {
        return SPK_ERR_CRYPTO;
    }
    due = pub->blinding_uses >= COMB_BLINDING_RENEW_USES;
    if (due) {
        /*
         * In place: the same BN_BLINDING (its modulus flagged constant time,
         * the Montgomery context of n) gets a new random r, its inverse and
         * r^e. An operation unblinding now uses its own copy of the old
         * factor and only the unchanged context.
         */
        if ((ctx = BN_CTX_secure_new()) == NULL ||
            BN_BLINDING_create_param(pub->blinding, pub->e, pub->n, ctx, BN_mod_exp_mont,
                                     pub->mont_n) == NULL) {
            r = SPK_ERR_CRYPTO;
        } else {
            pub->blinding_uses = 0;
            pub->blinding_renewals++;
        }
    }
    BN_BLINDING_unlock(pub->blinding);
    BN_CTX_free(ctx);
    return r;
}

uint64_t comb_rsa_pub_blinding_renewals(struct comb_rsa_pub *pub)
{
    uint64_t n = 0;

    if (BN_BLINDING_lock(pub->blinding)) {
        n = pub->blinding_renewals;
        BN_BLINDING_unlock(pub->blinding);
    }
    return n;
}

/*
 * What is and is not constant time here. The exponentiations
 * (BN_mod_exp_mont_consttime), the reductions (BN_mod on BN_FLG_CONSTTIME
 * operands: bn_div_fixed_top) and the Montgomery product are OpenSSL's
 * constant-time code. OpenSSL's BIGNUMs do carry a word count ("top") fixed
 * by the value, so loading a value, and the additions of Garner's step,
 * depend on how many leading zero words a value has: 64 zero bits at the top
 * of a uniformly distributed value, about 2^-64 per value. OpenSSL's own RSA
 * has the same property; the engine adds no other branch on a secret.
 */

/* bn_load_secret reads |len| big-endian bytes into |bn| and flags it constant time. */
static int bn_load_secret(BIGNUM *bn, const uint8_t *buf, size_t len)
{
    if (buf == NULL || len == 0 || len > PROTO_FIELD_Y_MAX ||
        BN_bin2bn(buf, (int)len, bn) == NULL) {
        return 0;
    }
    BN_set_flags(bn, BN_FLG_CONSTTIME);
    return 1;
}

struct comb_rsa_key {
    struct comb_rsa_pub *pub;
    BIGNUM *p, *q, *dp, *dq;
    BIGNUM *qinv_mont; /* qinv in p's Montgomery domain: one product gives t * qinv mod p */
    BN_MONT_CTX *mont_p;
    BN_MONT_CTX *mont_q;
    /* The temporaries of every operation on this key: one pool for the
     * batch, not secure-heap allocations per operation, clear-freed with
     * the key. */
    BN_CTX *ctx;
};

void comb_rsa_key_free(struct comb_rsa_key *key)
{
    if (key == NULL) {
        return;
    }
    BN_clear_free(key->p);
    BN_clear_free(key->q);
    BN_clear_free(key->dp);
    BN_clear_free(key->dq);
    BN_clear_free(key->qinv_mont);
    /* BN_MONT_CTX_free clear-frees its copy of the prime and R^2, and
     * BN_CTX_free every temporary the operations left in the pool. */
    BN_MONT_CTX_free(key->mont_p);
    BN_MONT_CTX_free(key->mont_q);
    BN_CTX_free(key->ctx);
    OPENSSL_clear_free(key, sizeof(*key));
}

int comb_rsa_key_new(struct comb_rsa_key **out, struct comb_rsa_pub *pub,
                     const struct comb_rsa_crt *crt)
{
    struct comb_rsa_key *key = NULL;
    BN_CTX *ctx = NULL;
    BIGNUM *qinv = NULL;
    int r = SPK_ERR_NOMEM;

    *out = NULL;
    if ((key = OPENSSL_zalloc(sizeof(*key))) == NULL || (ctx = BN_CTX_secure_new()) == NULL ||
        (key->ctx = BN_CTX_secure_new()) == NULL || (key->p = BN_secure_new()) == NULL ||
        (key->q = BN_secure_new()) == NULL || (key->dp = BN_secure_new()) == NULL ||
        (key->dq = BN_secure_new()) == NULL || (key->qinv_mont = BN_secure_new()) == NULL ||
        (qinv = BN_secure_new()) == NULL || (key->mont_p = BN_MONT_CTX_new()) == NULL ||
        (key->mont_q = BN_MONT_CTX_new()) == NULL) {
        goto out;
    }
    key->pub = pub;
    r = SPK_ERR_KEY_MISMATCH;
    if (!bn_load_secret(key->p, crt->p, crt->p_len) ||
        !bn_load_secret(key->q, crt->q, crt->q_len) ||
        !bn_load_secret(key->dp, crt->dp, crt->dp_len) ||
        !bn_load_secret(key->dq, crt->dq, crt->dq_len) ||
        !bn_load_secret(qinv, crt->qinv, crt->qinv_len) || !BN_is_odd(key->p) ||
        !BN_is_odd(key->q)) {
        goto out;
    }
    /* Montgomery contexts for the secret primes, once per rebuilt key (one batch). */
    r = SPK_ERR_CRYPTO;
    if (!BN_MONT_CTX_set(key->mont_p, key->p, ctx) || !BN_MONT_CTX_set(key->mont_q, key->q, ctx) ||
        !BN_to_montgomery(key->qinv_mont, qinv, key->mont_p, ctx)) {
        goto out;
    }
    BN_set_flags(key->qinv_mont, BN_FLG_CONSTTIME);
    *out = key;
    key = NULL;
    r = 0;
out:
    BN_clear_free(qinv);
    BN_CTX_free(ctx);
    comb_rsa_key_free(key);
    return r;
}

struct comb_rsa_pub *comb_rsa_key_pub(const struct comb_rsa_key *key)
{
    return key->pub;
}

int comb_rsa_private(struct comb_rsa_key *key, uint8_t *out, const uint8_t *in)
{
    struct comb_rsa_pub *pub = key->pub;
    /*
     * Every temporary is one of the key's pool's BIGNUMs (secure heap), which
     * comb_rsa_key_free clear-frees: nothing of the operation outlives the
     * key it was made with.
     */
    BN_CTX *ctx = key->ctx;
    BIGNUM *c, *unblind, *m1, *m2, *t, *res, *check;
    size_t n_len = pub->n_len;
    int locked = 0;
    int r = SPK_ERR_NOMEM;

    BN_CTX_start(ctx);
    c = BN_CTX_get(ctx);
    unblind = BN_CTX_get(ctx);
    m1 = BN_CTX_get(ctx);
    m2 = BN_CTX_get(ctx);
    t = BN_CTX_get(ctx);
    res = BN_CTX_get(ctx);
    check = BN_CTX_get(ctx);
    if (check == NULL) {
        goto out;
    }

    /* The input is public (a ciphertext, or a padded digest). */
    r = SPK_ERR_CRYPTO;
    if (BN_bin2bn(in, (int)n_len, c) == NULL) {
        goto out;
    }
    if (BN_ucmp(c, pub->n) >= 0) {
        r = SPK_ERR_DECRYPT;
        goto out;
    }

    /*
     * Blind: c = c * r^e mod n, and take the matching unblinding factor. The
     * pair is advanced under its lock; unblinding needs only our copy.
     */
    if (!BN_BLINDING_lock(pub->blinding)) {
        goto out;
    }
    locked = 1;
    if (!BN_BLINDING_convert_ex(c, unblind, pub->blinding, ctx)) {
        goto out;
    }
    pub->blinding_uses++;
    BN_BLINDING_unlock(pub->blinding);
    locked = 0;
    BN_set_flags(c, BN_FLG_CONSTTIME);

    /*
     * CRT: m1 = (c mod p)^dp mod p, m2 = (c mod q)^dq mod q. BN_mod with a
     * BN_FLG_CONSTTIME operand divides in constant time (bn_div_fixed_top).
     */
    if (!BN_mod(m1, c, key->p, ctx) || !BN_mod(m2, c, key->q, ctx)) {
        goto out;
    }
    BN_set_flags(m1, BN_FLG_CONSTTIME);
    BN_set_flags(m2, BN_FLG_CONSTTIME);
    if (!BN_mod_exp_mont_consttime_x2(m1, m1, key->dp, key->p, key->mont_p, m2, m2, key->dq, key->q,
                                      key->mont_q, ctx)) {
        goto out;
    }

    /*
     * Garner: h = (m1 - m2) * qinv mod p, result = m2 + h * q.
     * m1 + n - m2 is positive whatever the order of p and q (m2 < q < n), so
     * the subtraction never takes BN_sub's sign branch; BN_mod then reduces
     * it in constant time. qinv is in the Montgomery domain (comb_rsa_key_new),
     * so one Montgomery product gives (t * qinv) mod p.
     */
    if (!BN_add(t, m1, pub->n) || !BN_usub(t, t, m2)) {
        goto out;
    }
    BN_set_flags(t, BN_FLG_CONSTTIME);
    if (!BN_mod(t, t, key->p, ctx) ||
        !BN_mod_mul_montgomery(t, t, key->qinv_mont, key->mont_p, ctx) ||
        !BN_mul(res, t, key->q, ctx) || !BN_add(res, res, m2)) {
        goto out;
    }

    /*
     * Check with e before the result goes anywhere: a CRT result that is
     * wrong modulo one prime would reveal that prime (Boneh-DeMillo-Lipton).
     * The check runs on the blinded pair, (c r^e)^d == m r, whose
     * (m r)^e == c r^e is the same equation as m^e == c, so the
     * variable-time public exponentiation never sees an unblinded secret.
     */
    if (!BN_mod_exp_mont(check, res, pub->e, pub->n, ctx, pub->mont_n)) {
        goto out;
    }
    if (BN_cmp(check, c) != 0) {
        r = SPK_ERR_FAULT;
        goto out;
    }

    /* Unblind: m = (m r) * r^-1 mod n. */
    if (!BN_BLINDING_invert_ex(res, unblind, pub->blinding, ctx)) {
        goto out;
    }
    if (BN_bn2binpad(res, out, (int)n_len) != (int)n_len) {
        goto out;
    }
    r = 0;
out:
    if (locked) {
        BN_BLINDING_unlock(pub->blinding);
    }
    if (r != 0) {
        sodium_memzero(out, n_len);
    }
    BN_CTX_end(ctx);
    return r;
}
