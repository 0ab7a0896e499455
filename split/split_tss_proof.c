/*
 * Shoup's proof of correctness of a signature share ("Practical Threshold
 * Signatures", section 2.1 and protocol 1), for keys of safe primes whose
 * record carries the verification keys v, v_i = v^s_i. It shows, without
 * telling anything about s_i, that log_x~(x_i^2) = log_v(v_i) with
 * x~ = x^(4 Delta), so a combiner names a faulty holder from its one share
 * instead of searching subsets. proto/PROTOCOL.md 7.3 specifies the hash.
 *
 * The prover's secrets are s_i and the nonce r: exponentiations by r are
 * OpenSSL's constant-time ones, z = s_i c + r is computed with GMP's
 * side-channel silent mpn_sec_mul and mpn_cnd_add_n over fixed sizes, and
 * every limb and byte of them lives in locked memory wiped after each proof.
 * The verifier touches public values only.
 */

#include <string.h>

#include <gmp.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <sodium.h>

#include "split/internal.h"

/* The challenge's length in bits, Shoup's L1: r has 2 L1 bits more than N. */
#define SPLIT_TSS_L1 (8 * PROTO_TSS_C_LEN)
#define SPLIT_TSS_LIMB_BYTES sizeof(mp_limb_t)
#define SPLIT_TSS_STACK_WIPE (64 * 1024)

static const char split_tss_proof_label[] = "splitkey-tss-proof-1";

struct split_tss_prover {
    BIGNUM *v;          /* public */
    BIGNUM *vi;         /* public */
    BIGNUM *four_delta; /* public: 4 n! */
    BIGNUM *r;          /* the nonce, secret, wiped after each proof */
    BIGNUM *xt;         /* x~ */
    BIGNUM *xi2;        /* x_i^2 */
    BIGNUM *vp;         /* v^r */
    BIGNUM *xp;         /* x~^r */
    unsigned r_bits;    /* bits(N) + 2 L1 */
    size_t s_limbs;     /* s_i's limbs */
    size_t z_limbs;     /* z's limbs, enough for PROTO_TSS_Z_EXTRA more bytes than N */
    uint8_t *mem;       /* spk_secret_new: r's bytes, then the limbs below */
    size_t mem_len;
    uint8_t *r_bytes;
    mp_limb_t *s;
    mp_limb_t *c;
    mp_limb_t *prod;
    mp_limb_t *rl;
    mp_limb_t *z;
    mp_limb_t *tmp;
};

/* ---- the challenge --------------------------------------------------------------- */

static void split_tss_hash_item(crypto_hash_sha256_state *st, const uint8_t *p, size_t len)
{
    uint8_t prefix[2] = {(uint8_t)(len >> 8), (uint8_t)len};

    crypto_hash_sha256_update(st, prefix, sizeof(prefix));
    crypto_hash_sha256_update(st, p, len);
}

/*
 * split_tss_challenge: c = the first PROTO_TSS_C_LEN bytes of SHA-256 over the
 * label and v, x~, v_i, x_i^2, v', x' (|vals|, six values of |n_len| bytes
 * each), every item preceded by its length as a big-endian u16.
 */
static void split_tss_challenge(uint8_t c[PROTO_TSS_C_LEN], const uint8_t *vals, size_t n_len)
{
    crypto_hash_sha256_state st;
    uint8_t h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256_init(&st);
    split_tss_hash_item(&st, (const uint8_t *)split_tss_proof_label,
                        sizeof(split_tss_proof_label) - 1);
    for (size_t i = 0; i < 6; i++) {
        split_tss_hash_item(&st, vals + i * n_len, n_len);
    }
    crypto_hash_sha256_final(&st, h);
    memcpy(c, h, PROTO_TSS_C_LEN);
}

/* ---- prover ------------------------------------------------------------------------ */

void split_tss_signer_proof_free(struct split_tss_signer *signer)
{
    struct split_tss_prover *pv = signer->prover;

    if (pv == NULL) {
        return;
    }
    BN_free(pv->v);
    BN_free(pv->vi);
    BN_free(pv->four_delta);
    BN_clear_free(pv->r);
    BN_free(pv->xt);
    BN_free(pv->xi2);
    BN_free(pv->vp);
    BN_free(pv->xp);
    spk_secret_free(pv->mem);
    OPENSSL_clear_free(pv, sizeof(*pv));
    signer->prover = NULL;
}

