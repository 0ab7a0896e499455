/* Shamir split and interpolation over every field; commitments. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <gmp.h>
#include <sodium.h>

#include "split/internal.h"

static const unsigned all_bits[] = {1279, 2203, 2281, 3217, 4253};
#define NUM_FIELDS (sizeof(all_bits) / sizeof(all_bits[0]))
#define TUPLE_MAX (SPLIT_NUM_SECRETS * PROTO_FIELD_Y_MAX)

static void field(struct split_field *f, unsigned bits)
{
    assert_int_equal(split_field_init(f, bits), 0);
}

static void modulus(mpz_t m, unsigned bits)
{
    mpz_set_ui(m, 0);
    mpz_setbit(m, bits);
    mpz_sub_ui(m, m, 1);
}

static void put(uint8_t *out, size_t len, const mpz_t v)
{
    size_t count = 0;

    memset(out, 0, len);
    assert_true(mpz_sizeinbase(v, 256) <= len);
    if (mpz_sgn(v) != 0) {
        mpz_export(out + len - mpz_sizeinbase(v, 256), &count, 1, 1, 1, 0, v);
    }
}

/* A tuple with edge values: 0, 1, M - 1, and two random values below M. */
static void make_tuple(const struct split_field *f, uint8_t *tuple)
{
    mpz_t m, v;

    mpz_inits(m, v, NULL);
    modulus(m, f->bits);
    mpz_set_ui(v, 0);
    put(tuple, f->y_len, v);
    mpz_set_ui(v, 1);
    put(tuple + f->y_len, f->y_len, v);
    mpz_sub_ui(v, m, 1);
    put(tuple + 2 * f->y_len, f->y_len, v);
    randombytes_buf(tuple + 3 * f->y_len, 2 * f->y_len);
    tuple[3 * f->y_len] &= (uint8_t)(0xffu >> (8 * f->y_len - f->bits + 1));
    tuple[4 * f->y_len] &= (uint8_t)(0xffu >> (8 * f->y_len - f->bits + 1));
    mpz_clears(m, v, NULL);
}

/* combine the shares picked by |mask| (exactly k bits) and compare. */
static int combine_mask(const struct split_field *f, unsigned k, unsigned n, const uint8_t *xs,
                        const uint8_t *ys, unsigned mask, uint8_t *out, struct spk_arena *arena)
{
    const uint8_t *pick_y[255];
    uint8_t pick_x[255];
    unsigned i, c = 0;
    int r;

    for (i = 0; i < n; i++) {
        if (mask & (1u << i)) {
            pick_x[c] = xs[i];
            pick_y[c] = ys + (size_t)i * split_tuple_len(f);
            c++;
        }
    }
    assert_int_equal(c, k);
    spk_arena_reset(arena);
    r = split_interpolate(f, k, pick_x, pick_y, out, arena);
    return r;
}

static void round_trip(const struct split_field *f, unsigned k, unsigned n)
{
    uint8_t xs[255];
    uint8_t *tuple = spk_secret_new(TUPLE_MAX);
    uint8_t *out = spk_secret_new(TUPLE_MAX);
    uint8_t *ys = spk_secret_new((size_t)n * TUPLE_MAX);
    struct spk_arena *arena = spk_arena_new(split_interpolate_scratch_len(f, k));
    unsigned mask, i, combos = 0;

    assert_non_null(tuple);
    assert_non_null(out);
    assert_non_null(ys);
    assert_non_null(arena);
    for (i = 0; i < n; i++) {
        /* Spread out, not just 1..n. */
        xs[i] = (uint8_t)(1 + (i * 37 + n) % 255);
    }
    make_tuple(f, tuple);
    assert_int_equal(split_make_shares(f, k, n, xs, tuple, ys), 0);
    /* A share is not the secret. */
    assert_memory_not_equal(ys + 3 * f->y_len, tuple + 3 * f->y_len, f->y_len);

    for (mask = 0; mask < (1u << n); mask++) {
        if ((unsigned)__builtin_popcount(mask) != k) {
            continue;
        }
        memset(out, 0xee, split_tuple_len(f));
        assert_int_equal(combine_mask(f, k, n, xs, ys, mask, out, arena), 0);
        assert_memory_equal(out, tuple, split_tuple_len(f));
        combos++;
    }
    assert_true(combos >= 1);

    if (k > 2) {
        /* k - 1 shares interpolate a lower-degree polynomial: not the secret. */
        assert_int_equal(combine_mask(f, k - 1, n, xs, ys, (1u << (k - 1)) - 1, out, arena), 0);
        assert_memory_not_equal(out + 3 * f->y_len, tuple + 3 * f->y_len, f->y_len);
        assert_memory_not_equal(out + 4 * f->y_len, tuple + 4 * f->y_len, f->y_len);
    } else {
        assert_int_equal(combine_mask(f, 1, n, xs, ys, 1, out, arena), SPK_ERR_INVALID_ARG);
    }
    spk_arena_free(arena);
    spk_secret_free(ys);
    spk_secret_free(out);
    spk_secret_free(tuple);
}

