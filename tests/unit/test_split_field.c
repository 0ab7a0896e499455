/* Field arithmetic modulo the Mersenne primes: edges and a cross-check against mpz. */

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

/* Scratch big enough for any call below. */
#define SCRATCH_LIMBS (8 * SPLIT_FE_LIMBS_MAX + 64)

static void to_limbs(mp_limb_t *out, size_t n, const mpz_t v)
{
    size_t i;

    assert_true(mpz_sgn(v) >= 0);
    assert_true(mpz_size(v) <= n);
    for (i = 0; i < n; i++) {
        out[i] = mpz_getlimbn(v, (mp_size_t)i);
    }
}

static void from_limbs(mpz_t out, const mp_limb_t *in, size_t n)
{
    mpz_import(out, n, -1, sizeof(mp_limb_t), 0, 0, in);
}

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

static void test_field_init(void **state)
{
    struct split_field f;
    size_t i;

    (void)state;
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        assert_int_equal(f.bits, all_bits[i]);
        assert_int_equal(f.y_len, (all_bits[i] + 7) / 8);
        assert_int_equal(f.limbs, (all_bits[i] + 63) / 64);
        assert_int_equal(split_tuple_len(&f), 5 * f.y_len);
    }
    assert_int_equal(split_field_init(&f, 0), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_field_init(&f, 1278), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_field_init(&f, 521), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_field_init(&f, 4254), SPK_ERR_INVALID_ARG);
}

static void test_field_for_primes(void **state)
{
    static const unsigned cases[][2] = {
        {512, 1279},  {1024, 1279}, {1278, 1279}, {1279, 2203}, {1536, 2203},
        {2048, 2203}, {2202, 2203}, {2203, 2281}, {2280, 2281}, {2281, 3217},
        {3072, 3217}, {3217, 4253}, {4096, 4253}, {4252, 4253},
    };
    struct split_field f;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(split_field_for_primes(&f, cases[i][0]), 0);
        assert_int_equal(f.bits, cases[i][1]);
    }
    assert_int_equal(split_field_for_primes(&f, 4253), SPK_ERR_KEY_UNSUPPORTED);
    assert_int_equal(split_field_for_primes(&f, 8192), SPK_ERR_KEY_UNSUPPORTED);
}

/* bytes_of: v as y_len big-endian bytes via mpz (a second implementation). */
static void bytes_of(uint8_t *out, const struct split_field *f, const mpz_t v)
{
    size_t count = 0;

    memset(out, 0, f->y_len);
    assert_true(mpz_sizeinbase(v, 256) <= f->y_len);
    if (mpz_sgn(v) != 0) {
        mpz_export(out + f->y_len - mpz_sizeinbase(v, 256), &count, 1, 1, 1, 0, v);
    }
}

static void test_bytes_edges(void **state)
{
    uint8_t buf[PROTO_FIELD_Y_MAX];
    uint8_t back[PROTO_FIELD_Y_MAX];
    mp_limb_t a[SPLIT_FE_LIMBS_MAX];
    struct split_field f;
    mpz_t m, v, got;
    size_t i;

    (void)state;
    mpz_inits(m, v, got, NULL);
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        modulus(m, f.bits);

        /* 0, 1, M - 1 are field elements and round-trip. */
        mpz_set_ui(v, 0);
        bytes_of(buf, &f, v);
        assert_true(split_fe_from_bytes(&f, a, buf));
        from_limbs(got, a, f.limbs);
        assert_int_equal(mpz_cmp(got, v), 0);

        mpz_set_ui(v, 1);
        bytes_of(buf, &f, v);
        assert_true(split_fe_from_bytes(&f, a, buf));
        split_fe_to_bytes(&f, back, a);
        assert_memory_equal(back, buf, f.y_len);

        mpz_sub_ui(v, m, 1);
        bytes_of(buf, &f, v);
        assert_true(split_fe_from_bytes(&f, a, buf));
        from_limbs(got, a, f.limbs);
        assert_int_equal(mpz_cmp(got, v), 0);
        split_fe_to_bytes(&f, back, a);
        assert_memory_equal(back, buf, f.y_len);

        /* M, M + 1, 2^bits and all-ones bytes are not. */
        bytes_of(buf, &f, m);
        assert_false(split_fe_from_bytes(&f, a, buf));
        mpz_add_ui(v, m, 1);
        bytes_of(buf, &f, v);
        assert_false(split_fe_from_bytes(&f, a, buf));
        mpz_set_ui(v, 0);
        mpz_setbit(v, f.bits);
        mpz_add_ui(v, v, 5);
        bytes_of(buf, &f, v);
        assert_false(split_fe_from_bytes(&f, a, buf));
        memset(buf, 0xff, f.y_len);
        assert_false(split_fe_from_bytes(&f, a, buf));
        /* A single bit above b in the top byte. */
        memset(buf, 0, f.y_len);
        buf[0] = (uint8_t)(1u << (f.bits % 8));
        assert_false(split_fe_from_bytes(&f, a, buf));
    }
    mpz_clears(m, v, got, NULL);
}

