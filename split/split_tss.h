#ifndef SPK_SPLIT_TSS_H
#define SPK_SPLIT_TSS_H

/*
 * Included by split/split.h: threshold mode, Shoup's "Practical Threshold
 * Signatures" (Eurocrypt 2000) protocol 1 as Cloudflare's CIRCL (tss/rsa)
 * deploys it. The key is dealt once (keysplit) into key shares s_i = f(i),
 * f of degree k-1 over Z_m with f(0) = e^-1 mod m, m = (p-1)(q-1)/4. Each
 * party turns an encoded message x into a signature share
 * x_i = x^(2 Delta s_i) mod N (Delta = n!), and any k shares combine into an
 * ordinary RSA signature without anyone holding d, p or q.
 *
 * Party indices are 1..n (the split writes share i for x = i). A key share is
 * the big-endian s_i zero-padded to the modulus length: secret, keep it in
 * spk_secret_new() memory.
 */

/* Blinding pairs are squared on each use and drawn afresh after this many. */
#define SPLIT_TSS_BLIND_USES 1024

/* ---- dealing (split_tss.c) ------------------------------------------------ */

/*
 * split_tss_deal deals |key| k-of-n: writes s_1 .. s_n into |out_shares|
 * (n * key->modulus_len bytes of secret memory owned by the caller; share of
 * index i at (i - 1) * modulus_len). Refuses (SPK_ERR_KEY_UNSUPPORTED, reason
 * in |why|) a public exponent that is not prime, e <= n, or e not invertible
 * modulo m; SPK_ERR_INVALID_ARG for k < 2, k > n, n > PROTO_SHARES_MAX.
 * Coefficients are uniform in [0, m) from libsodium's CSPRNG (rejection
 * sampling). Every temporary is wiped.
 */
SPK_WUR int split_tss_deal(uint8_t *out_shares, const struct split_rsa_key *key, unsigned k,
                           unsigned n, char *why, size_t why_len);

/* ---- signature shares (split_tss.c) ----------------------------------------- */

/*
 * struct split_tss_signer holds one key share ready to sign: the exponent
 * 2 Delta s_i, the Montgomery context of N and a blinding pair. It lives in
 * OpenSSL memory, which spk_mem_init's hooks wipe on free. Not thread-safe:
 * one thread uses one signer at a time.
 */
struct split_tss_signer;

/*
 * split_tss_signer_new makes a signer for the key share |s| (|s_len| bytes,
 * big-endian) of a key with modulus |n| and |num_players| parties (Delta =
 * num_players!). The caller keeps and wipes |s|. Returns 0 or SPK_ERR_*.
 */
SPK_WUR int split_tss_signer_new(struct split_tss_signer **out, const uint8_t *n, size_t n_len,
                                 unsigned num_players, const uint8_t *s, size_t s_len);
/* split_tss_signer_free wipes and frees |signer| (NULL is fine). */
void split_tss_signer_free(struct split_tss_signer *signer);

/*
 * split_tss_sign_share writes x_i = |em|^(2 Delta s_i) mod N into |out|
 * (n_len bytes, big-endian, zero-padded), |em| being n_len bytes below N
 * (else SPK_ERR_INVALID_ARG). Constant-time exponentiation
 * (BN_mod_exp_mont_consttime) of a blinded base: (em * r)^E * r^-E, the pair
 * squared on each use and drawn afresh every SPLIT_TSS_BLIND_USES uses.
 */
SPK_WUR int split_tss_sign_share(struct split_tss_signer *signer, uint8_t *out, const uint8_t *em);

/* ---- combining (split_tss.c) ------------------------------------------------ */

/* One signature share as the combiner received it. */
struct split_tss_part {
    unsigned index;    /* the party, 1..num_players */
    const uint8_t *xi; /* n_len bytes, big-endian */
};

/*
 * split_tss_combine combines signature shares of the encoded message |em|
 * (n_len bytes) into the signature |out_sig| (n_len bytes) with integer
 * Lagrange coefficients lambda_i = Delta prod_{j != i} j / (j - i), then
 * y = w^a em^b with a 4 Delta^2 + b e = 1, and checks y^e == em. When the
 * first k parts do not give a valid signature it tries the other k-subsets
 * of |parts|; with one found, each part outside it is tested in place of a
 * member, and |out_bad| (num_parts flags, may be NULL) marks every part shown
 * faulty. Returns 0, SPK_ERR_THRESHOLD (fewer than k parts), SPK_ERR_DUP_INDEX,
 * SPK_ERR_INVALID_ARG (an index outside 1..num_players, a value >= N), or
 * SPK_ERR_FAULT (no k-subset yields a valid signature). Public values only.
 */
SPK_WUR int split_tss_combine(uint8_t *out_sig, uint8_t *out_bad, const uint8_t *n, size_t n_len,
                              const uint8_t *e, size_t e_len, unsigned num_players, unsigned k,
                              const uint8_t *em, const struct split_tss_part *parts,
                              size_t num_parts);

/*
 * split_tss_recover rebuilds the private key (*out, caller frees) from |k| key
 * shares |shares| (k * n_len bytes, share j of party |indices|[j]): from them
 * a multiple of m, hence of phi(N), which factors N. For disaster recovery
 * only; returns SPK_ERR_KEY_MISMATCH when the shares do not factor N.
 */
SPK_WUR int split_tss_recover(EVP_PKEY **out, const uint8_t *n, size_t n_len, const uint8_t *e,
                              size_t e_len, unsigned num_players, unsigned k,
                              const unsigned *indices, const uint8_t *shares);

