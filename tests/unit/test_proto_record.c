/* The key record KEYID.record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "proto/proto.h"
#include "testutil.h"

/* ---- records ----------------------------------------------------------------- */

static struct proto_record *rec_a, *rec_b;
static uint8_t *file_buf, *file_buf2; /* PROTO_FILE_MAX each */

static int rec_roundtrip(const uint8_t *in, size_t len)
{
    size_t n = 1, body = 1;
    int r;

    memset(rec_a, 0x55, sizeof(*rec_a));
    r = proto_record_decode(rec_a, in, len);
    if (r != 0) {
        assert_int_equal(rec_a->num_shares, 0);
        assert_int_equal(rec_a->modulus_len, 0);
        assert_int_equal(rec_a->signed_len, 0);
        return r;
    }
    assert_int_equal(proto_record_encode(file_buf2, PROTO_FILE_MAX, &n, rec_a), 0);
    assert_int_equal(n, len);
    assert_memory_equal(file_buf2, in, len);
    /* The signed part is exactly what encode_body writes. */
    assert_int_equal(proto_record_encode_body(file_buf2, PROTO_FILE_MAX, &body, rec_a), 0);
    assert_int_equal(body, rec_a->signed_len);
    assert_memory_equal(file_buf2, in, body);
    assert_true(body + 11 + 2 * rec_a->modulus_len == len);
    assert_memory_equal(in + body, "signature ", 10);
    return 0;
}

static void make_record(struct proto_record *rec, size_t mod_len, size_t exp_len, unsigned k,
                        unsigned n, unsigned field)
{
    memset(rec, 0, sizeof(*rec));
    randombytes_buf(rec->key_id, sizeof(rec->key_id));
    randombytes_buf(rec->split_id, sizeof(rec->split_id));
    rec->modulus_len = mod_len;
    randombytes_buf(rec->modulus, mod_len);
    rec->modulus[0] |= 0x80;
    rec->modulus[mod_len - 1] |= 1;
    rec->exponent_len = exp_len;
    if (exp_len == 3) {
        memcpy(rec->exponent, "\x01\x00\x01", 3);
    } else {
        randombytes_buf(rec->exponent, exp_len);
        rec->exponent[0] |= 1;
        rec->exponent[exp_len - 1] |= 1;
    }
    rec->threshold = k;
    rec->num_shares = n;
    rec->field_bits = field;
    for (unsigned i = 0; i < n; i++) {
        /* Indices need not be 1..n, only increasing. */
        rec->shares[i].index = (uint8_t)(n <= 100 ? 2 * i + 1 : i + 1);
        snprintf(rec->shares[i].holder, sizeof(rec->shares[i].holder), "holder-%u", i);
        randombytes_buf(rec->shares[i].commitment, PROTO_COMMIT_LEN);
    }
    rec->signature_len = mod_len;
    randombytes_buf(rec->signature, mod_len);
    rec->signature[0] = 0; /* a leading zero byte is kept: fixed width */
}

static void assert_records_equal(const struct proto_record *a, const struct proto_record *b)
{
    assert_memory_equal(a->key_id, b->key_id, PROTO_KEY_ID_LEN);
    assert_memory_equal(a->split_id, b->split_id, PROTO_SPLIT_ID_LEN);
    assert_int_equal(a->modulus_len, b->modulus_len);
    assert_memory_equal(a->modulus, b->modulus, a->modulus_len);
    assert_int_equal(a->exponent_len, b->exponent_len);
    assert_memory_equal(a->exponent, b->exponent, a->exponent_len);
    assert_int_equal(a->threshold, b->threshold);
    assert_int_equal(a->num_shares, b->num_shares);
    assert_int_equal(a->field_bits, b->field_bits);
    for (unsigned i = 0; i < a->num_shares; i++) {
        assert_int_equal(a->shares[i].index, b->shares[i].index);
        assert_string_equal(a->shares[i].holder, b->shares[i].holder);
        assert_memory_equal(a->shares[i].commitment, b->shares[i].commitment, PROTO_COMMIT_LEN);
    }
    assert_int_equal(a->signature_len, b->signature_len);
    assert_memory_equal(a->signature, b->signature, a->signature_len);
}

/* encode |rec| into file_buf; returns the length. */
static size_t encode(const struct proto_record *rec)
{
    size_t n = 0;

    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec), 0);
    return n;
}

