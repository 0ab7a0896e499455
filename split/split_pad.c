/*
 * Signature encodings (RFC 8017 9.1 EMSA-PSS and 9.2 EMSA-PKCS1-v1_5) for
 * whoever exponentiates: the combiner with a rebuilt key, and in threshold
 * mode every party computing a signature share, which encodes the message
 * itself from (op, digest, salt) so that it never exponentiates a value it did
 * not encode. Everything here is public data.
 */

#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "split/split.h"

/*
 * DER of DigestInfo up to the digest, per hash (RFC 8017 9.2, note 1):
 * SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING (hash length) }.
 */
static const uint8_t di_sha1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                  0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
static const uint8_t di_sha224[] = {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c};
static const uint8_t di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t di_sha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const uint8_t di_sha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

/* split_pad_prefix: the DigestInfo prefix of |hash|; none for the TLS 1.0 MD5+SHA-1 form. */
static const uint8_t *split_pad_prefix(enum proto_hash hash, size_t *out_len)
{
    switch (hash) {
    case PROTO_HASH_SHA1:
        *out_len = sizeof(di_sha1);
        return di_sha1;
    case PROTO_HASH_SHA224:
        *out_len = sizeof(di_sha224);
        return di_sha224;
    case PROTO_HASH_SHA256:
        *out_len = sizeof(di_sha256);
        return di_sha256;
    case PROTO_HASH_SHA384:
        *out_len = sizeof(di_sha384);
        return di_sha384;
    case PROTO_HASH_SHA512:
        *out_len = sizeof(di_sha512);
        return di_sha512;
    case PROTO_HASH_MD5_SHA1:
    case PROTO_HASH_NONE:
    default:
        *out_len = 0;
        return NULL;
    }
}

int split_pad_mgf1_xor(uint8_t *buf, size_t len, const uint8_t *seed, size_t seed_len,
                       const EVP_MD *md)
{
    EVP_MD_CTX *mctx = NULL;
    uint8_t block[EVP_MAX_MD_SIZE];
    size_t md_len = (size_t)EVP_MD_get_size(md);
    int r = SPK_ERR_CRYPTO;

    if ((mctx = EVP_MD_CTX_new()) == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    for (uint32_t counter = 0, done = 0; done < len; counter++) {
        uint8_t cbytes[4] = {(uint8_t)(counter >> 24), (uint8_t)(counter >> 16),
                             (uint8_t)(counter >> 8), (uint8_t)counter};
        size_t take = len - done < md_len ? len - done : md_len;

        if (!EVP_DigestInit_ex(mctx, md, NULL) || !EVP_DigestUpdate(mctx, seed, seed_len) ||
            !EVP_DigestUpdate(mctx, cbytes, sizeof(cbytes)) ||
            !EVP_DigestFinal_ex(mctx, block, NULL)) {
            goto out;
        }
        for (size_t i = 0; i < take; i++) {
            buf[done + i] ^= block[i];
        }
        done += (uint32_t)take;
    }
    r = 0;
out:
    /* The mask of an OAEP decryption is secret; wipe it for every caller. */
    sodium_memzero(block, sizeof(block));
    EVP_MD_CTX_free(mctx);
    return r;
}

/* EMSA-PKCS1-v1_5: 00 01 FF..FF 00 DigestInfo. */
static int split_pad_pkcs1(uint8_t *em, size_t k, const struct proto_op_info *info,
                           const uint8_t *digest)
{
    size_t prefix_len;
    const uint8_t *prefix = split_pad_prefix(info->hash, &prefix_len);
    size_t t_len = prefix_len + info->digest_len;

    if (k < t_len + 11) {
        return SPK_ERR_INVALID_ARG;
    }
    em[0] = 0x00;
    em[1] = 0x01;
    memset(em + 2, 0xff, k - t_len - 3);
    em[k - t_len - 1] = 0x00;
    if (prefix_len > 0) {
        memcpy(em + k - t_len, prefix, prefix_len);
    }
    memcpy(em + k - info->digest_len, digest, info->digest_len);
    return 0;
}

int split_pad_pss_encode(uint8_t *em, size_t k, unsigned mod_bits, const EVP_MD *md,
                         const EVP_MD *mgf1_md, const uint8_t *digest, size_t digest_len,
                         const uint8_t *salt, size_t salt_len)
{
    static const uint8_t zeros[8] = {0};
    EVP_MD_CTX *mctx = NULL;
    size_t h_len = (size_t)EVP_MD_get_size(md);
    size_t em_bits = mod_bits - 1;
    size_t em_len = (em_bits + 7) / 8;
    uint8_t *e;
    size_t db_len;
    int r = SPK_ERR_INVALID_ARG;

    if (mod_bits < 2 || mod_bits > 8 * k || digest_len != h_len || em_len < h_len + salt_len + 2) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((mctx = EVP_MD_CTX_new()) == NULL) {
        goto out;
    }
    memset(em, 0, k);
    e = em + (k - em_len);
    db_len = em_len - h_len - 1;
    r = SPK_ERR_CRYPTO;
    /* H = Hash(00 x 8 || mHash || salt), stored right after DB. */
    if (!EVP_DigestInit_ex(mctx, md, NULL) || !EVP_DigestUpdate(mctx, zeros, sizeof(zeros)) ||
        !EVP_DigestUpdate(mctx, digest, h_len) ||
        (salt_len > 0 && !EVP_DigestUpdate(mctx, salt, salt_len)) ||
        !EVP_DigestFinal_ex(mctx, e + db_len, NULL)) {
        goto out;
    }
    /* DB = PS (zeros) || 01 || salt, then masked. */
    e[db_len - salt_len - 1] = 0x01;
    if (salt_len > 0) {
        memcpy(e + db_len - salt_len, salt, salt_len);
    }
    if ((r = split_pad_mgf1_xor(e, db_len, e + db_len, h_len, mgf1_md)) != 0) {
        goto out;
    }
    e[0] &= (uint8_t)(0xff >> (8 * em_len - em_bits));
    e[em_len - 1] = 0xbc;
    r = 0;
out:
    EVP_MD_CTX_free(mctx);
    return r;
}

int split_pad_encode(uint8_t *em, size_t n_len, unsigned mod_bits, uint8_t op,
                     const uint8_t *digest, size_t digest_len, const uint8_t *salt, size_t salt_len)
{
    const struct proto_op_info *info = proto_op_info(op);
    EVP_MD *md = NULL;
    int r;

    if (!proto_op_is_sign(info)) {
        return SPK_ERR_UNSUPPORTED;
    }
    if (digest_len != info->digest_len || mod_bits > 8 * n_len) {
        return SPK_ERR_INVALID_ARG;
    }
    if (info->kind != PROTO_OP_KIND_SIGN_PSS) {
        return salt_len != 0 ? SPK_ERR_INVALID_ARG : split_pad_pkcs1(em, n_len, info, digest);
    }
    if (salt == NULL || salt_len != info->digest_len) {
        return SPK_ERR_INVALID_ARG;
    }
    if ((md = EVP_MD_fetch(NULL, info->md, NULL)) == NULL) {
        return SPK_ERR_CRYPTO;
    }
    r = split_pad_pss_encode(em, n_len, mod_bits, md, md, digest, digest_len, salt, salt_len);
    EVP_MD_free(md);
    return r;
}
