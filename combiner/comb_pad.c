/*
 * Paddings around the combiner's RSA primitive: PKCS#1 v1.5 and PSS encoding
 * for signatures, and constant-time PKCS#1 v1.5 (TLS and generic) and OAEP
 * decoding for decryptions. Decoders never branch on a byte of the decrypted
 * block: every check folds into a mask, and the message is moved into place
 * with a shift whose passes depend only on the public modulus length.
 */

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "combiner/internal.h"
#include "split/split.h"

/* How much stack the BN and digest code below us may have dirtied. */
#define COMB_STACK_WIPE (48 * 1024)

/* ---- constant-time helpers (all-ones or all-zero masks of size_t) ------- */

static size_t ct_msb(size_t a)
{
    return (size_t)0 - (a >> (sizeof(a) * 8 - 1));
}

static size_t ct_is_zero(size_t a)
{
    return ct_msb(~a & (a - 1));
}

static size_t ct_eq(size_t a, size_t b)
{
    return ct_is_zero(a ^ b);
}

/* a < b for a, b < 2^(bits-1) */
static size_t ct_lt(size_t a, size_t b)
{
    return ct_msb(a - b);
}

static size_t ct_select(size_t mask, size_t a, size_t b)
{
    return (mask & a) | (~mask & b);
}

static uint8_t ct_select_u8(size_t mask, uint8_t a, uint8_t b)
{
    return (uint8_t)ct_select(mask, a, b);
}

/*
 * ct_shift_left moves buf[shift .. len) to buf[0 .. len - shift), zeroing the
 * rest, for a secret |shift| <= len: log2(len) passes over the whole buffer,
 * each conditionally moving by a power of two.
 */
static void ct_shift_left(uint8_t *buf, size_t len, size_t shift)
{
    for (size_t step = 1; step < len; step <<= 1) {
        size_t take = ~ct_is_zero(shift & step);

        for (size_t i = 0; i < len; i++) {
            uint8_t moved = i + step < len ? buf[i + step] : 0;

            buf[i] = ct_select_u8(take, moved, buf[i]);
        }
    }
}

/* ---- hashes ------------------------------------------------------------- */

size_t comb_hash_len(enum comb_hash h)
{
    switch (h) {
    case COMB_HASH_MD5_SHA1:
        return 36;
    case COMB_HASH_SHA1:
        return 20;
    case COMB_HASH_SHA224:
    case COMB_HASH_SHA512_224:
        return 28;
    case COMB_HASH_SHA256:
    case COMB_HASH_SHA512_256:
        return 32;
    case COMB_HASH_SHA384:
        return 48;
    case COMB_HASH_SHA512:
        return 64;
    case COMB_HASH_NONE:
    default:
        return 0;
    }
}

static const char *hash_name(enum comb_hash h)
{
    switch (h) {
    case COMB_HASH_SHA1:
        return "SHA1";
    case COMB_HASH_SHA224:
        return "SHA224";
    case COMB_HASH_SHA256:
        return "SHA256";
    case COMB_HASH_SHA384:
        return "SHA384";
    case COMB_HASH_SHA512:
        return "SHA512";
    case COMB_HASH_SHA512_224:
        return "SHA512-224";
    case COMB_HASH_SHA512_256:
        return "SHA512-256";
    case COMB_HASH_MD5_SHA1:
    case COMB_HASH_NONE:
    default:
        return NULL;
    }
}

/*
 * The digests, fetched once for the process: EVP_DigestInit_ex with
 * OpenSSL 3's EVP_sha256() and the like fetches the implementation again on
 * every call, which a PSS signature makes eight times (its hash, then MGF1
 * block by block). Held until exit.
 */
#define COMB_HASH_SLOTS (COMB_HASH_SHA512_256 + 1)
static EVP_MD *hash_mds[COMB_HASH_SLOTS];
static pthread_once_t hash_mds_once = PTHREAD_ONCE_INIT;

static void hash_mds_fetch(void)
{
    for (int h = 0; h < COMB_HASH_SLOTS; h++) {
        const char *name = hash_name((enum comb_hash)h);

        hash_mds[h] = name != NULL ? EVP_MD_fetch(NULL, name, NULL) : NULL;
    }
}