static void test_roundtrip_shapes(void **state)
{
    static const struct {
        size_t mod_len, exp_len;
        unsigned k, n, field;
    } shapes[] = {
        {256, 3, 2, 3, 1279},     {256, 1, 2, 2, 1279},      {384, 3, 3, 5, 2203},
        {512, 3, 2, 3, 2203},     {512, 8, 5, 9, 2281},      {768, 4, 2, 3, 3217},
        {1024, 3, 2, 3, 4253},    {1024, 8, 255, 255, 4253}, {256, 3, 2, 255, 1279},
        {256, 3, 100, 100, 4253},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        size_t n;

        make_record(rec_b, shapes[i].mod_len, shapes[i].exp_len, shapes[i].k, shapes[i].n,
                    shapes[i].field);
        if (shapes[i].exp_len == 1) {
            rec_b->exponent[0] = 3;
        }
        n = encode(rec_b);
        assert_true(n < PROTO_FILE_MAX);
        assert_int_equal(rec_roundtrip(file_buf, n), 0);
        assert_records_equal(rec_a, rec_b);
    }
}

static void test_mutations(void **state)
{
    size_t n;

    (void)state;
    make_record(rec_b, 256, 3, 2, 3, 1279);
    n = encode(rec_b);
    testutil_check_file_mutations(rec_roundtrip, file_buf, n);
}

static void hexify(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", p[i]);
    }
}

/* expect_line: the base file with line |at| replaced must decode to |want|. */
static void expect_line(const uint8_t *base, size_t base_len, size_t at, const char *line, int want)
{
    size_t n = testutil_with_line(file_buf2, PROTO_FILE_MAX, base, base_len, at, line);
    uint8_t *copy = malloc(n);

    assert_non_null(copy);
    memcpy(copy, file_buf2, n);
    if (rec_roundtrip(copy, n) != want) {
        fail_msg("line %zu \"%.80s\": expected %d", at, line, want);
    }
    free(copy);
}