static void test_round_trips(void **state)
{
    struct split_field f;
    size_t i;

    (void)state;
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        round_trip(&f, 2, 2);
        round_trip(&f, 2, 3);
        round_trip(&f, 3, 5);
    }
    field(&f, 1279);
    round_trip(&f, 4, 7);
}

/* The largest threshold: 255 of 255 (the bound of the reduction input). */
static void test_max_threshold(void **state)
{
    struct split_field f;
    uint8_t xs[255];
    const uint8_t *yp[255];
    uint8_t *tuple, *out, *ys;
    struct spk_arena *arena;
    unsigned i;

    (void)state;
    field(&f, 1279);
    tuple = spk_secret_new(split_tuple_len(&f));
    out = spk_secret_new(split_tuple_len(&f));
    ys = spk_secret_new(255 * split_tuple_len(&f));
    arena = spk_arena_new(split_interpolate_scratch_len(&f, 255));
    assert_non_null(arena);
    for (i = 0; i < 255; i++) {
        xs[i] = (uint8_t)(255 - i);
        yp[i] = ys + i * split_tuple_len(&f);
    }
    make_tuple(&f, tuple);
    assert_int_equal(split_make_shares(&f, 255, 255, xs, tuple, ys), 0);
    assert_int_equal(split_interpolate(&f, 255, xs, yp, out, arena), 0);
    assert_memory_equal(out, tuple, split_tuple_len(&f));
    /* The arena was big enough, and not larger than needed by much. */
    assert_true(spk_arena_used(arena) <= split_interpolate_scratch_len(&f, 255));
    spk_arena_free(arena);
    spk_secret_free(ys);
    spk_secret_free(out);
    spk_secret_free(tuple);
}

/*
 * Known answer without randomness: y_i = s + a x_i + b x_i^2 computed with mpz,
 * so interpolation is checked against an independent evaluation.
 */
static void test_known_polynomial(void **state)
{
    static const uint8_t xs[3] = {7, 200, 255};
    struct split_field f;
    uint8_t *ys, *out, *want;
    const uint8_t *yp[3];
    struct spk_arena *arena;
    mpz_t m, s, a, b, y;
    size_t i, j;

    (void)state;
    mpz_inits(m, s, a, b, y, NULL);
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        modulus(m, f.bits);
        ys = spk_secret_new(3 * split_tuple_len(&f));
        out = spk_secret_new(split_tuple_len(&f));
        want = spk_secret_new(split_tuple_len(&f));
        arena = spk_arena_new(split_interpolate_scratch_len(&f, 3));
        for (j = 0; j < SPLIT_NUM_SECRETS; j++) {
            unsigned xi;

            /* s = M - 1 - j, a = M - 2, b = 2^(bits-1) + j */
            mpz_sub_ui(s, m, 1 + j);
            mpz_sub_ui(a, m, 2);
            mpz_set_ui(b, 0);
            mpz_setbit(b, f.bits - 1);
            mpz_add_ui(b, b, j);
            put(want + j * f.y_len, f.y_len, s);
            for (xi = 0; xi < 3; xi++) {
                mpz_mul_ui(y, b, xs[xi]);
                mpz_add(y, y, a);
                mpz_mul_ui(y, y, xs[xi]);
                mpz_add(y, y, s);
                mpz_mod(y, y, m);
                put(ys + xi * split_tuple_len(&f) + j * f.y_len, f.y_len, y);
            }
        }
        for (j = 0; j < 3; j++) {
            yp[j] = ys + j * split_tuple_len(&f);
        }
        assert_int_equal(split_interpolate(&f, 3, xs, yp, out, arena), 0);
        assert_memory_equal(out, want, split_tuple_len(&f));
        spk_arena_free(arena);
        spk_secret_free(want);
        spk_secret_free(out);
        spk_secret_free(ys);
    }
    mpz_clears(m, s, a, b, y, NULL);
}