static const EVP_MD *hash_md(enum comb_hash h)
{
    if ((int)h < 0 || (int)h >= COMB_HASH_SLOTS ||
        pthread_once(&hash_mds_once, hash_mds_fetch) != 0) {
        return NULL;
    }
    return hash_mds[h];
}

/* ---- signatures ---------------------------------------------------------- */

/* EMSA-PKCS1-v1_5 (public data only): split_pad's, keyed by the wire op of the hash. */
static int encode_pkcs1_sig(uint8_t *em, size_t k, enum comb_hash h, const uint8_t *digest,
                            size_t digest_len)
{
    uint8_t op;

    switch (h) {
    case COMB_HASH_MD5_SHA1:
        op = PROTO_OP_SIGN_PKCS1_MD5SHA1;
        break;
    case COMB_HASH_SHA1:
        op = PROTO_OP_SIGN_PKCS1_SHA1;
        break;
    case COMB_HASH_SHA224:
        op = PROTO_OP_SIGN_PKCS1_SHA224;
        break;
    case COMB_HASH_SHA256:
        op = PROTO_OP_SIGN_PKCS1_SHA256;
        break;
    case COMB_HASH_SHA384:
        op = PROTO_OP_SIGN_PKCS1_SHA384;
        break;
    case COMB_HASH_SHA512:
        op = PROTO_OP_SIGN_PKCS1_SHA512;
        break;
    case COMB_HASH_SHA512_224:
    case COMB_HASH_SHA512_256:
    case COMB_HASH_NONE:
    default:
        return SPK_ERR_UNSUPPORTED;
    }
    return split_pad_encode(em, k, (unsigned)(8 * k), op, digest, digest_len, NULL, 0);
}

/* EMSA-PSS with salt length = digest length and a fresh random salt. */
static int encode_pss(uint8_t *em, size_t k, unsigned mod_bits, enum comb_hash h,
                      enum comb_hash mgf1_h, const uint8_t *digest, size_t digest_len)
{
    const EVP_MD *md = hash_md(h);
    const EVP_MD *mgf1_md = hash_md(mgf1_h == COMB_HASH_NONE ? h : mgf1_h);
    uint8_t salt[EVP_MAX_MD_SIZE];
    size_t h_len = comb_hash_len(h);

    if (md == NULL || mgf1_md == NULL) {
        return SPK_ERR_UNSUPPORTED;
    }
    /* libsodium's generator, as the threshold-mode salt (comb_submit): a
     * salt need only be unpredictable, and OpenSSL 3.0's RAND_bytes re-keys
     * its CTR-DRBG's AES and asks getpid() on every call (1.3% of the
     * combiner's CPU under load in a perf profile). */
    randombytes_buf(salt, h_len);
    return split_pad_pss_encode(em, k, mod_bits, md, mgf1_md, digest, digest_len, salt, h_len);
}

/* ---- decryptions ---------------------------------------------------------- */

/*
 * decode_tls: RFC 5246 7.4.7.1. |em| is the k-byte decrypted block; |out|
 * gets its last 48 bytes when the block is 00 02 PS(nonzero) 00 and the
 * premaster starts with one of the accepted versions, else 48 random bytes.
 * Which one is chosen by mask, never by branch.
 */
static int decode_tls(uint8_t out[COMB_TLS_PREMASTER_LEN], const uint8_t *em, size_t k,
                      uint16_t version, uint16_t alt_version)
{
    uint8_t fake[COMB_TLS_PREMASTER_LEN];
    const uint8_t *msg = em + k - COMB_TLS_PREMASTER_LEN;
    size_t good;
    size_t version_good;

    /* The random premaster is drawn before looking at the block at all. */
    randombytes_buf(fake, sizeof(fake));

    good = ct_eq(em[0], 0x00) & ct_eq(em[1], 0x02);
    for (size_t i = 2; i < k - COMB_TLS_PREMASTER_LEN - 1; i++) {
        good &= ~ct_is_zero(em[i]);
    }
    good &= ct_is_zero(em[k - COMB_TLS_PREMASTER_LEN - 1]);
    version_good = ct_eq(msg[0], version >> 8) & ct_eq(msg[1], version & 0xff);
    version_good |= ~ct_is_zero(alt_version) & ct_eq(msg[0], alt_version >> 8) &
                    ct_eq(msg[1], alt_version & 0xff);
    good &= version_good;

    for (size_t i = 0; i < COMB_TLS_PREMASTER_LEN; i++) {
        out[i] = ct_select_u8(good, msg[i], fake[i]);
    }
    sodium_memzero(fake, sizeof(fake));
    return 0;
}

