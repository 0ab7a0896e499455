/*
 * edge_provider.c: a built-in OpenSSL 3 provider whose RSA keys hold only
 * the public key (n, e) and a key id. libssl drives every handshake with
 * these keys as with any other; their private operations (one-shot
 * EVP_DigestSign, EVP_PKEY_sign of a digest, and EVP_PKEY_decrypt with the
 * TLS padding) are hashed here and sent to the combiner through the function
 * given to edge_provider_load. No private key material ever enters this
 * process: imports of private components are ignored and the keymgmt has no
 * export, so OpenSSL never copies a key of ours into another provider.
 */

#include <stdatomic.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "edge/internal.h"

#define EDGE_RSA_NAMES "RSA:rsaEncryption:1.2.840.113549.1.1.1"
#define EDGE_MDNAME_MAX 32

static edge_keyop_fn g_keyop;
static void *g_keyop_arg;
static atomic_uint_fast64_t g_num_ops;
static atomic_uint_fast64_t g_num_failed;

struct edge_prov_ctx {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx; /* the application's: where digests are fetched */
};

struct edge_key {
    struct edge_prov_ctx *prov;
    BIGNUM *n;
    BIGNUM *e;
    uint8_t key_id[PROTO_KEY_ID_LEN];
    bool has_id;
};

/* ---- the operation itself ------------------------------------------------- */

static int edge_prov_keyop(const struct edge_key *key, uint8_t op, const uint8_t *in, size_t in_len,
                           uint16_t client_version, uint8_t *out, size_t out_cap, size_t *out_len)
{
    int r;

    atomic_fetch_add(&g_num_ops, 1);
    if (g_keyop == NULL || !key->has_id) {
        r = SPK_ERR_INTERNAL;
    } else {
        r = g_keyop(g_keyop_arg, key->key_id, op, in, in_len, client_version, out, out_cap,
                    out_len);
    }
    if (r != 0) {
        atomic_fetch_add(&g_num_failed, 1);
        ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "splitkey combiner: %s",
                       spk_strerror(r));
    }
    return r;
}

void edge_provider_stats(uint64_t *out_ops, uint64_t *out_failed)
{
    *out_ops = atomic_load(&g_num_ops);
    *out_failed = atomic_load(&g_num_failed);
}

static size_t edge_key_size(const struct edge_key *key)
{
    return key->n == NULL ? 0 : (size_t)BN_num_bytes(key->n);
}

/* ---- keymgmt ---------------------------------------------------------------- */

static void *edge_km_new(void *provctx)
{
    struct edge_key *key = OPENSSL_zalloc(sizeof(*key));

    if (key != NULL) {
        key->prov = provctx;
    }
    return key;
}

static void edge_km_free(void *keydata)
{
    struct edge_key *key = keydata;

    if (key == NULL) {
        return;
    }
    BN_free(key->n);
    BN_free(key->e);
    OPENSSL_free(key);
}

static int edge_km_has(const void *keydata, int selection)
{
    const struct edge_key *key = keydata;

    if (key == NULL) {
        return 0;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 && (key->n == NULL || key->e == NULL)) {
        return 0;
    }
    /* The private half is the combiner's: a key with an id can use it. */
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && !key->has_id) {
        return 0;
    }
    return 1;
}

static int edge_km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    struct edge_key *key = keydata;
    const OSSL_PARAM *p;
    BIGNUM *n = NULL;
    BIGNUM *e = NULL;
    size_t id_len = 0;

    if (key == NULL || (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0) {
        return 0;
    }
    /* Private components (d, factors), if a caller offers them, are never read. */
    p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_N);
    if (p == NULL || !OSSL_PARAM_get_BN(p, &n)) {
        goto fail;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_E);
    if (p == NULL || !OSSL_PARAM_get_BN(p, &e)) {
        goto fail;
    }
    p = OSSL_PARAM_locate_const(params, EDGE_PARAM_KEY_ID);
    if (p != NULL) {
        void *idp = key->key_id;
        if (!OSSL_PARAM_get_octet_string(p, &idp, sizeof(key->key_id), &id_len) ||
            id_len != sizeof(key->key_id)) {
            goto fail;
        }
        key->has_id = true;
    }
    BN_free(key->n);
    BN_free(key->e);
    key->n = n;
    key->e = e;
    return 1;
