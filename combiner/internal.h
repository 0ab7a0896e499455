#ifndef SPK_COMBINER_INTERNAL_H
#define SPK_COMBINER_INTERNAL_H

/*
 * combiner/internal.h: the combiner's RSA engine. Given the public key of a
 * split key (n, e) and a rebuilt CRT tuple (p, q, dp, dq, qinv), it performs
 * the private-key operations a TLS server needs: PKCS#1 v1.5 and PSS
 * signatures, TLS premaster decryption with implicit rejection, generic
 * PKCS#1 v1.5 and OAEP decryption, and raw RSA.
 *
 * Every private operation: input blinded with the key's long-lived blinding
 * pair, CRT exponentiation with OpenSSL's constant-time BN routines and fresh
 * Montgomery contexts for p and q, Garner recombination, unblinding, and a
 * check of the result with e before anything leaves. All secret BIGNUMs come
 * from one BN_CTX made for the operation and freed with BN_clear_free; the
 * stack below the engine is wiped on return.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "proto/proto.h"

/* Hash algorithms the engine knows. Which operation takes which is listed at
 * comb_rsa_op. The table of operations (proto_op_info) names them as
 * enum proto_hash, so the shared values are the same. */
enum comb_hash {
    COMB_HASH_NONE = PROTO_HASH_NONE,
    COMB_HASH_MD5_SHA1 = PROTO_HASH_MD5_SHA1, /* the TLS 1.0/1.1 36-byte MD5 || SHA-1 digest */
    COMB_HASH_SHA1 = PROTO_HASH_SHA1,
    COMB_HASH_SHA224 = PROTO_HASH_SHA224,
    COMB_HASH_SHA256 = PROTO_HASH_SHA256,
    COMB_HASH_SHA384 = PROTO_HASH_SHA384,
    COMB_HASH_SHA512 = PROTO_HASH_SHA512,
    COMB_HASH_SHA512_224, /* the engine's own (Wycheproof vectors), no operation uses them */
    COMB_HASH_SHA512_256,
};

/* The engine's request kinds are the operation table's (enum proto_op_kind). */
enum comb_rsa_op_kind {
    COMB_RSA_RAW = PROTO_OP_KIND_RAW,                 /* out = in^d mod n; in is n_len bytes, < n */
    COMB_RSA_SIGN_PKCS1 = PROTO_OP_KIND_SIGN_PKCS1,   /* in is a digest of |hash| */
    COMB_RSA_SIGN_PSS = PROTO_OP_KIND_SIGN_PSS,       /* salt length = digest length */
    COMB_RSA_DECRYPT_TLS = PROTO_OP_KIND_DECRYPT_TLS, /* TLS RSA key exchange; 48 bytes out */
    COMB_RSA_DECRYPT_PKCS1 = PROTO_OP_KIND_DECRYPT_PKCS1, /* generic PKCS#1 v1.5 type 2 */
    COMB_RSA_DECRYPT_OAEP = PROTO_OP_KIND_DECRYPT_OAEP,   /* RSAES-OAEP */
};

/*
 * struct comb_rsa_crt: borrowed views of the five CRT values, each big-endian
 * and possibly zero-padded on the left (a rebuilt tuple has every value at
 * y_len bytes). The engine copies them into BIGNUMs it wipes; it never writes
 * through these pointers and keeps no reference after the call.
 */
struct comb_rsa_crt {
    const uint8_t *p;
    size_t p_len;
    const uint8_t *q;
    size_t q_len;
    const uint8_t *dp;
    size_t dp_len;
    const uint8_t *dq;
    size_t dq_len;
    const uint8_t *qinv; /* q^-1 mod p */
    size_t qinv_len;
};

/*
 * comb_rsa_crt_from_tuple points |crt| at the five values of a split tuple
 * (split/split.h layout: p, q, dp, dq, qinv, each |y_len| bytes).
 */
void comb_rsa_crt_from_tuple(struct comb_rsa_crt *crt, const uint8_t *tuple, size_t y_len);