/* Interpolate every share set in |sets| (k xs each) of one split of n = 10. */
static void both_paths_one(const struct split_field *f, const uint8_t *all_xs, unsigned k,
                           bool want_small)
{
    uint64_t c[255], d;
    uint8_t neg[255];
    const uint8_t *yp[10];
    size_t tl = split_tuple_len(f);
    uint8_t *tuple = spk_secret_new(tl), *out = spk_secret_new(tl);
    uint8_t *ys = spk_secret_new(10 * tl);
    struct spk_arena *arena = spk_arena_new(split_interpolate_scratch_len(f, k));
    unsigned i;

    assert_int_equal(split_lagrange_small(k, all_xs, c, neg, &d), want_small);
    make_tuple(f, tuple);
    assert_int_equal(split_make_shares(f, k, 10, all_xs, tuple, ys), 0);
    for (i = 0; i < 10; i++) {
        yp[i] = ys + i * tl;
    }
    assert_int_equal(split_interpolate(f, k, all_xs, yp, out, arena), 0);
    assert_memory_equal(out, tuple, tl);
    /* The last k shares too (both paths agree on another set). */
    spk_arena_reset(arena);
    assert_int_equal(split_interpolate(f, k, all_xs + 10 - k, yp + 10 - k, out, arena), 0);
    assert_memory_equal(out, tuple, tl);
    spk_arena_free(arena);
    spk_secret_free(ys);
    spk_secret_free(out);
    spk_secret_free(tuple);
}

/* Small-coefficient and general weights both give the secret. */
static void test_both_paths(void **state)
{
    static const uint8_t low[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    static const uint8_t high[10] = {255, 254, 253, 252, 251, 250, 249, 248, 247, 246};
    uint64_t c[3], d;
    uint8_t neg[3];
    struct split_field f;
    size_t i;

    (void)state;
    /* xs 1, 2, 3: w = 3, -3, 1 -> c = (3, 3, 1), signs (+, -, +), d = 1 */
    assert_true(split_lagrange_small(3, low, c, neg, &d));
    assert_int_equal(d, 1);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[1], 3);
    assert_int_equal(c[2], 1);
    assert_int_equal(neg[0], 0);
    assert_int_equal(neg[1], 1);
    assert_int_equal(neg[2], 0);
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        both_paths_one(&f, low, 3, true);
        both_paths_one(&f, high, 3, true);
        both_paths_one(&f, low, 8, true);
        /* 255 * 254 * ... seven factors: beyond 2^56, the general path */
        both_paths_one(&f, high, 8, false);
        both_paths_one(&f, high, 10, false);
    }
}

/* The weights at 0 sum to 1 (interpolating the constant 1). */
static void test_weights_sum(void **state)
{
    static const uint8_t xs[5] = {1, 2, 3, 254, 255};
    mp_limb_t w[5 * SPLIT_FE_LIMBS_MAX];
    mp_limb_t sum[SPLIT_FE_LIMBS_MAX];
    mp_limb_t scratch[4 * SPLIT_FE_LIMBS_MAX + 8];
    struct split_field f;
    unsigned k;
    size_t i, j;

    (void)state;
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        for (k = 2; k <= 5; k++) {
            assert_int_equal(split_lagrange_weights(&f, w, k, xs), 0);
            memset(sum, 0, sizeof(sum));
            for (j = 0; j < k; j++) {
                split_fe_add(&f, sum, sum, w + j * f.limbs, scratch);
            }
            assert_int_equal(sum[0], 1);
            for (j = 1; j < f.limbs; j++) {
                assert_int_equal(sum[j], 0);
            }
        }
    }
}