/* split_tss_bn_below: |out| = the |len|-byte |in|, true when 1 < in < n. */
static bool split_tss_bn_below(BIGNUM *out, const uint8_t *in, size_t len, const BIGNUM *n)
{
    return BN_bin2bn(in, (int)len, out) != NULL && BN_cmp(out, n) < 0 && !BN_is_zero(out) &&
           !BN_is_one(out);
}

int split_tss_signer_set_vkeys(struct split_tss_signer *sg, const uint8_t *v, const uint8_t *vi)
{
    struct split_tss_prover *pv = NULL;
    BIGNUM *s = NULL;
    BIGNUM *check = NULL;
    size_t n_len = sg->n_len;
    size_t itch;
    int r = SPK_ERR_INVALID_ARG;

    if (sg->s == NULL || sg->prover != NULL) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((pv = OPENSSL_zalloc(sizeof(*pv))) == NULL || (pv->v = BN_new()) == NULL ||
        (pv->vi = BN_new()) == NULL || (pv->four_delta = BN_new()) == NULL ||
        (pv->r = split_tss_bn_secret()) == NULL || (pv->xt = BN_new()) == NULL ||
        (pv->xi2 = BN_new()) == NULL || (pv->vp = BN_new()) == NULL ||
        (pv->xp = BN_new()) == NULL || (s = split_tss_bn_secret()) == NULL ||
        (check = split_tss_bn_secret()) == NULL) {
        goto out;
    }
    r = SPK_ERR_INVALID_ARG;
    if (!split_tss_bn_below(pv->v, v, n_len, sg->n) ||
        !split_tss_bn_below(pv->vi, vi, n_len, sg->n)) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (BN_set_word(pv->four_delta, 4) != 1) {
        goto out;
    }
    for (unsigned i = 2; i <= sg->num_players; i++) {
        if (BN_mul_word(pv->four_delta, i) != 1) {
            goto out;
        }
    }
    /* The keys must be this share's: v^s_i = v_i, or every proof would fail. */
    if (BN_bin2bn(sg->s, (int)n_len, s) == NULL ||
        BN_mod_exp_mont_consttime(check, pv->v, s, sg->n, sg->ctx, sg->mont) != 1) {
        goto out;
    }
    if (BN_cmp(check, pv->vi) != 0) {
        r = SPK_ERR_KEY_MISMATCH;
        goto out;
    }
    pv->r_bits = (unsigned)BN_num_bits(sg->n) + 2 * SPLIT_TSS_L1;
    pv->s_limbs = (n_len + SPLIT_TSS_LIMB_BYTES - 1) / SPLIT_TSS_LIMB_BYTES;
    pv->z_limbs = (n_len + PROTO_TSS_Z_EXTRA + SPLIT_TSS_LIMB_BYTES - 1) / SPLIT_TSS_LIMB_BYTES;
    itch = (size_t)mpn_sec_mul_itch((mp_size_t)pv->s_limbs, 2);
    /* r's bytes (64 aligned), then s, c, prod, rl, z and mpn_sec_mul's scratch. */
    pv->mem_len = 64 * ((n_len + 2 * PROTO_TSS_C_LEN + 63) / 64) +
                  (pv->s_limbs + 2 + 3 * pv->z_limbs + itch) * sizeof(mp_limb_t);
    r = SPK_ERR_NOMEM;
    if ((pv->mem = spk_secret_new(pv->mem_len)) == NULL) {
        goto out;
    }
    pv->r_bytes = pv->mem;
    pv->s = (mp_limb_t *)(void *)(pv->mem + 64 * ((n_len + 2 * PROTO_TSS_C_LEN + 63) / 64));
    pv->c = pv->s + pv->s_limbs;
    pv->prod = pv->c + 2;
    pv->rl = pv->prod + pv->z_limbs;
    pv->z = pv->rl + pv->z_limbs;
    pv->tmp = pv->z + pv->z_limbs;
    sg->prover = pv;
    pv = NULL;
    r = 0;
out:
    if (pv != NULL) {
        struct split_tss_signer tmp = {.prover = pv};

        split_tss_signer_proof_free(&tmp);
    }
    BN_clear_free(s);
    BN_clear_free(check);
    ERR_clear_error();
    spk_stack_wipe(SPLIT_TSS_STACK_WIPE);
    return r;
}