fail:
    BN_free(n);
    BN_free(e);
    return 0;
}

static const OSSL_PARAM edge_km_import_list[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_octet_string(EDGE_PARAM_KEY_ID, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *edge_km_import_types(int selection)
{
    (void)selection;
    return edge_km_import_list;
}

static int edge_security_bits(int bits)
{
    /* NIST SP 800-57 part 1, as OpenSSL rounds it for RSA. */
    if (bits >= 15360) {
        return 256;
    }
    if (bits >= 7680) {
        return 192;
    }
    if (bits >= 3072) {
        return 128;
    }
    if (bits >= 2048) {
        return 112;
    }
    return 80;
}

static int edge_km_get_params(void *keydata, OSSL_PARAM params[])
{
    const struct edge_key *key = keydata;
    OSSL_PARAM *p;
    int bits;

    if (key == NULL || key->n == NULL) {
        return 0;
    }
    bits = BN_num_bits(key->n);
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS);
    if (p != NULL && !OSSL_PARAM_set_int(p, bits)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS);
    if (p != NULL && !OSSL_PARAM_set_int(p, edge_security_bits(bits))) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE);
    if (p != NULL && !OSSL_PARAM_set_int(p, BN_num_bytes(key->n))) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST);
    if (p != NULL && !OSSL_PARAM_set_utf8_string(p, "SHA256")) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_RSA_N);
    if (p != NULL && !OSSL_PARAM_set_BN(p, key->n)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_RSA_E);
    if (p != NULL && !OSSL_PARAM_set_BN(p, key->e)) {
        return 0;
    }
    return 1;
}

static const OSSL_PARAM edge_km_gettable_list[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *edge_km_gettable_params(void *provctx)
{
    (void)provctx;
    return edge_km_gettable_list;
}

static int edge_km_match(const void *a, const void *b, int selection)
{
    const struct edge_key *ka = a;
    const struct edge_key *kb = b;

    (void)selection;
    if (ka->n == NULL || kb->n == NULL || ka->e == NULL || kb->e == NULL) {
        return 0;
    }
    return BN_cmp(ka->n, kb->n) == 0 && BN_cmp(ka->e, kb->e) == 0;
}

static void *edge_km_dup(const void *keydata, int selection)
{
    const struct edge_key *src = keydata;
    struct edge_key *key = edge_km_new(src->prov);

    (void)selection;
    if (key == NULL) {
        return NULL;
    }
    if (src->n != NULL && (key->n = BN_dup(src->n)) == NULL) {
        goto fail;
    }
    if (src->e != NULL && (key->e = BN_dup(src->e)) == NULL) {
        goto fail;
    }
    memcpy(key->key_id, src->key_id, sizeof(key->key_id));
    key->has_id = src->has_id;
    return key;
fail:
    edge_km_free(key);
    return NULL;
}

static const OSSL_DISPATCH edge_keymgmt_fns[] = {
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))edge_km_new},
    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))edge_km_free},
    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))edge_km_has},
    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))edge_km_import},
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))edge_km_import_types},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))edge_km_get_params},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))edge_km_gettable_params},
    {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))edge_km_match},
    {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))edge_km_dup},
    {0, NULL},
};

/* ---- padding and digest parameters shared by signature and cipher ----------- */

static int edge_pad_from_param(const OSSL_PARAM *p, int *out)
{
    static const struct {
        const char *name;
        int pad;
    } names[] = {
        {OSSL_PKEY_RSA_PAD_MODE_PKCSV15, RSA_PKCS1_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_NONE, RSA_NO_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_OAEP, RSA_PKCS1_OAEP_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_X931, RSA_X931_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_PSS, RSA_PKCS1_PSS_PADDING},
    };
    size_t i;

    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (strcmp(p->data, names[i].name) == 0) {
                *out = names[i].pad;
                return 1;
            }
        }
        return 0;
    }
    return OSSL_PARAM_get_int(p, out);
}

static int edge_mdname_param(const OSSL_PARAM *p, char out[EDGE_MDNAME_MAX])
{
    char *s = out;

    if (!OSSL_PARAM_get_utf8_string(p, &s, EDGE_MDNAME_MAX)) {
        return 0;
    }
    return 1;
}

