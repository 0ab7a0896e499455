/*
 * The threshold-mode halves of keysplit verify and combine: signing a test
 * digest with k key shares (checking each share against its verification key
 * and its proof, when the record has them), and factoring N from them for
 * disaster recovery.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "split/keysplit/keysplit.h"

/* tss_check_sig: OpenSSL's own RSA-PSS SHA-256 verification with the record's key. */
static int tss_check_sig(const struct proto_record *rec, const uint8_t *digest, size_t digest_len,
                         const uint8_t *sig)
{
    EVP_PKEY *pub = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int r;

    if ((r = split_rsa_pkey_public(&pub, rec->modulus, rec->modulus_len, rec->exponent,
                                   rec->exponent_len)) != 0) {
        return r;
    }
    r = SPK_ERR_FAULT;
    if ((ctx = EVP_PKEY_CTX_new(pub, NULL)) != NULL && EVP_PKEY_verify_init(ctx) == 1 &&
        EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)digest_len) == 1 &&
        EVP_PKEY_verify(ctx, sig, rec->modulus_len, digest, digest_len) == 1) {
        r = 0;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pub);
    return r;
}

/*
 * tss_signer makes a signer of one opened share and, when the record has
 * verification keys, gives it v and its v_i, which checks v^s_i == v_i.
 */
static int tss_signer(const char *cmd, struct split_tss_signer **out,
                      const struct proto_record *rec, const struct split_opened_share *share)
{
    int r;

    *out = NULL;
    if ((r = split_tss_signer_new(out, rec->modulus, rec->modulus_len, rec->num_shares, share->y,
                                  rec->modulus_len)) != 0) {
        split_cli_fail(cmd, "share %u cannot sign: %s", share->index, spk_strerror(r));
        return r;
    }
    if (rec->has_vkeys && (r = split_tss_signer_set_vkeys(
                               *out, rec->vkey_base, proto_record_vkey(rec, share->index))) != 0) {
        split_cli_fail(cmd, "share %u is not the one the record's verification key v_%u names: %s",
                       share->index, share->index, spk_strerror(r));
        split_tss_signer_free(*out);
        *out = NULL;
        return r;
    }
    return 0;
}

int split_cli_tss_vkeys_check(const char *cmd, const struct split_cli_opened *o)
{
    struct split_tss_signer *signer = NULL;

    for (size_t i = 0; i < o->num; i++) {
        if (tss_signer(cmd, &signer, o->rec, &o->shares[i]) != 0) {
            return SPLIT_CLI_FAIL;
        }
        split_tss_signer_free(signer);
    }
    return SPLIT_CLI_OK;
}

int split_cli_tss_sign_test(const char *cmd, const struct split_cli_opened *o)
{
    const struct proto_record *rec = o->rec;
    struct split_tss_part parts[PROTO_SHARES_MAX];
    struct split_tss_signer *signer = NULL;
    uint8_t *xs = NULL;
    uint8_t bad[PROTO_SHARES_MAX];
    uint8_t em[PROTO_BN_MAX];
    uint8_t sig[PROTO_BN_MAX];
    uint8_t digest[32];
    uint8_t salt[32];
    uint8_t c[PROTO_TSS_C_LEN];
    uint8_t z[PROTO_TSS_Z_MAX];
    size_t n_len = rec->modulus_len;
    unsigned bits = proto_record_modulus_bits(rec);
    int r;
    int ret = SPLIT_CLI_FAIL;

    randombytes_buf(digest, sizeof(digest));
    randombytes_buf(salt, sizeof(salt));
    if ((r = split_pad_encode(em, n_len, bits, PROTO_OP_SIGN_PSS_SHA256, digest, sizeof(digest),
                              salt, sizeof(salt))) != 0) {
        return split_cli_fail(cmd, "cannot encode a test message: %s", spk_strerror(r));
    }
    if ((xs = calloc(o->num, n_len)) == NULL) {
        return split_cli_fail(cmd, "out of memory");
    }
    for (size_t i = 0; i < o->num; i++) {
        if ((r = tss_signer(cmd, &signer, rec, &o->shares[i])) != 0) {
            goto out;
        }
        if ((r = split_tss_sign_share(signer, xs + i * n_len, em)) != 0) {
            split_cli_fail(cmd, "share %u cannot sign: %s", o->shares[i].index, spk_strerror(r));
            goto out;
        }
        /* With verification keys: each share's proof, checked as a combiner checks it. */
        if (rec->has_vkeys && ((r = split_tss_prove(signer, c, z, em, xs + i * n_len)) != 0 ||
                               (r = split_tss_share_verify(rec, em, o->shares[i].index,
                                                           xs + i * n_len, c, z)) != 0)) {
            split_cli_fail(cmd, "share %u: its proof of correctness fails: %s", o->shares[i].index,
                           spk_strerror(r));
            goto out;
        }
        split_tss_signer_free(signer);
        signer = NULL;
        parts[i].index = o->shares[i].index;
        parts[i].xi = xs + i * n_len;
    }
    r = split_tss_combine(sig, bad, rec->modulus, n_len, rec->exponent, rec->exponent_len,
                          rec->num_shares, rec->threshold, em, parts, o->num);
    for (size_t i = 0; i < o->num; i++) {
        if (bad[i]) {
            split_cli_fail(cmd, "share %u gives a wrong signature share", parts[i].index);
        }
    }
    if (r != 0) {
        split_cli_fail(cmd, "the shares do not sign: %s", spk_strerror(r));
        goto out;
    }
    if ((r = tss_check_sig(rec, digest, sizeof(digest), sig)) != 0) {
        split_cli_fail(cmd, "the combined signature does not verify: %s", spk_strerror(r));
        goto out;
    }
    ret = SPLIT_CLI_OK;
out:
    split_tss_signer_free(signer);
    free(xs);
    return ret;
}

int split_cli_tss_recover(const char *cmd, EVP_PKEY **out, const struct split_cli_opened *o)
{
    const struct proto_record *rec = o->rec;
    unsigned indices[PROTO_SHARES_MAX];
    uint8_t *shares = NULL;
    size_t n_len = rec->modulus_len;
    int r;

    if (o->num < rec->threshold) {
        return split_cli_fail(cmd, "%zu share(s) given; this key needs %u", o->num, rec->threshold);
    }
    if ((shares = spk_secret_new(rec->threshold * n_len)) == NULL) {
        return split_cli_fail(cmd, "out of (locked) memory");
    }
    for (unsigned i = 0; i < rec->threshold; i++) {
        indices[i] = o->shares[i].index;
        memcpy(shares + i * n_len, o->shares[i].y, n_len);
    }
    r = split_tss_recover(out, rec->modulus, n_len, rec->exponent, rec->exponent_len,
                          rec->num_shares, rec->threshold, indices, shares);
    spk_secret_free(shares);
    if (r != 0) {
        return split_cli_fail(cmd, "the shares do not factor the modulus: %s", spk_strerror(r));
    }
    return SPLIT_CLI_OK;
}