static void test_bad_values(void **state)
{
    static char line[8 * 1024], hex[4 * 1024];
    uint8_t big[PROTO_BN_MAX + 2];
    uint8_t *base = malloc(PROTO_FILE_MAX);
    size_t len;

    (void)state;
    assert_non_null(base);
    make_record(rec_b, 256, 3, 2, 3, 1279);
    len = encode(rec_b);
    memcpy(base, file_buf, len);
    /* Lines: 0 magic, 1 key-id, 2 split-id, 3 modulus, 4 exponent, 5 threshold,
     * 6 shares, 7 field, 8-10 share, 11 signature-alg, 12 signature. */

    /* Fixed-length hex: one character short, one byte long, uppercase. */
    hexify(hex, rec_b->key_id, 32);
    snprintf(line, sizeof(line), "key-id %.63s", hex);
    expect_line(base, len, 1, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "key-id %s00", hex);
    expect_line(base, len, 1, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "key-id %s", hex);
    expect_line(base, len, 1, line, 0);
    expect_line(base, len, 1,
                "key-id ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
                SPK_ERR_MALFORMED);
    expect_line(base, len, 2, "split-id 0123456789abcdef0123456789abcde", SPK_ERR_MALFORMED);
    expect_line(base, len, 2, "split-id 0123456789abcdef0123456789abcdef00", SPK_ERR_MALFORMED);
    expect_line(base, len, 2, "split-id 0123456789abcdef0123456789abcdef", 0);

    /* Modulus: minimal hex, odd, PROTO_BN_MIN..PROTO_BN_MAX bytes. */
    hexify(hex, rec_b->modulus, 256);
    snprintf(line, sizeof(line), "modulus 00%s", hex);
    expect_line(base, len, 3, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "modulus %.510s", hex); /* 255 bytes */
    expect_line(base, len, 3, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "modulus %.511s", hex);
    expect_line(base, len, 3, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "modulus %s", hex);
    line[strlen(line) - 1] = '2'; /* even */
    expect_line(base, len, 3, line, SPK_ERR_MALFORMED);
    randombytes_buf(big, sizeof(big));
    big[0] = 0x80;
    big[PROTO_BN_MAX] |= 1;
    hexify(hex, big, PROTO_BN_MAX + 1);
    snprintf(line, sizeof(line), "modulus %s", hex); /* PROTO_BN_MAX + 1 bytes */
    expect_line(base, len, 3, line, SPK_ERR_MALFORMED);

    /* Exponent: minimal, odd, >= 3, at most PROTO_EXP_MAX bytes. */
    expect_line(base, len, 4, "exponent 01", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "exponent 02", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "exponent 0003", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "exponent 3", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "exponent 010000", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "exponent 03", 0);
    expect_line(base, len, 4, "exponent 0100000000000001", 0);
    expect_line(base, len, 4, "exponent 010000000000000001", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "exponent ", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "exponent", SPK_ERR_MALFORMED);

    /* k and n: decimal, 2 <= k <= n <= 255, n share lines. */
    expect_line(base, len, 5, "threshold 1", SPK_ERR_MALFORMED);
    expect_line(base, len, 5, "threshold 0", SPK_ERR_MALFORMED);
    expect_line(base, len, 5, "threshold 4", SPK_ERR_MALFORMED);
    expect_line(base, len, 5, "threshold 02", SPK_ERR_MALFORMED);
    expect_line(base, len, 5, "threshold +2", SPK_ERR_MALFORMED);
    expect_line(base, len, 5, "threshold 3", 0);
    expect_line(base, len, 6, "shares 2", SPK_ERR_MALFORMED);
    expect_line(base, len, 6, "shares 4", SPK_ERR_MALFORMED);
    expect_line(base, len, 6, "shares 256", SPK_ERR_MALFORMED);
    expect_line(base, len, 6, "shares 4294967299", SPK_ERR_MALFORMED);

    /* Field: one of the five, big enough for the modulus. */
    expect_line(base, len, 7, "field 1280", SPK_ERR_MALFORMED);
    expect_line(base, len, 7, "field 2048", SPK_ERR_MALFORMED);
    expect_line(base, len, 7, "field 01279", SPK_ERR_MALFORMED);
    expect_line(base, len, 7, "field 4253", 0);

    /* Share lines. */
    hexify(hex, rec_b->shares[0].commitment, 32);
    snprintf(line, sizeof(line), "share 1 holder-0 %s", hex);
    expect_line(base, len, 8, line, 0);
    snprintf(line, sizeof(line), "share 0 holder-0 %s", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 256 holder-0 %s", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 01 holder-0 %s", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 3 holder-0 %s", hex); /* equal to the next */
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 4 holder-0 %s", hex); /* above the next */
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 1 holder-1 %s", hex); /* holder twice */
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 1 .holder %s", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 1 holder-0 %.63s", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 1 holder-0 %s00", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 1 holder-0 %s x", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 1  holder-0 %s", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    expect_line(base, len, 8, "share 1 holder-0", SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "share 1 %s %s",
             "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh", hex);
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED); /* PROTO_NAME_MAX + 1 */

    /* Signature. */
    expect_line(base, len, 11, "signature-alg rsa-pss-sha384", SPK_ERR_MALFORMED);
    expect_line(base, len, 11, "signature-alg RSA-PSS-SHA256", SPK_ERR_MALFORMED);
    hexify(hex, rec_b->signature, 256);
    snprintf(line, sizeof(line), "signature %.510s", hex);
    expect_line(base, len, 12, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "signature %s", hex + 2); /* leading zero dropped */
    expect_line(base, len, 12, line, SPK_ERR_MALFORMED);
    snprintf(line, sizeof(line), "signature %s00", hex);
    expect_line(base, len, 12, line, SPK_ERR_MALFORMED);
    free(base);
}

static void test_field_too_small(void **state)
{
    size_t n;

    (void)state;
    /* RSA-4096: primes of 2048 bits do not fit 2^1279 - 1. */
    make_record(rec_b, 512, 3, 2, 3, 1279);
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
    rec_b->field_bits = 2203;
    n = encode(rec_b);
    memcpy(file_buf2, file_buf, n);
    expect_line(file_buf2, n, 7, "field 1279", SPK_ERR_MALFORMED);
    /* RSA-2048 with a 2049-bit-long modulus field check boundary: 1279 > 1024. */
    make_record(rec_b, 256, 3, 2, 3, 1279);
    n = encode(rec_b);
    assert_int_equal(rec_roundtrip(file_buf, n), 0);
}

