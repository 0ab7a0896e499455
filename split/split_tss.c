/*
 * Threshold RSA (Shoup, protocol 1): dealing key shares, computing signature
 * shares with a constant-time exponentiation of a blinded base, combining
 * them with integer Lagrange coefficients, and, for disaster recovery,
 * factoring N from k key shares. split/split_tss.h states the scheme.
 *
 * Secret arithmetic: dealing and recovery run once, offline, in keysplit;
 * they use GMP with the wiping allocation hooks and mpz_powm_sec where an
 * exponent is secret, and invert only modulo the public e. Signing runs in
 * the daemons and uses OpenSSL's BN_mod_exp_mont_consttime (measured here
 * 1.4x faster than mpn_sec_powm at 2048 to 4096 bits). Combining touches
 * public values only.
 */

#include <string.h>

#include <gmp.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "split/internal.h"

/* How much stack GMP and OpenSSL may have dirtied with secrets. */
#define SPLIT_TSS_STACK_WIPE (64 * 1024)
/* k-subsets tried before a combination gives up. */
#define SPLIT_TSS_SUBSETS_MAX 4096

/* ---- helpers ---------------------------------------------------------------- */

/* split_tss_delta: Delta = n!. */
static void split_tss_delta(mpz_t delta, unsigned n)
{
    mpz_fac_ui(delta, n);
}

/*
 * split_tss_inv_e sets |out| = e^-1 mod |mod| as (1 + t mod) / e with
 * t = -mod^-1 mod e: the only inverse is modulo the public e. False when e
 * and |mod| are not coprime.
 */
static bool split_tss_inv_e(mpz_t out, const mpz_t mod, const mpz_t e)
{
    mpz_t t;
    bool ok = false;

    mpz_init(t);
    mpz_mod(t, mod, e);
    if (mpz_invert(t, t, e) == 0) {
        goto out;
    }
    mpz_sub(t, e, t);
    mpz_mul(out, t, mod);
    mpz_add_ui(out, out, 1);
    ok = mpz_divisible_p(out, e) != 0;
    if (ok) {
        mpz_divexact(out, out, e);
    }
out:
    mpz_clear(t);
    return ok;
}

void split_tss_export(uint8_t *out, size_t len, const mpz_t v)
{
    size_t bytes = (mpz_sizeinbase(v, 2) + 7) / 8;

    memset(out, 0, len);
    if (mpz_sgn(v) != 0 && bytes <= len) {
        mpz_export(out + (len - bytes), NULL, 1, 1, 1, 0, v);
    }
}

static void split_tss_import(mpz_t v, const uint8_t *in, size_t len)
{
    mpz_import(v, len, 1, 1, 1, 0, in);
}

static int split_tss_why(char *why, size_t why_len, int r, const char *text)
{
    if (why != NULL && why_len > 0) {
        snprintf(why, why_len, "%s", text);
    }
    return r;
}

/* split_tss_bn_param: a secret RSA parameter of |pkey| as an mpz. */
static int split_tss_key_param(mpz_t out, const EVP_PKEY *pkey, const char *name)
{
    BIGNUM *bn = NULL;
    uint8_t buf[PROTO_BN_MAX];
    int len;
    int r = SPK_ERR_KEY_UNSUPPORTED;

    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || (len = BN_num_bytes(bn)) > PROTO_BN_MAX ||
        BN_bn2bin(bn, buf) != len) {
        ERR_clear_error();
        goto out;
    }
    split_tss_import(out, buf, (size_t)len);
    r = 0;
out:
    sodium_memzero(buf, sizeof(buf));
    BN_clear_free(bn);
    return r;
}

/* ---- dealing ------------------------------------------------------------------ */

/* split_tss_uniform: |out| uniform in [0, m) by rejection sampling from libsodium. */
static void split_tss_uniform(mpz_t out, const mpz_t m)
{
    uint8_t buf[PROTO_BN_MAX];
    size_t bits = mpz_sizeinbase(m, 2);
    size_t len = (bits + 7) / 8;

    do {
        randombytes_buf(buf, len);
        buf[0] &= (uint8_t)(0xff >> (8 * len - bits));
        split_tss_import(out, buf, len);
    } while (mpz_cmp(out, m) >= 0);
    sodium_memzero(buf, sizeof(buf));
}