static void test_refusals(void **state)
{
    struct split_field f;
    uint8_t xs[4] = {1, 2, 3, 4};
    const uint8_t *yp[4];
    uint8_t *tuple, *ys, *out;
    struct spk_arena *arena;
    mpz_t m;
    size_t tl;
    unsigned i;

    (void)state;
    field(&f, 2203);
    tl = split_tuple_len(&f);
    tuple = spk_secret_new(tl);
    out = spk_secret_new(tl);
    ys = spk_secret_new(4 * tl);
    arena = spk_arena_new(4 * split_interpolate_scratch_len(&f, 4));
    make_tuple(&f, tuple);
    for (i = 0; i < 4; i++) {
        yp[i] = ys + i * tl;
    }

    /* split: bad k, n, xs */
    assert_int_equal(split_make_shares(&f, 1, 3, xs, tuple, ys), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_make_shares(&f, 4, 3, xs, tuple, ys), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_make_shares(&f, 2, 256, xs, tuple, ys), SPK_ERR_INVALID_ARG);
    xs[2] = 0;
    assert_int_equal(split_make_shares(&f, 2, 3, xs, tuple, ys), SPK_ERR_INVALID_ARG);
    xs[2] = 1;
    assert_int_equal(split_make_shares(&f, 2, 3, xs, tuple, ys), SPK_ERR_DUP_INDEX);
    xs[2] = 3;
    /* a secret that is not below M */
    memset(tuple + 2 * f.y_len, 0xff, f.y_len);
    memset(ys, 0x55, 3 * tl);
    assert_int_equal(split_make_shares(&f, 2, 3, xs, tuple, ys), SPK_ERR_INVALID_ARG);
    for (i = 0; i < 3 * tl; i++) {
        assert_int_equal(ys[i], 0);
    }
    make_tuple(&f, tuple);
    assert_int_equal(split_make_shares(&f, 3, 4, xs, tuple, ys), 0);

    /* interpolate: k < 2, zero x, duplicate x */
    memset(out, 0x77, tl);
    assert_int_equal(split_interpolate(&f, 1, xs, yp, out, arena), SPK_ERR_INVALID_ARG);
    assert_int_equal(out[0], 0);
    assert_int_equal(split_interpolate(&f, 0, xs, yp, out, arena), SPK_ERR_INVALID_ARG);
    xs[1] = 0;
    assert_int_equal(split_interpolate(&f, 3, xs, yp, out, arena), SPK_ERR_INVALID_ARG);
    xs[1] = 3;
    assert_int_equal(split_interpolate(&f, 3, xs, yp, out, arena), SPK_ERR_DUP_INDEX);
    xs[1] = 2;
    spk_arena_reset(arena);
    assert_int_equal(split_interpolate(&f, 3, xs, yp, out, arena), 0);
    assert_memory_equal(out, tuple, tl);

    /* a y equal to M, then one with a bit above b: malformed, output wiped */
    mpz_init(m);
    modulus(m, f.bits);
    put(ys + tl + 4 * f.y_len, f.y_len, m);
    spk_arena_reset(arena);
    assert_int_equal(split_interpolate(&f, 3, xs, yp, out, arena), SPK_ERR_MALFORMED);
    for (i = 0; i < tl; i++) {
        assert_int_equal(out[i], 0);
    }
    memset(ys + tl + 4 * f.y_len, 0, f.y_len);
    ys[tl + 4 * f.y_len] = 0x80;
    spk_arena_reset(arena);
    assert_int_equal(split_interpolate(&f, 3, xs, yp, out, arena), SPK_ERR_MALFORMED);
    mpz_clear(m);

    /* an arena too small */
    spk_arena_free(arena);
    arena = spk_arena_new(64);
    assert_int_equal(split_interpolate(&f, 3, xs, yp, out, arena), SPK_ERR_NOMEM);

    spk_arena_free(arena);
    spk_secret_free(ys);
    spk_secret_free(out);
    spk_secret_free(tuple);
}

static void test_commitment(void **state)
{
    uint8_t key_id[PROTO_KEY_ID_LEN], split_id[PROTO_SPLIT_ID_LEN];
    uint8_t y[5 * 160];
    uint8_t concat[PROTO_KEY_ID_LEN + PROTO_SPLIT_ID_LEN + 1 + sizeof(y)];
    uint8_t c[PROTO_COMMIT_LEN], want[PROTO_COMMIT_LEN];

    (void)state;
    randombytes_buf(key_id, sizeof(key_id));
    randombytes_buf(split_id, sizeof(split_id));
    randombytes_buf(y, sizeof(y));
    memcpy(concat, key_id, sizeof(key_id));
    memcpy(concat + sizeof(key_id), split_id, sizeof(split_id));
    concat[sizeof(key_id) + sizeof(split_id)] = 42;
    memcpy(concat + sizeof(key_id) + sizeof(split_id) + 1, y, sizeof(y));
    assert_int_equal(crypto_generichash(want, sizeof(want), concat, sizeof(concat), NULL, 0), 0);

    split_commitment(c, key_id, split_id, 42, y, sizeof(y));
    assert_memory_equal(c, want, sizeof(c));
    assert_int_equal(split_commitment_check(want, key_id, split_id, 42, y, sizeof(y)), 0);
    assert_int_equal(split_commitment_check(want, key_id, split_id, 43, y, sizeof(y)),
                     SPK_ERR_COMMITMENT);
    y[sizeof(y) - 1] ^= 1;
    assert_int_equal(split_commitment_check(want, key_id, split_id, 42, y, sizeof(y)),
                     SPK_ERR_COMMITMENT);
    y[sizeof(y) - 1] ^= 1;
    split_id[0] ^= 0x80;
    assert_int_equal(split_commitment_check(want, key_id, split_id, 42, y, sizeof(y)),
                     SPK_ERR_COMMITMENT);
    split_id[0] ^= 0x80;
    want[31] ^= 1;
    assert_int_equal(split_commitment_check(want, key_id, split_id, 42, y, sizeof(y)),
                     SPK_ERR_COMMITMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),      cmocka_unit_test(test_max_threshold),
        cmocka_unit_test(test_known_polynomial), cmocka_unit_test(test_weights_sum),
        cmocka_unit_test(test_refusals),         cmocka_unit_test(test_both_paths),
        cmocka_unit_test(test_commitment),
    };

    if (spk_mem_init() != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
