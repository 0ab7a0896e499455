/*
 * RSA key handling for keysplit: loading and vetting a private key, moving its
 * CRT tuple in and out of secret memory, rebuilding an EVP_PKEY, and the
 * record signature. Every BIGNUM that holds a secret is BN_secure_new'd (so
 * OpenSSL's param builder keeps it in its wiped block), flagged constant-time,
 * and BN_clear_free'd.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "split/internal.h"
#include "split/split.h"

const char *split_io_reason(const char *path, int r)
{
    struct stat st;

    if (r == SPK_ERR_IO && stat(path, &st) != 0) {
        return strerror(errno);
    }
    if (r == SPK_ERR_IO && S_ISDIR(st.st_mode)) {
        return "is a directory";
    }
    return spk_strerror(r);
}

/* Where OpenSSL names each tuple value, in tuple order. */
static const char *const split_rsa_tuple_names[SPLIT_NUM_SECRETS] = {
    OSSL_PKEY_PARAM_RSA_FACTOR1,   OSSL_PKEY_PARAM_RSA_FACTOR2,      OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

__attribute__((format(printf, 3, 4))) static void split_why(char *why, size_t why_len,
                                                            const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || why_len == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

/* split_bn_secret: a fresh BIGNUM for a secret value, or NULL. */
static BIGNUM *split_bn_secret(void)
{
    BIGNUM *bn = BN_secure_new();

    if (bn != NULL) {
        BN_set_flags(bn, BN_FLG_CONSTTIME);
    }
    return bn;
}

struct split_pw {
    const uint8_t *pw;
    size_t len;
    bool asked;
};

static int split_pw_cb(char *buf, int size, int rwflag, void *u)
{
    struct split_pw *pw = u;

    (void)rwflag;
    pw->asked = true;
    if (pw->pw == NULL || size < 0 || pw->len > (size_t)size) {
        return -1;
    }
    memcpy(buf, pw->pw, pw->len);
    return (int)pw->len;
}

/* split_bn_get: a public BIGNUM parameter into |out| (minimal big-endian). */
static int split_bn_get_public(const EVP_PKEY *pkey, const char *name, uint8_t *out, size_t cap,
                               size_t *out_len, BIGNUM **keep)
{
    BIGNUM *bn = NULL;
    int n;

    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) {
        return SPK_ERR_KEY_UNSUPPORTED;
    }
    n = BN_num_bytes(bn);
    if (n <= 0 || (size_t)n > cap) {
        BN_free(bn);
        return SPK_ERR_KEY_UNSUPPORTED;
    }
    if (BN_bn2bin(bn, out) != n) {
        BN_free(bn);
        return SPK_ERR_CRYPTO;
    }
    *out_len = (size_t)n;
    if (keep != NULL) {
        *keep = bn;
    } else {
        BN_free(bn);
    }
    return 0;
}

/* split_rsa_key_vet fills the public fields of |key| and refuses every key we do not split. */
static int split_rsa_key_vet(struct split_rsa_key *key, char *why, size_t why_len)
{
    BIGNUM *e = NULL;
    BIGNUM *extra = NULL;
    int bits_p = 0;
    int bits_q = 0;
    int r = SPK_ERR_KEY_UNSUPPORTED;
    size_t i;

    if (!EVP_PKEY_is_a(key->pkey, "RSA")) {
        const char *type = EVP_PKEY_get0_type_name(key->pkey);

        split_why(why, why_len, "not an RSA key (%s); only two-prime RSA keys can be split",
                  type != NULL ? type : "unknown type");
        goto out;
    }
    if (EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_FACTOR3, &extra) == 1) {
        split_why(why, why_len, "multi-prime RSA key; only two-prime RSA keys can be split");
        goto out;
    }
    key->bits = (unsigned)EVP_PKEY_get_bits(key->pkey);
    if (key->bits < SPLIT_RSA_BITS_MIN || key->bits > SPLIT_RSA_BITS_MAX) {
        split_why(why, why_len, "RSA key of %u bits; only %d to %d bits can be split", key->bits,
                  SPLIT_RSA_BITS_MIN, SPLIT_RSA_BITS_MAX);
        goto out;
    }
    if ((r = split_bn_get_public(key->pkey, OSSL_PKEY_PARAM_RSA_N, key->modulus,
                                 sizeof(key->modulus), &key->modulus_len, NULL)) != 0) {
        split_why(why, why_len, "cannot read the RSA modulus");
        goto out;
    }
    if ((r = split_bn_get_public(key->pkey, OSSL_PKEY_PARAM_RSA_E, key->exponent,
                                 sizeof(key->exponent), &key->exponent_len, &e)) != 0) {
        split_why(why, why_len, "public exponent missing or longer than %d bytes", PROTO_EXP_MAX);
        goto out;
    }
    r = SPK_ERR_KEY_UNSUPPORTED;
    if (!BN_is_odd(e) || BN_cmp(e, BN_value_one()) <= 0) {
        split_why(why, why_len, "public exponent is not an odd number above 1");
        goto out;
    }
    /* Every CRT value must be there: a key without them would be rebuilt 6x slower. */
    for (i = 0; i < SPLIT_NUM_SECRETS; i++) {
        BIGNUM *v = NULL;
        int b;

        if (EVP_PKEY_get_bn_param(key->pkey, split_rsa_tuple_names[i], &v) != 1) {
            split_why(why, why_len, "private key lacks its CRT values (%s)",
                      split_rsa_tuple_names[i]);
            goto out;
        }
        b = BN_num_bits(v);
        BN_clear_free(v);
        if (i == 0) {
            bits_p = b;
        } else if (i == 1) {
            bits_q = b;
        }
    }
    key->prime_bits = (unsigned)(bits_p > bits_q ? bits_p : bits_q);
    if ((r = proto_key_id(key->key_id, key->pkey)) != 0) {
        split_why(why, why_len, "cannot encode the public key");
        goto out;
    }
    r = 0;
out:
    BN_free(e);
    BN_clear_free(extra);
    return r;
}