int split_tss_deal(uint8_t *out_shares, const struct split_rsa_key *key, unsigned k, unsigned n,
                   char *why, size_t why_len)
{
    mpz_t p, q, m, e, d, acc, coef[PROTO_SHARES_MAX];
    unsigned num_coef = 0;
    size_t n_len = key->modulus_len;
    int r = SPK_ERR_INVALID_ARG;

    mpz_inits(p, q, m, e, d, acc, NULL);
    if (k < 2 || k > n || n > PROTO_SHARES_MAX) {
        r = split_tss_why(why, why_len, r, "threshold mode needs 2 <= k <= n <= 255");
        goto out;
    }
    split_tss_import(e, key->exponent, key->exponent_len);
    r = SPK_ERR_KEY_UNSUPPORTED;
    if (mpz_probab_prime_p(e, 40) == 0) {
        r = split_tss_why(why, why_len, r, "threshold mode needs a prime public exponent");
        goto out;
    }
    if (mpz_cmp_ui(e, n) <= 0) {
        r = split_tss_why(why, why_len, r,
                          "threshold mode needs a public exponent larger than the number of "
                          "holders");
        goto out;
    }
    if ((r = split_tss_key_param(p, key->pkey, OSSL_PKEY_PARAM_RSA_FACTOR1)) != 0 ||
        (r = split_tss_key_param(q, key->pkey, OSSL_PKEY_PARAM_RSA_FACTOR2)) != 0) {
        r = split_tss_why(why, why_len, r, "the key has no two primes");
        goto out;
    }
    /* m = (p-1)(q-1)/4 */
    mpz_sub_ui(p, p, 1);
    mpz_sub_ui(q, q, 1);
    mpz_mul(m, p, q);
    mpz_tdiv_q_2exp(m, m, 2);
    if (!split_tss_inv_e(d, m, e)) {
        r = split_tss_why(why, why_len, SPK_ERR_KEY_UNSUPPORTED,
                          "the public exponent has no inverse modulo (p-1)(q-1)/4");
        goto out;
    }
    for (num_coef = 0; num_coef + 1 < k; num_coef++) {
        mpz_init(coef[num_coef]);
        split_tss_uniform(coef[num_coef], m);
    }
    /* s_i = f(i) by Horner: f(x) = d + coef[0] x + ... + coef[k-2] x^(k-1). */
    for (unsigned i = 1; i <= n; i++) {
        mpz_set(acc, coef[k - 2]);
        for (unsigned j = k - 1; j-- > 0;) {
            mpz_mul_ui(acc, acc, i);
            mpz_add(acc, acc, j == 0 ? d : coef[j - 1]);
            mpz_mod(acc, acc, m);
        }
        split_tss_export(out_shares + (size_t)(i - 1) * n_len, n_len, acc);
    }
    r = 0;
out:
    for (unsigned j = 0; j < num_coef; j++) {
        mpz_clear(coef[j]);
    }
    mpz_clears(p, q, m, e, d, acc, NULL);
    spk_stack_wipe(SPLIT_TSS_STACK_WIPE);
    return r;
}

/* split_tss_safe_half: |half| = (|prime| - 1) / 2 when that is prime, else false. */
static bool split_tss_safe_half(mpz_t half, const mpz_t prime)
{
    mpz_sub_ui(half, prime, 1);
    mpz_tdiv_q_2exp(half, half, 1);
    return mpz_probab_prime_p(half, 40) != 0;
}

