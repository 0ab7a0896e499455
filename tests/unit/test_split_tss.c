/*
 * Threshold mode: dealing, signature shares, combining every k-subset of
 * 2-of-3 and 3-of-5 splits of RSA-2048/3072/4096 into signatures OpenSSL
 * verifies (PKCS#1 v1.5 SHA-256/384/512 and MD5-SHA1, PSS SHA-256/384/512),
 * faulty shares named, refusals, and the key recovered from k shares.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "split/internal.h"
#include "split/split.h"
#include "testutil.h"

#define PLAYERS_MAX 5

/*
 * Under valgrind (SPK_UNDER_VALGRIND=1, as tools/check runs it) an RSA-4096
 * exponentiation takes seconds: there only RSA-2048, two ops, and no refresh
 * of the blinding pair; the release and sanitizer builds run everything.
 */
static bool quick;

static const uint8_t sign_ops[] = {
    PROTO_OP_SIGN_PKCS1_SHA256,  PROTO_OP_SIGN_PKCS1_SHA384, PROTO_OP_SIGN_PKCS1_SHA512,
    PROTO_OP_SIGN_PKCS1_MD5SHA1, PROTO_OP_SIGN_PSS_SHA256,   PROTO_OP_SIGN_PSS_SHA384,
    PROTO_OP_SIGN_PSS_SHA512,
};

static void load_key(struct split_rsa_key *key, const char *name)
{
    char why[SPLIT_WHY_MAX] = "";
    int r = split_rsa_key_load(key, testutil_data_path(name), NULL, why, sizeof(why));

    if (r != 0) {
        fail_msg("loading %s: %s (%s)", name, spk_strerror(r), why);
    }
}

static const EVP_MD *op_md(uint8_t op)
{
    switch (op) {
    case PROTO_OP_SIGN_PKCS1_SHA256:
    case PROTO_OP_SIGN_PSS_SHA256:
        return EVP_sha256();
    case PROTO_OP_SIGN_PKCS1_SHA384:
    case PROTO_OP_SIGN_PSS_SHA384:
        return EVP_sha384();
    case PROTO_OP_SIGN_PKCS1_SHA512:
    case PROTO_OP_SIGN_PSS_SHA512:
        return EVP_sha512();
    case PROTO_OP_SIGN_PKCS1_MD5SHA1:
        return EVP_md5_sha1();
    default:
        fail_msg("op %u", op);
        return NULL;
    }
}

/* verify_sig: OpenSSL's own verification of |sig| over |digest|. */
static int verify_sig(EVP_PKEY *pkey, uint8_t op, const uint8_t *digest, size_t digest_len,
                      const uint8_t *sig, size_t sig_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
    int ok;

    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, op_md(op)), 1);
    if (proto_op_info(op)->kind == PROTO_OP_KIND_SIGN_PSS) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)digest_len), 1);
    } else {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
    }
    ok = EVP_PKEY_verify(ctx, sig, sig_len, digest, digest_len);
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

struct dealt {
    struct split_rsa_key key;
    unsigned k, n;
    uint8_t *shares; /* secret memory */
    struct split_tss_signer *signers[PLAYERS_MAX];
    unsigned bits;
};

static void deal(struct dealt *d, const char *name, unsigned k, unsigned n)
{
    char why[SPLIT_WHY_MAX] = "";
    size_t n_len;

    memset(d, 0, sizeof(*d));
    load_key(&d->key, name);
    n_len = d->key.modulus_len;
    d->k = k;
    d->n = n;
    d->bits = d->key.bits;
    assert_non_null(d->shares = spk_secret_new(n * n_len));
    assert_int_equal(split_tss_deal(d->shares, &d->key, k, n, why, sizeof(why)), 0);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(split_tss_signer_new(&d->signers[i], d->key.modulus, n_len, n,
                                              d->shares + i * n_len, n_len),
                         0);
    }
}

static void dealt_free(struct dealt *d)
{
    for (unsigned i = 0; i < d->n; i++) {
        split_tss_signer_free(d->signers[i]);
    }
    spk_secret_free(d->shares);
    split_rsa_key_cleanup(&d->key);
}