/* Digests are computed here, by the default provider; only the digest goes
 * to the combiner. */
static EVP_MD *edge_md_fetch(const struct edge_prov_ctx *prov, const char *mdname)
{
    return EVP_MD_fetch(prov->libctx, mdname, "provider=default");
}

/* edge_sign_op: the proto_op for a digest and padding, or 0 when the combiner
 * does not offer that combination. */

static uint8_t edge_sign_op(const EVP_MD *md, int pad, int saltlen, const EVP_MD *mgf1)
{
    int type = md == NULL ? NID_undef : EVP_MD_get_type(md);

    if (pad == RSA_PKCS1_PADDING) {
        switch (type) {
        case NID_sha1:
            return PROTO_OP_SIGN_PKCS1_SHA1;
        case NID_sha224:
            return PROTO_OP_SIGN_PKCS1_SHA224;
        case NID_sha256:
            return PROTO_OP_SIGN_PKCS1_SHA256;
        case NID_sha384:
            return PROTO_OP_SIGN_PKCS1_SHA384;
        case NID_sha512:
            return PROTO_OP_SIGN_PKCS1_SHA512;
        case NID_md5_sha1:
            return PROTO_OP_SIGN_PKCS1_MD5SHA1;
        default:
            return 0;
        }
    }
    if (pad != RSA_PKCS1_PSS_PADDING) {
        return 0;
    }
    /* The combiner signs PSS with MGF1 of the same hash and salt = hash length. */
    if (mgf1 != NULL && EVP_MD_get_type(mgf1) != type) {
        return 0;
    }
    if (md == NULL || (saltlen != RSA_PSS_SALTLEN_DIGEST && saltlen != EVP_MD_get_size(md))) {
        return 0;
    }
    switch (type) {
    case NID_sha256:
        return PROTO_OP_SIGN_PSS_SHA256;
    case NID_sha384:
        return PROTO_OP_SIGN_PSS_SHA384;
    case NID_sha512:
        return PROTO_OP_SIGN_PSS_SHA512;
    default:
        return 0;
    }
}

/* ---- signature ---------------------------------------------------------------- */

struct edge_sig_ctx {
    struct edge_prov_ctx *prov;
    struct edge_key *key;
    int pad;
    int saltlen;
    EVP_MD *md;
    EVP_MD *mgf1;
    EVP_MD_CTX *mdctx; /* streaming EVP_DigestSignUpdate */
};

static void *edge_sig_newctx(void *provctx, const char *propq)
{
    struct edge_sig_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    (void)propq;
    if (ctx != NULL) {
        ctx->prov = provctx;
        ctx->pad = RSA_PKCS1_PADDING;
        ctx->saltlen = RSA_PSS_SALTLEN_DIGEST;
    }
    return ctx;
}

static void edge_sig_freectx(void *vctx)
{
    struct edge_sig_ctx *ctx = vctx;

    if (ctx == NULL) {
        return;
    }
    EVP_MD_free(ctx->md);
    EVP_MD_free(ctx->mgf1);
    EVP_MD_CTX_free(ctx->mdctx);
    OPENSSL_free(ctx);
}

static void *edge_sig_dupctx(void *vctx)
{
    const struct edge_sig_ctx *src = vctx;
    struct edge_sig_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

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
            edge_sig_freectx(ctx);
            return NULL;
        }
    }
    return ctx;
}

static int edge_sig_set_md(struct edge_sig_ctx *ctx, EVP_MD **slot, const char *mdname)
{
    EVP_MD *md = edge_md_fetch(ctx->prov, mdname);

    if (md == NULL) {
        return 0;
    }
    EVP_MD_free(*slot);
    *slot = md;
    return 1;
}

