/*
 * prov_cipher.c: RSA decryption with a splitkey key: the TLS premaster
 * (padding mode 7, implicit rejection in the combiner), PKCS#1 v1.5 and
 * OAEP (SHA-1 or SHA-256, MGF1 of the same hash, no label), each only where
 * the combiner allows it for this client.
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "provider/internal.h"

/* ---- asymmetric cipher (decryption only) ------------------------------------ */

struct prov_dec_ctx {
    struct prov_ctx *prov;
    struct prov_key *key;
    int pad;
    unsigned client_version;
    /* OAEP: the digest and MGF1 digest (NID_undef: SHA-1, OpenSSL's default),
     * and whether a non-empty label was asked for (the combiner takes none). */
    int oaep_md;
    int mgf1_md;
    bool label;
};

/* prov_dec_md_nid: the NID of the digest named by |p|, or NID_undef. */
static int prov_dec_md_nid(const struct prov_dec_ctx *ctx, const OSSL_PARAM *p)
{
    char name[PROV_MDNAME_MAX];
    EVP_MD *md;
    int nid;

    if (!prov_mdname_param(p, name) || (md = prov_md_fetch(ctx->prov, name)) == NULL) {
        return NID_undef;
    }
    nid = EVP_MD_get_type(md);
    EVP_MD_free(md);
    return nid;
}

static void *prov_dec_newctx(void *provctx)
{
    struct prov_dec_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    if (ctx != NULL) {
        ctx->prov = provctx;
        ctx->pad = RSA_PKCS1_PADDING;
    }
    return ctx;
}

static void prov_dec_freectx(void *vctx)
{
    OPENSSL_free(vctx);
}

static void *prov_dec_dupctx(void *vctx)
{
    struct prov_dec_ctx *ctx = OPENSSL_malloc(sizeof(*ctx));

    if (ctx != NULL) {
        *ctx = *(struct prov_dec_ctx *)vctx;
    }
    return ctx;
}

static int prov_dec_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct prov_dec_ctx *ctx = vctx;
    const OSSL_PARAM *p;

    if (params == NULL) {
        return 1;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);
    if (p != NULL) {
        int pad;
        if (!prov_pad_from_param(p, &pad) ||
            (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_WITH_TLS_PADDING &&
             pad != RSA_PKCS1_OAEP_PADDING)) {
            return 0;
        }
        ctx->pad = pad;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST);
    if (p != NULL && (ctx->oaep_md = prov_dec_md_nid(ctx, p)) == NID_undef) {
        return 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST);
    if (p != NULL && (ctx->mgf1_md = prov_dec_md_nid(ctx, p)) == NID_undef) {
        return 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL);
    if (p != NULL) {
        ctx->label = p->data_size > 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION);
    if (p != NULL) {
        unsigned v;
        if (!OSSL_PARAM_get_uint(p, &v) || v > 0xffff) {
            return 0;
        }
        ctx->client_version = v;
    }
    /* The negotiated version only matters with SSL_OP_TLS_ROLLBACK_BUG, which
     * the edge never sets; the combiner checks the client version alone. */
    return 1;
}

static const OSSL_PARAM prov_dec_settable_list[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *prov_dec_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return prov_dec_settable_list;
}

static int prov_dec_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    const struct prov_dec_ctx *ctx = vctx;
    OSSL_PARAM *p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);

    if (p != NULL && !OSSL_PARAM_set_int(p, ctx->pad)) {
        return 0;
    }
    return 1;
}

static const OSSL_PARAM prov_dec_gettable_list[] = {
    OSSL_PARAM_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *prov_dec_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return prov_dec_gettable_list;
}

static int prov_dec_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    struct prov_dec_ctx *ctx = vctx;

    if (keydata == NULL || !((struct prov_key *)keydata)->has_id) {
        return 0;
    }
    ctx->key = keydata;
    ctx->pad = RSA_PKCS1_PADDING;
    ctx->client_version = 0;
    ctx->oaep_md = NID_undef;
    ctx->mgf1_md = NID_undef;
    ctx->label = false;
    return prov_dec_set_ctx_params(ctx, params);
}

/* prov_dec_oaep_op: the combiner's OAEP operation for |ctx|, or 0. */
static uint8_t prov_dec_oaep_op(const struct prov_dec_ctx *ctx)
{
    int md = ctx->oaep_md == NID_undef ? NID_sha1 : ctx->oaep_md;
    int mgf1 = ctx->mgf1_md == NID_undef ? md : ctx->mgf1_md;

    if (ctx->label || mgf1 != md) {
        return 0;
    }
    switch (md) {
    case NID_sha1:
        return PROTO_OP_DECRYPT_OAEP_SHA1;
    case NID_sha256:
        return PROTO_OP_DECRYPT_OAEP_SHA256;
    default:
        return 0;
    }
}

static int prov_dec_decrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize,
                            const unsigned char *in, size_t inlen)
{
    struct prov_dec_ctx *ctx = vctx;
    size_t n_len = prov_key_size(ctx->key);
    uint8_t ct[PROTO_BN_MAX];
    uint8_t op;
    size_t got = 0;
    uint16_t version = 0;
    int ok = 0;

    if (ctx->pad == RSA_PKCS1_WITH_TLS_PADDING) {
        op = PROTO_OP_DECRYPT_TLS_PREMASTER;
        version = (uint16_t)ctx->client_version;
        if (out == NULL) {
            *outlen = 48;
            return 1;
        }
        if (outsize < 48 || version == 0) {
            return 0;
        }
    } else {
        op = ctx->pad == RSA_PKCS1_OAEP_PADDING ? prov_dec_oaep_op(ctx) : PROTO_OP_DECRYPT_PKCS1;
        if (op == 0) {
            ERR_raise_data(ERR_LIB_PROV, ERR_R_UNSUPPORTED,
                           "splitkey: OAEP only with SHA-1 or SHA-256, MGF1 of the same "
                           "hash, and no label");
            return 0;
        }
        if (out == NULL) {
            *outlen = n_len;
            return 1;
        }
    }
    /* A ciphertext shorter than the modulus is a smaller integer: left-pad it,
     * as OpenSSL does with a local key. Longer ones are refused. */
    if (inlen == 0 || inlen > n_len || n_len > sizeof(ct)) {
        return 0;
    }
    memset(ct, 0, n_len - inlen);
    memcpy(ct + (n_len - inlen), in, inlen);
    if (prov_keyop(ctx->key, op, ct, n_len, version, out, outsize, &got) == 0) {
        *outlen = got;
        ok = 1;
    }
    OPENSSL_cleanse(ct, sizeof(ct));
    return ok;
}

const OSSL_DISPATCH prov_cipher_fns[] = {
    {OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))prov_dec_newctx},
    {OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))prov_dec_freectx},
    {OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))prov_dec_dupctx},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))prov_dec_init},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))prov_dec_decrypt},
    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))prov_dec_set_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))prov_dec_settable_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))prov_dec_get_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))prov_dec_gettable_ctx_params},
    {0, NULL},
};