static void test_signed_len_and_find(void **state)
{
    size_t n, body;
    const struct proto_record_share *s;

    (void)state;
    make_record(rec_b, 256, 3, 3, 4, 1279);
    n = encode(rec_b);
    assert_int_equal(proto_record_decode(rec_a, file_buf, n), 0);
    assert_int_equal(proto_record_encode_body(file_buf2, PROTO_FILE_MAX, &body, rec_b), 0);
    assert_int_equal(rec_a->signed_len, body);
    assert_memory_equal(file_buf + body - 29, "signature-alg rsa-pss-sha256\n", 29);
    assert_memory_equal(file_buf + body, "signature 00", 12);

    s = proto_record_find_share(rec_a, 5);
    assert_non_null(s);
    assert_string_equal(s->holder, "holder-2");
    assert_null(proto_record_find_share(rec_a, 2));
    assert_null(proto_record_find_share(rec_a, 0));
    assert_null(proto_record_find_share(rec_a, 255));
    assert_non_null(proto_record_find_share(rec_a, 7));
}

static void test_encode_refusals(void **state)
{
    size_t n = 1, need;

    (void)state;
    make_record(rec_b, 256, 3, 2, 3, 1279);
    need = encode(rec_b);
    for (size_t cap = 0; cap < need; cap += (cap < 600 ? 1 : 37)) {
        n = 1;
        assert_int_equal(proto_record_encode(file_buf, cap, &n, rec_b), SPK_ERR_INVALID_ARG);
        assert_int_equal(n, 0);
    }
    assert_int_equal(proto_record_encode(file_buf, need - 1, &n, rec_b), SPK_ERR_INVALID_ARG);
    assert_int_equal(proto_record_encode(file_buf, need, &n, rec_b), 0);

#define REFUSED(stmt)                                                                              \
    do {                                                                                           \
        make_record(rec_b, 256, 3, 2, 3, 1279);                                                    \
        stmt;                                                                                      \
        assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b),                 \
                         SPK_ERR_INVALID_ARG);                                                     \
        assert_int_equal(proto_record_encode_body(file_buf, PROTO_FILE_MAX, &n, rec_b),            \
                         SPK_ERR_INVALID_ARG);                                                     \
    } while (0)
    REFUSED(rec_b->modulus_len = PROTO_BN_MIN - 1);
    REFUSED(rec_b->modulus_len = PROTO_BN_MAX + 1);
    REFUSED(rec_b->modulus[0] = 0);
    REFUSED(rec_b->modulus[255] &= 0xfe);
    REFUSED(rec_b->exponent_len = 0);
    REFUSED(rec_b->exponent_len = PROTO_EXP_MAX + 1);
    REFUSED((rec_b->exponent_len = 1, rec_b->exponent[0] = 1));
    REFUSED(rec_b->exponent[0] = 0);
    REFUSED(rec_b->exponent[2] = 2);
    REFUSED(rec_b->threshold = 1);
    REFUSED(rec_b->threshold = 4);
    REFUSED((rec_b->threshold = 256, rec_b->num_shares = 256));
    REFUSED(rec_b->field_bits = 1280);
    REFUSED(rec_b->shares[1].index = 1);
    REFUSED(rec_b->shares[0].index = 0);
    REFUSED(strcpy(rec_b->shares[2].holder, "holder-0"));
    REFUSED(rec_b->shares[2].holder[0] = 0);
    REFUSED(memset(rec_b->shares[2].holder, 'x', sizeof(rec_b->shares[2].holder)));
#undef REFUSED
    /* A wrong signature length stops only the full encoder. */
    make_record(rec_b, 256, 3, 2, 3, 1279);
    rec_b->signature_len = 255;
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
    assert_int_equal(proto_record_encode_body(file_buf, PROTO_FILE_MAX, &n, rec_b), 0);
}

/* The convention of PROTOCOL.md, end to end with OpenSSL: key_id is SHA-256 of
 * the DER SubjectPublicKeyInfo, the signature is RSA-PSS (SHA-256, MGF1-SHA-256,
 * salt 32) by the key over in[0, signed_len). */