/*
 * decode_pkcs1_type2: EME-PKCS1-v1_5 decoding. The message is shifted to the
 * front of |em| in constant time and copied out whole (|out_cap| >= k - 11);
 * only the final verdict is a branch.
 */
static int decode_pkcs1_type2(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t *em, size_t k)
{
    size_t good;
    size_t zero_index = 0;
    size_t looking = ~(size_t)0;
    size_t msg_len;

    if (k < 11 || out_cap < k - 11) {
        return SPK_ERR_INVALID_ARG;
    }
    good = ct_eq(em[0], 0x00) & ct_eq(em[1], 0x02);
    for (size_t i = 2; i < k; i++) {
        size_t is_zero = ct_is_zero(em[i]);

        zero_index = ct_select(looking & is_zero, i, zero_index);
        looking &= ~is_zero;
    }
    /* A separator exists and PS is at least 8 bytes. */
    good &= ~looking;
    good &= ~ct_lt(zero_index, 10);
    msg_len = k - 1 - ct_select(good, zero_index, k - 1);

    /* Message from em[zero_index + 1 ..] to em[11 ..] then out. */
    ct_shift_left(em + 11, k - 11, ct_select(good, zero_index + 1 - 11, 0));
    memcpy(out, em + 11, k - 11);
    *out_len = msg_len;
    /* The one branch on the verdict: the caller learns it from the return
     * value anyway (generic decryption reports bad padding, TLS does not). */
    if (!good) {
        sodium_memzero(out, k - 11);
        *out_len = 0;
        return SPK_ERR_DECRYPT;
    }
    return 0;
}

/* decode_oaep: EME-OAEP decoding (RFC 8017 7.1.2 step 3), constant time. */
static int decode_oaep(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t *em, size_t k,
                       enum comb_hash h, enum comb_hash mgf1_h, const uint8_t *label,
                       size_t label_len)
{
    const EVP_MD *md = hash_md(h);
    const EVP_MD *mgf1_md = hash_md(mgf1_h == COMB_HASH_NONE ? h : mgf1_h);
    uint8_t lhash[EVP_MAX_MD_SIZE];
    size_t h_len = comb_hash_len(h);
    uint8_t *seed, *db;
    size_t db_len, good, looking, one_index, msg_len, max_msg;
    int r;

    if (md == NULL || mgf1_md == NULL) {
        return SPK_ERR_UNSUPPORTED;
    }
    if (k < 2 * h_len + 2 || out_cap < k - 2 * h_len - 2) {
        return SPK_ERR_INVALID_ARG;
    }
    if (label == NULL && label_len != 0) {
        return SPK_ERR_INVALID_ARG;
    }
    if (!EVP_Digest(label_len > 0 ? label : (const uint8_t *)"", label_len, lhash, NULL, md,
                    NULL)) {
        return SPK_ERR_CRYPTO;
    }
    seed = em + 1;
    db = em + 1 + h_len;
    db_len = k - h_len - 1;
    if ((r = split_pad_mgf1_xor(seed, h_len, db, db_len, mgf1_md)) != 0 ||
        (r = split_pad_mgf1_xor(db, db_len, seed, h_len, mgf1_md)) != 0) {
        return r;
    }

    good = ct_is_zero(em[0]);
    good &= ct_is_zero((size_t)(CRYPTO_memcmp(db, lhash, h_len) != 0));
    /* After lHash': zero bytes, then 01, then the message. */
    looking = ~(size_t)0;
    one_index = 0;
    for (size_t i = h_len; i < db_len; i++) {
        size_t is_zero = ct_is_zero(db[i]);
        size_t is_one = ct_eq(db[i], 0x01);

        one_index = ct_select(looking & is_one, i, one_index);
        good &= ~(looking & ~is_zero & ~is_one);
        looking &= ~is_one;
    }
    good &= ~looking;

    max_msg = db_len - h_len - 1;
    msg_len = db_len - 1 - ct_select(good, one_index, db_len - 1);
    /* Shift the message from db[one_index + 1] to db[h_len + 1]. */
    ct_shift_left(db + h_len + 1, max_msg, ct_select(good, one_index - h_len, 0));
    memcpy(out, db + h_len + 1, max_msg);
    *out_len = msg_len;
    /* The one branch on the verdict, as in decode_pkcs1_type2. */
    if (!good) {
        sodium_memzero(out, max_msg);
        *out_len = 0;
        return SPK_ERR_DECRYPT;
    }
    return 0;
}