/* reduce_check: split_fe_reduce of v (below 2^in_bits) in tn limbs equals v mod M. */
static void reduce_check(const struct split_field *f, const mpz_t v, size_t tn, unsigned in_bits)
{
    mp_limb_t t[2 * SPLIT_FE_LIMBS_MAX + 2];
    mp_limb_t r[SPLIT_FE_LIMBS_MAX];
    mp_limb_t scratch[SCRATCH_LIMBS];
    mpz_t m, want, got;

    assert_true(tn <= sizeof(t) / sizeof(t[0]));
    assert_true(split_fe_reduce_scratch(f, tn) <= SCRATCH_LIMBS);
    mpz_inits(m, want, got, NULL);
    modulus(m, f->bits);
    mpz_mod(want, v, m);
    to_limbs(t, tn, v);
    split_fe_reduce(f, r, t, tn, in_bits, scratch);
    from_limbs(got, r, f->limbs);
    if (mpz_cmp(got, want) != 0) {
        gmp_printf("bits %u in %Zx\n got %Zx\nwant %Zx\n", f->bits, v, got, want);
        fail();
    }
    mpz_clears(m, want, got, NULL);
}

static void test_reduce_edges(void **state)
{
    struct split_field f;
    mpz_t m, v;
    size_t i, tn;

    (void)state;
    mpz_inits(m, v, NULL);
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        modulus(m, f.bits);
        tn = 2 * f.limbs + 2;

        mpz_set_ui(v, 0);
        reduce_check(&f, v, tn, 2 * f.bits + 8);
        mpz_set(v, m); /* M -> 0 */
        reduce_check(&f, v, tn, 2 * f.bits + 8);
        reduce_check(&f, v, f.limbs + 1, f.bits + 1);
        mpz_sub_ui(v, m, 1);
        reduce_check(&f, v, f.limbs + 1, f.bits + 1);
        mpz_add_ui(v, m, 1); /* 2^b -> 1 */
        reduce_check(&f, v, f.limbs + 1, f.bits + 1);
        mpz_mul_2exp(v, m, 1); /* 2M -> 0 */
        reduce_check(&f, v, f.limbs + 1, f.bits + 2);
        mpz_sub_ui(v, m, 1); /* (M - 1)^2 -> 1 */
        mpz_mul(v, v, v);
        reduce_check(&f, v, 2 * f.limbs + 1, 2 * f.bits);
        mpz_mul(v, m, m); /* M^2 -> 0 */
        reduce_check(&f, v, 2 * f.limbs + 1, 2 * f.bits);
        /* The largest input interpolation feeds in: 2^(2b + 8) - 1. */
        mpz_set_ui(v, 0);
        mpz_setbit(v, 2 * f.bits + 8);
        mpz_sub_ui(v, v, 1);
        reduce_check(&f, v, tn, 2 * f.bits + 8);
        /* 255 * (M - 1)^2 and 255 * (M - 1)^2 + ... the Horner bound 2^(b+9) - 1 */
        mpz_sub_ui(v, m, 1);
        mpz_mul(v, v, v);
        mpz_mul_ui(v, v, 255);
        reduce_check(&f, v, tn, 2 * f.bits + 8);
        mpz_set_ui(v, 0);
        mpz_setbit(v, f.bits + 9);
        mpz_sub_ui(v, v, 1);
        reduce_check(&f, v, f.limbs + 1, f.bits + 9);
    }
    mpz_clears(m, v, NULL);
}