int split_rsa_key_load(struct split_rsa_key *key, const char *pem_path, const char *passphrase_path,
                       char *why, size_t why_len)
{
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    uint8_t *pw_buf = NULL;
    size_t pw_len = 0;
    struct split_pw pw = {0};
    BIO *bio = NULL;
    int r = SPK_ERR_INTERNAL;

    sodium_memzero(key, sizeof(*key));
    split_why(why, why_len, "unexpected error");
    if (passphrase_path != NULL) {
        if ((r = spk_file_read_private(passphrase_path, 4096, &pw_buf, &pw_len)) != 0) {
            split_why(why, why_len, "cannot read passphrase file %s: %s", passphrase_path,
                      split_io_reason(passphrase_path, r));
            goto out;
        }
        /* One trailing newline is how editors and echo end a file, not part of it. */
        if (pw_len > 0 && pw_buf[pw_len - 1] == '\n') {
            pw_len--;
        }
        pw.pw = pw_buf;
        pw.len = pw_len;
    }
    if ((r = spk_file_read_secret(pem_path, PROTO_FILE_MAX, &pem, &pem_len)) != 0) {
        split_why(why, why_len, "cannot read key file %s: %s", pem_path,
                  split_io_reason(pem_path, r));
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if (pem_len > (size_t)0x7fffffff || (bio = BIO_new_mem_buf(pem, (int)pem_len)) == NULL) {
        goto out;
    }
    ERR_clear_error();
    key->pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, split_pw_cb, &pw, NULL, NULL);
    ERR_clear_error();
    if (key->pkey == NULL) {
        if (pw.asked && pw.pw == NULL) {
            r = SPK_ERR_PASSPHRASE;
            split_why(why, why_len, "%s is encrypted: give its passphrase with --passphrase-file",
                      pem_path);
        } else if (pw.asked) {
            r = SPK_ERR_PASSPHRASE;
            split_why(why, why_len, "wrong passphrase for %s", pem_path);
        } else {
            r = SPK_ERR_MALFORMED;
            split_why(why, why_len, "%s holds no PEM private key we can read", pem_path);
        }
        goto out;
    }
    if ((r = split_rsa_key_vet(key, why, why_len)) != 0) {
        goto out;
    }
    r = 0;
out:
    BIO_free(bio);
    spk_secret_free(pem);
    spk_secret_free(pw_buf);
    spk_stack_wipe(16384);
    if (r != 0) {
        split_rsa_key_cleanup(key);
    } else if (why != NULL && why_len > 0) {
        why[0] = '\0';
    }
    return r;
}