/* encode: the message of |op| over a random digest, with a random salt for PSS. */
static size_t encode(const struct dealt *d, uint8_t op, uint8_t *em, uint8_t *digest)
{
    uint8_t salt[64];
    size_t digest_len = proto_op_digest_len(op);
    size_t salt_len = proto_op_info(op)->kind == PROTO_OP_KIND_SIGN_PSS ? digest_len : 0;

    randombytes_buf(digest, digest_len);
    randombytes_buf(salt, sizeof(salt));
    assert_int_equal(
        split_pad_encode(em, d->key.modulus_len, d->bits, op, digest, digest_len, salt, salt_len),
        0);
    return digest_len;
}

static void every_subset(const char *name, unsigned k, unsigned n)
{
    struct dealt d;
    uint8_t em[PROTO_BN_MAX];
    uint8_t digest[64];
    uint8_t xs[PLAYERS_MAX][PROTO_BN_MAX];
    uint8_t sig[PROTO_BN_MAX];
    size_t n_len;
    unsigned subsets = 0;

    deal(&d, name, k, n);
    n_len = d.key.modulus_len;
    for (size_t o = 0; o < sizeof(sign_ops); o += quick ? 4 : 1) {
        size_t digest_len = encode(&d, sign_ops[o], em, digest);
        unsigned sel[PLAYERS_MAX];

        for (unsigned i = 0; i < n; i++) {
            assert_int_equal(split_tss_sign_share(d.signers[i], xs[i], em), 0);
        }
        for (unsigned j = 0; j < k; j++) {
            sel[j] = j;
        }
        do {
            struct split_tss_part parts[PLAYERS_MAX];
            uint8_t bad[PLAYERS_MAX];

            for (unsigned j = 0; j < k; j++) {
                parts[j].index = sel[j] + 1;
                parts[j].xi = xs[sel[j]];
            }
            assert_int_equal(split_tss_combine(sig, bad, d.key.modulus, n_len, d.key.exponent,
                                               d.key.exponent_len, n, k, em, parts, k),
                             0);
            for (unsigned j = 0; j < k; j++) {
                assert_int_equal(bad[j], 0);
            }
            if (verify_sig(d.key.pkey, sign_ops[o], digest, digest_len, sig, n_len) != 1) {
                fail_msg("%s %u-of-%u op %#x: OpenSSL refused the signature", name, k, n,
                         sign_ops[o]);
            }
            subsets++;
        } while (split_tss_subset_next(sel, k, n));
    }
    assert_int_equal(subsets, (quick ? 2 : sizeof(sign_ops)) * (k == 2 ? 3 : 10));
    dealt_free(&d);
}

static void test_subsets_2048(void **state)
{
    (void)state;
    every_subset("rsa2048.pem", 2, 3);
    every_subset("rsa2048.pem", 3, 5);
}

static void test_subsets_3072(void **state)
{
    (void)state;
    if (quick) {
        return;
    }
    every_subset("rsa3072.pem", 2, 3);
    every_subset("rsa3072.pem", 3, 5);
}

static void test_subsets_4096(void **state)
{
    (void)state;
    if (quick) {
        return;
    }
    every_subset("rsa4096.pem", 2, 3);
    every_subset("rsa4096.pem", 3, 5);
}

