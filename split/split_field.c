/*
 * Arithmetic modulo the Mersenne primes M = 2^b - 1 on GMP limb vectors.
 *
 * Constant time in the values: only mpn functions whose running time and
 * memory accesses depend on the sizes alone are used (add_n, sub_n, rshift,
 * mul_1, cnd_sub_n, cnd_swap, sec_mul). mpn_add / mpn_sub / mpn_add_1 are
 * avoided on secrets: their carry loops stop early. mpn_sec_mul is the
 * schoolbook product (GMP 6.2 maps it to mpn_mul_basecase, no Toom with its
 * sign-dependent branches, and needs no scratch); at 20 to 67 limbs that costs
 * little next to a Toom product. Reduction is folding: x = lo + hi with
 * lo = x mod 2^b and hi = x >> b, since 2^b = 1 mod M.
 */

#include <string.h>

#include <gmp.h>
#include <sodium.h>

#include "split/internal.h"

/* Byte conversion loads whole limbs with memcpy and a byte swap. */
_Static_assert(GMP_NUMB_BITS == 64 && sizeof(mp_limb_t) == 8, "64-bit GMP limbs expected");
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "split_field.c assumes a little-endian host"
#endif

/* Exponents of the Mersenne primes we use, smallest first. */
static const unsigned split_field_bits[] = {1279, 2203, 2281, 3217, 4253};

int split_field_init(struct split_field *f, unsigned field_bits)
{
    size_t i;

    for (i = 0; i < sizeof(split_field_bits) / sizeof(split_field_bits[0]); i++) {
        if (split_field_bits[i] == field_bits) {
            f->bits = field_bits;
            f->y_len = (field_bits + 7) / 8;
            f->limbs = (field_bits + GMP_NUMB_BITS - 1) / GMP_NUMB_BITS;
            return 0;
        }
    }
    return SPK_ERR_INVALID_ARG;
}

int split_field_for_primes(struct split_field *f, unsigned prime_bits)
{
    size_t i;

    /*
     * M = 2^b - 1 > 2^prime_bits - 1 >= every prime_bits-bit value when
     * b > prime_bits; b == prime_bits would leave values >= M.
     */
    for (i = 0; i < sizeof(split_field_bits) / sizeof(split_field_bits[0]); i++) {
        if (split_field_bits[i] > prime_bits) {
            return split_field_init(f, split_field_bits[i]);
        }
    }
    return SPK_ERR_KEY_UNSUPPORTED;
}

size_t split_tuple_len(const struct split_field *f)
{
    return SPLIT_NUM_SECRETS * f->y_len;
}

void split_fe_modulus(const struct split_field *f, mp_limb_t *m)
{
    unsigned top = f->bits % GMP_NUMB_BITS;
    size_t i;

    for (i = 0; i < f->limbs; i++) {
        m[i] = GMP_NUMB_MAX;
    }
    if (top != 0) {
        m[f->limbs - 1] = ((mp_limb_t)1 << top) - 1;
    }
}

bool split_fe_from_bytes(const struct split_field *f, mp_limb_t *r, const uint8_t *in)
{
    size_t n = f->limbs;
    unsigned s = f->bits % GMP_NUMB_BITS;
    mp_limb_t top_mask = s == 0 ? GMP_NUMB_MAX : ((mp_limb_t)1 << s) - 1;
    mp_limb_t ones = GMP_NUMB_MAX;
    mp_limb_t above;
    size_t i, full = f->y_len / 8;

    /* Whole big-endian 8-byte words from the end, then the leading bytes. */
    for (i = 0; i < full; i++) {
        uint64_t w;

        memcpy(&w, in + f->y_len - 8 * (i + 1), 8);
        r[i] = (mp_limb_t)__builtin_bswap64(w);
    }
    for (i = full; i < n; i++) {
        r[i] = 0;
    }
    for (i = 0; i < f->y_len - 8 * full; i++) {
        r[full] |= (mp_limb_t)in[f->y_len - 8 * full - 1 - i] << (8 * i);
    }
    /*
     * r < M unless bits at or above b are set, or the low b bits are all
     * ones (r == M). Both tests read every limb, with no branch on values.
     */
    for (i = 0; i + 1 < n; i++) {
        ones &= r[i];
    }
    ones &= r[n - 1] | ~top_mask;
    above = s == 0 ? 0 : r[n - 1] >> s;
    return (above == 0) & (ones != GMP_NUMB_MAX);
}

void split_fe_to_bytes(const struct split_field *f, uint8_t *out, const mp_limb_t *a)
{
    size_t i, full = f->y_len / 8;

    for (i = 0; i < full; i++) {
        uint64_t w = __builtin_bswap64((uint64_t)a[i]);

        memcpy(out + f->y_len - 8 * (i + 1), &w, 8);
    }
    for (i = 0; i < f->y_len - 8 * full; i++) {
        out[f->y_len - 8 * full - 1 - i] = (uint8_t)(a[full] >> (8 * i));
    }
}

void split_limbs_from_be(mp_limb_t *out, size_t num_limbs, const uint8_t *in, size_t len)
{
    memset(out, 0, num_limbs * sizeof(*out));
    for (size_t i = 0; i < len && i < num_limbs * sizeof(mp_limb_t); i++) {
        out[i / sizeof(mp_limb_t)] |= (mp_limb_t)in[len - 1 - i] << (8 * (i % sizeof(mp_limb_t)));
    }
}