void split_rsa_key_cleanup(struct split_rsa_key *key)
{
    if (key == NULL) {
        return;
    }
    EVP_PKEY_free(key->pkey);
    sodium_memzero(key, sizeof(*key));
}

int split_rsa_tuple_export(uint8_t *out_tuple, const struct split_field *f,
                           const struct split_rsa_key *key)
{
    BIGNUM *v = NULL;
    size_t i;
    int r = SPK_ERR_INTERNAL;

    if (key->pkey == NULL || f->y_len == 0) {
        return SPK_ERR_INVALID_ARG;
    }
    for (i = 0; i < SPLIT_NUM_SECRETS; i++) {
        uint8_t *dst = out_tuple + i * f->y_len;

        if ((v = split_bn_secret()) == NULL) {
            r = SPK_ERR_NOMEM;
            goto out;
        }
        if (EVP_PKEY_get_bn_param(key->pkey, split_rsa_tuple_names[i], &v) != 1) {
            r = SPK_ERR_KEY_UNSUPPORTED;
            goto out;
        }
        /* Below 2^(bits-1) is below M = 2^bits - 1: a field element. */
        if ((unsigned)BN_num_bits(v) >= f->bits) {
            r = SPK_ERR_KEY_UNSUPPORTED;
            goto out;
        }
        if (BN_bn2binpad(v, dst, (int)f->y_len) != (int)f->y_len) {
            r = SPK_ERR_CRYPTO;
            goto out;
        }
        BN_clear_free(v);
        v = NULL;
    }
    r = 0;
out:
    BN_clear_free(v);
    if (r != 0) {
        sodium_memzero(out_tuple, split_tuple_len(f));
    }
    spk_stack_wipe(16384);
    return r;
}

/* split_tuple_bns: the five tuple values as secret BIGNUMs (vs[0..4]). */
static int split_tuple_bns(BIGNUM *vs[SPLIT_NUM_SECRETS], const struct split_field *f,
                           const uint8_t *tuple)
{
    size_t i;

    for (i = 0; i < SPLIT_NUM_SECRETS; i++) {
        if ((vs[i] = split_bn_secret()) == NULL) {
            return SPK_ERR_NOMEM;
        }
        if (BN_bin2bn(tuple + i * f->y_len, (int)f->y_len, vs[i]) == NULL) {
            return SPK_ERR_NOMEM;
        }
    }
    return 0;
}

static void split_tuple_bns_free(BIGNUM *vs[SPLIT_NUM_SECRETS])
{
    size_t i;

    for (i = 0; i < SPLIT_NUM_SECRETS; i++) {
        BN_clear_free(vs[i]);
        vs[i] = NULL;
    }
}

/* The GMP scratch of split_rsa_tuple_check's product, on its stack. */
#define SPLIT_PQ_SCRATCH_MAX (4 * SPLIT_FE_LIMBS_MAX)

/*
 * split_rsa_tuple_check computes p * q with mpn_sec_mul and compares it with
 * n limb by limb, folding every difference into one word, so neither the
 * product nor the comparison depends on the primes' values; only the
 * verdict branches. Every limb that held p, q or the product is wiped.
 */
