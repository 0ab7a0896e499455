/*
 * prov_core.c: the provider itself. Its algorithms (prov_query), the keyop
 * call every private operation goes through, the padding and digest
 * parameters that signature and cipher share, and the built-in's loader and
 * key maker the edge uses. The module's entry point is prov_module.c.
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "provider/internal.h"

static atomic_uint_fast64_t g_num_ops;
static atomic_uint_fast64_t g_num_failed;

/* The built-in's keyop: prov_builtin_init copies them into its context. */
static prov_keyop_fn g_builtin_keyop;
static void *g_builtin_keyop_arg;

/* ---- the operation itself ------------------------------------------------- */

/* prov_keyop_why: what an operation's failure means to whoever reads the
 * program's OpenSSL error queue. */
static const char *prov_keyop_why(int r)
{
    switch (r) {
    case SPK_ERR_UNAVAILABLE:
        return "combiner unreachable";
    case SPK_ERR_TIMEOUT:
        return "combiner timeout";
    case SPK_ERR_NOT_ALLOWED:
        return "combiner says not-allowed";
    case SPK_ERR_UNKNOWN_KEY:
        return "combiner does not know this key (unknown-key)";
    case SPK_ERR_THRESHOLD:
        /* Not the combiner's fault: its log names the holders that failed. */
        return "combiner says too-few-shares (it could not gather the threshold of good shares "
               "in time: holders down, refusing or sending bad shares; retry)";
    case SPK_ERR_HANDSHAKE:
        return "combiner broke off the CURVE handshake (is the key reference's combiner key "
               "the combiner's?)";
    default:
        return spk_strerror(r);
    }
}

int prov_keyop(const struct prov_key *key, uint8_t op, const uint8_t *in, size_t in_len,
               uint16_t client_version, uint8_t *out, size_t out_cap, size_t *out_len)
{
    const struct prov_ctx *prov = key->prov;
    int r;

    atomic_fetch_add(&g_num_ops, 1);
    if (prov == NULL || prov->keyop == NULL || !key->has_id) {
        r = SPK_ERR_INTERNAL;
    } else {
        r = prov->keyop(prov->keyop_arg, key->key_id, op, in, in_len, client_version, out, out_cap,
                        out_len);
    }
    if (r != 0) {
        atomic_fetch_add(&g_num_failed, 1);
        ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "splitkey: %s (%s)", prov_keyop_why(r),
                       proto_op_name(op));
    }
    return r;
}

void prov_stats(uint64_t *out_ops, uint64_t *out_failed)
{
    *out_ops = atomic_load(&g_num_ops);
    *out_failed = atomic_load(&g_num_failed);
}

size_t prov_key_size(const struct prov_key *key)
{
    return key->n == NULL ? 0 : (size_t)BN_num_bytes(key->n);
}

EVP_PKEY *prov_pkey_public(const struct prov_key *key)
{
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (key->n == NULL || key->e == NULL || (bld = OSSL_PARAM_BLD_new()) == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, key->n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, key->e) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        goto out;
    }
    pctx = EVP_PKEY_CTX_new_from_name(key->prov->libctx, "RSA", key->prov->md_propq);
    if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* ---- padding and digest parameters shared by signature and cipher ----------- */

int prov_pad_from_param(const OSSL_PARAM *p, int *out)
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

int prov_mdname_param(const OSSL_PARAM *p, char out[PROV_MDNAME_MAX])
{
    char *s = out;

    if (!OSSL_PARAM_get_utf8_string(p, &s, PROV_MDNAME_MAX)) {
        return 0;
    }
    return 1;
}

/* Digests are computed here, by the default provider; only the digest goes
 * to the combiner. */
EVP_MD *prov_md_fetch(const struct prov_ctx *prov, const char *mdname)
{
    return EVP_MD_fetch(prov->libctx, mdname, prov->md_propq);
}

/* prov_sign_op: the proto_op for a digest and padding, or 0 when the combiner
 * does not offer that combination. */