/* ---- dispatch -------------------------------------------------------------- */

/* comb_rsa_req_check: |req|'s lengths, hashes and |out_cap| against a
 * modulus of |k| bytes (all public). */
static int comb_rsa_req_check(size_t k, const struct comb_rsa_req *req, size_t out_cap)
{
    switch (req->op) {
    case COMB_RSA_RAW:
    case COMB_RSA_DECRYPT_TLS:
    case COMB_RSA_DECRYPT_PKCS1:
    case COMB_RSA_DECRYPT_OAEP:
        if (req->in == NULL || req->in_len != k) {
            return SPK_ERR_DECRYPT;
        }
        if (req->op == COMB_RSA_RAW && out_cap < k) {
            return SPK_ERR_INVALID_ARG;
        }
        if (req->op == COMB_RSA_DECRYPT_TLS &&
            (out_cap < COMB_TLS_PREMASTER_LEN || k < COMB_TLS_PREMASTER_LEN + 11)) {
            return SPK_ERR_INVALID_ARG;
        }
        if (req->op == COMB_RSA_DECRYPT_PKCS1 && out_cap < k - 11) {
            return SPK_ERR_INVALID_ARG;
        }
        if (req->op == COMB_RSA_DECRYPT_OAEP) {
            size_t h_len = comb_hash_len(req->hash);

            if (hash_md(req->hash) == NULL ||
                (req->mgf1_hash != COMB_HASH_NONE && hash_md(req->mgf1_hash) == NULL)) {
                return SPK_ERR_UNSUPPORTED;
            }
            if (k < 2 * h_len + 2 || out_cap < k - 2 * h_len - 2) {
                return SPK_ERR_INVALID_ARG;
            }
        }
        return 0;
    case COMB_RSA_SIGN_PKCS1:
    case COMB_RSA_SIGN_PSS:
        return out_cap < k || req->in == NULL ? SPK_ERR_INVALID_ARG : 0;
    default:
        return SPK_ERR_UNSUPPORTED;
    }
}

int comb_rsa_prepare(struct comb_rsa_pub *pub, const struct comb_rsa_req *req, size_t out_cap,
                     struct comb_rsa_prep *prep)
{
    size_t k = comb_rsa_pub_size(pub);
    uint8_t em[PROTO_BN_MAX];
    int r;

    comb_rsa_prep_clear(prep);
    if ((r = comb_rsa_req_check(k, req, out_cap)) != 0) {
        return r;
    }
    if (req->op == COMB_RSA_SIGN_PKCS1) {
        r = encode_pkcs1_sig(em, k, req->hash, req->in, req->in_len);
    } else if (req->op == COMB_RSA_SIGN_PSS) {
        r = encode_pss(em, k, comb_rsa_pub_bits(pub), req->hash, req->mgf1_hash, req->in,
                       req->in_len);
    } else {
        /* A ciphertext, blinded as it is. */
        memcpy(em, req->in, k);
    }
    if (r == 0) {
        r = comb_rsa_blind(pub, prep, em);
    }
    sodium_memzero(em, sizeof(em));
    return r;
}