static void test_signature_convention(void **state)
{
    FILE *f = fopen(testutil_data_path("rsa2048.pem"), "r");
    EVP_PKEY *pkey;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    BIGNUM *nbn = NULL, *ebn = NULL;
    uint8_t *der = NULL;
    int der_len;
    size_t body, sig_len, n;

    (void)state;
    assert_non_null(f);
    pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(pkey);
    assert_non_null(md);
    make_record(rec_b, 256, 3, 2, 3, 1279);
    der_len = i2d_PUBKEY(pkey, &der);
    assert_true(der_len > 0);
    crypto_hash_sha256(rec_b->key_id, der, (unsigned long long)der_len);
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, "n", &nbn), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, "e", &ebn), 1);
    rec_b->modulus_len = (size_t)BN_num_bytes(nbn);
    assert_int_equal(BN_bn2bin(nbn, rec_b->modulus), (int)rec_b->modulus_len);
    rec_b->exponent_len = (size_t)BN_num_bytes(ebn);
    assert_int_equal(BN_bn2bin(ebn, rec_b->exponent), (int)rec_b->exponent_len);

    assert_int_equal(proto_record_encode_body(file_buf, PROTO_FILE_MAX, &body, rec_b), 0);
    assert_int_equal(EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
    sig_len = sizeof(rec_b->signature);
    assert_int_equal(EVP_DigestSign(md, rec_b->signature, &sig_len, file_buf, body), 1);
    assert_int_equal(sig_len, rec_b->modulus_len);
    rec_b->signature_len = sig_len;
    n = encode(rec_b);

    assert_int_equal(rec_roundtrip(file_buf, n), 0);
    assert_int_equal(EVP_MD_CTX_reset(md), 1);
    assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
    assert_int_equal(
        EVP_DigestVerify(md, rec_a->signature, rec_a->signature_len, file_buf, rec_a->signed_len),
        1);
    /* One byte of the signed part changed: the signature no longer holds. */
    file_buf[rec_a->signed_len - 2] ^= 1;
    assert_int_equal(EVP_MD_CTX_reset(md), 1);
    assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
    assert_int_not_equal(
        EVP_DigestVerify(md, rec_a->signature, rec_a->signature_len, file_buf, rec_a->signed_len),
        1);
    OPENSSL_free(der);
    BN_free(nbn);
    BN_free(ebn);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
}

