/*
 * comb_alg.c: the combiner's view of the table of operations (proto_op_info):
 * command-line names, digest lengths and what the RSA engine is asked to do.
 * enum comb_alg is enum proto_op, so there is no second table here.
 */
#include "combiner/comb_private.h"

static const struct proto_op_info *comb_alg_info(int alg)
{
    return alg > 0 && alg <= UINT8_MAX ? proto_op_info((uint8_t)alg) : NULL;
}

enum comb_alg comb_alg_from_name(const char *name)
{
    const struct proto_op_info *info = proto_op_info_by_name(name);

    return info != NULL ? (enum comb_alg)info->op : COMB_ALG_NONE;
}

const char *comb_alg_name(enum comb_alg alg)
{
    const struct proto_op_info *info = comb_alg_info((int)alg);

    return info != NULL ? info->short_name : "unknown";
}

bool comb_alg_valid(int alg)
{
    return comb_alg_info(alg) != NULL;
}

bool comb_alg_is_sign(enum comb_alg alg)
{
    return proto_op_is_sign(comb_alg_info((int)alg));
}

size_t comb_alg_digest_len(enum comb_alg alg)
{
    const struct proto_op_info *info = comb_alg_info((int)alg);

    return info != NULL ? info->digest_len : 0;
}

const char *comb_alg_md(enum comb_alg alg)
{
    const struct proto_op_info *info = comb_alg_info((int)alg);

    return proto_op_is_sign(info) ? info->md : NULL;
}

int comb_alg_engine_req(struct comb_rsa_req *req, enum comb_alg alg)
{
    const struct proto_op_info *info = comb_alg_info((int)alg);

    if (info == NULL) {
        return SPK_ERR_UNSUPPORTED;
    }
    req->op = (enum comb_rsa_op_kind)info->kind;
    req->hash = (enum comb_hash)info->hash;
    /* MGF1 with the same hash: what TLS 1.3 requires of PSS and what OpenSSL 3 does for OAEP
     * when only rsa_oaep_md is set. */
    req->mgf1_hash = COMB_HASH_NONE;
    return 0;
}