static int comb_rsa_op_inner(struct comb_rsa_key *key, const struct comb_rsa_req *req,
                             const struct comb_rsa_prep *prep, uint8_t *out, size_t out_cap,
                             size_t *out_len, uint8_t *block)
{
    size_t k = comb_rsa_pub_size(comb_rsa_key_pub(key));
    int r;

    if ((r = comb_rsa_req_check(k, req, out_cap)) != 0) {
        return r;
    }
    if (req->op == COMB_RSA_SIGN_PKCS1 || req->op == COMB_RSA_SIGN_PSS || req->op == COMB_RSA_RAW) {
        if ((r = comb_rsa_private(key, out, prep)) == 0) {
            *out_len = k;
        }
        return r;
    }
    /* A decryption: the block is decoded in constant time. */
    if ((r = comb_rsa_private(key, block, prep)) != 0) {
        return r;
    }
    switch (req->op) {
    case COMB_RSA_DECRYPT_TLS:
        *out_len = COMB_TLS_PREMASTER_LEN;
        return decode_tls(out, block, k, req->tls_version, req->tls_alt_version);
    case COMB_RSA_DECRYPT_PKCS1:
        return decode_pkcs1_type2(out, out_cap, out_len, block, k);
    case COMB_RSA_DECRYPT_OAEP:
        return decode_oaep(out, out_cap, out_len, block, k, req->hash, req->mgf1_hash, req->label,
                           req->label_len);
    case COMB_RSA_RAW:
    case COMB_RSA_SIGN_PKCS1:
    case COMB_RSA_SIGN_PSS:
    default:
        return SPK_ERR_INTERNAL;
    }
}

int comb_rsa_key_op_prepared(struct comb_rsa_key *key, const struct comb_rsa_req *req,
                             const struct comb_rsa_prep *prep, uint8_t *out, size_t out_cap,
                             size_t *out_len)
{
    uint8_t block[PROTO_BN_MAX];
    int r;

    *out_len = 0;
    if (key == NULL || req == NULL || prep == NULL || out == NULL) {
        return SPK_ERR_INVALID_ARG;
    }
    r = comb_rsa_op_inner(key, req, prep, out, out_cap, out_len, block);
    if (r != 0) {
        sodium_memzero(out, out_cap);
        *out_len = 0;
    }
    sodium_memzero(block, sizeof(block));
    /* BN and digest temporaries (and the powers table when it fits on the
     * stack) were below this frame. */
    sodium_stackzero(COMB_STACK_WIPE);
    return r;
}

int comb_rsa_key_op(struct comb_rsa_key *key, const struct comb_rsa_req *req, uint8_t *out,
                    size_t out_cap, size_t *out_len)
{
    struct comb_rsa_prep prep = {NULL, NULL};
    int r;

    *out_len = 0;
    if (key == NULL || req == NULL || out == NULL) {
        return SPK_ERR_INVALID_ARG;
    }
    r = comb_rsa_prepare(comb_rsa_key_pub(key), req, out_cap, &prep);
    r = r != 0 ? r : comb_rsa_key_op_prepared(key, req, &prep, out, out_cap, out_len);
    if (r != 0) {
        sodium_memzero(out, out_cap);
        *out_len = 0;
    }
    comb_rsa_prep_clear(&prep);
    sodium_stackzero(COMB_STACK_WIPE);
    return r;
}

int comb_rsa_op(struct comb_rsa_pub *pub, const struct comb_rsa_crt *crt,
                const struct comb_rsa_req *req, uint8_t *out, size_t out_cap, size_t *out_len)
{
    struct comb_rsa_key *key = NULL;
    int r;

    *out_len = 0;
    if (pub == NULL || crt == NULL || req == NULL || out == NULL) {
        return SPK_ERR_INVALID_ARG;
    }
    if ((r = comb_rsa_key_new(&key, pub, crt)) != 0) {
        sodium_memzero(out, out_cap);
        return r;
    }
    r = comb_rsa_key_op(key, req, out, out_cap, out_len);
    comb_rsa_key_free(key);
    sodium_stackzero(COMB_STACK_WIPE);
    return r;
}