uint8_t prov_sign_op(const EVP_MD *md, int pad, int saltlen, const EVP_MD *mgf1)
{
    enum proto_op_kind kind;
    const struct proto_op_info *ops;
    size_t num_ops;

    if (md == NULL) {
        return 0;
    }
    if (pad == RSA_PKCS1_PADDING) {
        kind = PROTO_OP_KIND_SIGN_PKCS1;
    } else if (pad == RSA_PKCS1_PSS_PADDING) {
        /* The combiner signs PSS with MGF1 of the same hash and salt = hash length. */
        if (mgf1 != NULL && EVP_MD_get_type(mgf1) != EVP_MD_get_type(md)) {
            return 0;
        }
        if (saltlen != RSA_PSS_SALTLEN_DIGEST && saltlen != EVP_MD_get_size(md)) {
            return 0;
        }
        kind = PROTO_OP_KIND_SIGN_PSS;
    } else {
        return 0;
    }
    ops = proto_op_table(&num_ops);
    for (size_t i = 0; i < num_ops; i++) {
        if (ops[i].kind == kind && EVP_MD_is_a(md, ops[i].md)) {
            return ops[i].op;
        }
    }
    return 0;
}

/* ---- the provider ---------------------------------------------------------- */

/* Each algorithm's property string names the provider it belongs to. The
 * built-in and the module keep their own names, so both may be in one
 * process (an edge whose OPENSSL_CONF loads the module). */
#define PROV_ALGS(var, fns, what)                                                                  \
    static const OSSL_ALGORITHM var##_builtin[] = {                                                \
        {PROV_RSA_NAMES, "provider=" PROV_BUILTIN_NAME, fns, what},                                \
        {NULL, NULL, NULL, NULL},                                                                  \
    };                                                                                             \
    static const OSSL_ALGORITHM var##_module[] = {                                                 \
        {PROV_RSA_NAMES, "provider=splitkey", fns, what},                                          \
        {NULL, NULL, NULL, NULL},                                                                  \
    }

PROV_ALGS(prov_keymgmt_algs, prov_keymgmt_fns, "splitkey RSA (public half + key id)");
PROV_ALGS(prov_signature_algs, prov_signature_fns, "splitkey RSA signature");
PROV_ALGS(prov_cipher_algs, prov_cipher_fns, "splitkey RSA decryption");

/* Only the module reads key reference files and writes public keys: the
 * edge makes its keys from certificates. */
static const OSSL_ALGORITHM prov_decoder_algs[] = {
    {"DER", "provider=splitkey,input=pem", prov_decoder_fns, "splitkey key reference (PEM)"},
    {PROV_RSA_NAMES, "provider=splitkey,input=der,structure=" PROV_KEYREF_STRUCTURE,
     prov_decoder_body_fns, "splitkey key reference (its body)"},
    {NULL, NULL, NULL, NULL},
};
static const OSSL_ALGORITHM prov_store_algs[] = {
    {"splitkey", "provider=splitkey", prov_store_fns, "splitkey: URI of a key reference file"},
    {NULL, NULL, NULL, NULL},
};
static const OSSL_ALGORITHM prov_encoder_algs[] = {
    {PROV_RSA_NAMES, "provider=splitkey,output=der,structure=SubjectPublicKeyInfo",
     prov_encoder_der_fns, "splitkey RSA public key (DER)"},
    {PROV_RSA_NAMES, "provider=splitkey,output=pem,structure=SubjectPublicKeyInfo",
     prov_encoder_pem_fns, "splitkey RSA public key (PEM)"},
    {NULL, NULL, NULL, NULL},
};