/* Garbage and a share of another dealing of the same key, first in line, are named. */
static void test_faulty_named(void **state)
{
    struct dealt d;
    struct dealt other;
    uint8_t em[PROTO_BN_MAX];
    uint8_t digest[64];
    uint8_t xs[PLAYERS_MAX][PROTO_BN_MAX];
    uint8_t wrong[PROTO_BN_MAX];
    uint8_t junk[PROTO_BN_MAX];
    uint8_t sig[PROTO_BN_MAX];
    uint8_t bad[PLAYERS_MAX];
    struct split_tss_part parts[PLAYERS_MAX];
    size_t n_len;
    size_t digest_len;

    (void)state;
    deal(&d, "rsa2048.pem", 3, 5);
    deal(&other, "rsa2048.pem", 3, 5);
    n_len = d.key.modulus_len;
    digest_len = encode(&d, PROTO_OP_SIGN_PSS_SHA256, em, digest);
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(split_tss_sign_share(d.signers[i], xs[i], em), 0);
    }
    assert_int_equal(split_tss_sign_share(other.signers[1], wrong, em), 0);
    randombytes_buf(junk, n_len);
    junk[0] = 0x01; /* below N */
    /* Parties 1 and 2 lie (garbage, another split's share); 3, 4, 5 are honest. */
    parts[0] = (struct split_tss_part){1, junk};
    parts[1] = (struct split_tss_part){2, wrong};
    parts[2] = (struct split_tss_part){3, xs[2]};
    parts[3] = (struct split_tss_part){4, xs[3]};
    parts[4] = (struct split_tss_part){5, xs[4]};
    assert_int_equal(split_tss_combine(sig, bad, d.key.modulus, n_len, d.key.exponent,
                                       d.key.exponent_len, 5, 3, em, parts, 5),
                     0);
    assert_int_equal(
        verify_sig(d.key.pkey, PROTO_OP_SIGN_PSS_SHA256, digest, digest_len, sig, n_len), 1);
    assert_int_equal(bad[0], 1);
    assert_int_equal(bad[1], 1);
    assert_int_equal(bad[2] + bad[3] + bad[4], 0);
    /* Two honest parties and the two liars: no valid subset. */
    assert_int_equal(split_tss_combine(sig, bad, d.key.modulus, n_len, d.key.exponent,
                                       d.key.exponent_len, 5, 3, em, parts, 4),
                     SPK_ERR_FAULT);
    /* A value >= N is garbage, counted as such; too few usable parts left. */
    memset(junk, 0xff, n_len);
    assert_int_equal(split_tss_combine(sig, bad, d.key.modulus, n_len, d.key.exponent,
                                       d.key.exponent_len, 5, 3, em, parts + 2, 3),
                     0);
    parts[2].xi = junk;
    assert_int_equal(split_tss_combine(sig, bad, d.key.modulus, n_len, d.key.exponent,
                                       d.key.exponent_len, 5, 3, em, parts + 2, 3),
                     SPK_ERR_THRESHOLD);
    assert_int_equal(bad[0], 1);
    /* Duplicate and out-of-range indices are the caller's mistake. */
    parts[2] = (struct split_tss_part){4, xs[2]};
    assert_int_equal(split_tss_combine(sig, bad, d.key.modulus, n_len, d.key.exponent,
                                       d.key.exponent_len, 5, 3, em, parts + 2, 3),
                     SPK_ERR_DUP_INDEX);
    parts[2] = (struct split_tss_part){6, xs[2]};
    assert_int_equal(split_tss_combine(sig, bad, d.key.modulus, n_len, d.key.exponent,
                                       d.key.exponent_len, 5, 3, em, parts + 2, 3),
                     SPK_ERR_INVALID_ARG);
    dealt_free(&other);
    dealt_free(&d);
}

/* The blinding pair is redrawn after SPLIT_TSS_BLIND_USES uses; shares stay right. */
static void test_blinding_refresh(void **state)
{
    struct dealt d;
    struct split_tss_signer *fresh = NULL;
    uint8_t em[PROTO_BN_MAX];
    uint8_t digest[64];
    uint8_t a[PROTO_BN_MAX];
    uint8_t b[PROTO_BN_MAX];
    size_t n_len;

    (void)state;
    if (quick) {
        return;
    }
    deal(&d, "rsa2048.pem", 2, 3);
    n_len = d.key.modulus_len;
    (void)encode(&d, PROTO_OP_SIGN_PKCS1_SHA256, em, digest);
    assert_int_equal(split_tss_signer_new(&fresh, d.key.modulus, n_len, 3, d.shares, n_len), 0);
    assert_int_equal(split_tss_sign_share(fresh, b, em), 0);
    /* Every share, the one that redraws the pair included, is the same. */
    for (unsigned i = 0; i < SPLIT_TSS_BLIND_USES + 2; i++) {
        assert_int_equal(split_tss_sign_share(d.signers[0], a, em), 0);
        assert_memory_equal(a, b, n_len);
    }
    /* em >= N is refused. */
    memcpy(em, d.key.modulus, n_len);
    assert_int_equal(split_tss_sign_share(fresh, a, em), SPK_ERR_INVALID_ARG);
    split_tss_signer_free(fresh);
    dealt_free(&d);
}

static void same_param(EVP_PKEY *a, EVP_PKEY *b, const char *name)
{
    BIGNUM *x = NULL;
    BIGNUM *y = NULL;

    assert_int_equal(EVP_PKEY_get_bn_param(a, name, &x), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(b, name, &y), 1);
    if (BN_cmp(x, y) != 0) {
        fail_msg("%s differs", name);
    }
    BN_clear_free(x);
    BN_clear_free(y);
}