/*
 * struct comb_rsa_pub: the long-lived, public half of one key: n, e, a
 * Montgomery context for n and the key's blinding pair (A = r^e, Ai = r^-1
 * mod n for a random r, made with a constant-time inverse, refreshed by
 * squaring on every operation, made again from fresh randomness every
 * COMB_BLINDING_RENEW_USES operations by comb_rsa_pub_maintain, never
 * switched off).
 * Thread-safe: the blinding pair is advanced under its own lock
 * (BN_BLINDING_lock), everything else is read-only after comb_rsa_pub_new, so
 * one struct may serve every combiner thread.
 */
struct comb_rsa_pub;

/*
 * comb_rsa_pub_new builds a struct comb_rsa_pub for modulus |n| and public
 * exponent |e| (big-endian, leading zeros allowed). Refuses an even or too
 * small n (under 512 bits), n over PROTO_BN_MAX bytes, and an even or < 3 e
 * (SPK_ERR_KEY_UNSUPPORTED). Key size policy (>= 2048 bits) is keysplit's,
 * not the engine's. Returns 0 and sets *out (free with comb_rsa_pub_free), or
 * SPK_ERR_*.
 */
SPK_WUR int comb_rsa_pub_new(struct comb_rsa_pub **out, const uint8_t *n, size_t n_len,
                             const uint8_t *e, size_t e_len);
/* Operations one blinding pair serves before comb_rsa_pub_maintain makes a new one. */
#define COMB_BLINDING_RENEW_USES 256

/*
 * comb_rsa_pub_maintain makes |pub|'s blinding pair again from fresh
 * randomness once it has served COMB_BLINDING_RENEW_USES operations (a
 * constant-time inverse, a few hundred microseconds); otherwise it does
 * nothing. Call it off the hot path: after a batch's results are out.
 * 0 or SPK_ERR_CRYPTO (the old pair stays in use).
 */
SPK_WUR int comb_rsa_pub_maintain(struct comb_rsa_pub *pub);
/* comb_rsa_pub_blinding_renewals: how many times comb_rsa_pub_maintain made a new pair. */
uint64_t comb_rsa_pub_blinding_renewals(struct comb_rsa_pub *pub);
/* comb_rsa_pub_free frees |pub|; NULL is fine. */
void comb_rsa_pub_free(struct comb_rsa_pub *pub);
/* comb_rsa_pub_size: the modulus length in bytes (signature size). */
size_t comb_rsa_pub_size(const struct comb_rsa_pub *pub);
/* comb_rsa_pub_bits: the modulus length in bits. */
unsigned comb_rsa_pub_bits(const struct comb_rsa_pub *pub);

/*
 * struct comb_rsa_req: one private-key operation.
 *   op            which operation.
 *   hash          SIGN_PKCS1: MD5_SHA1, SHA1, SHA224, SHA256, SHA384, SHA512.
 *                 SIGN_PSS: SHA256, SHA384, SHA512 (SHA1, SHA224 also work).
 *                 DECRYPT_OAEP: the label hash; any of SHA1 .. SHA512_256.
 *                 Ignored otherwise.
 *   mgf1_hash     PSS, OAEP: the MGF1 hash; COMB_HASH_NONE means "= hash".
 *   in, in_len    SIGN_*: the digest (exactly the hash's length).
 *                 RAW and DECRYPT_*: the ciphertext, exactly n_len bytes, < n.
 *   label         DECRYPT_OAEP: the label (may be NULL when label_len is 0).
 *   tls_version   DECRYPT_TLS: the client_version of the ClientHello (e.g.
 *                 0x0303); the premaster's first two bytes must equal it.
 *   tls_alt_version  DECRYPT_TLS: a second version accepted (the negotiated
 *                 one, for clients with the rollback bug), or 0 for none.
 */
struct comb_rsa_req {
    enum comb_rsa_op_kind op;
    enum comb_hash hash;
    enum comb_hash mgf1_hash;
    const uint8_t *in;
    size_t in_len;
    const uint8_t *label;
    size_t label_len;
    uint16_t tls_version;
    uint16_t tls_alt_version;
};

#define COMB_TLS_PREMASTER_LEN 48

