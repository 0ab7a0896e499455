/*
 * Shamir secret sharing of the five CRT values over a Mersenne field, and the
 * per-share commitments.
 */

#include <string.h>

#include <gmp.h>
#include <sodium.h>

#include "split/internal.h"

/* Stack below us that GMP or our own helpers may have used for secrets. */
#define SPLIT_STACK_WIPE 4096

static size_t round64(size_t len)
{
    return (len + 63) & ~(size_t)63;
}

static size_t limb_bytes(size_t limbs)
{
    return round64(limbs * sizeof(mp_limb_t));
}

/* check_xs: k values in 1..255, pairwise distinct (public). */
static int check_xs(unsigned k, const uint8_t *xs)
{
    bool seen[256] = {false};
    unsigned i;

    for (i = 0; i < k; i++) {
        if (xs[i] == 0) {
            return SPK_ERR_INVALID_ARG;
        }
        if (seen[xs[i]]) {
            return SPK_ERR_DUP_INDEX;
        }
        seen[xs[i]] = true;
    }
    return 0;
}

int split_lagrange_weights(const struct split_field *f, mp_limb_t *w, unsigned k, const uint8_t *xs)
{
    mpz_t m, num, den, t;
    unsigned i, j;
    size_t l;
    int r = SPK_ERR_INTERNAL;

    if (k < 2 || k > PROTO_SHARES_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    if ((r = check_xs(k, xs)) != 0) {
        return r;
    }
    /* Everything here is public: the xs and M. mpz_invert is fine on them. */
    mpz_inits(m, num, den, t, NULL);
    mpz_setbit(m, f->bits);
    mpz_sub_ui(m, m, 1);
    for (i = 0; i < k; i++) {
        mpz_set_ui(num, 1);
        mpz_set_ui(den, 1);
        for (j = 0; j < k; j++) {
            if (j == i) {
                continue;
            }
            mpz_mul_ui(num, num, xs[j]);
            mpz_mul_si(den, den, (long)xs[j] - (long)xs[i]);
        }
        /* den is a product of non-zero values below 255 < M, M prime: invertible. */
        mpz_mod(den, den, m);
        if (mpz_invert(t, den, m) == 0) {
            r = SPK_ERR_INTERNAL;
            goto out;
        }
        mpz_mul(t, t, num);
        mpz_mod(t, t, m);
        for (l = 0; l < f->limbs; l++) {
            w[i * f->limbs + l] = mpz_getlimbn(t, (mp_size_t)l);
        }
    }
    r = 0;
out:
    mpz_clears(m, num, den, t, NULL);
    return r;
}

/* draw_coefficient: uniform in [0, M) by rejection (redraw only M itself). */
static void draw_coefficient(const struct split_field *f, mp_limb_t *a, uint8_t *buf)
{
    unsigned extra = (unsigned)(8 * f->y_len - f->bits);
    uint8_t mask = (uint8_t)(0xffu >> extra);

    for (;;) {
        randombytes_buf(buf, f->y_len);
        buf[0] &= mask;
        /* A b-bit value is < M unless it is M: the loop runs again with 2^-b odds. */
        if (split_fe_from_bytes(f, a, buf)) {
            break;
        }
    }
    sodium_memzero(buf, f->y_len);
}

static size_t make_shares_arena_len(const struct split_field *f, unsigned k)
{
    size_t n = f->limbs;

    /* coefficients, accumulator, Horner product, reduce scratch, random bytes */
    return (size_t)k * limb_bytes(n) + limb_bytes(n) + limb_bytes(n + 1) +
           limb_bytes(split_fe_reduce_scratch(f, n + 1)) + round64(f->y_len);
}

int split_make_shares(const struct split_field *f, unsigned k, unsigned n, const uint8_t *xs,
                      const uint8_t *tuple, uint8_t *out_ys)
{
    struct spk_arena *arena = NULL;
    mp_limb_t *coef, *acc, *t, *rs;
    uint8_t *buf;
    size_t nl = f->limbs;
    size_t tuple_len = split_tuple_len(f);
    unsigned s, d, i;
    int r = SPK_ERR_INTERNAL;

    if (k < 2 || k > n || n > PROTO_SHARES_MAX) {
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    if ((r = check_xs(n, xs)) != 0) {
        goto out;
    }
    arena = spk_arena_new(make_shares_arena_len(f, k));
    if (arena == NULL) {
        r = SPK_ERR_MLOCK;
        goto out;
    }
    coef = spk_arena_alloc(arena, k * nl * sizeof(mp_limb_t));
    acc = spk_arena_alloc(arena, nl * sizeof(mp_limb_t));
    t = spk_arena_alloc(arena, (nl + 1) * sizeof(mp_limb_t));
    rs = spk_arena_alloc(arena, split_fe_reduce_scratch(f, nl + 1) * sizeof(mp_limb_t));
    buf = spk_arena_alloc(arena, f->y_len);
    if (coef == NULL || acc == NULL || t == NULL || rs == NULL || buf == NULL) {
        r = SPK_ERR_INTERNAL;
        goto out;
    }
    for (s = 0; s < SPLIT_NUM_SECRETS; s++) {
        if (!split_fe_from_bytes(f, coef, tuple + s * f->y_len)) {
            r = SPK_ERR_INVALID_ARG;
            goto out;
        }
        for (d = 1; d < k; d++) {
            draw_coefficient(f, coef + d * nl, buf);
        }
        for (i = 0; i < n; i++) {
            /* Horner: acc = (...(a_{k-1} x + a_{k-2}) x + ...) x + a_0. */
            memcpy(acc, coef + (k - 1) * nl, nl * sizeof(mp_limb_t));
            for (d = k - 1; d-- > 0;) {
                mp_limb_t c;

                t[nl] = mpn_mul_1(t, acc, (mp_size_t)nl, xs[i]);
                c = mpn_add_n(t, t, coef + d * nl, (mp_size_t)nl);
                t[nl] += c;
                /* acc * x + a < 2^b * 2^8 + 2^b < 2^(b + 9) */
                split_fe_reduce(f, acc, t, nl + 1, f->bits + 9, rs);
            }
            split_fe_to_bytes(f, out_ys + (size_t)i * tuple_len + s * f->y_len, acc);
        }
        sodium_memzero(coef, k * nl * sizeof(mp_limb_t));
    }
    r = 0;
out:
    if (r != 0 && out_ys != NULL && n <= PROTO_SHARES_MAX) {
        sodium_memzero(out_ys, (size_t)n * tuple_len);
    }
    spk_arena_free(arena);
    spk_stack_wipe(SPLIT_STACK_WIPE);
    return r;
}

/*
 * With few shares the weights at 0 are fractions of small integers:
 * w_i = num_i / den_i with num_i = prod x_j, den_i = prod (x_j - x_i) over
 * j != i. With D = lcm |den_i| and c_i = num_i * D / |den_i|,
 * sum w_i y_i = (sum +-c_i y_i) / D: k single-limb products and one full
 * product by D^-1 per value, instead of k full products. The xs are public,
 * so which path runs, and every branch on c_i or its sign, leaks nothing.
 * c_i < 2^56 keeps k <= 255 terms below 2^(b + 64).
 */
#define SPLIT_SMALL_COEFF_BITS 56

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

bool split_lagrange_small(unsigned k, const uint8_t *xs, uint64_t *c, uint8_t *neg, uint64_t *d)
{
    uint64_t num[PROTO_SHARES_MAX], den[PROTO_SHARES_MAX];
    uint64_t lcm = 1, g;
    unsigned i, j;

    if (k < 2 || k > PROTO_SHARES_MAX) {
        return false;
    }
    for (i = 0; i < k; i++) {
        num[i] = 1;
        den[i] = 1;
        neg[i] = 0;
        for (j = 0; j < k; j++) {
            if (j == i) {
                continue;
            }
            if (__builtin_mul_overflow(num[i], (uint64_t)xs[j], &num[i]) ||
                __builtin_mul_overflow(
                    den[i], (uint64_t)(xs[j] > xs[i] ? xs[j] - xs[i] : xs[i] - xs[j]), &den[i])) {
                return false;
            }
            neg[i] ^= (uint8_t)(xs[j] < xs[i]);
        }
        if (den[i] == 0 || __builtin_mul_overflow(lcm / gcd_u64(lcm, den[i]), den[i], &lcm)) {
            return false;
        }
    }
    for (i = 0; i < k; i++) {
        if (__builtin_mul_overflow(num[i], lcm / den[i], &c[i]) ||
            (c[i] >> SPLIT_SMALL_COEFF_BITS) != 0) {
            return false;
        }
    }
    /* Cancel common factors: for xs 1, 2, 3 this leaves d = 1, no D^-1 product. */
    g = lcm;
    for (i = 0; i < k; i++) {
        g = gcd_u64(g, c[i]);
    }
    for (i = 0; i < k; i++) {
        c[i] /= g;
    }
    *d = lcm / g;
    return true;
}

/* set_inverse: r = d^-1 mod M for a public d > 0. */
static int set_inverse(const struct split_field *f, mp_limb_t *r, uint64_t d)
{
    mpz_t m, t;
    size_t l;
    int ok;

    mpz_inits(m, t, NULL);
    mpz_setbit(m, f->bits);
    mpz_sub_ui(m, m, 1);
    mpz_set_ui(t, 0);
    mpz_import(t, 1, -1, sizeof(d), 0, 0, &d);
    ok = mpz_invert(t, t, m);
    for (l = 0; l < f->limbs; l++) {
        r[l] = mpz_getlimbn(t, (mp_size_t)l);
    }
    mpz_clears(m, t, NULL);
    return ok ? 0 : SPK_ERR_INTERNAL;
}

size_t split_interpolate_scratch_len(const struct split_field *f, unsigned k)
{
    size_t n = f->limbs;
    size_t tn = 2 * n + 2;

    /* weights (general path), y, M, 1/D, product, accumulator, result, scratch */
    return (size_t)k * limb_bytes(n) + 3 * limb_bytes(n) + 2 * limb_bytes(tn) + limb_bytes(n) +
           limb_bytes(split_fe_reduce_scratch(f, tn)) + limb_bytes(split_fe_mul_scratch(f));
}

int split_interpolate(const struct split_field *f, unsigned k, const uint8_t *xs,
                      const uint8_t *const *ys, uint8_t *out_tuple, struct spk_arena *arena)
{
    uint64_t c[PROTO_SHARES_MAX];
    uint8_t neg[PROTO_SHARES_MAX];
    uint64_t d = 1;
    mp_limb_t *w = NULL, *y, *m, *dinv, *prod, *acc, *res, *rs, *ms;
    size_t n = f->limbs;
    size_t tn = 2 * n + 2;
    size_t an; /* accumulator limbs */
    unsigned in_bits;
    bool small;
    unsigned s, i;
    int r = SPK_ERR_INTERNAL;

    if (k < 2 || k > PROTO_SHARES_MAX) {
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    if ((r = check_xs(k, xs)) != 0) {
        goto out;
    }
    small = split_lagrange_small(k, xs, c, neg, &d);
    if (!small) {
        w = spk_arena_alloc(arena, k * n * sizeof(mp_limb_t));
    }
    y = spk_arena_alloc(arena, n * sizeof(mp_limb_t));
    m = spk_arena_alloc(arena, n * sizeof(mp_limb_t));
    dinv = spk_arena_alloc(arena, n * sizeof(mp_limb_t));
    prod = spk_arena_alloc(arena, tn * sizeof(mp_limb_t));
    acc = spk_arena_alloc(arena, tn * sizeof(mp_limb_t));
    res = spk_arena_alloc(arena, n * sizeof(mp_limb_t));
    rs = spk_arena_alloc(arena, split_fe_reduce_scratch(f, tn) * sizeof(mp_limb_t));
    ms = spk_arena_alloc(arena, split_fe_mul_scratch(f) * sizeof(mp_limb_t));
    if ((!small && w == NULL) || y == NULL || m == NULL || dinv == NULL || prod == NULL ||
        acc == NULL || res == NULL || rs == NULL || ms == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    if (small) {
        split_fe_modulus(f, m);
        if (d != 1 && (r = set_inverse(f, dinv, d)) != 0) {
            goto out;
        }
        an = n + 2;
        /* k terms below M * 2^56, k < 2^8 */
        in_bits = f->bits + SPLIT_SMALL_COEFF_BITS + 8;
    } else {
        if ((r = split_lagrange_weights(f, w, k, xs)) != 0) {
            goto out;
        }
        an = tn;
        /* k products below M^2 < 2^(2b), k < 2^8 */
        in_bits = 2 * f->bits + 8;
    }
    for (s = 0; s < SPLIT_NUM_SECRETS; s++) {
        memset(acc, 0, an * sizeof(mp_limb_t));
        for (i = 0; i < k; i++) {
            if (!split_fe_from_bytes(f, y, ys[i] + s * f->y_len)) {
                /* Not a field element: a malformed share, not a secret-dependent path. */
                r = SPK_ERR_MALFORMED;
                goto out;
            }
            if (small) {
                if (neg[i]) {
                    /* -y = M - y; y = 0 gives M, which is 0 mod M too. */
                    (void)mpn_sub_n(y, m, y, (mp_size_t)n);
                }
                prod[n] = mpn_mul_1(prod, y, (mp_size_t)n, (mp_limb_t)c[i]);
                prod[n + 1] = 0;
            } else {
                /* prod[2n..tn) stays zero: sec_mul writes 2n limbs. */
                mpn_sec_mul(prod, y, (mp_size_t)n, w + i * n, (mp_size_t)n, ms);
            }
            (void)mpn_add_n(acc, acc, prod, (mp_size_t)an);
        }
        split_fe_reduce(f, res, acc, an, in_bits, rs);
        if (small && d != 1) {
            split_fe_mul(f, res, res, dinv, ms);
        }
        split_fe_to_bytes(f, out_tuple + s * f->y_len, res);
    }
    r = 0;
out:
    if (r != 0 && out_tuple != NULL) {
        sodium_memzero(out_tuple, split_tuple_len(f));
    }
    spk_stack_wipe(SPLIT_STACK_WIPE);
    return r;
}

static void commitment(uint8_t out[PROTO_COMMIT_LEN], const uint8_t key_id[PROTO_KEY_ID_LEN],
                       const uint8_t split_id[PROTO_SPLIT_ID_LEN], uint8_t x, const uint8_t *y,
                       size_t y_total_len)
{
    crypto_generichash_state st;

    (void)crypto_generichash_init(&st, NULL, 0, PROTO_COMMIT_LEN);
    (void)crypto_generichash_update(&st, key_id, PROTO_KEY_ID_LEN);
    (void)crypto_generichash_update(&st, split_id, PROTO_SPLIT_ID_LEN);
    (void)crypto_generichash_update(&st, &x, 1);
    (void)crypto_generichash_update(&st, y, y_total_len);
    (void)crypto_generichash_final(&st, out, PROTO_COMMIT_LEN);
    /* The state has absorbed secret y bytes. */
    sodium_memzero(&st, sizeof(st));
}

void split_commitment(uint8_t out[PROTO_COMMIT_LEN], const uint8_t key_id[PROTO_KEY_ID_LEN],
                      const uint8_t split_id[PROTO_SPLIT_ID_LEN], uint8_t x, const uint8_t *y,
                      size_t y_total_len)
{
    commitment(out, key_id, split_id, x, y, y_total_len);
}

int split_commitment_check(const uint8_t expected[PROTO_COMMIT_LEN],
                           const uint8_t key_id[PROTO_KEY_ID_LEN],
                           const uint8_t split_id[PROTO_SPLIT_ID_LEN], uint8_t x, const uint8_t *y,
                           size_t y_total_len)
{
    uint8_t got[PROTO_COMMIT_LEN];
    int r;

    commitment(got, key_id, split_id, x, y, y_total_len);
    r = sodium_memcmp(got, expected, PROTO_COMMIT_LEN) == 0 ? 0 : SPK_ERR_COMMITMENT;
    sodium_memzero(got, sizeof(got));
    return r;
}