static void recover(const char *name)
{
    struct dealt d;
    uint8_t *picked;
    unsigned indices[3] = {1, 3, 5};
    EVP_PKEY *pkey = NULL;
    size_t n_len;

    deal(&d, name, 3, 5);
    n_len = d.key.modulus_len;
    assert_non_null(picked = spk_secret_new(3 * n_len));
    for (unsigned i = 0; i < 3; i++) {
        memcpy(picked + i * n_len, d.shares + (indices[i] - 1) * n_len, n_len);
    }
    assert_int_equal(split_tss_recover(&pkey, d.key.modulus, n_len, d.key.exponent,
                                       d.key.exponent_len, 5, 3, indices, picked),
                     0);
    same_param(pkey, d.key.pkey, OSSL_PKEY_PARAM_RSA_N);
    same_param(pkey, d.key.pkey, OSSL_PKEY_PARAM_RSA_E);
    same_param(pkey, d.key.pkey, OSSL_PKEY_PARAM_RSA_FACTOR1);
    same_param(pkey, d.key.pkey, OSSL_PKEY_PARAM_RSA_FACTOR2);
    same_param(pkey, d.key.pkey, OSSL_PKEY_PARAM_RSA_EXPONENT1);
    same_param(pkey, d.key.pkey, OSSL_PKEY_PARAM_RSA_EXPONENT2);
    same_param(pkey, d.key.pkey, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
    EVP_PKEY_free(pkey);
    pkey = NULL;
    /* A tampered share factors nothing. */
    picked[n_len - 1] ^= 1;
    assert_int_equal(split_tss_recover(&pkey, d.key.modulus, n_len, d.key.exponent,
                                       d.key.exponent_len, 5, 3, indices, picked),
                     SPK_ERR_KEY_MISMATCH);
    assert_null(pkey);
    spk_secret_free(picked);
    dealt_free(&d);
}

static void test_recover(void **state)
{
    (void)state;
    recover("rsa2048.pem");
    if (quick) {
        return;
    }
    recover("rsa3072.pem");
    recover("rsa4096.pem");
}

static void test_deal_refusals(void **state)
{
    struct split_rsa_key key;
    char why[SPLIT_WHY_MAX] = "";
    uint8_t *shares;

    (void)state;
    load_key(&key, "rsa2048.pem");
    assert_non_null(shares = spk_secret_new(5 * key.modulus_len));
    assert_int_equal(split_tss_deal(shares, &key, 1, 3, why, sizeof(why)), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_tss_deal(shares, &key, 4, 3, why, sizeof(why)), SPK_ERR_INVALID_ARG);
    /* e = 65537 is prime; e = 9 is not, and e = 3 <= n = 5. */
    key.exponent[0] = 9;
    key.exponent_len = 1;
    assert_int_equal(split_tss_deal(shares, &key, 2, 5, why, sizeof(why)), SPK_ERR_KEY_UNSUPPORTED);
    assert_non_null(strstr(why, "prime"));
    key.exponent[0] = 3;
    assert_int_equal(split_tss_deal(shares, &key, 2, 5, why, sizeof(why)), SPK_ERR_KEY_UNSUPPORTED);
    assert_non_null(strstr(why, "larger"));
    spk_secret_free(shares);
    split_rsa_key_cleanup(&key);
}

static void test_pad_refusals(void **state)
{
    uint8_t em[256];
    uint8_t digest[64] = {0};
    uint8_t salt[64] = {0};

    (void)state;
    assert_int_equal(
        split_pad_encode(em, sizeof(em), 2048, PROTO_OP_DECRYPT_RAW, digest, 32, NULL, 0),
        SPK_ERR_UNSUPPORTED);
    assert_int_equal(
        split_pad_encode(em, sizeof(em), 2048, PROTO_OP_SIGN_PKCS1_SHA256, digest, 31, NULL, 0),
        SPK_ERR_INVALID_ARG);
    assert_int_equal(
        split_pad_encode(em, sizeof(em), 2048, PROTO_OP_SIGN_PSS_SHA256, digest, 32, salt, 31),
        SPK_ERR_INVALID_ARG);
    assert_int_equal(
        split_pad_encode(em, sizeof(em), 2048, PROTO_OP_SIGN_PKCS1_SHA256, digest, 32, salt, 32),
        SPK_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subsets_2048),     cmocka_unit_test(test_subsets_3072),
        cmocka_unit_test(test_subsets_4096),     cmocka_unit_test(test_faulty_named),
        cmocka_unit_test(test_blinding_refresh), cmocka_unit_test(test_recover),
        cmocka_unit_test(test_deal_refusals),    cmocka_unit_test(test_pad_refusals),
    };

    quick = testutil_under_valgrind();
    if (spk_mem_init() != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