/*
 * comb_rsa_op performs |req| with the private key |crt| of |pub| and writes
 * the result to |out| (|out_cap| bytes), its length to *out_len. It makes a
 * struct comb_rsa_key for this one operation; a batch makes one with
 * comb_rsa_key_new and runs comb_rsa_key_op for each operation.
 * |out_cap| must be at least: n_len for RAW and SIGN_*; 48 for DECRYPT_TLS;
 * n_len - 11 for DECRYPT_PKCS1; n_len - 2 * hash_len - 2 for DECRYPT_OAEP.
 *
 * Returns 0, or:
 *   SPK_ERR_INVALID_ARG     bad lengths, digest length, out_cap;
 *   SPK_ERR_UNSUPPORTED     a hash the operation does not take;
 *   SPK_ERR_KEY_MISMATCH    an empty or oversized CRT value (p * q == n is the
 *                           caller's check, once per rebuild: split_shares_combine);
 *   SPK_ERR_FAULT           the result failed its check with e (a fault or a
 *                           wrong tuple); nothing is released;
 *   SPK_ERR_DECRYPT         DECRYPT_PKCS1 / DECRYPT_OAEP: bad ciphertext or
 *                           padding (decided in constant time; only the
 *                           final return branches). RAW / DECRYPT_*: a
 *                           ciphertext of the wrong length or >= n (public);
 *   SPK_ERR_CRYPTO, SPK_ERR_NOMEM.
 * DECRYPT_TLS never reports a padding or version error: on any such error
 * it writes 48 random bytes instead (RFC 5246 7.4.7.1), chosen in constant
 * time, and returns 0.
 * On any error |out| is wiped and *out_len is 0. Output of decryptions is
 * secret: the caller wipes it.
 */
SPK_WUR int comb_rsa_op(struct comb_rsa_pub *pub, const struct comb_rsa_crt *crt,
                        const struct comb_rsa_req *req, uint8_t *out, size_t out_cap,
                        size_t *out_len);

/*
 * struct comb_rsa_key: one rebuilt private key, for one batch: the CRT values
 * as constant-time BIGNUMs (secure heap, clear-freed) and the Montgomery
 * contexts mod p and q, built once per key by its first operation (each on
 * the thread that runs its half) rather than once per operation. It borrows
 * |pub|. comb_rsa_key_free wipes and frees it.
 */
struct comb_rsa_key;

/*
 * comb_rsa_key_new reads |crt| (copied; |crt| may be wiped afterwards) into a
 * new key of |pub|. SPK_ERR_KEY_MISMATCH for an empty, oversized or even
 * prime value; SPK_ERR_CRYPTO, SPK_ERR_NOMEM. p * q == n is the caller's
 * check (split_shares_combine, once per rebuild).
 */
SPK_WUR int comb_rsa_key_new(struct comb_rsa_key **out, struct comb_rsa_pub *pub,
                             const struct comb_rsa_crt *crt);
void comb_rsa_key_free(struct comb_rsa_key *key);
/* comb_rsa_key_pub: the public half |key| was made with. */
struct comb_rsa_pub *comb_rsa_key_pub(const struct comb_rsa_key *key);
/*
 * struct comb_rsa_helper: a thread that computes the q half of an operation's
 * CRT exponentiation while the caller's thread computes the p half, for a
 * key given it with comb_rsa_key_set_helper. One operation at a time: its
 * owner's thread is its only caller. comb_rsa_helper_new starts it (all
 * signals blocked in it); comb_rsa_helper_free stops and joins it.
 */
struct comb_rsa_helper;
SPK_WUR int comb_rsa_helper_new(struct comb_rsa_helper **out);
void comb_rsa_helper_free(struct comb_rsa_helper *h);
/* comb_rsa_helper_taken_back: how many q halves its owner took back and
 * computed itself, the helper not having started when the p half was done. */
uint64_t comb_rsa_helper_taken_back(struct comb_rsa_helper *h);
/* comb_rsa_helper_pause: while paused the helper starts no job (so that
 * its owner takes every one back): for tests. */