int split_tss_vkeys_make(uint8_t *out_v, uint8_t *out_vkeys, const struct split_rsa_key *key,
                         const uint8_t *shares, unsigned n)
{
    mpz_t p, q, half, mn, r0, v, s, vi;
    size_t n_len = key->modulus_len;
    int r;

    mpz_inits(p, q, half, mn, r0, v, s, vi, NULL);
    if ((r = split_tss_key_param(p, key->pkey, OSSL_PKEY_PARAM_RSA_FACTOR1)) != 0 ||
        (r = split_tss_key_param(q, key->pkey, OSSL_PKEY_PARAM_RSA_FACTOR2)) != 0) {
        goto out;
    }
    /* Q_n is cyclic of order p'q' only for safe primes; elsewhere small subgroups
     * would let a faulty share pass its proof. */
    r = SPK_ERR_KEY_UNSUPPORTED;
    if (!split_tss_safe_half(half, p) || !split_tss_safe_half(half, q)) {
        goto out;
    }
    r = SPK_ERR_INVALID_ARG;
    if (n < 2 || n > PROTO_SHARES_MAX || (size_t)n * n_len > PROTO_VKEYS_MAX) {
        goto out;
    }
    split_tss_import(mn, key->modulus, n_len);
    /* v = r0^2 for r0 uniform in [0, n): a random square, in Q_n unless it shares a
     * factor with n (then draw again). It generates Q_n but with probability
     * about 1/p' + 1/q'. */
    do {
        split_tss_uniform(r0, mn);
        mpz_powm_ui(v, r0, 2, mn);
        mpz_gcd(half, v, mn);
    } while (mpz_cmp_ui(v, 1) <= 0 || mpz_cmp_ui(half, 1) != 0);
    split_tss_export(out_v, n_len, v);
    r = SPK_ERR_INTERNAL;
    for (unsigned i = 0; i < n; i++) {
        split_tss_import(s, shares + (size_t)i * n_len, n_len);
        /* s_i = 0 (probability 2^-2000) would give v_i = 1, which no record holds. */
        if (mpz_sgn(s) == 0) {
            goto out;
        }
        mpz_powm_sec(vi, v, s, mn);
        if (mpz_cmp_ui(vi, 1) <= 0) {
            goto out;
        }
        split_tss_export(out_vkeys + (size_t)i * n_len, n_len, vi);
    }
    r = 0;
out:
    mpz_clears(p, q, half, mn, r0, v, s, vi, NULL);
    spk_stack_wipe(SPLIT_TSS_STACK_WIPE);
    return r;
}

/* ---- signature shares ----------------------------------------------------------- */

BIGNUM *split_tss_bn_secret(void)
{
    BIGNUM *bn = BN_secure_new();

    if (bn != NULL) {
        BN_set_flags(bn, BN_FLG_CONSTTIME);
    }
    return bn;
}

/* split_tss_blind_new draws r and computes r^-exp, both into Montgomery form. */
static int split_tss_blind_new(struct split_tss_signer *s)
{
    int r = SPK_ERR_CRYPTO;

    for (int tries = 0; tries < 8; tries++) {
        if (BN_priv_rand_range(s->t1, s->n) != 1) {
            goto out;
        }
        /* With BN_FLG_CONSTTIME on t1 OpenSSL takes its branch-free inverse. */
        if (!BN_is_zero(s->t1) && BN_mod_inverse(s->t2, s->t1, s->n, s->ctx) != NULL) {
            break;
        }
        ERR_clear_error();
        BN_zero(s->t2);
    }
    if (BN_is_zero(s->t2) || BN_to_montgomery(s->r_m, s->t1, s->mont, s->ctx) != 1 ||
        BN_mod_exp_mont_consttime(s->t1, s->t2, s->exp, s->n, s->ctx, s->mont) != 1 ||
        BN_to_montgomery(s->u_m, s->t1, s->mont, s->ctx) != 1) {
        goto out;
    }
    s->uses = 0;
    r = 0;
out:
    BN_clear(s->t1);
    BN_clear(s->t2);
    return r;
}