/* find: the first |needle| in |hay|, or NULL (memmem is a GNU extension). */
static uint8_t *find(uint8_t *hay, size_t len, const char *needle, size_t n)
{
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

/* Threshold mode: "mode threshold" for the field line, indices exactly 1..n. */
static void test_threshold_mode(void **state)
{
    size_t n;
    size_t at;
    uint8_t *mode_line;

    (void)state;
    make_record(rec_b, 256, 3, 2, 3, 0);
    rec_b->mode = PROTO_MODE_THRESHOLD;
    for (unsigned i = 0; i < 3; i++) {
        rec_b->shares[i].index = (uint8_t)(i + 1);
    }
    n = encode(rec_b);
    assert_non_null(mode_line = find(file_buf, n, "\nmode threshold\nshare 1 ", 24));
    assert_null(find(file_buf, n, "\nfield ", 7));
    assert_int_equal(rec_roundtrip(file_buf, n), 0);
    assert_int_equal(rec_a->mode, PROTO_MODE_THRESHOLD);
    assert_int_equal(rec_a->field_bits, 0);
    assert_records_equal(rec_a, rec_b);
    testutil_check_file_mutations(rec_roundtrip, file_buf, n);

    /* Another mode word, or the field line's value, is refused. */
    at = (size_t)(mode_line - file_buf) + 6;
    memcpy(file_buf2, file_buf, n);
    memcpy(file_buf2 + at, "rebuild  ", 9);
    assert_int_equal(proto_record_decode(rec_a, file_buf2, n), SPK_ERR_MALFORMED);
    memcpy(file_buf2 + at, "1279     ", 9);
    assert_int_equal(proto_record_decode(rec_a, file_buf2, n), SPK_ERR_MALFORMED);

    /* Indices other than 1..n, a field, or an unknown mode: not written. */
    rec_b->shares[2].index = 4;
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
    rec_b->shares[2].index = 3;
    rec_b->field_bits = 1279;
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
    rec_b->field_bits = 0;
    rec_b->mode = 2;
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
}

/* vkeys_record: a 2-of-|n| threshold record in rec_b with verification keys. */
static void vkeys_record(unsigned n)
{
    make_record(rec_b, 256, 3, 2, n, 0);
    rec_b->mode = PROTO_MODE_THRESHOLD;
    for (unsigned i = 0; i < n; i++) {
        rec_b->shares[i].index = (uint8_t)(i + 1);
    }
    rec_b->has_vkeys = true;
    randombytes_buf(rec_b->vkey_base, 256);
    randombytes_buf(rec_b->vkeys, n * 256);
    /* Below the modulus, whose top bit is set. */
    rec_b->vkey_base[0] &= 0x7f;
    for (unsigned i = 0; i < n; i++) {
        rec_b->vkeys[i * 256] = (uint8_t)i; /* a leading zero byte is kept */
    }
}

static void test_threshold_vkeys(void **state)
{
    char *line = malloc(16 + 2 * 256 + 2);
    char *hex = malloc(2 * 256 + 1);
    size_t n;

    (void)state;
    assert_non_null(line);
    assert_non_null(hex);
    /* Every mutation of a 2-of-2 record (the longest lines make it slow under ASan). */
    vkeys_record(2);
    n = encode(rec_b);
    testutil_check_file_mutations(rec_roundtrip, file_buf, n);
    vkeys_record(3);
    n = encode(rec_b);
    assert_non_null(find(file_buf, n, "\nshare 3 ", 9));
    assert_non_null(find(file_buf, n, "\nverify-base ", 13));
    assert_non_null(find(file_buf, n, "\nverify-key 1 00", 16));
    assert_int_equal(rec_roundtrip(file_buf, n), 0);
    assert_true(rec_a->has_vkeys);
    assert_records_equal(rec_a, rec_b);
    assert_memory_equal(rec_a->vkey_base, rec_b->vkey_base, 256);
    assert_memory_equal(rec_a->vkeys, rec_b->vkeys, 3 * 256);
    assert_ptr_equal(proto_record_vkey(rec_a, 2), rec_a->vkeys + 256);
    assert_null(proto_record_vkey(rec_a, 0));
    assert_null(proto_record_vkey(rec_a, 4));
    /* The signature covers the keys. */
    assert_int_equal(rec_roundtrip(file_buf, n), 0);
    assert_true(rec_a->signed_len > (size_t)(find(file_buf, n, "\nverify-key 3 ", 14) - file_buf));

    /* Lines 0..7 header, 8..10 shares, 11 verify-base, 12..14 verify-key. */
    hexify(hex, rec_b->modulus, 256);
    snprintf(line, 16 + 2 * 256 + 2, "verify-base %s", hex);
    expect_line(file_buf, n, 11, line, SPK_ERR_MALFORMED);
    memset(hex, '0', 2 * 256);
    snprintf(line, 16 + 2 * 256 + 2, "verify-base %s", hex);
    expect_line(file_buf, n, 11, line, SPK_ERR_MALFORMED);
    hex[2 * 256 - 1] = '1';
    snprintf(line, 16 + 2 * 256 + 2, "verify-base %s", hex);
    expect_line(file_buf, n, 11, line, SPK_ERR_MALFORMED);
    snprintf(line, 16 + 2 * 256 + 2, "verify-key 1 %s", hex);
    expect_line(file_buf, n, 12, line, SPK_ERR_MALFORMED);
    hex[2 * 256 - 1] = '2';
    snprintf(line, 16 + 2 * 256 + 2, "verify-key 1 %s", hex);
    expect_line(file_buf, n, 12, line, 0);
    snprintf(line, 16 + 2 * 256 + 2, "verify-key 2 %s", hex);
    expect_line(file_buf, n, 12, line, SPK_ERR_MALFORMED);
    snprintf(line, 16 + 2 * 256 + 2, "verify-key 01 %s", hex);
    expect_line(file_buf, n, 12, line, SPK_ERR_MALFORMED);
    snprintf(line, 16 + 2 * 256 + 2, "verify-key 1 %.510s", hex);
    expect_line(file_buf, n, 12, line, SPK_ERR_MALFORMED);
    snprintf(line, 16 + 2 * 256 + 2, "verify-key 1 %s", hex);
    line[14] = 'A';
    expect_line(file_buf, n, 12, line, SPK_ERR_MALFORMED);
    /* The block in place of the first share line: refused. */
    snprintf(line, 16 + 2 * 256 + 2, "verify-base %s", hex);
    expect_line(file_buf, n, 8, line, SPK_ERR_MALFORMED);

    /* Not written: keys in rebuild mode, a key not below the modulus or below 2,
     * more key bytes than PROTO_VKEYS_MAX. */
    rec_b->mode = PROTO_MODE_REBUILD;
    rec_b->field_bits = 1279;
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
    vkeys_record(3);
    memcpy(rec_b->vkeys + 256, rec_b->modulus, 256);
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
    memset(rec_b->vkeys + 256, 0, 256);
    rec_b->vkeys[2 * 256 - 1] = 1;
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
    make_record(rec_b, 256, 3, 2, 129, 0);
    rec_b->mode = PROTO_MODE_THRESHOLD;
    rec_b->has_vkeys = true;
    memset(rec_b->vkey_base, 0x11, 256);
    memset(rec_b->vkeys, 0x11, sizeof(rec_b->vkeys));
    for (unsigned i = 0; i < 129; i++) {
        rec_b->shares[i].index = (uint8_t)(i + 1);
    }
    assert_int_equal(proto_record_encode(file_buf, PROTO_FILE_MAX, &n, rec_b), SPK_ERR_INVALID_ARG);
    rec_b->num_shares = 128; /* 128 * 256 = 32768 */
    n = encode(rec_b);
    assert_int_equal(rec_roundtrip(file_buf, n), 0);

    /* A rebuild record with the block appended: refused. */
    make_record(rec_b, 256, 3, 2, 3, 1279);
    n = encode(rec_b);
    {
        static const char block_line[] = "verify-base ";
        uint8_t *alg = find(file_buf, n, "\nsignature-alg ", 15);
        size_t at = (size_t)(alg - file_buf) + 1;
        size_t add = sizeof(block_line) - 1 + 2 * 256 + 1;

        memcpy(file_buf2, file_buf, at);
        memcpy(file_buf2 + at, block_line, sizeof(block_line) - 1);
        memset(file_buf2 + at + sizeof(block_line) - 1, '1', 2 * 256);
        file_buf2[at + add - 1] = '\n';
        memcpy(file_buf2 + at + add, file_buf + at, n - at);
        assert_int_equal(proto_record_decode(rec_a, file_buf2, n + add), SPK_ERR_MALFORMED);
    }
    free(line);
    free(hex);
}

/* The loaders: a file that reads and decodes, one that is missing, one of the
 * other kind, and one over PROTO_FILE_MAX. */
static void test_loaders(void **state)
{
    char dir[] = "/tmp/spk-test-load-XXXXXX";
    char path[128];
    char why[PROTO_PATH_WHY_MAX];
    static struct proto_share_file sf;
    FILE *fp;
    size_t n;

    (void)state;
    assert_non_null(mkdtemp(dir));
    make_record(rec_b, 256, 3, 2, 3, 1279);
    n = encode(rec_b);
    snprintf(path, sizeof(path), "%s/a.record", dir);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(file_buf, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);

    assert_int_equal(proto_record_load(rec_a, path, why, sizeof(why)), 0);
    assert_records_equal(rec_a, rec_b);
    assert_int_equal(proto_record_load(rec_a, path, NULL, 0), 0);

    /* A share file is a secret file: one others may read is refused before it is parsed. */
    assert_int_equal(proto_share_file_load(&sf, path, why, sizeof(why)), SPK_ERR_PERMISSIONS);
    assert_non_null(strstr(why, "cannot read share file '"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_not_equal(proto_share_file_load(&sf, path, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "is not a share file"));
    assert_non_null(strstr(why, path));

    snprintf(path, sizeof(path), "%s/missing.record", dir);
    assert_int_equal(proto_record_load(rec_a, path, why, sizeof(why)), SPK_ERR_IO);
    assert_non_null(strstr(why, "cannot read record '"));
    assert_non_null(strstr(why, "No such file"));
    assert_int_equal(proto_share_file_load(&sf, path, NULL, 0), SPK_ERR_IO);

    snprintf(path, sizeof(path), "%s/big.record", dir);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    for (size_t i = 0; i <= PROTO_FILE_MAX; i++) {
        assert_int_not_equal(fputc('a', fp), EOF);
    }
    assert_int_equal(fclose(fp), 0);
    assert_int_not_equal(proto_record_load(rec_a, path, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "cannot read record"));

    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/a.record", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0) {
        return -1;
    }
    rec_a = malloc(sizeof(*rec_a));
    rec_b = malloc(sizeof(*rec_b));
    file_buf = malloc(PROTO_FILE_MAX);
    file_buf2 = malloc(PROTO_FILE_MAX);
    return rec_a && rec_b && file_buf && file_buf2 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(rec_a);
    free(rec_b);
    free(file_buf);
    free(file_buf2);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_shapes),     cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_bad_values),           cmocka_unit_test(test_field_too_small),
        cmocka_unit_test(test_signed_len_and_find),  cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_signature_convention), cmocka_unit_test(test_threshold_mode),
        cmocka_unit_test(test_threshold_vkeys),      cmocka_unit_test(test_loaders),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