static int edge_sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct edge_sig_ctx *ctx = vctx;
    const OSSL_PARAM *p;
    char name[EDGE_MDNAME_MAX];

    if (params == NULL) {
        return 1;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    if (p != NULL) {
        int pad;
        if (!edge_pad_from_param(p, &pad) ||
            (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING)) {
            return 0;
        }
        ctx->pad = pad;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL) {
        if (!edge_mdname_param(p, name) || !edge_sig_set_md(ctx, &ctx->md, name)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
    if (p != NULL) {
        if (!edge_mdname_param(p, name) || !edge_sig_set_md(ctx, &ctx->mgf1, name)) {
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

static const OSSL_PARAM edge_sig_settable_list[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *edge_sig_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return edge_sig_settable_list;
}

static int edge_sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    const struct edge_sig_ctx *ctx = vctx;
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
    return 1;
}

static const OSSL_PARAM edge_sig_gettable_list[] = {
    OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *edge_sig_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return edge_sig_gettable_list;
}

static int edge_sig_sign_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    struct edge_sig_ctx *ctx = vctx;

    if (keydata == NULL || !((struct edge_key *)keydata)->has_id) {
        return 0;
    }
    ctx->key = keydata;
    ctx->pad = RSA_PKCS1_PADDING;
    ctx->saltlen = RSA_PSS_SALTLEN_DIGEST;
    return edge_sig_set_ctx_params(ctx, params);
}

/* edge_sig_do signs the digest |dgst| with the combiner. */
static int edge_sig_do(struct edge_sig_ctx *ctx, uint8_t *sig, size_t *siglen, size_t sigsize,
                       const uint8_t *dgst, size_t dgst_len)
{
    size_t n_len = edge_key_size(ctx->key);
    uint8_t op;
    size_t out_len = 0;

    if (ctx->md == NULL && ctx->pad == RSA_PKCS1_PADDING && dgst_len == 36) {
        op = PROTO_OP_SIGN_PKCS1_MD5SHA1; /* TLS 1.0/1.1 raw MD5 || SHA-1 */
    } else {
        op = edge_sign_op(ctx->md, ctx->pad, ctx->saltlen, ctx->mgf1);
    }
    if (op == 0 || dgst_len != proto_op_digest_len(op) || sigsize < n_len) {
        ERR_raise(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT);
        return 0;
    }
    if (edge_prov_keyop(ctx->key, op, dgst, dgst_len, 0, sig, sigsize, &out_len) != 0) {
        return 0;
    }
    if (out_len != n_len) {
        return 0;
    }
    *siglen = out_len;
    return 1;
}

static int edge_sig_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                         const unsigned char *tbs, size_t tbslen)
{
    struct edge_sig_ctx *ctx = vctx;

    if (sig == NULL) {
        *siglen = edge_key_size(ctx->key);
        return 1;
    }
    return edge_sig_do(ctx, sig, siglen, sigsize, tbs, tbslen);
}

static int edge_sig_digest_sign_init(void *vctx, const char *mdname, void *keydata,
                                     const OSSL_PARAM params[])
{
    struct edge_sig_ctx *ctx = vctx;

    if (!edge_sig_sign_init(ctx, keydata, NULL)) {
        return 0;
    }
    if (!edge_sig_set_md(ctx, &ctx->md, mdname == NULL ? "SHA256" : mdname)) {
        return 0;
    }
    EVP_MD_CTX_free(ctx->mdctx);
    ctx->mdctx = NULL;
    return edge_sig_set_ctx_params(ctx, params);
}

static int edge_sig_digest_sign_update(void *vctx, const unsigned char *data, size_t len)
{
    struct edge_sig_ctx *ctx = vctx;

    if (ctx->mdctx == NULL) {
        ctx->mdctx = EVP_MD_CTX_new();
        if (ctx->mdctx == NULL || !EVP_DigestInit_ex2(ctx->mdctx, ctx->md, NULL)) {
            return 0;
        }
    }
    return EVP_DigestUpdate(ctx->mdctx, data, len);
}

static int edge_sig_digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen,
                                      size_t sigsize)
{
    struct edge_sig_ctx *ctx = vctx;
    uint8_t dgst[EVP_MAX_MD_SIZE];
    unsigned dgst_len = 0;

    if (sig == NULL) {
        *siglen = edge_key_size(ctx->key);
        return 1;
    }
    if (ctx->mdctx == NULL && !edge_sig_digest_sign_update(ctx, NULL, 0)) {
        return 0;
    }
    if (!EVP_DigestFinal_ex(ctx->mdctx, dgst, &dgst_len)) {
        return 0;
    }
    return edge_sig_do(ctx, sig, siglen, sigsize, dgst, dgst_len);
}

static int edge_sig_digest_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                                const unsigned char *tbs, size_t tbslen)
{
    struct edge_sig_ctx *ctx = vctx;
    uint8_t dgst[EVP_MAX_MD_SIZE];
    unsigned dgst_len = 0;

    if (sig == NULL) {
        *siglen = edge_key_size(ctx->key);
        return 1;
    }
    if (ctx->md == NULL || !EVP_Digest(tbs, tbslen, dgst, &dgst_len, ctx->md, NULL)) {
        return 0;
    }
    return edge_sig_do(ctx, sig, siglen, sigsize, dgst, dgst_len);
}