int split_rsa_tuple_check(const struct split_field *f, const uint8_t *tuple, const uint8_t *n,
                          size_t n_len)
{
    mp_limb_t p[SPLIT_FE_LIMBS_MAX];
    mp_limb_t q[SPLIT_FE_LIMBS_MAX];
    mp_limb_t prod[2 * SPLIT_FE_LIMBS_MAX];
    mp_limb_t nl[2 * SPLIT_FE_LIMBS_MAX];
    mp_limb_t scratch[SPLIT_PQ_SCRATCH_MAX];
    size_t limbs = f->limbs;
    size_t i;
    mp_limb_t diff = 0;
    mp_limb_t p_high = 0;
    mp_limb_t q_high = 0;
    bool below;
    int r = SPK_ERR_INVALID_ARG;

    if (n_len == 0 || n_len > PROTO_BN_MAX || limbs == 0 || limbs > SPLIT_FE_LIMBS_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    if ((size_t)mpn_sec_mul_itch((mp_size_t)limbs, (mp_size_t)limbs) > SPLIT_PQ_SCRATCH_MAX) {
        return SPK_ERR_INTERNAL;
    }
    /* n is public: a modulus longer than any product of two field elements is no match. */
    if (n_len > 2 * limbs * sizeof(mp_limb_t)) {
        return SPK_ERR_KEY_MISMATCH;
    }
    split_limbs_from_be(nl, 2 * SPLIT_FE_LIMBS_MAX, n, n_len);
    below = split_fe_from_bytes(f, p, tuple);
    below &= split_fe_from_bytes(f, q, tuple + f->y_len);
    mpn_sec_mul(prod, p, (mp_size_t)limbs, q, (mp_size_t)limbs, scratch);
    for (i = 0; i < 2 * limbs; i++) {
        diff |= prod[i] ^ nl[i];
    }
    /* p > 1 and q > 1: some bit above bit 0 is set. */
    p_high = p[0] >> 1;
    q_high = q[0] >> 1;
    for (i = 1; i < limbs; i++) {
        p_high |= p[i];
        q_high |= q[i];
    }
    r = (below & (diff == 0) & (p_high != 0) & (q_high != 0)) ? 0 : SPK_ERR_KEY_MISMATCH;
    sodium_memzero(p, sizeof(p));
    sodium_memzero(q, sizeof(q));
    sodium_memzero(prod, sizeof(prod));
    sodium_memzero(scratch, sizeof(scratch));
    return r;
}

/*
 * split_compute_d: d = e^-1 mod lcm(p-1, q-1), the d OpenSSL generates (and
 * RFC 8017 allows), so a rebuilt key is the original's bytes. Computed as
 * (1 + t * L) / e with L = lcm and t = -L^-1 mod e: the only inverse is
 * modulo the public e, of the small number L mod e, and the gcd that gives L
 * is OpenSSL's constant-time BN_gcd; nothing is inverted modulo a secret.
 */
static int split_compute_d(BIGNUM *d, const BIGNUM *p, const BIGNUM *q, const BIGNUM *e,
                           BN_CTX *ctx)
{
    BIGNUM *lcm = split_bn_secret();
    BIGNUM *pm1 = split_bn_secret();
    BIGNUM *qm1 = split_bn_secret();
    BIGNUM *g = split_bn_secret();
    BIGNUM *rem = split_bn_secret();
    BIGNUM *t = split_bn_secret();
    BIGNUM *num = split_bn_secret();
    int r = SPK_ERR_NOMEM;

    if (lcm == NULL || pm1 == NULL || qm1 == NULL || g == NULL || rem == NULL || t == NULL ||
        num == NULL) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (BN_copy(pm1, p) == NULL || BN_copy(qm1, q) == NULL || BN_sub_word(pm1, 1) != 1 ||
        BN_sub_word(qm1, 1) != 1 || BN_gcd(g, pm1, qm1, ctx) != 1 ||
        BN_div(t, NULL, pm1, g, ctx) != 1 || BN_mul(lcm, t, qm1, ctx) != 1) {
        goto out;
    }
    if (BN_mod(rem, lcm, e, ctx) != 1) {
        goto out;
    }
    /* gcd(lcm, e) != 1: no d exists; these are not the factors of a key with this e. */
    if (BN_mod_inverse(t, rem, e, ctx) == NULL) {
        ERR_clear_error();
        r = SPK_ERR_KEY_MISMATCH;
        goto out;
    }
    if (BN_sub(t, e, t) != 1 || BN_mul(num, t, lcm, ctx) != 1 || BN_add_word(num, 1) != 1 ||
        BN_div(d, rem, num, e, ctx) != 1) {
        goto out;
    }
    if (!BN_is_zero(rem)) {
        r = SPK_ERR_KEY_MISMATCH;
        goto out;
    }
    r = 0;
out:
    BN_clear_free(lcm);
    BN_clear_free(pm1);
    BN_clear_free(qm1);
    BN_clear_free(g);
    BN_clear_free(rem);
    BN_clear_free(t);
    BN_clear_free(num);
    return r;
}

int split_rsa_pkey_from_tuple(EVP_PKEY **out, const struct split_field *f, const uint8_t *tuple,
                              const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len)
{
    BIGNUM *vs[SPLIT_NUM_SECRETS] = {0};
    BIGNUM *bn_n = NULL;
    BIGNUM *bn_e = NULL;
    BIGNUM *d = NULL;
    BN_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    size_t i;
    int r = SPK_ERR_INVALID_ARG;

    *out = NULL;
    if (n_len == 0 || n_len > PROTO_BN_MAX || e_len == 0 || e_len > PROTO_EXP_MAX) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((ctx = BN_CTX_secure_new()) == NULL || (bn_n = BN_bin2bn(n, (int)n_len, NULL)) == NULL ||
        (bn_e = BN_bin2bn(e, (int)e_len, NULL)) == NULL || (d = split_bn_secret()) == NULL) {
        goto out;
    }
    if ((r = split_rsa_tuple_check(f, tuple, n, n_len)) != 0) {
        goto out;
    }
    if ((r = split_tuple_bns(vs, f, tuple)) != 0) {
        goto out;
    }
    if ((r = split_compute_d(d, vs[0], vs[1], bn_e, ctx)) != 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) != 1) {
        goto out;
    }
    for (i = 0; i < SPLIT_NUM_SECRETS; i++) {
        if (OSSL_PARAM_BLD_push_BN(bld, split_rsa_tuple_names[i], vs[i]) != 1) {
            goto out;
        }
    }
    if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, out, EVP_PKEY_KEYPAIR, params) != 1) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    EVP_PKEY_CTX_free(pctx);
    /* The secret values sit in the builder's secure block, which this wipes. */
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    split_tuple_bns_free(vs);
    BN_clear_free(d);
    BN_free(bn_n);
    BN_free(bn_e);
    BN_CTX_free(ctx);
    ERR_clear_error();
    spk_stack_wipe(32768);
    return r;
}

