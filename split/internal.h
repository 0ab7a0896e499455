#ifndef SPK_SPLIT_INTERNAL_H
#define SPK_SPLIT_INTERNAL_H

/*
 * Private declarations of the split library, visible to its unit tests. Field
 * elements are little-endian GMP limb vectors of f->limbs limbs holding a
 * value in [0, M), M = 2^bits - 1.
 */

#include <stdbool.h>
#include <stddef.h>

#include <gmp.h>
#include <openssl/bn.h>

#include "split/split.h"

/* Largest field: 2^4253 - 1 in 67 limbs. */
#define SPLIT_FE_LIMBS_MAX 67

/* split_fe_modulus writes M into |m| (f->limbs limbs). */
void split_fe_modulus(const struct split_field *f, mp_limb_t *m);

/*
 * split_fe_from_bytes reads y_len big-endian bytes into |r| (f->limbs limbs)
 * in constant time and returns true when the value is below M. |r| holds the
 * value either way.
 */
SPK_WUR bool split_fe_from_bytes(const struct split_field *f, mp_limb_t *r, const uint8_t *in);
/* split_fe_to_bytes writes |a| (f->limbs limbs, < 2^(8 y_len)) as y_len big-endian bytes. */
void split_fe_to_bytes(const struct split_field *f, uint8_t *out, const mp_limb_t *a);

/*
 * split_fe_reduce_scratch: limbs of scratch split_fe_reduce needs for a
 * |tn|-limb input.
 */
size_t split_fe_reduce_scratch(const struct split_field *f, size_t tn);
/*
 * split_fe_reduce sets |r| (f->limbs limbs) to |t| mod M in constant time.
 * |t| has |tn| >= f->limbs + 1 limbs, holds a value below 2^in_bits with
 * in_bits <= 2 * f->bits + 16, and is destroyed. |r| may equal |t|.
 */
void split_fe_reduce(const struct split_field *f, mp_limb_t *r, mp_limb_t *t, size_t tn,
                     unsigned in_bits, mp_limb_t *scratch);

/* split_fe_mul_scratch: limbs of scratch for split_fe_mul. */
size_t split_fe_mul_scratch(const struct split_field *f);
/* split_fe_mul: r = a * b mod M, constant time (mpn_sec_mul + folding). */
void split_fe_mul(const struct split_field *f, mp_limb_t *r, const mp_limb_t *a, const mp_limb_t *b,
                  mp_limb_t *scratch);
/* split_fe_add: r = a + b mod M, constant time. |scratch|: 2 * limbs + 2 limbs. */
void split_fe_add(const struct split_field *f, mp_limb_t *r, const mp_limb_t *a, const mp_limb_t *b,
                  mp_limb_t *scratch);

/*
 * split_lagrange_weights writes the k Lagrange basis values at 0,
 * w_i = prod_{j != i} x_j / (x_j - x_i) mod M, into |w| (k * f->limbs limbs).
 * The xs are public. Returns 0, SPK_ERR_INVALID_ARG (x = 0, k < 2) or
 * SPK_ERR_DUP_INDEX.
 */
SPK_WUR int split_lagrange_weights(const struct split_field *f, mp_limb_t *w, unsigned k,
                                   const uint8_t *xs);

/*
 * split_lagrange_small: when every weight at 0 is +-c_i / d with integers
 * c_i < 2^56 and d < 2^64 (few, small xs), writes c_i, their signs (|neg|: 1
 * for negative) and d, and returns true; false means the general path. The xs
 * must already be valid (non-zero, distinct).
 */
bool split_lagrange_small(unsigned k, const uint8_t *xs, uint64_t *c, uint8_t *neg, uint64_t *d);

/*
 * split_limbs_from_be reads |len| big-endian bytes into |num_limbs| limbs
 * (bytes beyond them ignored), split_limbs_to_be writes |num_limbs| limbs as
 * |len| big-endian bytes (zero-padded, higher limbs cut); both in constant
 * time, for secret values.
 */
void split_limbs_from_be(mp_limb_t *out, size_t num_limbs, const uint8_t *in, size_t len);
void split_limbs_to_be(uint8_t *out, size_t len, const mp_limb_t *in, size_t num_limbs);

/* ---- threshold signers (split_tss.c, split_tss_proof.c) -------------------- */

/* What a prover keeps once it has verification keys (split_tss_proof.c). */
struct split_tss_prover;

struct split_tss_signer {
    BN_CTX *ctx;
    BN_MONT_CTX *mont;
    BIGNUM *n;
    BIGNUM *exp; /* 2 Delta s_i */
    BIGNUM *r_m; /* r, Montgomery form */
    BIGNUM *u_m; /* r^-exp, Montgomery form */
    BIGNUM *t1;
    BIGNUM *t2;
    size_t n_len;
    unsigned uses;
    unsigned num_players;
    uint8_t *s;                      /* s_i, n_len bytes (spk_secret_new); NULL if longer */
    struct split_tss_prover *prover; /* NULL until split_tss_signer_set_vkeys */
};

/* split_tss_bn_secret: a BIGNUM from the secure heap flagged BN_FLG_CONSTTIME. */
BIGNUM *split_tss_bn_secret(void);
/* split_tss_signer_proof_free wipes and frees signer->prover (split_tss_proof.c). */
void split_tss_signer_proof_free(struct split_tss_signer *signer);

/*
 * split_tss_subset_next advances |sel|, k increasing indices in 0..num-1, to
 * the next k-subset in lexicographic order and returns true, or returns false
 * after the last one. Start from {0, 1, ..., k-1}.
 */
bool split_tss_subset_next(unsigned *sel, unsigned k, unsigned num);

/* split_tss_export: |v| (0 <= v < 2^(8 len)) as |len| big-endian bytes. */
void split_tss_export(uint8_t *out, size_t len, const mpz_t v);

#endif