int split_tss_signer_new(struct split_tss_signer **out, const uint8_t *n, size_t n_len,
                         unsigned num_players, const uint8_t *s, size_t s_len)
{
    struct split_tss_signer *sg = NULL;
    int r = SPK_ERR_INVALID_ARG;

    *out = NULL;
    if (n_len < PROTO_BN_MIN || n_len > PROTO_BN_MAX || s_len == 0 || s_len > PROTO_BN_MAX ||
        num_players < 2 || num_players > PROTO_SHARES_MAX || n[0] == 0 || (n[n_len - 1] & 1) == 0) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((sg = OPENSSL_zalloc(sizeof(*sg))) == NULL || (sg->ctx = BN_CTX_secure_new()) == NULL ||
        (sg->mont = BN_MONT_CTX_new()) == NULL ||
        (sg->n = BN_bin2bn(n, (int)n_len, NULL)) == NULL ||
        (sg->exp = split_tss_bn_secret()) == NULL || (sg->r_m = split_tss_bn_secret()) == NULL ||
        (sg->u_m = split_tss_bn_secret()) == NULL || (sg->t1 = split_tss_bn_secret()) == NULL ||
        (sg->t2 = split_tss_bn_secret()) == NULL) {
        goto out;
    }
    sg->n_len = n_len;
    sg->num_players = num_players;
    /* s_i itself, for proofs of correctness (split_tss_proof.c); a share is below m < N. */
    if (s_len <= n_len) {
        if ((sg->s = spk_secret_new(n_len)) == NULL) {
            goto out;
        }
        memcpy(sg->s + (n_len - s_len), s, s_len);
    }
    r = SPK_ERR_CRYPTO;
    if (BN_MONT_CTX_set(sg->mont, sg->n, sg->ctx) != 1 ||
        BN_bin2bn(s, (int)s_len, sg->exp) == NULL) {
        goto out;
    }
    /* exp = 2 * n! * s_i; n! < 2^1700 for n <= 255: a word at a time. */
    for (unsigned i = 2; i <= num_players; i++) {
        if (BN_mul_word(sg->exp, i) != 1) {
            goto out;
        }
    }
    if (BN_lshift1(sg->exp, sg->exp) != 1) {
        goto out;
    }
    if ((r = split_tss_blind_new(sg)) != 0) {
        goto out;
    }
    *out = sg;
    sg = NULL;
    r = 0;
out:
    split_tss_signer_free(sg);
    ERR_clear_error();
    spk_stack_wipe(SPLIT_TSS_STACK_WIPE);
    return r;
}

void split_tss_signer_free(struct split_tss_signer *signer)
{
    if (signer == NULL) {
        return;
    }
    BN_clear_free(signer->exp);
    BN_clear_free(signer->r_m);
    BN_clear_free(signer->u_m);
    BN_clear_free(signer->t1);
    BN_clear_free(signer->t2);
    BN_free(signer->n);
    spk_secret_free(signer->s);
    split_tss_signer_proof_free(signer);
    BN_MONT_CTX_free(signer->mont);
    BN_CTX_free(signer->ctx);
    OPENSSL_clear_free(signer, sizeof(*signer));
}