int split_rsa_pkey_public(EVP_PKEY **out, const uint8_t *n, size_t n_len, const uint8_t *e,
                          size_t e_len)
{
    BIGNUM *bn_n = NULL;
    BIGNUM *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int r = SPK_ERR_INVALID_ARG;

    *out = NULL;
    if (n_len == 0 || n_len > PROTO_BN_MAX || e_len == 0 || e_len > PROTO_EXP_MAX) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((bn_n = BN_bin2bn(n, (int)n_len, NULL)) == NULL ||
        (bn_e = BN_bin2bn(e, (int)e_len, NULL)) == NULL) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        goto out;
    }
    r = 0;
out:
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    ERR_clear_error();
    return r;
}

int split_rsa_pem_write_new(const char *path, const EVP_PKEY *pkey)
{
    OSSL_ENCODER_CTX *ectx = NULL;
    unsigned char *pem = NULL;
    size_t pem_len = 0;
    int r = SPK_ERR_CRYPTO;

    ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_KEYPAIR, "PEM", "PrivateKeyInfo", NULL);
    if (ectx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0) {
        goto out;
    }
    if (OSSL_ENCODER_to_data(ectx, &pem, &pem_len) != 1 || pem == NULL) {
        goto out;
    }
    r = spk_file_write_new(path, 0600, pem, pem_len);
out:
    if (pem != NULL) {
        OPENSSL_clear_free(pem, pem_len);
    }
    OSSL_ENCODER_CTX_free(ectx);
    ERR_clear_error();
    spk_stack_wipe(16384);
    return r;
}