const OSSL_ALGORITHM *prov_query(void *provctx, int operation_id, int *no_cache)
{
    const struct prov_ctx *ctx = provctx;

    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT:
        return ctx->module ? prov_keymgmt_algs_module : prov_keymgmt_algs_builtin;
    case OSSL_OP_SIGNATURE:
        return ctx->module ? prov_signature_algs_module : prov_signature_algs_builtin;
    case OSSL_OP_ASYM_CIPHER:
        return ctx->module ? prov_cipher_algs_module : prov_cipher_algs_builtin;
    case OSSL_OP_DECODER:
        return ctx->module ? prov_decoder_algs : NULL;
    case OSSL_OP_ENCODER:
        return ctx->module ? prov_encoder_algs : NULL;
    case OSSL_OP_STORE:
        return ctx->module ? prov_store_algs : NULL;
    default:
        return NULL;
    }
}

void prov_teardown(void *provctx)
{
    struct prov_ctx *ctx = provctx;

    if (ctx == NULL) {
        return;
    }
    if (ctx->teardown != NULL) {
        ctx->teardown(ctx);
    }
    OPENSSL_free(ctx);
}

static const OSSL_PARAM prov_gettable_list[] = {
    OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, NULL, 0),
    OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, NULL, 0),
    OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_BUILDINFO, NULL, 0),
    OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *prov_gettable_params(void *provctx)
{
    (void)provctx;
    return prov_gettable_list;
}

/* prov_get_params: what `openssl list -providers` shows. */
static int prov_get_params(void *provctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    (void)provctx;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "splitkey: RSA keys whose private half is "
                                                 "split (operations go to a combiner)")) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, SPK_VERSION)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, SPK_VERSION)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
    if (p != NULL && !OSSL_PARAM_set_int(p, 1)) {
        return 0;
    }
    return 1;
}

const OSSL_DISPATCH prov_base_fns[] = {
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))prov_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))prov_get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))prov_query},
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))prov_teardown},
    {0, NULL},
};

static int prov_builtin_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                             const OSSL_DISPATCH **out, void **provctx)
{
    struct prov_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    (void)in;
    if (ctx == NULL) {
        return 0;
    }
    ctx->handle = handle;
    ctx->libctx = NULL; /* the default library context: the edge uses only that one */
    ctx->md_propq = "provider=default";
    ctx->name = PROV_BUILTIN_NAME;
    ctx->keyop = g_builtin_keyop;
    ctx->keyop_arg = g_builtin_keyop_arg;
    *out = prov_base_fns;
    *provctx = ctx;
    return 1;
}

int prov_builtin_load(prov_keyop_fn fn, void *arg)
{
    static OSSL_PROVIDER *deflt;
    static OSSL_PROVIDER *mine;

    g_builtin_keyop = fn;
    g_builtin_keyop_arg = arg;
    if (mine != NULL) {
        /* Loaded already: point its context at the new function. */
        struct prov_ctx *ctx = OSSL_PROVIDER_get0_provider_ctx(mine);
        ctx->keyop = fn;
        ctx->keyop_arg = arg;
        return 0;
    }
    /* Loading any provider by hand stops "default" from loading by itself. */
    if (deflt == NULL && (deflt = OSSL_PROVIDER_load(NULL, "default")) == NULL) {
        return SPK_ERR_CRYPTO;
    }
    if (!OSSL_PROVIDER_add_builtin(NULL, PROV_BUILTIN_NAME, prov_builtin_init)) {
        return SPK_ERR_CRYPTO;
    }
    if ((mine = OSSL_PROVIDER_load(NULL, PROV_BUILTIN_NAME)) == NULL) {
        return SPK_ERR_CRYPTO;
    }
    return 0;
}

int prov_key_new(EVP_PKEY **out, uint8_t out_key_id[PROTO_KEY_ID_LEN], const EVP_PKEY *pub)
{
    int r = SPK_ERR_INTERNAL;
    BIGNUM *n = NULL;
    BIGNUM *e = NULL;
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
    if ((r = proto_key_id(out_key_id, pub)) != 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, PROV_PARAM_KEY_ID, out_key_id, PROTO_KEY_ID_LEN) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        goto out;
    }
    pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", "provider=" PROV_BUILTIN_NAME);
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
    BN_free(n);
    BN_free(e);
    return r;
}