bool split_tss_signer_has_vkeys(const struct split_tss_signer *signer)
{
    return signer->prover != NULL;
}

int split_tss_prove(struct split_tss_signer *sg, uint8_t *out_c, uint8_t *out_z, const uint8_t *em,
                    const uint8_t *xi)
{
    struct split_tss_prover *pv = sg->prover;
    size_t n_len = sg->n_len;
    size_t r_len;
    uint8_t *vals = NULL;
    int r = SPK_ERR_INVALID_ARG;

    if (pv == NULL) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((vals = OPENSSL_malloc(6 * n_len)) == NULL) {
        goto out;
    }
    r = SPK_ERR_INVALID_ARG;
    if (BN_bin2bn(em, (int)n_len, pv->xp) == NULL || BN_cmp(pv->xp, sg->n) >= 0 ||
        BN_bin2bn(xi, (int)n_len, pv->vp) == NULL || BN_cmp(pv->vp, sg->n) >= 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    /* x~ = x^(4 Delta) and x_i^2: public. */
    if (BN_mod_exp_mont(pv->xt, pv->xp, pv->four_delta, sg->n, sg->ctx, sg->mont) != 1 ||
        BN_mod_sqr(pv->xi2, pv->vp, sg->n, sg->ctx) != 1) {
        goto out;
    }
    /* r uniform below 2^(bits(N) + 2 L1): z = s_i c + r then hides s_i c (s_i c <
     * 2^(bits(N) + L1)) up to a statistical distance of 2^-L1. */
    r_len = (pv->r_bits + 7) / 8;
    randombytes_buf(pv->r_bytes, r_len);
    pv->r_bytes[0] &= (uint8_t)(0xff >> (8 * r_len - pv->r_bits));
    if (BN_bin2bn(pv->r_bytes, (int)r_len, pv->r) == NULL ||
        BN_mod_exp_mont_consttime(pv->vp, pv->v, pv->r, sg->n, sg->ctx, sg->mont) != 1 ||
        BN_mod_exp_mont_consttime(pv->xp, pv->xt, pv->r, sg->n, sg->ctx, sg->mont) != 1) {
        goto out;
    }
    if (BN_bn2binpad(pv->v, vals, (int)n_len) != (int)n_len ||
        BN_bn2binpad(pv->xt, vals + n_len, (int)n_len) != (int)n_len ||
        BN_bn2binpad(pv->vi, vals + 2 * n_len, (int)n_len) != (int)n_len ||
        BN_bn2binpad(pv->xi2, vals + 3 * n_len, (int)n_len) != (int)n_len ||
        BN_bn2binpad(pv->vp, vals + 4 * n_len, (int)n_len) != (int)n_len ||
        BN_bn2binpad(pv->xp, vals + 5 * n_len, (int)n_len) != (int)n_len) {
        goto out;
    }
    split_tss_challenge(out_c, vals, n_len);
    /* z = s_i c + r over fixed sizes: s_i < N, c < 2^L1, so z < 2^(8 n_len + 2 L1 + 1). */
    split_limbs_from_be(pv->s, pv->s_limbs, sg->s, n_len);
    split_limbs_from_be(pv->c, 2, out_c, PROTO_TSS_C_LEN);
    split_limbs_from_be(pv->rl, pv->z_limbs, pv->r_bytes, r_len);
    memset(pv->prod, 0, pv->z_limbs * sizeof(mp_limb_t));
    mpn_sec_mul(pv->prod, pv->s, (mp_size_t)pv->s_limbs, pv->c, 2, pv->tmp);
    (void)mpn_cnd_add_n(1, pv->z, pv->prod, pv->rl, (mp_size_t)pv->z_limbs);
    split_limbs_to_be(out_z, n_len + PROTO_TSS_Z_EXTRA, pv->z, pv->z_limbs);
    r = 0;
out:
    if (pv != NULL) {
        BN_clear(pv->r);
        sodium_memzero(pv->mem, pv->mem_len);
    }
    OPENSSL_free(vals);
    ERR_clear_error();
    spk_stack_wipe(SPLIT_TSS_STACK_WIPE);
    return r;
}

/* ---- verifier ------------------------------------------------------------------------ */

/* split_tss_pow_div: out = a^x / b^y mod n; false when b^y is not invertible. */
static bool split_tss_pow_div(mpz_t out, const mpz_t a, const mpz_t x, const mpz_t b, const mpz_t y,
                              const mpz_t n)
{
    mpz_t t;
    bool ok;

    mpz_init(t);
    mpz_powm(t, b, y, n);
    ok = mpz_invert(t, t, n) != 0;
    if (ok) {
        mpz_powm(out, a, x, n);
        mpz_mul(out, out, t);
        mpz_mod(out, out, n);
    }
    mpz_clear(t);
    return ok;
}

int split_tss_share_verify(const struct proto_record *rec, const uint8_t *em, unsigned index,
                           const uint8_t *xi, const uint8_t *c, const uint8_t *z)
{
    const uint8_t *vi_bytes;
    size_t n_len = rec->modulus_len;
    mpz_t n, v, vi, x, xt, xi2, mc, mz, vp, xp, g;
    uint8_t *vals = NULL;
    uint8_t c2[PROTO_TSS_C_LEN];
    int r = SPK_ERR_UNSUPPORTED;

    mpz_inits(n, v, vi, x, xt, xi2, mc, mz, vp, xp, g, NULL);
    if (rec->mode != PROTO_MODE_THRESHOLD || !rec->has_vkeys) {
        goto out;
    }
    r = SPK_ERR_INVALID_ARG;
    if ((vi_bytes = proto_record_vkey(rec, index)) == NULL || n_len < PROTO_BN_MIN ||
        n_len > PROTO_BN_MAX) {
        goto out;
    }
    mpz_import(n, n_len, 1, 1, 1, 0, rec->modulus);
    mpz_import(v, n_len, 1, 1, 1, 0, rec->vkey_base);
    mpz_import(vi, n_len, 1, 1, 1, 0, vi_bytes);
    mpz_import(x, n_len, 1, 1, 1, 0, em);
    mpz_import(xi2, n_len, 1, 1, 1, 0, xi);
    mpz_import(mc, PROTO_TSS_C_LEN, 1, 1, 1, 0, c);
    mpz_import(mz, n_len + PROTO_TSS_Z_EXTRA, 1, 1, 1, 0, z);
    if (mpz_cmp(x, n) >= 0) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((vals = OPENSSL_malloc(6 * n_len)) == NULL) {
        goto out;
    }
    r = SPK_ERR_FAULT;
    /* A share of no use: out of range or not invertible. */
    mpz_gcd(g, xi2, n);
    if (mpz_sgn(xi2) == 0 || mpz_cmp(xi2, n) >= 0 || mpz_cmp_ui(g, 1) != 0) {
        goto out;
    }
    /* x~ = x^(4 Delta), Delta = n! for the record's n shares. */
    mpz_fac_ui(g, rec->num_shares);
    mpz_mul_2exp(g, g, 2);
    mpz_powm(xt, x, g, n);
    mpz_powm_ui(xi2, xi2, 2, n);
    /* v' = v^z v_i^-c and x' = x~^z (x_i^2)^-c. */
    if (!split_tss_pow_div(vp, v, mz, vi, mc, n) || !split_tss_pow_div(xp, xt, mz, xi2, mc, n)) {
        goto out;
    }
    split_tss_export(vals, n_len, v);
    split_tss_export(vals + n_len, n_len, xt);
    split_tss_export(vals + 2 * n_len, n_len, vi);
    split_tss_export(vals + 3 * n_len, n_len, xi2);
    split_tss_export(vals + 4 * n_len, n_len, vp);
    split_tss_export(vals + 5 * n_len, n_len, xp);
    split_tss_challenge(c2, vals, n_len);
    if (sodium_memcmp(c2, c, PROTO_TSS_C_LEN) != 0) {
        goto out;
    }
    r = 0;
out:
    OPENSSL_free(vals);
    mpz_clears(n, v, vi, x, xt, xi2, mc, mz, vp, xp, g, NULL);
    return r;
}
