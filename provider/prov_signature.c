/*
 * prov_signature.c: RSA signatures with a splitkey key. The digest is
 * computed here by the host's other providers; only the digest goes to the
 * combiner, which pads (PKCS#1 v1.5 or PSS with MGF1 of the same hash and a
 * salt as long as the hash) and signs.
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "provider/internal.h"

/* ---- signature ---------------------------------------------------------------- */

struct prov_sig_ctx {
    struct prov_ctx *prov;
    struct prov_key *key;
    int pad;
    int saltlen;
    EVP_MD *md;
    EVP_MD *mgf1;
    EVP_MD_CTX *mdctx; /* streaming EVP_DigestSignUpdate */
};

static void *prov_sig_newctx(void *provctx, const char *propq)
{
    struct prov_sig_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    (void)propq;
    if (ctx != NULL) {
        ctx->prov = provctx;
        ctx->pad = RSA_PKCS1_PADDING;
        ctx->saltlen = RSA_PSS_SALTLEN_DIGEST;
    }
    return ctx;
}

static void prov_sig_freectx(void *vctx)
{
    struct prov_sig_ctx *ctx = vctx;

    if (ctx == NULL) {
        return;
    }
    EVP_MD_free(ctx->md);
    EVP_MD_free(ctx->mgf1);
    EVP_MD_CTX_free(ctx->mdctx);
    OPENSSL_free(ctx);
}

static void *prov_sig_dupctx(void *vctx)
{
    const struct prov_sig_ctx *src = vctx;
    struct prov_sig_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    if (ctx == NULL) {
        return NULL;
    }
    *ctx = *src;
    ctx->md = NULL;
    ctx->mgf1 = NULL;
    ctx->mdctx = NULL;
    if ((src->md != NULL && !EVP_MD_up_ref(src->md)) ||
        (src->mgf1 != NULL && !EVP_MD_up_ref(src->mgf1))) {
        OPENSSL_free(ctx);
        return NULL;
    }
    ctx->md = src->md;
    ctx->mgf1 = src->mgf1;
    if (src->mdctx != NULL) {
        ctx->mdctx = EVP_MD_CTX_new();
        if (ctx->mdctx == NULL || !EVP_MD_CTX_copy_ex(ctx->mdctx, src->mdctx)) {
            prov_sig_freectx(ctx);
            return NULL;
        }
    }
    return ctx;
}

static int prov_sig_set_md(struct prov_sig_ctx *ctx, EVP_MD **slot, const char *mdname)
{
    EVP_MD *md = prov_md_fetch(ctx->prov, mdname);

    if (md == NULL) {
        return 0;
    }
    EVP_MD_free(*slot);
    *slot = md;
    return 1;
}