void comb_rsa_helper_pause(struct comb_rsa_helper *h, bool paused);
/*
 * comb_rsa_pub_calibrate: whether an operation on |pub| is faster with its
 * two CRT halves on two threads (|h| and the caller's) than with both on one
 * (OpenSSL's x2 call), as measured on random moduli of its primes' size the
 * first time |h| sees that size (a few milliseconds for RSA-2048, some tens
 * for RSA-4096), then remembered by |pub| and |h|. False when |h| is NULL.
 */
bool comb_rsa_pub_calibrate(struct comb_rsa_pub *pub, struct comb_rsa_helper *h);
/* comb_rsa_key_set_helper: |key|'s operations run their halves on this
 * thread and |h| (NULL: both here); without memory for the helper's
 * temporaries, both stay here. True when they will run on two threads. */
bool comb_rsa_key_set_helper(struct comb_rsa_key *key, struct comb_rsa_helper *h);

/* comb_rsa_key_op: comb_rsa_op with a key made once for many operations. */
SPK_WUR int comb_rsa_key_op(struct comb_rsa_key *key, const struct comb_rsa_req *req, uint8_t *out,
                            size_t out_cap, size_t *out_len);

/*
 * struct comb_rsa_prep: what an operation needs before its key exists: its
 * input, encoded for a signature (a fresh salt for PSS), blinded with the
 * public key's pair (comb_rsa_pub_new), and the matching unblinding factor.
 * Both from the secure heap; the factor is secret (comb_rsa_prep_clear
 * clear-frees them). A batch prepares its operations while their shares
 * travel, so that none of this waits on the rebuilt key.
 */
struct comb_rsa_prep {
    BIGNUM *c;       /* the blinded input, < n, BN_FLG_CONSTTIME */
    BIGNUM *unblind; /* r^-1 of the blinding */
};

/*
 * comb_rsa_prepare checks |req| and |out_cap| as comb_rsa_op does and fills
 * |prep| (cleared first) for comb_rsa_key_op_prepared with a key of |pub|.
 * The errors comb_rsa_op reports for a bad request, before any key exists.
 */
SPK_WUR int comb_rsa_prepare(struct comb_rsa_pub *pub, const struct comb_rsa_req *req,
                             size_t out_cap, struct comb_rsa_prep *prep);
/* comb_rsa_key_op_prepared: comb_rsa_key_op on an input comb_rsa_prepare
 * made of |req| for |key|'s public key; |prep| is left for its owner to clear. */
SPK_WUR int comb_rsa_key_op_prepared(struct comb_rsa_key *key, const struct comb_rsa_req *req,
                                     const struct comb_rsa_prep *prep, uint8_t *out, size_t out_cap,
                                     size_t *out_len);
void comb_rsa_prep_clear(struct comb_rsa_prep *prep);

/*
 * comb_rsa_blind: |prep| (cleared first) = |in| (n_len bytes, big-endian)
 * blinded with |pub|'s pair, and the unblinding factor. SPK_ERR_DECRYPT when
 * |in| >= n; SPK_ERR_CRYPTO, SPK_ERR_NOMEM (|prep| is then empty).
 */
SPK_WUR int comb_rsa_blind(struct comb_rsa_pub *pub, struct comb_rsa_prep *prep, const uint8_t *in);
/*
 * comb_rsa_private writes to |out| (n_len bytes) the unblinded |prep|^d mod n,
 * through CRT and the e-check. The primitive behind comb_rsa_key_op; it does
 * not check p * q == n (see comb_rsa_op). Returns 0, SPK_ERR_FAULT,
 * SPK_ERR_CRYPTO, SPK_ERR_NOMEM or SPK_ERR_INVALID_ARG (an empty |prep|);
 * |out| is wiped on error. Does not wipe the stack (comb_rsa_key_op_prepared
 * does).
 */
SPK_WUR int comb_rsa_private(struct comb_rsa_key *key, uint8_t *out,
                             const struct comb_rsa_prep *prep);

/* comb_hash_len: the digest length of |h| (36 for MD5_SHA1), 0 for NONE. */
size_t comb_hash_len(enum comb_hash h);

#endif