static const OSSL_DISPATCH edge_signature_fns[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))edge_sig_newctx},
    {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))edge_sig_freectx},
    {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))edge_sig_dupctx},
    {OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))edge_sig_sign_init},
    {OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))edge_sig_sign},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))edge_sig_digest_sign_init},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))edge_sig_digest_sign_update},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))edge_sig_digest_sign_final},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))edge_sig_digest_sign},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))edge_sig_set_ctx_params},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))edge_sig_settable_ctx_params},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))edge_sig_get_ctx_params},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))edge_sig_gettable_ctx_params},
    {0, NULL},
};

/* ---- asymmetric cipher (decryption only) ------------------------------------ */

struct edge_dec_ctx {
    struct edge_prov_ctx *prov;
    struct edge_key *key;
    int pad;
    unsigned client_version;
};

static void *edge_dec_newctx(void *provctx)
{
    struct edge_dec_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    if (ctx != NULL) {
        ctx->prov = provctx;
        ctx->pad = RSA_PKCS1_PADDING;
    }
    return ctx;
}

static void edge_dec_freectx(void *vctx)
{
    OPENSSL_free(vctx);
}

static void *edge_dec_dupctx(void *vctx)
{
    struct edge_dec_ctx *ctx = OPENSSL_malloc(sizeof(*ctx));

    if (ctx != NULL) {
        *ctx = *(struct edge_dec_ctx *)vctx;
    }
    return ctx;
}

static int edge_dec_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct edge_dec_ctx *ctx = vctx;
    const OSSL_PARAM *p;

    if (params == NULL) {
        return 1;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);
    if (p != NULL) {
        int pad;
        if (!edge_pad_from_param(p, &pad) ||
            (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_WITH_TLS_PADDING)) {
            return 0;
        }
        ctx->pad = pad;
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

static const OSSL_PARAM edge_dec_settable_list[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *edge_dec_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return edge_dec_settable_list;
}

static int edge_dec_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    const struct edge_dec_ctx *ctx = vctx;
    OSSL_PARAM *p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);

    if (p != NULL && !OSSL_PARAM_set_int(p, ctx->pad)) {
        return 0;
    }
    return 1;
}

static const OSSL_PARAM edge_dec_gettable_list[] = {
    OSSL_PARAM_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *edge_dec_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return edge_dec_gettable_list;
}

static int edge_dec_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    struct edge_dec_ctx *ctx = vctx;

    if (keydata == NULL || !((struct edge_key *)keydata)->has_id) {
        return 0;
    }
    ctx->key = keydata;
    ctx->pad = RSA_PKCS1_PADDING;
    ctx->client_version = 0;
    return edge_dec_set_ctx_params(ctx, params);
}

static int edge_dec_decrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize,
                            const unsigned char *in, size_t inlen)
{
    struct edge_dec_ctx *ctx = vctx;
    size_t n_len = edge_key_size(ctx->key);
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
        op = PROTO_OP_DECRYPT_PKCS1;
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
    if (edge_prov_keyop(ctx->key, op, ct, n_len, version, out, outsize, &got) == 0) {
        *outlen = got;
        ok = 1;
    }
    OPENSSL_cleanse(ct, sizeof(ct));
    return ok;
}

static const OSSL_DISPATCH edge_cipher_fns[] = {
    {OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))edge_dec_newctx},
    {OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))edge_dec_freectx},
    {OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))edge_dec_dupctx},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))edge_dec_init},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))edge_dec_decrypt},
    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))edge_dec_set_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))edge_dec_settable_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))edge_dec_get_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))edge_dec_gettable_ctx_params},
    {0, NULL},
};