/* split_pss_ctx sets up |md| for RSA-PSS SHA-256, MGF1-SHA-256, salt 32. */
static int split_pss_init(EVP_MD_CTX *md, EVP_PKEY *pkey, bool sign)
{
    EVP_PKEY_CTX *pctx = NULL;
    int ok;

    if (sign) {
        ok = EVP_DigestSignInit_ex(md, &pctx, "SHA256", NULL, NULL, pkey, NULL);
    } else {
        ok = EVP_DigestVerifyInit_ex(md, &pctx, "SHA256", NULL, NULL, pkey, NULL);
    }
    if (ok != 1 || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, SPLIT_RECORD_SALT_LEN) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) != 1) {
        return SPK_ERR_CRYPTO;
    }
    return 0;
}

int split_record_sign(struct proto_record *rec, EVP_PKEY *pkey)
{
    uint8_t *body = NULL;
    size_t body_len = 0;
    EVP_MD_CTX *md = NULL;
    size_t sig_len = 0;
    int r = SPK_ERR_NOMEM;

    if ((body = malloc(PROTO_FILE_MAX)) == NULL || (md = EVP_MD_CTX_new()) == NULL) {
        goto out;
    }
    rec->signature_len = 0;
    if ((r = proto_record_encode_body(body, PROTO_FILE_MAX, &body_len, rec)) != 0) {
        goto out;
    }
    if ((r = split_pss_init(md, pkey, true)) != 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (EVP_DigestSign(md, NULL, &sig_len, body, body_len) != 1 ||
        sig_len > sizeof(rec->signature)) {
        goto out;
    }
    if (EVP_DigestSign(md, rec->signature, &sig_len, body, body_len) != 1) {
        goto out;
    }
    rec->signature_len = sig_len;
    r = 0;
out:
    EVP_MD_CTX_free(md);
    free(body);
    ERR_clear_error();
    spk_stack_wipe(16384);
    return r;
}

int split_record_verify(const struct proto_record *rec)
{
    uint8_t *body = NULL;
    size_t body_len = 0;
    uint8_t sig[PROTO_BN_MAX];
    uint8_t key_id[PROTO_KEY_ID_LEN];
    EVP_PKEY *pub = NULL;
    EVP_MD_CTX *md = NULL;
    int bits;
    int r;

    if ((r = split_rsa_pkey_public(&pub, rec->modulus, rec->modulus_len, rec->exponent,
                                   rec->exponent_len)) != 0) {
        r = r == SPK_ERR_INVALID_ARG ? SPK_ERR_MALFORMED : r;
        goto out;
    }
    bits = EVP_PKEY_get_bits(pub);
    if (bits < SPLIT_RSA_BITS_MIN || bits > SPLIT_RSA_BITS_MAX) {
        r = SPK_ERR_KEY_UNSUPPORTED;
        goto out;
    }
    if ((r = proto_key_id(key_id, pub)) != 0) {
        goto out;
    }
    /* A record must name the key it is signed by, or any key could vouch for any id. */
    r = SPK_ERR_BAD_SIGNATURE;
    if (sodium_memcmp(key_id, rec->key_id, sizeof(key_id)) != 0) {
        goto out;
    }
    if (rec->signature_len == 0 || rec->signature_len > rec->modulus_len) {
        goto out;
    }
    /* Left-pad: a text encoding may drop the signature's leading zero bytes. */
    sodium_memzero(sig, sizeof(sig));
    memcpy(sig + (rec->modulus_len - rec->signature_len), rec->signature, rec->signature_len);
    r = SPK_ERR_NOMEM;
    if ((body = malloc(PROTO_FILE_MAX)) == NULL || (md = EVP_MD_CTX_new()) == NULL) {
        goto out;
    }
    if ((r = proto_record_encode_body(body, PROTO_FILE_MAX, &body_len, rec)) != 0) {
        goto out;
    }
    if ((r = split_pss_init(md, pub, false)) != 0) {
        goto out;
    }
    r = SPK_ERR_BAD_SIGNATURE;
    if (EVP_DigestVerify(md, sig, rec->modulus_len, body, body_len) != 1) {
        goto out;
    }
    r = 0;
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pub);
    free(body);
    ERR_clear_error();
    return r;
}