static void test_mul_add_edges(void **state)
{
    mp_limb_t a[SPLIT_FE_LIMBS_MAX], b[SPLIT_FE_LIMBS_MAX], r[SPLIT_FE_LIMBS_MAX];
    mp_limb_t scratch[SCRATCH_LIMBS];
    struct split_field f;
    mpz_t m, v, got;
    size_t i;

    (void)state;
    mpz_inits(m, v, got, NULL);
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        assert_true(split_fe_mul_scratch(&f) <= SCRATCH_LIMBS);
        modulus(m, f.bits);
        mpz_sub_ui(v, m, 1);
        to_limbs(a, f.limbs, v);

        /* (M - 1) * (M - 1) = 1 */
        split_fe_mul(&f, r, a, a, scratch);
        from_limbs(got, r, f.limbs);
        assert_int_equal(mpz_cmp_ui(got, 1), 0);

        /* (M - 1) + 1 = 0, (M - 1) + (M - 1) = M - 2 */
        mpz_set_ui(v, 1);
        to_limbs(b, f.limbs, v);
        split_fe_add(&f, r, a, b, scratch);
        from_limbs(got, r, f.limbs);
        assert_int_equal(mpz_sgn(got), 0);
        split_fe_add(&f, r, a, a, scratch);
        from_limbs(got, r, f.limbs);
        mpz_sub_ui(v, m, 2);
        assert_int_equal(mpz_cmp(got, v), 0);

        /* 0 * x = 0, 1 * x = x */
        memset(b, 0, sizeof(b));
        split_fe_mul(&f, r, a, b, scratch);
        from_limbs(got, r, f.limbs);
        assert_int_equal(mpz_sgn(got), 0);
        b[0] = 1;
        split_fe_mul(&f, r, a, b, scratch);
        assert_memory_equal(r, a, f.limbs * sizeof(mp_limb_t));

        /* 2^(b-1) * 2 = 2^b = 1 */
        mpz_set_ui(v, 0);
        mpz_setbit(v, f.bits - 1);
        to_limbs(a, f.limbs, v);
        memset(b, 0, sizeof(b));
        b[0] = 2;
        split_fe_mul(&f, r, a, b, scratch);
        from_limbs(got, r, f.limbs);
        assert_int_equal(mpz_cmp_ui(got, 1), 0);
    }
    mpz_clears(m, v, got, NULL);
}

/* random_below: uniform below M, or one of a few edge-biased shapes. */
static void random_elem(mpz_t out, gmp_randstate_t rs, const mpz_t m, unsigned bits, int shape)
{
    switch (shape % 4) {
    case 0:
        mpz_urandomm(out, rs, m);
        break;
    case 1: /* close to M */
        mpz_urandomb(out, rs, 64);
        mpz_sub(out, m, out);
        mpz_sub_ui(out, out, 1);
        break;
    case 2: /* long runs of ones and zeros */
        mpz_rrandomb(out, rs, bits);
        mpz_mod(out, out, m);
        break;
    default: /* small */
        mpz_urandomb(out, rs, 70);
        break;
    }
}

static void test_random_vs_mpz(void **state)
{
    mp_limb_t a[SPLIT_FE_LIMBS_MAX], b[SPLIT_FE_LIMBS_MAX], r[SPLIT_FE_LIMBS_MAX];
    mp_limb_t scratch[SCRATCH_LIMBS];
    struct split_field f;
    gmp_randstate_t rs;
    mpz_t m, x, y, want, got;
    size_t i;
    int iter;

    (void)state;
    gmp_randinit_default(rs);
    gmp_randseed_ui(rs, 20240501);
    mpz_inits(m, x, y, want, got, NULL);
    for (i = 0; i < NUM_FIELDS; i++) {
        field(&f, all_bits[i]);
        modulus(m, f.bits);
        for (iter = 0; iter < 400; iter++) {
            random_elem(x, rs, m, f.bits, iter);
            random_elem(y, rs, m, f.bits, iter / 4);
            to_limbs(a, f.limbs, x);
            to_limbs(b, f.limbs, y);

            split_fe_mul(&f, r, a, b, scratch);
            from_limbs(got, r, f.limbs);
            mpz_mul(want, x, y);
            mpz_mod(want, want, m);
            assert_int_equal(mpz_cmp(got, want), 0);

            split_fe_add(&f, r, a, b, scratch);
            from_limbs(got, r, f.limbs);
            mpz_add(want, x, y);
            mpz_mod(want, want, m);
            assert_int_equal(mpz_cmp(got, want), 0);

            /* Any value below 2^(2b+8) reduces right. */
            mpz_urandomb(x, rs, 2 * f.bits + 8);
            reduce_check(&f, x, 2 * f.limbs + 2, 2 * f.bits + 8);
        }
    }
    mpz_clears(m, x, y, want, got, NULL);
    gmp_randclear(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_init),    cmocka_unit_test(test_field_for_primes),
        cmocka_unit_test(test_bytes_edges),   cmocka_unit_test(test_reduce_edges),
        cmocka_unit_test(test_mul_add_edges), cmocka_unit_test(test_random_vs_mpz),
    };

    if (spk_mem_init() != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