int split_tss_sign_share(struct split_tss_signer *s, uint8_t *out, const uint8_t *em)
{
    int r = SPK_ERR_CRYPTO;

    /* Before em is read: split_tss_blind_new works in t1 and t2 and clears them. */
    if (s->uses >= SPLIT_TSS_BLIND_USES && (r = split_tss_blind_new(s)) != 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (BN_bin2bn(em, (int)s->n_len, s->t1) == NULL) {
        goto out;
    }
    if (BN_cmp(s->t1, s->n) >= 0) {
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    /* (em r)^exp r^-exp: mont_mul(a, b R) = a b. */
    if (BN_mod_mul_montgomery(s->t2, s->t1, s->r_m, s->mont, s->ctx) != 1 ||
        BN_mod_exp_mont_consttime(s->t1, s->t2, s->exp, s->n, s->ctx, s->mont) != 1 ||
        BN_mod_mul_montgomery(s->t2, s->t1, s->u_m, s->mont, s->ctx) != 1 ||
        BN_bn2binpad(s->t2, out, (int)s->n_len) != (int)s->n_len) {
        goto out;
    }
    /* The next pair: (r^2, r^-2 exp), still in Montgomery form. */
    if (BN_mod_mul_montgomery(s->r_m, s->r_m, s->r_m, s->mont, s->ctx) != 1 ||
        BN_mod_mul_montgomery(s->u_m, s->u_m, s->u_m, s->mont, s->ctx) != 1) {
        /* A half-updated pair would make every later share wrong. */
        (void)split_tss_blind_new(s);
        goto out;
    }
    s->uses++;
    r = 0;
out:
    BN_clear(s->t1);
    BN_clear(s->t2);
    ERR_clear_error();
    return r;
}

/* ---- combining -------------------------------------------------------------------- */

/*
 * split_tss_lambda: lambda = Delta prod_{j in S, j != i} j / (j - i), an
 * integer for S within 1..n (Shoup, lemma 1); exact division checked.
 */
static bool split_tss_lambda(mpz_t lambda, const mpz_t delta, const unsigned *set, unsigned k,
                             unsigned i)
{
    mpz_t den;
    bool ok;

    mpz_init_set_si(den, 1);
    mpz_set(lambda, delta);
    for (unsigned t = 0; t < k; t++) {
        if (set[t] == i) {
            continue;
        }
        mpz_mul_ui(lambda, lambda, set[t]);
        mpz_mul_si(den, den, (long)set[t] - (long)i);
    }
    ok = mpz_divisible_p(lambda, den) != 0;
    if (ok) {
        mpz_divexact(lambda, lambda, den);
    }
    mpz_clear(den);
    return ok;
}

/* split_tss_powm_signed: out = b^x mod n for a signed x; false if b is not invertible. */
static bool split_tss_powm_signed(mpz_t out, const mpz_t b, const mpz_t x, const mpz_t n)
{
    mpz_t ax;
    bool ok = true;

    mpz_init(ax);
    mpz_abs(ax, x);
    mpz_powm(out, b, ax, n);
    if (mpz_sgn(x) < 0) {
        ok = mpz_invert(out, out, n) != 0;
    }
    mpz_clear(ax);
    return ok;
}

struct split_tss_ctx {
    mpz_t n, e, x, delta, a, b;
    unsigned k;
};

/* split_tss_try: the signature from the parts |sel| (k of them) into |y| if it verifies. */
static bool split_tss_try(struct split_tss_ctx *c, mpz_t y, const mpz_t *xs,
                          const unsigned *indices, const unsigned *sel)
{
    unsigned set[PROTO_SHARES_MAX];
    mpz_t w, lambda, t;
    bool ok = false;

    mpz_inits(w, lambda, t, NULL);
    for (unsigned j = 0; j < c->k; j++) {
        set[j] = indices[sel[j]];
    }
    mpz_set_ui(w, 1);
    for (unsigned j = 0; j < c->k; j++) {
        if (!split_tss_lambda(lambda, c->delta, set, c->k, set[j])) {
            goto out;
        }
        mpz_mul_2exp(lambda, lambda, 1);
        if (!split_tss_powm_signed(t, xs[sel[j]], lambda, c->n)) {
            goto out;
        }
        mpz_mul(w, w, t);
        mpz_mod(w, w, c->n);
    }
    if (!split_tss_powm_signed(w, w, c->a, c->n) || !split_tss_powm_signed(t, c->x, c->b, c->n)) {
        goto out;
    }
    mpz_mul(y, w, t);
    mpz_mod(y, y, c->n);
    mpz_powm(t, y, c->e, c->n);
    ok = mpz_cmp(t, c->x) == 0;
out:
    mpz_clears(w, lambda, t, NULL);
    return ok;
}

bool split_tss_subset_next(unsigned *sel, unsigned k, unsigned num)
{
    unsigned i = k;

    while (i > 0 && sel[i - 1] == num - k + (i - 1)) {
        i--;
    }
    if (i == 0) {
        return false;
    }
    sel[i - 1]++;
    for (unsigned j = i; j < k; j++) {
        sel[j] = sel[j - 1] + 1;
    }
    return true;
}

int split_tss_combine(uint8_t *out_sig, uint8_t *out_bad, const uint8_t *n, size_t n_len,
                      const uint8_t *e, size_t e_len, unsigned num_players, unsigned k,
                      const uint8_t *em, const struct split_tss_part *parts, size_t num_parts)
{
    struct split_tss_ctx c;
    mpz_t xs[PROTO_SHARES_MAX], g, y, four_d2;
    unsigned indices[PROTO_SHARES_MAX]; /* of the usable parts */
    unsigned where[PROTO_SHARES_MAX];   /* usable part -> position in |parts| */
    unsigned sel[PROTO_SHARES_MAX];
    unsigned num_ok = 0;
    unsigned tries = 0;
    bool found = false;
    int r = SPK_ERR_INVALID_ARG;

    if (out_bad != NULL) {
        memset(out_bad, 0, num_parts);
    }
    mpz_inits(c.n, c.e, c.x, c.delta, c.a, c.b, g, y, four_d2, NULL);
    c.k = k;
    if (n_len == 0 || n_len > PROTO_BN_MAX || e_len == 0 || e_len > PROTO_EXP_MAX || k < 2 ||
        k > num_players || num_players > PROTO_SHARES_MAX || num_parts > PROTO_SHARES_MAX) {
        goto out;
    }
    split_tss_import(c.n, n, n_len);
    split_tss_import(c.e, e, e_len);
    split_tss_import(c.x, em, n_len);
    if (mpz_cmp(c.x, c.n) >= 0) {
        goto out;
    }
    for (size_t i = 0; i < num_parts; i++) {
        if (parts[i].index < 1 || parts[i].index > num_players) {
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (parts[j].index == parts[i].index) {
                r = SPK_ERR_DUP_INDEX;
                goto out;
            }
        }
    }
    for (size_t i = 0; i < num_parts; i++) {
        mpz_init(xs[num_ok]);
        split_tss_import(xs[num_ok], parts[i].xi, n_len);
        /* Garbage that cannot be a share: out of range or sharing a factor with N. */
        mpz_gcd(g, xs[num_ok], c.n);
        if (mpz_sgn(xs[num_ok]) == 0 || mpz_cmp(xs[num_ok], c.n) >= 0 || mpz_cmp_ui(g, 1) != 0) {
            mpz_clear(xs[num_ok]);
            if (out_bad != NULL) {
                out_bad[i] = 1;
            }
            continue;
        }
        indices[num_ok] = parts[i].index;
        where[num_ok] = (unsigned)i;
        num_ok++;
    }
    r = SPK_ERR_THRESHOLD;
    if (num_ok < k) {
        goto free_xs;
    }
    /* a 4 Delta^2 + b e = 1 */
    split_tss_delta(c.delta, num_players);
    mpz_mul(four_d2, c.delta, c.delta);
    mpz_mul_2exp(four_d2, four_d2, 2);
    mpz_gcdext(g, c.a, c.b, four_d2, c.e);
    r = SPK_ERR_FAULT;
    if (mpz_cmp_ui(g, 1) != 0) {
        goto free_xs;
    }
    for (unsigned j = 0; j < k; j++) {
        sel[j] = j;
    }
    do {
        found = split_tss_try(&c, y, xs, indices, sel);
    } while (!found && ++tries < SPLIT_TSS_SUBSETS_MAX && split_tss_subset_next(sel, k, num_ok));
    if (!found) {
        goto free_xs;
    }
    split_tss_export(out_sig, n_len, y);
    /* Name the faulty: each part outside the good set, in place of its first member. */
    if (out_bad != NULL) {
        unsigned trial[PROTO_SHARES_MAX];

        for (unsigned i = 0; i < num_ok; i++) {
            bool member = false;

            for (unsigned j = 0; j < k; j++) {
                member = member || sel[j] == i;
            }
            if (member) {
                continue;
            }
            memcpy(trial, sel, k * sizeof(trial[0]));
            trial[0] = i;
            if (!split_tss_try(&c, g, xs, indices, trial)) {
                out_bad[where[i]] = 1;
            }
        }
    }
    r = 0;
free_xs:
    for (unsigned i = 0; i < num_ok; i++) {
        mpz_clear(xs[i]);
    }
out:
    mpz_clears(c.n, c.e, c.x, c.delta, c.a, c.b, g, y, four_d2, NULL);
    return r;
}

/* ---- recovery ----------------------------------------------------------------------- */

/*
 * split_tss_factor finds p > q with p q = n from a multiple |mult| of
 * phi(n) (Miller's reduction): with mult = 2^t r, r odd, a random base g
 * gives g^(r 2^j) = 1 with a nontrivial square root of 1 before it for at
 * least half of all g.
 */
static bool split_tss_factor(mpz_t p, mpz_t q, const mpz_t n, const mpz_t mult)
{
    mpz_t r, g, y, z, nm1;
    mp_bitcnt_t t;
    bool ok = false;

    mpz_inits(r, g, y, z, nm1, NULL);
    mpz_sub_ui(nm1, n, 1);
    t = mpz_scan1(mult, 0);
    mpz_tdiv_q_2exp(r, mult, t);
    for (unsigned base = 2; base < 200 && !ok; base++) {
        mpz_set_ui(g, base);
        mpz_powm_sec(y, g, r, n);
        for (mp_bitcnt_t j = 0; j < t && !ok; j++) {
            if (mpz_cmp_ui(y, 1) == 0 || mpz_cmp(y, nm1) == 0) {
                break;
            }
            mpz_powm_ui(z, y, 2, n);
            if (mpz_cmp_ui(z, 1) == 0) {
                mpz_sub_ui(y, y, 1);
                mpz_gcd(p, y, n);
                ok = mpz_cmp_ui(p, 1) > 0 && mpz_cmp(p, n) < 0;
            }
            mpz_swap(y, z);
        }
    }
    if (ok) {
        mpz_divexact(q, n, p);
        if (mpz_cmp(p, q) < 0) {
            mpz_swap(p, q);
        }
    }
    mpz_clears(r, g, y, z, nm1, NULL);
    return ok;
}

/*
 * split_tss_pkey_from_pq: the private key of the primes |p| > |q| of n, e,
 * with dp, dq as e^-1 mod p-1, q-1 (inverses modulo the public e only) and
 * qinv = q^(p-2) mod p (constant time), through split_rsa_pkey_from_tuple,
 * which checks p q == n.
 */
static int split_tss_pkey_from_pq(EVP_PKEY **out, const mpz_t p, const mpz_t q, const uint8_t *n,
                                  size_t n_len, const uint8_t *e, size_t e_len)
{
    mpz_t me, s, tmp;
    struct split_field f;
    uint8_t *tuple = NULL;
    size_t tuple_len = 0;
    int r;

    mpz_inits(me, s, tmp, NULL);
    split_tss_import(me, e, e_len);
    if ((r = split_field_for_primes(&f, (unsigned)mpz_sizeinbase(p, 2))) != 0) {
        goto out;
    }
    tuple_len = split_tuple_len(&f);
    r = SPK_ERR_NOMEM;
    if ((tuple = spk_secret_new(tuple_len)) == NULL) {
        goto out;
    }
    split_tss_export(tuple, f.y_len, p);
    split_tss_export(tuple + f.y_len, f.y_len, q);
    r = SPK_ERR_KEY_MISMATCH;
    mpz_sub_ui(tmp, p, 1);
    if (!split_tss_inv_e(s, tmp, me)) {
        goto out;
    }
    split_tss_export(tuple + 2 * f.y_len, f.y_len, s);
    mpz_sub_ui(tmp, q, 1);
    if (!split_tss_inv_e(s, tmp, me)) {
        goto out;
    }
    split_tss_export(tuple + 3 * f.y_len, f.y_len, s);
    /* qinv = q^(p-2) mod p: p is prime, and no inverse modulo a secret. */
    mpz_sub_ui(tmp, p, 2);
    mpz_powm_sec(s, q, tmp, p);
    split_tss_export(tuple + 4 * f.y_len, f.y_len, s);
    r = split_rsa_pkey_from_tuple(out, &f, tuple, n, n_len, e, e_len);
out:
    spk_secret_free(tuple);
    mpz_clears(me, s, tmp, NULL);
    return r;
}

int split_tss_recover(EVP_PKEY **out, const uint8_t *n, size_t n_len, const uint8_t *e,
                      size_t e_len, unsigned num_players, unsigned k, const unsigned *indices,
                      const uint8_t *shares)
{
    mpz_t mn, me, delta, sum, lambda, s, p, q;
    int r = SPK_ERR_INVALID_ARG;

    *out = NULL;
    mpz_inits(mn, me, delta, sum, lambda, s, p, q, NULL);
    if (n_len == 0 || n_len > PROTO_BN_MAX || e_len == 0 || e_len > PROTO_EXP_MAX || k < 2 ||
        k > num_players || num_players > PROTO_SHARES_MAX) {
        goto out;
    }
    for (unsigned i = 0; i < k; i++) {
        if (indices[i] < 1 || indices[i] > num_players) {
            goto out;
        }
        for (unsigned j = 0; j < i; j++) {
            if (indices[i] == indices[j]) {
                r = SPK_ERR_DUP_INDEX;
                goto out;
            }
        }
    }
    split_tss_import(mn, n, n_len);
    split_tss_import(me, e, e_len);
    split_tss_delta(delta, num_players);
    /* sum lambda_i s_i = Delta d' (mod m), so e sum - Delta is a multiple of m. */
    for (unsigned i = 0; i < k; i++) {
        if (!split_tss_lambda(lambda, delta, indices, k, indices[i])) {
            goto out;
        }
        split_tss_import(s, shares + (size_t)i * n_len, n_len);
        mpz_addmul(sum, lambda, s);
    }
    mpz_mul(sum, sum, me);
    mpz_sub(sum, sum, delta);
    mpz_abs(sum, sum);
    mpz_mul_2exp(sum, sum, 2);
    r = SPK_ERR_KEY_MISMATCH;
    if (mpz_sgn(sum) == 0 || !split_tss_factor(p, q, mn, sum)) {
        goto out;
    }
    r = split_tss_pkey_from_pq(out, p, q, n, n_len, e, e_len);
out:
    mpz_clears(mn, me, delta, sum, lambda, s, p, q, NULL);
    spk_stack_wipe(SPLIT_TSS_STACK_WIPE);
    return r;
}

/* ---- safe-prime keys ------------------------------------------------------------ */

/* split_tss_bn_mpz: a BIGNUM into an mpz through a wiped buffer. */
static void split_tss_bn_mpz(mpz_t out, const BIGNUM *bn)
{
    uint8_t buf[PROTO_BN_MAX];
    int len = BN_num_bytes(bn);

    if (len > 0 && len <= PROTO_BN_MAX && BN_bn2bin(bn, buf) == len) {
        split_tss_import(out, buf, (size_t)len);
    } else {
        mpz_set_ui(out, 0);
    }
    sodium_memzero(buf, sizeof(buf));
}

int split_tss_safe_key_new(EVP_PKEY **out, unsigned bits)
{
    static const uint8_t e[] = {0x01, 0x00, 0x01};
    BN_CTX *ctx = NULL;
    BIGNUM *bp = NULL;
    BIGNUM *bq = NULL;
    BIGNUM *bn = NULL;
    uint8_t n[PROTO_BN_MAX];
    size_t n_len = bits / 8;
    mpz_t p, q;
    int r = SPK_ERR_INVALID_ARG;

    *out = NULL;
    mpz_inits(p, q, NULL);
    if (bits % 16 != 0 || bits < 8 * PROTO_BN_MIN || bits > 8 * PROTO_BN_MAX) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((ctx = BN_CTX_secure_new()) == NULL || (bp = split_tss_bn_secret()) == NULL ||
        (bq = split_tss_bn_secret()) == NULL || (bn = BN_new()) == NULL) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    /* p = 2p' + 1, q = 2q' + 1 with p', q' prime; e = 65537 divides neither p-1 nor q-1
     * (p', q' are far larger than e), so e has an inverse modulo (p-1)(q-1)/4 = p'q'. */
    do {
        if (BN_generate_prime_ex2(bp, (int)bits / 2, 1, NULL, NULL, NULL, ctx) != 1 ||
            BN_generate_prime_ex2(bq, (int)bits / 2, 1, NULL, NULL, NULL, ctx) != 1 ||
            BN_mul(bn, bp, bq, ctx) != 1) {
            goto out;
        }
    } while (BN_cmp(bp, bq) == 0 || BN_num_bits(bn) != (int)bits);
    if (BN_bn2binpad(bn, n, (int)n_len) != (int)n_len) {
        goto out;
    }
    if (BN_cmp(bp, bq) < 0) {
        BN_swap(bp, bq);
    }
    split_tss_bn_mpz(p, bp);
    split_tss_bn_mpz(q, bq);
    r = split_tss_pkey_from_pq(out, p, q, n, n_len, e, sizeof(e));
out:
    mpz_clears(p, q, NULL);
    BN_clear_free(bp);
    BN_clear_free(bq);
    BN_free(bn);
    BN_CTX_free(ctx);
    ERR_clear_error();
    spk_stack_wipe(SPLIT_TSS_STACK_WIPE);
    return r;
}