/* ---- the provider ---------------------------------------------------------- */

#define EDGE_ALG_PROPS "provider=" EDGE_PROV_NAME

static const OSSL_ALGORITHM edge_keymgmt_algs[] = {
    {EDGE_RSA_NAMES, EDGE_ALG_PROPS, edge_keymgmt_fns, "splitkey RSA (public half + key id)"},
    {NULL, NULL, NULL, NULL},
};
static const OSSL_ALGORITHM edge_signature_algs[] = {
    {EDGE_RSA_NAMES, EDGE_ALG_PROPS, edge_signature_fns, "splitkey RSA signature"},
    {NULL, NULL, NULL, NULL},
};
static const OSSL_ALGORITHM edge_cipher_algs[] = {
    {EDGE_RSA_NAMES, EDGE_ALG_PROPS, edge_cipher_fns, "splitkey RSA decryption"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *edge_prov_query(void *provctx, int operation_id, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT:
        return edge_keymgmt_algs;
    case OSSL_OP_SIGNATURE:
        return edge_signature_algs;
    case OSSL_OP_ASYM_CIPHER:
        return edge_cipher_algs;
    default:
        return NULL;
    }
}

static void edge_prov_teardown(void *provctx)
{
    OPENSSL_free(provctx);
}

static const OSSL_DISPATCH edge_prov_fns[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))edge_prov_query},
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))edge_prov_teardown},
    {0, NULL},
};

static int edge_prov_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                          const OSSL_DISPATCH **out, void **provctx)
{
    struct edge_prov_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    (void)in;
    if (ctx == NULL) {
        return 0;
    }
    ctx->handle = handle;
    ctx->libctx = NULL; /* the default library context: the edge uses only that one */
    *out = edge_prov_fns;
    *provctx = ctx;
    return 1;
}

int edge_provider_load(edge_keyop_fn fn, void *arg)
{
    static OSSL_PROVIDER *deflt;
    static OSSL_PROVIDER *mine;

    g_keyop = fn;
    g_keyop_arg = arg;
    if (mine != NULL) {
        return 0;
    }
    /* Loading any provider by hand stops "default" from loading by itself. */
    if (deflt == NULL && (deflt = OSSL_PROVIDER_load(NULL, "default")) == NULL) {
        return SPK_ERR_CRYPTO;
    }
    if (!OSSL_PROVIDER_add_builtin(NULL, EDGE_PROV_NAME, edge_prov_init)) {
        return SPK_ERR_CRYPTO;
    }
    if ((mine = OSSL_PROVIDER_load(NULL, EDGE_PROV_NAME)) == NULL) {
        return SPK_ERR_CRYPTO;
    }
    return 0;
}

int edge_provider_key_new(EVP_PKEY **out, uint8_t out_key_id[PROTO_KEY_ID_LEN], const EVP_PKEY *pub)
{
    int r = SPK_ERR_INTERNAL;
    BIGNUM *n = NULL;
    BIGNUM *e = NULL;
    uint8_t *der = NULL;
    int der_len;
    unsigned id_len = 0;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pkey = NULL;

    *out = NULL;
    if (!EVP_PKEY_is_a(pub, "RSA")) {
        r = SPK_ERR_KEY_UNSUPPORTED;
        goto out;
    }
    if (!EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &e)) {
        r = SPK_ERR_KEY_UNSUPPORTED;
        goto out;
    }
    der_len = i2d_PUBKEY(pub, &der);
    if (der_len <= 0 ||
        !EVP_Digest(der, (size_t)der_len, out_key_id, &id_len, EVP_sha256(), NULL) ||
        id_len != PROTO_KEY_ID_LEN) {
        r = SPK_ERR_CRYPTO;
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, EDGE_PARAM_KEY_ID, out_key_id, PROTO_KEY_ID_LEN) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        goto out;
    }
    pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", "provider=" EDGE_PROV_NAME);
    if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) <= 0) {
        goto out;
    }
    *out = pkey;
    pkey = NULL;
    r = 0;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    OPENSSL_free(der);
    BN_free(n);
    BN_free(e);
    return r;
}