static int prov_sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct prov_sig_ctx *ctx = vctx;
    const OSSL_PARAM *p;
    char name[PROV_MDNAME_MAX];

    if (params == NULL) {
        return 1;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    if (p != NULL) {
        int pad;
        if (!prov_pad_from_param(p, &pad) ||
            (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING)) {
            return 0;
        }
        ctx->pad = pad;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL) {
        if (!prov_mdname_param(p, name) || !prov_sig_set_md(ctx, &ctx->md, name)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
    if (p != NULL) {
        if (!prov_mdname_param(p, name) || !prov_sig_set_md(ctx, &ctx->mgf1, name)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
    if (p != NULL) {
        int saltlen;
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            if (strcmp(p->data, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0) {
                saltlen = RSA_PSS_SALTLEN_DIGEST;
            } else if (strcmp(p->data, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0) {
                saltlen = RSA_PSS_SALTLEN_MAX;
            } else if (strcmp(p->data, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0) {
                saltlen = RSA_PSS_SALTLEN_AUTO;
            } else {
                char *end = NULL;
                long v = strtol(p->data, &end, 10);
                if (end == p->data || *end != '\0' || v < 0 || v > 1024) {
                    return 0;
                }
                saltlen = (int)v;
            }
        } else if (!OSSL_PARAM_get_int(p, &saltlen)) {
            return 0;
        }
        ctx->saltlen = saltlen;
    }
    return 1;
}

static const OSSL_PARAM prov_sig_settable_list[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *prov_sig_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return prov_sig_settable_list;
}

/*
 * prov_sig_algorithm_id writes the DER AlgorithmIdentifier of the signature
 * |ctx| makes (certificates and CSRs carry it) into |p|. The host's other
 * providers know how to write one for every RSA padding; they are asked
 * with a verification context on our public key, which needs nothing
 * private.
 */
static int prov_sig_algorithm_id(const struct prov_sig_ctx *ctx, OSSL_PARAM *p)
{
    EVP_PKEY *pub = NULL;
    EVP_PKEY_CTX *vctx = NULL;
    OSSL_PARAM q[2];
    uint8_t der[128];
    int ok = 0;

    if (ctx->key == NULL || ctx->md == NULL || (pub = prov_pkey_public(ctx->key)) == NULL) {
        goto out;
    }
    vctx = EVP_PKEY_CTX_new_from_pkey(ctx->prov->libctx, pub, ctx->prov->md_propq);
    if (vctx == NULL || EVP_PKEY_verify_init(vctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(vctx, ctx->pad) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(vctx, ctx->md) <= 0) {
        goto out;
    }
    if (ctx->pad == RSA_PKCS1_PSS_PADDING &&
        (EVP_PKEY_CTX_set_rsa_pss_saltlen(vctx, EVP_MD_get_size(ctx->md)) <= 0 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(vctx, ctx->mgf1 != NULL ? ctx->mgf1 : ctx->md) <= 0)) {
        goto out;
    }
    q[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, der, sizeof(der));
    q[1] = OSSL_PARAM_construct_end();
    if (!EVP_PKEY_CTX_get_params(vctx, q) || !OSSL_PARAM_modified(&q[0]) ||
        !OSSL_PARAM_set_octet_string(p, der, q[0].return_size)) {
        goto out;
    }
    ok = 1;
out:
    EVP_PKEY_CTX_free(vctx);
    EVP_PKEY_free(pub);
    return ok;
}

static int prov_sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    const struct prov_sig_ctx *ctx = vctx;
    OSSL_PARAM *p;

    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    if (p != NULL && !OSSL_PARAM_set_int(p, ctx->pad)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL &&
        !OSSL_PARAM_set_utf8_string(p, ctx->md == NULL ? "" : EVP_MD_get0_name(ctx->md))) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
    if (p != NULL && !prov_sig_algorithm_id(ctx, p)) {
        return 0;
    }
    return 1;
}

static const OSSL_PARAM prov_sig_gettable_list[] = {
    OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *prov_sig_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return prov_sig_gettable_list;
}

static int prov_sig_sign_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    struct prov_sig_ctx *ctx = vctx;

    if (keydata == NULL || !((struct prov_key *)keydata)->has_id) {
        return 0;
    }
    ctx->key = keydata;
    ctx->pad = RSA_PKCS1_PADDING;
    ctx->saltlen = RSA_PSS_SALTLEN_DIGEST;
    return prov_sig_set_ctx_params(ctx, params);
}

/* prov_sig_do signs the digest |dgst| with the combiner. */
static int prov_sig_do(struct prov_sig_ctx *ctx, uint8_t *sig, size_t *siglen, size_t sigsize,
                       const uint8_t *dgst, size_t dgst_len)
{
    size_t n_len = prov_key_size(ctx->key);
    uint8_t op;
    size_t out_len = 0;

    if (ctx->md == NULL && ctx->pad == RSA_PKCS1_PADDING && dgst_len == 36) {
        op = PROTO_OP_SIGN_PKCS1_MD5SHA1; /* TLS 1.0/1.1 raw MD5 || SHA-1 */
    } else {
        op = prov_sign_op(ctx->md, ctx->pad, ctx->saltlen, ctx->mgf1);
    }
    if (op == 0 || dgst_len != proto_op_digest_len(op) || sigsize < n_len) {
        ERR_raise(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT);
        return 0;
    }
    if (prov_keyop(ctx->key, op, dgst, dgst_len, 0, sig, sigsize, &out_len) != 0) {
        return 0;
    }
    if (out_len != n_len) {
        return 0;
    }
    *siglen = out_len;
    return 1;
}

static int prov_sig_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                         const unsigned char *tbs, size_t tbslen)
{
    struct prov_sig_ctx *ctx = vctx;

    if (sig == NULL) {
        *siglen = prov_key_size(ctx->key);
        return 1;
    }
    return prov_sig_do(ctx, sig, siglen, sigsize, tbs, tbslen);
}

static int prov_sig_digest_sign_init(void *vctx, const char *mdname, void *keydata,
                                     const OSSL_PARAM params[])
{
    struct prov_sig_ctx *ctx = vctx;

    if (!prov_sig_sign_init(ctx, keydata, NULL)) {
        return 0;
    }
    if (!prov_sig_set_md(ctx, &ctx->md, mdname == NULL ? "SHA256" : mdname)) {
        return 0;
    }
    EVP_MD_CTX_free(ctx->mdctx);
    ctx->mdctx = NULL;
    return prov_sig_set_ctx_params(ctx, params);
}

static int prov_sig_digest_sign_update(void *vctx, const unsigned char *data, size_t len)
{
    struct prov_sig_ctx *ctx = vctx;

    if (ctx->mdctx == NULL) {
        ctx->mdctx = EVP_MD_CTX_new();
        if (ctx->mdctx == NULL || !EVP_DigestInit_ex2(ctx->mdctx, ctx->md, NULL)) {
            return 0;
        }
    }
    return EVP_DigestUpdate(ctx->mdctx, data, len);
}

static int prov_sig_digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen,
                                      size_t sigsize)
{
    struct prov_sig_ctx *ctx = vctx;
    uint8_t dgst[EVP_MAX_MD_SIZE];
    unsigned dgst_len = 0;

    if (sig == NULL) {
        *siglen = prov_key_size(ctx->key);
        return 1;
    }
    if (ctx->mdctx == NULL && !prov_sig_digest_sign_update(ctx, NULL, 0)) {
        return 0;
    }
    if (!EVP_DigestFinal_ex(ctx->mdctx, dgst, &dgst_len)) {
        return 0;
    }
    return prov_sig_do(ctx, sig, siglen, sigsize, dgst, dgst_len);
}

static int prov_sig_digest_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                                const unsigned char *tbs, size_t tbslen)
{
    struct prov_sig_ctx *ctx = vctx;
    uint8_t dgst[EVP_MAX_MD_SIZE];
    unsigned dgst_len = 0;

    if (sig == NULL) {
        *siglen = prov_key_size(ctx->key);
        return 1;
    }
    if (ctx->md == NULL || !EVP_Digest(tbs, tbslen, dgst, &dgst_len, ctx->md, NULL)) {
        return 0;
    }
    return prov_sig_do(ctx, sig, siglen, sigsize, dgst, dgst_len);
}

const OSSL_DISPATCH prov_signature_fns[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))prov_sig_newctx},
    {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))prov_sig_freectx},
    {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))prov_sig_dupctx},
    {OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))prov_sig_sign_init},
    {OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))prov_sig_sign},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))prov_sig_digest_sign_init},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))prov_sig_digest_sign_update},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))prov_sig_digest_sign_final},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))prov_sig_digest_sign},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))prov_sig_set_ctx_params},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))prov_sig_settable_ctx_params},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))prov_sig_get_ctx_params},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))prov_sig_gettable_ctx_params},
    {0, NULL},
};
