/*
 * comb_alg.c: the table of operations: command-line names, wire op kinds,
 * digest lengths and what the RSA engine is asked to do for each.
 */
#include <string.h>

#include "combiner/comb_private.h"

struct comb_alg_info {
    enum comb_alg alg;
    const char *name;
    const char *md; /* OpenSSL digest for a message, NULL for decryptions */
    enum comb_rsa_op_kind kind;
    enum comb_hash hash;
};

static const struct comb_alg_info comb_algs[] = {
    {COMB_ALG_PKCS1_SHA1, "pkcs1-sha1", "SHA1", COMB_RSA_SIGN_PKCS1, COMB_HASH_SHA1},
    {COMB_ALG_PKCS1_SHA224, "pkcs1-sha224", "SHA224", COMB_RSA_SIGN_PKCS1, COMB_HASH_SHA224},
    {COMB_ALG_PKCS1_SHA256, "pkcs1-sha256", "SHA256", COMB_RSA_SIGN_PKCS1, COMB_HASH_SHA256},
    {COMB_ALG_PKCS1_SHA384, "pkcs1-sha384", "SHA384", COMB_RSA_SIGN_PKCS1, COMB_HASH_SHA384},
    {COMB_ALG_PKCS1_SHA512, "pkcs1-sha512", "SHA512", COMB_RSA_SIGN_PKCS1, COMB_HASH_SHA512},
    {COMB_ALG_PKCS1_MD5SHA1, "pkcs1-md5sha1", "MD5-SHA1", COMB_RSA_SIGN_PKCS1, COMB_HASH_MD5_SHA1},
    {COMB_ALG_PSS_SHA256, "pss-sha256", "SHA256", COMB_RSA_SIGN_PSS, COMB_HASH_SHA256},
    {COMB_ALG_PSS_SHA384, "pss-sha384", "SHA384", COMB_RSA_SIGN_PSS, COMB_HASH_SHA384},
    {COMB_ALG_PSS_SHA512, "pss-sha512", "SHA512", COMB_RSA_SIGN_PSS, COMB_HASH_SHA512},
    {COMB_ALG_DECRYPT_PKCS1, "pkcs1", NULL, COMB_RSA_DECRYPT_PKCS1, COMB_HASH_NONE},
    {COMB_ALG_DECRYPT_TLS, "tls-premaster", NULL, COMB_RSA_DECRYPT_TLS, COMB_HASH_NONE},
    {COMB_ALG_DECRYPT_OAEP_SHA1, "oaep-sha1", NULL, COMB_RSA_DECRYPT_OAEP, COMB_HASH_SHA1},
    {COMB_ALG_DECRYPT_OAEP_SHA256, "oaep-sha256", NULL, COMB_RSA_DECRYPT_OAEP, COMB_HASH_SHA256},
    {COMB_ALG_DECRYPT_RAW, "raw", NULL, COMB_RSA_RAW, COMB_HASH_NONE},
};

#define COMB_NUM_ALGS (sizeof(comb_algs) / sizeof(comb_algs[0]))

static const struct comb_alg_info *comb_alg_info(int alg)
{
    size_t i;

    for (i = 0; i < COMB_NUM_ALGS; i++) {
        if ((int)comb_algs[i].alg == alg) {
            return &comb_algs[i];
        }
    }
    return NULL;
}

enum comb_alg comb_alg_from_name(const char *name)
{
    size_t i;
    uint8_t op;

    if (name == NULL) {
        return COMB_ALG_NONE;
    }
    for (i = 0; i < COMB_NUM_ALGS; i++) {
        if (strcmp(name, comb_algs[i].name) == 0) {
            return comb_algs[i].alg;
        }
    }
    /* The wire protocol's names ("sign-pss-sha256", "decrypt-raw", ...). */
    op = proto_op_from_name(name);
    return comb_alg_info(op) != NULL ? (enum comb_alg)op : COMB_ALG_NONE;
}

const char *comb_alg_name(enum comb_alg alg)
{
    const struct comb_alg_info *ai = comb_alg_info((int)alg);

    return ai != NULL ? ai->name : "unknown";
}

bool comb_alg_valid(int alg)
{
    return comb_alg_info(alg) != NULL;
}

bool comb_alg_is_sign(enum comb_alg alg)
{
    const struct comb_alg_info *ai = comb_alg_info((int)alg);

    return ai != NULL && ai->md != NULL;
}

size_t comb_alg_digest_len(enum comb_alg alg)
{
    const struct comb_alg_info *ai = comb_alg_info((int)alg);

    if (ai == NULL || ai->md == NULL) {
        return 0;
    }
    return comb_hash_len(ai->hash);
}

const char *comb_alg_md(enum comb_alg alg)
{
    const struct comb_alg_info *ai = comb_alg_info((int)alg);

    return ai != NULL ? ai->md : NULL;
}

int comb_alg_engine_req(struct comb_rsa_req *req, enum comb_alg alg)
{
    const struct comb_alg_info *ai = comb_alg_info((int)alg);

    if (ai == NULL) {
        return SPK_ERR_UNSUPPORTED;
    }
    req->op = ai->kind;
    req->hash = ai->hash;
    /* MGF1 with the same hash: what TLS 1.3 requires of PSS and what OpenSSL 3 does for OAEP
     * when only rsa_oaep_md is set. */
    req->mgf1_hash = COMB_HASH_NONE;
    return 0;
}
