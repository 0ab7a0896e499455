/*
 * Threshold mode on the holder: loading a key share (it needs its record, for
 * the modulus, the commitment and any verification keys) into a signer, and
 * answering a SIGSHARE_REQUEST with a signature share over a message the
 * holder encoded itself from (op, digest, salt), with Shoup's proof of its
 * correctness when the record has verification keys. A holder never exponentiates a value it did
 * not encode, so it is no raw RSA oracle, and it never releases a threshold
 * key share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "share-holder/internal.h"
#include "split/split.h"

#define SH_PATH_MAX 4096

int sh_sigshare_load(struct sh_share *sh, const struct proto_share_file *sf, const char *dir,
                     const struct proto_holder_secret *key, char *why, size_t why_len)
{
    char path[SH_PATH_MAX];
    char hex[2 * PROTO_KEY_ID_LEN + 1];
    struct proto_record *rec = NULL;
    struct split_opened_share os;
    uint8_t *buf = NULL;
    uint8_t *s = NULL;
    size_t len = 0;
    int r = SPK_ERR_INTERNAL;

    sodium_bin2hex(hex, sizeof(hex), sf->key_id, PROTO_KEY_ID_LEN);
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.record", dir, hex) >= sizeof(path)) {
        (void)snprintf(why, why_len, "path too long");
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    if ((rec = calloc(1, sizeof(*rec))) == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    /* The modulus comes from the record: a threshold share cannot be served without it. */
    if ((r = spk_file_read(path, PROTO_FILE_MAX, &buf, &len)) != 0 ||
        (r = proto_record_decode(rec, buf, len)) != 0 || (r = split_record_verify(rec)) != 0) {
        (void)snprintf(why, why_len, "a threshold-mode share needs its valid record %s.record (%s)",
                       hex, spk_strerror(r));
        goto out;
    }
    if (rec->mode != PROTO_MODE_THRESHOLD || rec->threshold != sf->threshold ||
        rec->num_shares != sf->num_shares) {
        (void)snprintf(why, why_len, "its record %s.record is of another mode or split", hex);
        r = SPK_ERR_MIXED_SPLIT;
        goto out;
    }
    if ((s = spk_secret_new(rec->modulus_len)) == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    if ((r = split_share_open(s, rec->modulus_len, sf, key)) != 0) {
        (void)snprintf(why, why_len, "cannot open it: %s", spk_strerror(r));
        goto out;
    }
    memset(&os, 0, sizeof(os));
    memcpy(os.key_id, sf->key_id, sizeof(os.key_id));
    memcpy(os.split_id, sf->split_id, sizeof(os.split_id));
    os.index = sf->index;
    os.holder = key->pub.name;
    os.y = s;
    if ((r = split_share_check(rec, NULL, &os)) != 0) {
        (void)snprintf(why, why_len, "it does not match the record (%s)", spk_strerror(r));
        goto out;
    }
    if ((r = split_tss_signer_new(&sh->signer, rec->modulus, rec->modulus_len, rec->num_shares, s,
                                  rec->modulus_len)) != 0) {
        (void)snprintf(why, why_len, "cannot prepare its signer: %s", spk_strerror(r));
        goto out;
    }
    /* Verification keys in the record: every signature share goes out with its proof. */
    if (rec->has_vkeys &&
        (r = split_tss_signer_set_vkeys(sh->signer, rec->vkey_base,
                                        proto_record_vkey(rec, sf->index))) != 0) {
        (void)snprintf(why, why_len,
                       "its record's verification key v_%u is not v^s_%u (%s): record and share "
                       "are not of one split",
                       sf->index, sf->index, spk_strerror(r));
        split_tss_signer_free(sh->signer);
        sh->signer = NULL;
        goto out;
    }
    memcpy(sh->key_id, sf->key_id, sizeof(sh->key_id));
    memcpy(sh->split_id, sf->split_id, sizeof(sh->split_id));
    sh->index = sf->index;
    sh->mode = PROTO_MODE_THRESHOLD;
    sh->threshold = sf->threshold;
    sh->num_shares = sf->num_shares;
    memcpy(sh->modulus, rec->modulus, rec->modulus_len);
    sh->modulus_len = rec->modulus_len;
    sh->mod_bits = proto_record_modulus_bits(rec);
    r = 0;
out:
    /* The signer keeps 2 Delta s_i; the share itself is not kept twice. */
    spk_secret_free(s);
    spk_file_free(buf, len);
    free(rec);
    return r;
}

int sh_sigshare_build(uint8_t *out, size_t cap, size_t *out_len, uint64_t req_id,
                      struct sh_share *share, const struct proto_sigshare_req *req,
                      const char **why)
{
    const struct proto_op_info *info = proto_op_info(req->op);
    struct proto_msg *m = NULL;
    uint8_t em[PROTO_BN_MAX];
    int r;

    *out_len = 0;
    if (share->mode != PROTO_MODE_THRESHOLD || share->signer == NULL) {
        *why = "not a threshold-mode key here; fetch its share instead";
        return SPK_ERR_UNSUPPORTED;
    }
    if (info == NULL || !proto_op_is_sign(info)) {
        *why = "threshold keys sign only (PKCS#1 v1.5 or PSS); no decryption";
        return SPK_ERR_UNSUPPORTED;
    }
    if (req->digest_len != info->digest_len) {
        *why = "the digest length does not match the operation's hash";
        return SPK_ERR_MALFORMED;
    }
    if (req->salt_len != (info->kind == PROTO_OP_KIND_SIGN_PSS ? req->digest_len : 0)) {
        *why = "a PSS salt must be as long as the digest; PKCS#1 takes none";
        return SPK_ERR_MALFORMED;
    }
    if ((r = split_pad_encode(em, share->modulus_len, share->mod_bits, req->op, req->digest,
                              req->digest_len, req->salt, req->salt_len)) != 0) {
        *why = "the message cannot be encoded for this key";
        return r == SPK_ERR_UNSUPPORTED ? r : SPK_ERR_MALFORMED;
    }
    *why = "internal error";
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        return SPK_ERR_INTERNAL;
    }
    m->type = PROTO_MSG_SIGSHARE_RESPONSE;
    m->req_id = req_id;
    memcpy(m->u.sigshare_resp.key_id, share->key_id, PROTO_KEY_ID_LEN);
    m->u.sigshare_resp.index = share->index;
    m->u.sigshare_resp.share_len = share->modulus_len;
    r = split_tss_sign_share(share->signer, m->u.sigshare_resp.share, em);
    if (r == 0 && split_tss_signer_has_vkeys(share->signer)) {
        m->u.sigshare_resp.has_proof = true;
        r = split_tss_prove(share->signer, m->u.sigshare_resp.proof_c, m->u.sigshare_resp.proof_z,
                            em, m->u.sigshare_resp.share);
    }
    if (r == 0) {
        r = proto_msg_encode(out, cap, out_len, m);
    }
    free(m);
    spk_stack_wipe(32768);
    return r == 0 ? 0 : SPK_ERR_INTERNAL;
}
