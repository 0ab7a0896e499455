#ifndef SPK_SPLIT_H
#define SPK_SPLIT_H

/*
 * split: Shamir secret sharing of an RSA key's CRT tuple over a Mersenne
 * prime field, share commitments, and RSA key handling for keysplit.
 *
 * A "tuple" is the five CRT values p, q, dp, dq, qinv, in that order, each
 * big-endian and zero-padded to the field's y_len: 5 * y_len bytes. A share's
 * "y" has the same layout (y_1 .. y_5). Tuples and y values are secret: keep
 * them in spk_secret_new() or spk_arena memory.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/proto.h"
#include "base/base.h"

#define SPLIT_NUM_SECRETS PROTO_NUM_SECRETS

struct split_field {
    unsigned bits; /* M = 2^bits - 1 */
    size_t y_len;  /* ceil(bits / 8) */
    size_t limbs;  /* GMP limbs to hold a value < M */
};

/* split_field_init: one of the Mersenne exponents of proto_field_y_len. */
SPK_WUR int split_field_init(struct split_field *f, unsigned field_bits);
/* split_field_for_primes: the smallest field with M > 2^prime_bits. */
SPK_WUR int split_field_for_primes(struct split_field *f, unsigned prime_bits);
/* split_tuple_len: 5 * y_len. */
size_t split_tuple_len(const struct split_field *f);

/*
 * split_make_shares draws, for each of the five secrets in |tuple|, a random
 * polynomial of degree k-1 with that secret as constant term (coefficients
 * uniform in [0, M) by rejection sampling from libsodium) and writes
 * y_i = f(xs[i]) for i < n into |out_ys| (n * tuple_len bytes, secret memory).
 * |xs| are n distinct values in 1..255. 2 <= k <= n <= 255.
 */
SPK_WUR int split_make_shares(const struct split_field *f, unsigned k, unsigned n,
                              const uint8_t *xs, const uint8_t *tuple, uint8_t *out_ys);

/*
 * split_interpolate computes the tuple at x = 0 from k shares (xs[i], ys[i])
 * into |out_tuple| (tuple_len bytes). Constant time in the y values: public
 * Lagrange weights from the xs, Mersenne folding, no division on secrets.
 * Refuses zero or duplicate xs (SPK_ERR_DUP_INDEX / SPK_ERR_INVALID_ARG).
 * Refuses k < 2 (SPK_ERR_INVALID_ARG) and y values not below M
 * (SPK_ERR_MALFORMED); on any failure |out_tuple| is zeroed.
 * |arena| gives the scratch space (split_interpolate_scratch_len bytes); it is
 * not reset here, so it holds secret temporaries until the caller's
 * spk_arena_reset.
 */
SPK_WUR int split_interpolate(const struct split_field *f, unsigned k, const uint8_t *xs,
                              const uint8_t *const *ys, uint8_t *out_tuple,
                              struct spk_arena *arena);

/*
 * split_interpolate_scratch_len: the arena bytes split_interpolate takes for
 * |k| shares in |f| (an spk_arena of at least this capacity, freshly reset).
 */
size_t split_interpolate_scratch_len(const struct split_field *f, unsigned k);

/*
 * split_share_y_check: each of the five y_j of |y| (split_tuple_len(f)
 * bytes) is below M (PROTOCOL.md section 6), checked in constant time.
 * 0 or SPK_ERR_MALFORMED.
 */
SPK_WUR int split_share_y_check(const struct split_field *f, const uint8_t *y);

/* split_commitment: BLAKE2b-256(key_id || split_id || x || y_1 .. y_5). */
void split_commitment(uint8_t out[PROTO_COMMIT_LEN], const uint8_t key_id[PROTO_KEY_ID_LEN],
                      const uint8_t split_id[PROTO_SPLIT_ID_LEN], uint8_t x, const uint8_t *y,
                      size_t y_total_len);
/* split_commitment_check: constant-time compare; 0 or SPK_ERR_COMMITMENT. */
SPK_WUR int split_commitment_check(const uint8_t expected[PROTO_COMMIT_LEN],
                                   const uint8_t key_id[PROTO_KEY_ID_LEN],
                                   const uint8_t split_id[PROTO_SPLIT_ID_LEN], uint8_t x,
                                   const uint8_t *y, size_t y_total_len);

/* RSA key handling, share sealing and records: split/split_rsa.h. */
#include "split/split_rsa.h"

/* Threshold mode (Shoup): split/split_tss.h. */
#include "split/split_tss.h"

#endif