void split_limbs_to_be(uint8_t *out, size_t len, const mp_limb_t *in, size_t num_limbs)
{
    for (size_t i = 0; i < len; i++) {
        size_t limb = i / sizeof(mp_limb_t);
        mp_limb_t word = limb < num_limbs ? in[limb] : 0;

        out[len - 1 - i] = (uint8_t)(word >> (8 * (i % sizeof(mp_limb_t))));
    }
}

size_t split_fe_reduce_scratch(const struct split_field *f, size_t tn)
{
    /* hi (tn limbs), then M and a difference (limbs each). */
    return tn + 2 * f->limbs;
}

/*
 * fold_step replaces t (tn limbs) by (t mod 2^b) + (t >> b), which is the same
 * mod M. The limb and bit offsets depend only on b.
 */
static void fold_step(const struct split_field *f, mp_limb_t *t, size_t tn, mp_limb_t *hi)
{
    size_t q = f->bits / GMP_NUMB_BITS;
    unsigned s = f->bits % GMP_NUMB_BITS;
    size_t hn = tn - q;

    memset(hi, 0, tn * sizeof(mp_limb_t));
    if (s != 0) {
        (void)mpn_rshift(hi, t + q, (mp_size_t)hn, s);
        t[q] &= ((mp_limb_t)1 << s) - 1;
        memset(t + q + 1, 0, (tn - q - 1) * sizeof(mp_limb_t));
    } else {
        memcpy(hi, t + q, hn * sizeof(mp_limb_t));
        memset(t + q, 0, hn * sizeof(mp_limb_t));
    }
    /* No carry out: both halves are far below 2^(64 tn). */
    (void)mpn_add_n(t, t, hi, (mp_size_t)tn);
}

void split_fe_reduce(const struct split_field *f, mp_limb_t *r, mp_limb_t *t, size_t tn,
                     unsigned in_bits, mp_limb_t *scratch)
{
    mp_limb_t *hi = scratch;
    mp_limb_t *m = scratch + tn;
    mp_limb_t *d = m + f->limbs;
    unsigned bound = in_bits;
    mp_limb_t borrow;

    /*
     * After a fold a value below 2^bound is at most (2^b - 1) + 2^(bound-b) - 1.
     * Fold while that bound is not yet below 2M; the count depends on the
     * public bound only (two folds for a product, one after Horner's step).
     */
    while (bound > f->bits) {
        unsigned hb = bound - f->bits; /* hi < 2^hb */

        fold_step(f, t, tn, hi);
        if (hb < f->bits) {
            /* value <= M + 2^hb - 1 < 2M: one conditional subtraction left. */
            break;
        }
        bound = hb + 1;
    }
    /* The value now fits f->limbs limbs and is below 2M. */
    split_fe_modulus(f, m);
    borrow = mpn_sub_n(d, t, m, (mp_size_t)f->limbs);
    /* No borrow means t >= M: take t - M. */
    mpn_cnd_swap(borrow ^ 1, t, d, (mp_size_t)f->limbs);
    if (r != t) {
        memcpy(r, t, f->limbs * sizeof(mp_limb_t));
    }
    sodium_memzero(scratch, split_fe_reduce_scratch(f, tn) * sizeof(mp_limb_t));
}

size_t split_fe_mul_scratch(const struct split_field *f)
{
    size_t tn = 2 * f->limbs + 1;
    size_t itch = (size_t)mpn_sec_mul_itch((mp_size_t)f->limbs, (mp_size_t)f->limbs);

    /* product (tn), reduce scratch, sec_mul scratch. */
    return tn + split_fe_reduce_scratch(f, tn) + itch;
}

void split_fe_mul(const struct split_field *f, mp_limb_t *r, const mp_limb_t *a, const mp_limb_t *b,
                  mp_limb_t *scratch)
{
    size_t n = f->limbs;
    size_t tn = 2 * n + 1;
    mp_limb_t *t = scratch;
    mp_limb_t *rs = t + tn;
    mp_limb_t *ms = rs + split_fe_reduce_scratch(f, tn);

    mpn_sec_mul(t, a, (mp_size_t)n, b, (mp_size_t)n, ms);
    t[2 * n] = 0;
    split_fe_reduce(f, r, t, tn, 2 * f->bits, rs);
    sodium_memzero(t, tn * sizeof(mp_limb_t));
}

void split_fe_add(const struct split_field *f, mp_limb_t *r, const mp_limb_t *a, const mp_limb_t *b,
                  mp_limb_t *scratch)
{
    size_t n = f->limbs;
    size_t tn = n + 1;
    mp_limb_t *t = scratch;
    mp_limb_t *rs = scratch + tn;

    t[n] = mpn_add_n(t, a, b, (mp_size_t)n);
    split_fe_reduce(f, r, t, tn, f->bits + 1, rs);
    sodium_memzero(t, tn * sizeof(mp_limb_t));
}

int split_share_y_check(const struct split_field *f, const uint8_t *y)
{
    mp_limb_t v[SPLIT_FE_LIMBS_MAX];
    bool below = true;

    if (f->limbs > SPLIT_FE_LIMBS_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    /* all five read whatever the first says: no branch on share values */
    for (size_t j = 0; j < SPLIT_NUM_SECRETS; j++) {
        below &= split_fe_from_bytes(f, v, y + j * f->y_len);
    }
    sodium_memzero(v, sizeof(v));
    return below ? 0 : SPK_ERR_MALFORMED;
}