/*
 * split_tss_safe_key_new makes a new RSA key (*out, caller frees) of |bits|
 * bits (a multiple of 16, 2048..8192) whose primes are safe primes
 * p = 2p' + 1, q = 2q' + 1, with e = 65537: the keys Shoup's verification
 * keys and proofs of correct signature shares need (m = p'q'). Slow: each
 * 1024-bit safe prime takes seconds. Returns 0 or SPK_ERR_*.
 */
SPK_WUR int split_tss_safe_key_new(EVP_PKEY **out, unsigned bits);

/* ---- verification keys and proofs (split_tss.c, split_tss_proof.c) ------------ */

/*
 * split_tss_vkeys_make makes Shoup's verification keys of a split of |key|
 * whose |n| key shares are |shares| (as split_tss_deal wrote them): a random
 * square v of Z_N^* into |out_v| and v_i = v^s_i mod N into |out_vkeys|
 * (n * modulus_len bytes, v_i at (i - 1) * modulus_len), all modulus_len
 * bytes big-endian. Returns SPK_ERR_KEY_UNSUPPORTED when p or q is not a safe
 * prime (without safe primes a proof proves nothing), SPK_ERR_INVALID_ARG
 * when n * modulus_len exceeds PROTO_VKEYS_MAX. Secret temporaries wiped.
 */
SPK_WUR int split_tss_vkeys_make(uint8_t *out_v, uint8_t *out_vkeys,
                                 const struct split_rsa_key *key, const uint8_t *shares,
                                 unsigned n);

/*
 * split_tss_signer_set_vkeys lets |signer| prove its shares: |v| and |vi|
 * (v_i of this signer's share), modulus length each, from the record.
 * SPK_ERR_KEY_MISMATCH when v^s_i != v_i (the record is not this share's),
 * SPK_ERR_INVALID_ARG for a value outside [2, N), keys already set, or a
 * signer made from a key share longer than the modulus.
 */
SPK_WUR int split_tss_signer_set_vkeys(struct split_tss_signer *signer, const uint8_t *v,
                                       const uint8_t *vi);
/* split_tss_signer_has_vkeys: true once split_tss_signer_set_vkeys succeeded. */
bool split_tss_signer_has_vkeys(const struct split_tss_signer *signer);

/*
 * split_tss_prove writes Shoup's proof that |xi| (n_len bytes) is the
 * signature share of |em| (n_len bytes, below N) for this signer: the
 * challenge into |out_c| (PROTO_TSS_C_LEN bytes) and the response into
 * |out_z| (n_len + PROTO_TSS_Z_EXTRA bytes), as PROTOCOL.md 7.3 specifies.
 * Exponentiations by the nonce are constant time; the nonce and z's
 * temporaries are wiped. SPK_ERR_INVALID_ARG without verification keys or
 * for a value not below N.
 */
SPK_WUR int split_tss_prove(struct split_tss_signer *signer, uint8_t *out_c, uint8_t *out_z,
                            const uint8_t *em, const uint8_t *xi);

/*
 * split_tss_share_verify checks the signature share |xi| (modulus_len bytes)
 * of party |index| over the encoded message |em| (modulus_len bytes) with its
 * proof |c| (PROTO_TSS_C_LEN bytes), |z| (modulus_len + PROTO_TSS_Z_EXTRA
 * bytes) against the verification keys of |rec|. Returns 0 when the proof
 * holds, SPK_ERR_FAULT when it does not (a wrong share, a share of another
 * message or key, a tampered proof), SPK_ERR_UNSUPPORTED for a record without
 * verification keys, SPK_ERR_INVALID_ARG for an index not in the record or
 * |em| not below N. Public values only.
 */
SPK_WUR int split_tss_share_verify(const struct proto_record *rec, const uint8_t *em,
                                   unsigned index, const uint8_t *xi, const uint8_t *c,
                                   const uint8_t *z);

/* ---- message encoding (split_pad.c) ------------------------------------------ */

/*
 * split_pad_encode writes the encoded message of the signing op |op| over
 * |digest| into |em| (n_len bytes, for a modulus of |mod_bits| bits):
 * EMSA-PKCS1-v1_5 or EMSA-PSS with MGF1 of the same hash and the given |salt|
 * (exactly the digest length for PSS, none for PKCS#1). Public data only.
 * SPK_ERR_UNSUPPORTED for an op that is not a signature, SPK_ERR_INVALID_ARG
 * for a digest or salt of the wrong length or a modulus too small.
 */
SPK_WUR int split_pad_encode(uint8_t *em, size_t n_len, unsigned mod_bits, uint8_t op,
                             const uint8_t *digest, size_t digest_len, const uint8_t *salt,
                             size_t salt_len);

/*
 * split_pad_pss_encode: EMSA-PSS (RFC 8017 9.1.1) of |digest| (the length of
 * |md|) with |mgf1_md| and |salt| (|salt_len| bytes, may be 0) into |em| of
 * |k| bytes, for a modulus of |mod_bits| bits (a leading zero byte when
 * mod_bits - 1 is a multiple of 8). SPK_ERR_INVALID_ARG for bad lengths.
 */
SPK_WUR int split_pad_pss_encode(uint8_t *em, size_t k, unsigned mod_bits, const EVP_MD *md,
                                 const EVP_MD *mgf1_md, const uint8_t *digest, size_t digest_len,
                                 const uint8_t *salt, size_t salt_len);

/* split_pad_mgf1_xor: buf[0 .. len) ^= MGF1(seed) with |md| (RFC 8017 B.2.1). */
SPK_WUR int split_pad_mgf1_xor(uint8_t *buf, size_t len, const uint8_t *seed, size_t seed_len,
                               const EVP_MD *md);

#endif
