/*
 * The RSA half of split: loading and refusing keys, key ids, the CRT tuple
 * out and back in, record signatures, sealed shares, holder keys, and whole
 * k-of-n splits put back together (and refused when they must be).
 */

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
#include <gmp.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "split/split.h"
#include "testutil.h"

#define TUPLE_MAX (SPLIT_NUM_SECRETS * PROTO_FIELD_Y_MAX)
#define HOLDERS_MAX 5

static char tmp_dir[] = "/tmp/spk-test-split-rsa-XXXXXX";

/* ---- helpers -------------------------------------------------------------- */

/* pw_copy: the data file |name| copied to |out| in tmp_dir with mode 0600, as
 * a passphrase file must be (git checks files out 0644); a name that is not
 * there stays missing. The caller unlinks |out|. */
static void pw_copy(char *out, size_t cap, const char *name)
{
    size_t len = 0;
    uint8_t *text;

    snprintf(out, cap, "%s/%s", tmp_dir, name);
    if (access(testutil_data_path(name), F_OK) != 0) {
        return;
    }
    text = testutil_read_file(testutil_data_path(name), &len);
    assert_int_equal(spk_file_write_new(out, 0600, text, len), 0);
    free(text);
}

static void load_ok(struct split_rsa_key *key, const char *name, const char *pw_name)
{
    char pem[4096];
    char pw[4096];
    char why[SPLIT_WHY_MAX] = "";
    int r;

    snprintf(pem, sizeof(pem), "%s", testutil_data_path(name));
    if (pw_name != NULL) {
        pw_copy(pw, sizeof(pw), pw_name);
    }
    r = split_rsa_key_load(key, pem, pw_name != NULL ? pw : NULL, why, sizeof(why));
    if (pw_name != NULL) {
        unlink(pw);
    }
    if (r != 0) {
        fail_msg("loading %s: %s (%s)", name, spk_strerror(r), why);
    }
    assert_non_null(key->pkey);
    assert_string_equal(why, "");
}

static void load_refused(const char *name, const char *pw_name, int want)
{
    struct split_rsa_key key;
    char pem[4096];
    char pw[4096];
    char why[SPLIT_WHY_MAX] = "";
    int r;

    snprintf(pem, sizeof(pem), "%s", testutil_data_path(name));
    if (pw_name != NULL) {
        pw_copy(pw, sizeof(pw), pw_name);
    }
    memset(&key, 0xa5, sizeof(key));
    r = split_rsa_key_load(&key, pem, pw_name != NULL ? pw : NULL, why, sizeof(why));
    if (pw_name != NULL) {
        unlink(pw);
    }
    if (r != want) {
        fail_msg("%s: got %d (%s), want %d (%s); why: %s", name, r, spk_strerror(r), want,
                 spk_strerror(want), why);
    }
    assert_null(key.pkey);
    assert_true(strlen(why) > 10);
    assert_null(strchr(why, '\n'));
}

/*
 * ref_key_id: SHA-256 of `openssl pkey -pubout -outform DER`, done in-process
 * by another route than the library's (PEM decoder + SubjectPublicKeyInfo
 * encoder).
 */
static void ref_key_id(uint8_t out[PROTO_KEY_ID_LEN], const char *name)
{
    size_t pem_len = 0;
    uint8_t *pem = testutil_read_file(testutil_data_path(name), &pem_len);
    const unsigned char *p = pem;
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx;
    OSSL_ENCODER_CTX *ectx;
    unsigned char *der = NULL;
    size_t der_len = 0;
    unsigned md_len = 0;

    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL);
    assert_non_null(dctx);
    assert_int_equal(OSSL_DECODER_from_data(dctx, &p, &pem_len), 1);
    OSSL_DECODER_CTX_free(dctx);
    assert_non_null(pkey);
    ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_PUBLIC_KEY, "DER", "SubjectPublicKeyInfo",
                                         NULL);
    assert_non_null(ectx);
    assert_int_equal(OSSL_ENCODER_to_data(ectx, &der, &der_len), 1);
    assert_int_equal(EVP_Digest(der, der_len, out, &md_len, EVP_sha256(), NULL), 1);
    assert_int_equal(md_len, PROTO_KEY_ID_LEN);
    OPENSSL_free(der);
    OSSL_ENCODER_CTX_free(ectx);
    EVP_PKEY_free(pkey);
    free(pem);
}

struct holders {
    unsigned n;
    struct proto_holder_secret *sec[HOLDERS_MAX];
    struct proto_holder_pub pub[HOLDERS_MAX];
};

static void holders_make(struct holders *h, unsigned n, const char *prefix)
{
    unsigned i;
    char name[32];

    assert_true(n <= HOLDERS_MAX);
    h->n = n;
    for (i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s%u", prefix, i + 1);
        h->sec[i] = spk_secret_new(sizeof(*h->sec[i]));
        assert_non_null(h->sec[i]);
        assert_int_equal(split_holder_keygen(h->sec[i], name), 0);
        assert_int_equal(split_holder_secret_check(h->sec[i]), 0);
        h->pub[i] = h->sec[i]->pub;
    }
}

static void holders_free(struct holders *h)
{
    unsigned i;

    for (i = 0; i < h->n; i++) {
        spk_secret_free(h->sec[i]);
        h->sec[i] = NULL;
    }
}

/* One split, with every share opened again. */
struct split_run {
    struct proto_record *rec;
    struct proto_share_file *files;
    struct split_field f;
    size_t tlen;
    uint8_t *ys; /* n * tlen, secret */
    struct split_opened_share shares[HOLDERS_MAX];
};

static void split_run(struct split_run *s, const struct split_rsa_key *key, unsigned k,
                      struct holders *h)
{
    char why[SPLIT_WHY_MAX] = "";
    unsigned i;
    int r;

    s->rec = calloc(1, sizeof(*s->rec));
    s->files = calloc(h->n, sizeof(*s->files));
    assert_non_null(s->rec);
    assert_non_null(s->files);
    r = split_key_split(s->rec, s->files, key, k, h->pub, h->n, why, sizeof(why));
    if (r != 0) {
        fail_msg("split %u-of-%u: %s (%s)", k, h->n, spk_strerror(r), why);
    }
    assert_int_equal(split_record_verify(s->rec), 0);
    assert_int_equal(split_field_init(&s->f, s->rec->field_bits), 0);
    s->tlen = split_tuple_len(&s->f);
    s->ys = spk_secret_new(h->n * s->tlen);
    assert_non_null(s->ys);
    for (i = 0; i < h->n; i++) {
        struct split_opened_share *os = &s->shares[i];

        assert_int_equal(s->files[i].index, i + 1);
        assert_string_equal(s->files[i].holder, h->pub[i].name);
        assert_int_equal(s->files[i].threshold, k);
        assert_int_equal(s->files[i].num_shares, h->n);
        assert_int_equal(split_share_open(s->ys + i * s->tlen, s->tlen, &s->files[i], h->sec[i]),
                         0);
        memcpy(os->key_id, s->files[i].key_id, PROTO_KEY_ID_LEN);
        memcpy(os->split_id, s->files[i].split_id, PROTO_SPLIT_ID_LEN);
        os->index = s->files[i].index;
        os->holder = s->files[i].holder;
        os->y = s->ys + i * s->tlen;
        assert_int_equal(split_share_check(s->rec, &s->f, os), 0);
    }
}

static void split_run_free(struct split_run *s)
{
    free(s->rec);
    free(s->files);
    spk_secret_free(s->ys);
    memset(s, 0, sizeof(*s));
}

static int combine_as(uint8_t *out, const struct split_run *s, const struct split_opened_share *sh,
                      size_t num, bool checked)
{
    struct spk_arena *arena =
        spk_arena_new(split_interpolate_scratch_len(&s->f, s->rec->threshold));
    int r;

    assert_non_null(arena);
    r = checked ? split_shares_combine_checked(out, s->rec, &s->f, sh, num, arena)
                : split_shares_combine(out, s->rec, &s->f, sh, num, arena);
    assert_int_equal(spk_arena_used(arena), 0);
    spk_arena_free(arena);
    return r;
}

static int combine(uint8_t *out, const struct split_run *s, const struct split_opened_share *sh,
                   size_t num)
{
    return combine_as(out, s, sh, num, false);
}

static bool all_zero(const uint8_t *p, size_t len)
{
    size_t i;
    uint8_t acc = 0;

    for (i = 0; i < len; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

/* ---- loading -------------------------------------------------------------- */

static void test_load_good_keys(void **state)
{
    static const struct {
        const char *name;
        unsigned bits;
    } keys[] = {
        {"rsa2048.pem", 2048},
        {"rsa3072.pem", 3072},
        {"rsa4096.pem", 4096},
        {"rsa8192.pem", 8192},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        struct split_rsa_key key;
        uint8_t want[PROTO_KEY_ID_LEN];
        uint8_t again[PROTO_KEY_ID_LEN];

        load_ok(&key, keys[i].name, NULL);
        assert_int_equal(key.bits, keys[i].bits);
        assert_int_equal(key.modulus_len, keys[i].bits / 8);
        assert_int_equal(key.prime_bits, keys[i].bits / 2);
        assert_int_equal(key.exponent_len, 3);
        assert_memory_equal(key.exponent, "\x01\x00\x01", 3);
        ref_key_id(want, keys[i].name);
        assert_memory_equal(key.key_id, want, PROTO_KEY_ID_LEN);
        assert_int_equal(proto_key_id(again, key.pkey), 0);
        assert_memory_equal(again, want, PROTO_KEY_ID_LEN);
        split_rsa_key_cleanup(&key);
        assert_null(key.pkey);
        assert_true(all_zero(key.key_id, sizeof(key.key_id)));
    }
}

static void test_load_same_key_three_ways(void **state)
{
    struct split_rsa_key pkcs8;
    struct split_rsa_key pkcs1;
    struct split_rsa_key enc;

    (void)state;
    load_ok(&pkcs8, "rsa2048.pem", NULL);
    load_ok(&pkcs1, "rsa2048-pkcs1.pem", NULL);
    load_ok(&enc, "rsa2048-encrypted.pem", "passphrase.txt");
    assert_memory_equal(pkcs8.key_id, pkcs1.key_id, PROTO_KEY_ID_LEN);
    assert_memory_equal(pkcs8.key_id, enc.key_id, PROTO_KEY_ID_LEN);
    assert_int_equal(EVP_PKEY_eq(pkcs8.pkey, pkcs1.pkey), 1);
    assert_int_equal(EVP_PKEY_eq(pkcs8.pkey, enc.pkey), 1);
    split_rsa_key_cleanup(&pkcs8);
    split_rsa_key_cleanup(&pkcs1);
    split_rsa_key_cleanup(&enc);
}

static void test_load_refusals(void **state)
{
    (void)state;
    load_refused("ec-p256.pem", NULL, SPK_ERR_KEY_UNSUPPORTED);
    load_refused("rsa1024.pem", NULL, SPK_ERR_KEY_UNSUPPORTED);
    load_refused("rsa3072-3prime.pem", NULL, SPK_ERR_KEY_UNSUPPORTED);
    load_refused("garbage.pem", NULL, SPK_ERR_MALFORMED);
    load_refused("README.md", NULL, SPK_ERR_MALFORMED);
    load_refused("no-such-key.pem", NULL, SPK_ERR_IO);
    load_refused("rsa2048-encrypted.pem", "wrong-passphrase.txt", SPK_ERR_PASSPHRASE);
    load_refused("rsa2048-encrypted.pem", NULL, SPK_ERR_PASSPHRASE);
    load_refused("rsa2048-encrypted.pem", "no-such-passphrase.txt", SPK_ERR_IO);
}

/* Exactly one trailing newline is not part of the passphrase. */
static void test_passphrase_newline(void **state)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {"correct horse battery staple", 0},
        {"correct horse battery staple\n", 0},
        {"correct horse battery staple\n\n", SPK_ERR_PASSPHRASE},
        {"correct horse battery stapl\n", SPK_ERR_PASSPHRASE},
        {"", SPK_ERR_PASSPHRASE},
    };
    char path[256];
    char why[SPLIT_WHY_MAX];
    size_t i;

    (void)state;
    snprintf(path, sizeof(path), "%s/pw", tmp_dir);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct split_rsa_key key;
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(cases[i].text, 1, strlen(cases[i].text), f), strlen(cases[i].text));
        fclose(f);
        /* a passphrase file others may read is refused whatever it holds */
        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(split_rsa_key_load(&key, testutil_data_path("rsa2048-encrypted.pem"), path,
                                            why, sizeof(why)),
                         SPK_ERR_PERMISSIONS);
        assert_non_null(strstr(why, "permissions too open"));
        split_rsa_key_cleanup(&key);
        assert_int_equal(chmod(path, 0600), 0);
        assert_int_equal(split_rsa_key_load(&key, testutil_data_path("rsa2048-encrypted.pem"), path,
                                            why, sizeof(why)),
                         cases[i].want);
        split_rsa_key_cleanup(&key);
        unlink(path);
    }
}

/* ---- the tuple and the rebuilt key ----------------------------------------- */

static void check_rebuild(const char *name)
{
    struct split_rsa_key key;
    struct split_field f;
    uint8_t *tuple = spk_secret_new(TUPLE_MAX);
    uint8_t id[PROTO_KEY_ID_LEN];
    EVP_PKEY *back = NULL;
    EVP_PKEY *pub = NULL;
    EVP_PKEY_CTX *ctx;
    EVP_MD_CTX *md;
    uint8_t sig[PROTO_BN_MAX];
    size_t sig_len = sizeof(sig);
    static const char *const names[] = {
        OSSL_PKEY_PARAM_RSA_FACTOR1,      OSSL_PKEY_PARAM_RSA_FACTOR2,
        OSSL_PKEY_PARAM_RSA_EXPONENT1,    OSSL_PKEY_PARAM_RSA_EXPONENT2,
        OSSL_PKEY_PARAM_RSA_COEFFICIENT1, OSSL_PKEY_PARAM_RSA_D,
    };
    size_t i;

    assert_non_null(tuple);
    load_ok(&key, name, NULL);
    assert_int_equal(split_field_for_primes(&f, key.prime_bits), 0);
    assert_int_equal(split_rsa_tuple_export(tuple, &f, &key), 0);
    assert_int_equal(split_rsa_tuple_check(&f, tuple, key.modulus, key.modulus_len), 0);
    assert_int_equal(split_rsa_pkey_from_tuple(&back, &f, tuple, key.modulus, key.modulus_len,
                                               key.exponent, key.exponent_len),
                     0);
    /* Same public key, same CRT values and d, and OpenSSL's own check passes. */
    assert_int_equal(proto_key_id(id, back), 0);
    assert_memory_equal(id, key.key_id, PROTO_KEY_ID_LEN);
    assert_int_equal(EVP_PKEY_eq(back, key.pkey), 1);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        BIGNUM *a = NULL;
        BIGNUM *b = NULL;

        assert_int_equal(EVP_PKEY_get_bn_param(back, names[i], &a), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(key.pkey, names[i], &b), 1);
        assert_int_equal(BN_cmp(a, b), 0);
        BN_clear_free(a);
        BN_clear_free(b);
    }
    /*
     * OpenSSL's full check (primality of p and q, as `openssl pkey -check`)
     * takes six seconds at 8192 bits; equal CRT values and a signature that
     * verifies say enough there.
     */
    if (key.bits <= 4096) {
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, back, NULL);
        assert_non_null(ctx);
        assert_int_equal(EVP_PKEY_check(ctx), 1);
        EVP_PKEY_CTX_free(ctx);
    }

    /* The rebuilt key signs; the public key made from n, e verifies. */
    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, back, NULL), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (const uint8_t *)"hello", 5), 1);
    EVP_MD_CTX_free(md);
    assert_int_equal(
        split_rsa_pkey_public(&pub, key.modulus, key.modulus_len, key.exponent, key.exponent_len),
        0);
    assert_int_equal(proto_key_id(id, pub), 0);
    assert_memory_equal(id, key.key_id, PROTO_KEY_ID_LEN);
    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, pub, NULL), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, sig_len, (const uint8_t *)"hello", 5), 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(back);
    back = NULL;

    /* A changed p (or a different modulus) is no key. */
    tuple[f.y_len - 1] ^= 2;
    assert_int_equal(split_rsa_tuple_check(&f, tuple, key.modulus, key.modulus_len),
                     SPK_ERR_KEY_MISMATCH);
    assert_int_equal(split_rsa_pkey_from_tuple(&back, &f, tuple, key.modulus, key.modulus_len,
                                               key.exponent, key.exponent_len),
                     SPK_ERR_KEY_MISMATCH);
    assert_null(back);
    tuple[f.y_len - 1] ^= 2;
    key.modulus[key.modulus_len - 1] ^= 2;
    assert_int_equal(split_rsa_tuple_check(&f, tuple, key.modulus, key.modulus_len),
                     SPK_ERR_KEY_MISMATCH);
    key.modulus[key.modulus_len - 1] ^= 2;

    /* The constant-time check multiplies, so q * p passes as p * q does. */
    {
        uint8_t swap[1280];

        assert_true(f.y_len <= sizeof(swap));
        memcpy(swap, tuple, f.y_len);
        memcpy(tuple, tuple + f.y_len, f.y_len);
        memcpy(tuple + f.y_len, swap, f.y_len);
        assert_int_equal(split_rsa_tuple_check(&f, tuple, key.modulus, key.modulus_len), 0);
        memcpy(tuple + f.y_len, tuple, f.y_len);
        memcpy(tuple, swap, f.y_len);
        sodium_memzero(swap, sizeof(swap));
    }
    /* A p that is a multiple of the field's M would wrap: values >= M are no key. */
    {
        uint8_t keep = tuple[0];

        memset(tuple, 0xff, f.y_len);
        assert_int_equal(split_rsa_tuple_check(&f, tuple, key.modulus, key.modulus_len),
                         SPK_ERR_KEY_MISMATCH);
        tuple[0] = keep;
        assert_int_equal(split_rsa_tuple_export(tuple, &f, &key), 0);
    }
    /* p = 1 (and q = 0) is refused. */
    memset(tuple, 0, 2 * f.y_len);
    tuple[f.y_len - 1] = 1;
    assert_int_equal(split_rsa_tuple_check(&f, tuple, key.modulus, key.modulus_len),
                     SPK_ERR_KEY_MISMATCH);
    /* A modulus longer than any product of two field elements: no match. */
    assert_int_equal(split_rsa_tuple_export(tuple, &f, &key), 0);
    {
        uint8_t longer[2 * PROTO_BN_MAX] = {0};
        size_t long_len = 2 * f.limbs * sizeof(mp_limb_t) + 1;

        assert_true(long_len <= sizeof(longer));
        memcpy(longer + long_len - key.modulus_len, key.modulus, key.modulus_len);
        assert_int_not_equal(split_rsa_tuple_check(&f, tuple, longer, long_len), 0);
    }
    split_rsa_key_cleanup(&key);
    spk_secret_free(tuple);
}

static void test_tuple_rebuild(void **state)
{
    (void)state;
    check_rebuild("rsa2048.pem");
    check_rebuild("rsa3072.pem");
    check_rebuild("rsa4096.pem");
    check_rebuild("rsa8192.pem");
}

static void test_pem_write(void **state)
{
    struct split_rsa_key key;
    struct split_rsa_key back;
    struct stat st;
    char path[256];
    char why[SPLIT_WHY_MAX];

    (void)state;
    snprintf(path, sizeof(path), "%s/out.pem", tmp_dir);
    load_ok(&key, "rsa2048-pkcs1.pem", NULL);
    assert_int_equal(split_rsa_pem_write_new(path, key.pkey), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(split_rsa_key_load(&back, path, NULL, why, sizeof(why)), 0);
    assert_memory_equal(back.key_id, key.key_id, PROTO_KEY_ID_LEN);
    assert_int_equal(EVP_PKEY_eq(back.pkey, key.pkey), 1);
    assert_int_equal(split_rsa_pem_write_new(path, key.pkey), SPK_ERR_EXISTS);
    split_rsa_key_cleanup(&back);
    split_rsa_key_cleanup(&key);
    unlink(path);
}

/* ---- records --------------------------------------------------------------- */

static void test_record_sign_verify(void **state)
{
    struct split_rsa_key key;
    struct split_rsa_key other;
    struct holders h;
    struct split_run s;
    struct proto_record *dec = calloc(1, sizeof(*dec));
    uint8_t *text = malloc(PROTO_FILE_MAX);
    size_t text_len = 0;
    size_t i;

    (void)state;
    assert_non_null(dec);
    assert_non_null(text);
    load_ok(&key, "rsa2048.pem", NULL);
    load_ok(&other, "rsa3072.pem", NULL);
    holders_make(&h, 3, "h");
    split_run(&s, &key, 2, &h);
    assert_int_equal(s.rec->signature_len, key.modulus_len);

    /* Through the text format and back: still genuine. */
    assert_int_equal(proto_record_encode(text, PROTO_FILE_MAX, &text_len, s.rec), 0);
    assert_int_equal(proto_record_decode(dec, text, text_len), 0);
    assert_int_equal(split_record_verify(dec), 0);

    /* Any changed byte of what is signed, or of the signature, is caught. */
    *dec = *s.rec;
    dec->shares[1].commitment[5] ^= 1;
    assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);
    *dec = *s.rec;
    dec->split_id[0] ^= 0x80;
    assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);
    *dec = *s.rec;
    dec->threshold = 3;
    assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);
    *dec = *s.rec;
    dec->shares[0].holder[0] = 'x';
    assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);
    *dec = *s.rec;
    dec->signature[dec->signature_len - 1] ^= 1;
    assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);
    *dec = *s.rec;
    dec->key_id[31] ^= 1;
    assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);

    /* Every single-byte change of a commitment digit in the file text. */
    for (i = 0; i + 1 < text_len; i++) {
        if (text[i] == '\n' && strncmp((const char *)text + i + 1, "share 2 ", 8) == 0) {
            break;
        }
    }
    assert_true(i + 1 < text_len);
    {
        size_t at = i + 1 + strlen("share 2 h2 ") + 7;
        uint8_t was = text[at];

        text[at] = was == '0' ? '1' : '0';
        assert_int_equal(proto_record_decode(dec, text, text_len), 0);
        assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);
        text[at] = was;
    }

    /*
     * A signature must be below the modulus: s + n is the same residue, so a
     * verifier that reduced it mod n would accept it. PSS salts are random,
     * so sign until s + n fits in the modulus' length (about half the time).
     */
    for (i = 0; i < 64; i++) {
        BIGNUM *sig_bn, *n_bn;
        bool fits;

        *dec = *s.rec;
        assert_int_equal(split_record_sign(dec, key.pkey), 0);
        sig_bn = BN_bin2bn(dec->signature, (int)dec->signature_len, NULL);
        n_bn = BN_bin2bn(dec->modulus, (int)dec->modulus_len, NULL);
        assert_non_null(sig_bn);
        assert_non_null(n_bn);
        assert_int_equal(BN_add(sig_bn, sig_bn, n_bn), 1);
        fits = BN_num_bytes(sig_bn) <= (int)dec->signature_len;
        if (fits) {
            assert_int_equal(split_record_verify(dec), 0);
            assert_int_equal(BN_bn2binpad(sig_bn, dec->signature, (int)dec->signature_len),
                             (int)dec->signature_len);
            assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);
        }
        BN_free(sig_bn);
        BN_free(n_bn);
        if (fits) {
            break;
        }
    }
    assert_true(i < 64);

    /* Signed by another key: the key id and n, e no longer match the signer. */
    *dec = *s.rec;
    assert_int_equal(split_record_sign(dec, other.pkey), 0);
    assert_int_equal(split_record_verify(dec), SPK_ERR_BAD_SIGNATURE);
    /* A record re-signed by its own key after a change verifies again. */
    *dec = *s.rec;
    dec->threshold = 3;
    assert_int_equal(split_record_sign(dec, key.pkey), 0);
    assert_int_equal(split_record_verify(dec), 0);

    split_run_free(&s);
    holders_free(&h);
    split_rsa_key_cleanup(&key);
    split_rsa_key_cleanup(&other);
    free(dec);
    free(text);
}

/* ---- sealed shares and holder keys ------------------------------------------ */

static void test_seal_open(void **state)
{
    struct holders h;
    struct holders impostor;
    struct proto_share_file *sf = calloc(1, sizeof(*sf));
    struct split_field f;
    uint8_t *y = spk_secret_new(TUPLE_MAX);
    uint8_t *back = spk_secret_new(TUPLE_MAX);
    size_t tlen;

    (void)state;
    assert_non_null(sf);
    assert_non_null(y);
    assert_non_null(back);
    holders_make(&h, 2, "holder-");
    holders_make(&impostor, 1, "holder-");
    assert_int_equal(split_field_init(&f, 2203), 0);
    tlen = split_tuple_len(&f);
    randombytes_buf(y, tlen);
    for (size_t j = 0; j < SPLIT_NUM_SECRETS; j++) {
        y[j * f.y_len] &= 0x07; /* 2203 bits of 276 bytes: a field element */
    }

    sf->field_bits = 2203;
    assert_int_equal(split_share_seal(sf, &h.pub[0], y, tlen), 0);
    assert_int_equal(sf->sealed_len, tlen + PROTO_SEAL_OVERHEAD);
    assert_string_equal(sf->holder, "holder-1");
    assert_int_equal(split_share_open(back, tlen, sf, h.sec[0]), 0);
    assert_memory_equal(back, y, tlen);

    /* Another holder's key is refused by name before anything is tried. */
    assert_int_equal(split_share_open(back, tlen, sf, h.sec[1]), SPK_ERR_WRONG_HOLDER);
    /* Same name, other key: it does not open, and nothing is left behind. */
    memset(back, 0x77, tlen);
    assert_int_equal(split_share_open(back, tlen, sf, impostor.sec[0]), SPK_ERR_UNSEAL);
    assert_true(all_zero(back, tlen));
    /* A flipped ciphertext bit does not open. */
    sf->sealed[60] ^= 1;
    assert_int_equal(split_share_open(back, tlen, sf, h.sec[0]), SPK_ERR_UNSEAL);
    sf->sealed[60] ^= 1;
    /* Wrong lengths. */
    assert_int_equal(split_share_open(back, tlen - 1, sf, h.sec[0]), SPK_ERR_MALFORMED);
    sf->sealed_len--;
    assert_int_equal(split_share_open(back, tlen, sf, h.sec[0]), SPK_ERR_MALFORMED);
    sf->sealed_len++;
    assert_int_equal(split_share_seal(sf, &h.pub[0], y, tlen + 1), SPK_ERR_INVALID_ARG);
    sf->field_bits = 1000;
    assert_int_equal(split_share_seal(sf, &h.pub[0], y, tlen), SPK_ERR_INVALID_ARG);

    holders_free(&h);
    holders_free(&impostor);
    spk_secret_free(y);
    spk_secret_free(back);
    free(sf);
}

static void test_holder_keys(void **state)
{
    struct proto_holder_secret *key = spk_secret_new(sizeof(*key));
    struct proto_holder_secret *loaded = NULL;
    struct proto_holder_pub pub;
    uint8_t text[4096];
    size_t len = 0;
    char path[256];
    FILE *f;

    (void)state;
    assert_non_null(key);
    assert_int_equal(split_holder_keygen(key, "edge-1"), 0);
    assert_string_equal(key->pub.name, "edge-1");
    assert_false(all_zero(key->storage_sk, PROTO_X25519_LEN));
    assert_memory_not_equal(key->storage_sk, key->curve_sk, PROTO_X25519_LEN);
    assert_int_equal(split_holder_secret_check(key), 0);
    assert_int_equal(split_holder_keygen(key, ".hidden"), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_holder_keygen(key, "a b"), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_holder_keygen(key, ""), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_holder_keygen(key, "edge-1"), 0);

    /* Written and read back through the file format. */
    snprintf(path, sizeof(path), "%s/edge-1.key", tmp_dir);
    assert_int_equal(proto_holder_secret_encode(text, sizeof(text), &len, key), 0);
    assert_int_equal(spk_file_write_new(path, 0600, text, len), 0);
    assert_int_equal(split_holder_secret_load(&loaded, path), 0);
    assert_memory_equal(loaded, key, sizeof(*key));
    spk_secret_free(loaded);
    loaded = NULL;
    unlink(path);
    snprintf(path, sizeof(path), "%s/edge-1.pub", tmp_dir);
    assert_int_equal(proto_holder_pub_encode(text, sizeof(text), &len, &key->pub), 0);
    assert_int_equal(spk_file_write_new(path, 0644, text, len), 0);
    assert_int_equal(split_holder_pub_load(&pub, path), 0);
    assert_memory_equal(&pub, &key->pub, sizeof(pub));
    unlink(path);

    /* A key file whose public key is not its secret key's is refused. */
    key->pub.storage_pk[3] ^= 1;
    assert_int_equal(split_holder_secret_check(key), SPK_ERR_KEY_MISMATCH);
    snprintf(path, sizeof(path), "%s/bad.key", tmp_dir);
    assert_int_equal(proto_holder_secret_encode(text, sizeof(text), &len, key), 0);
    assert_int_equal(spk_file_write_new(path, 0600, text, len), 0);
    assert_int_equal(split_holder_secret_load(&loaded, path), SPK_ERR_KEY_MISMATCH);
    assert_null(loaded);
    unlink(path);
    key->pub.storage_pk[3] ^= 1;
    /* (X25519 clamps the low three bits of byte 0, so change a bit that counts.) */
    key->curve_sk[1] ^= 1;
    assert_int_equal(split_holder_secret_check(key), SPK_ERR_KEY_MISMATCH);
    assert_int_equal(split_holder_secret_load(&loaded, "/nonexistent/x.key"), SPK_ERR_IO);

    /* Not a key file. */
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("splitkey-holder-key 1\nname x\n", f);
    fclose(f);
    assert_int_not_equal(split_holder_secret_load(&loaded, path), 0);
    assert_null(loaded);
    unlink(path);
    sodium_memzero(text, sizeof(text));
    spk_secret_free(key);
}

/* ---- whole splits ----------------------------------------------------------- */

/* every_subset calls back with each k-subset of 0..n-1 (as an index list). */
static void every_subset(unsigned n, unsigned k, void (*fn)(const unsigned *idx, void *arg),
                         void *arg)
{
    unsigned idx[HOLDERS_MAX];
    unsigned i;

    for (i = 0; i < k; i++) {
        idx[i] = i;
    }
    for (;;) {
        fn(idx, arg);
        i = k;
        while (i > 0 && idx[i - 1] == n - k + i - 1) {
            i--;
        }
        if (i == 0) {
            return;
        }
        idx[i - 1]++;
        for (; i < k; i++) {
            idx[i] = idx[i - 1] + 1;
        }
    }
}

struct subset_ctx {
    struct split_run *s;
    const uint8_t *tuple;
    unsigned count;
};

static void subset_combines(const unsigned *idx, void *arg)
{
    struct subset_ctx *c = arg;
    struct split_opened_share sh[HOLDERS_MAX];
    uint8_t *out = spk_secret_new(TUPLE_MAX);
    unsigned k = c->s->rec->threshold;
    unsigned i;

    assert_non_null(out);
    /* In reverse order too: the order of shares must not matter. */
    for (i = 0; i < k; i++) {
        sh[i] = c->s->shares[idx[c->count % 2 ? k - 1 - i : i]];
    }
    assert_int_equal(combine(out, c->s, sh, k), 0);
    assert_memory_equal(out, c->tuple, c->s->tlen);
    spk_secret_free(out);
    c->count++;
}

static unsigned binomial(unsigned n, unsigned k)
{
    unsigned r = 1;
    unsigned i;

    for (i = 0; i < k; i++) {
        r = r * (n - i) / (i + 1);
    }
    return r;
}

static void check_split(const char *name, unsigned k, unsigned n)
{
    struct split_rsa_key key;
    struct holders h;
    struct split_run s;
    struct subset_ctx ctx;
    uint8_t *tuple = spk_secret_new(TUPLE_MAX);
    uint8_t *out = spk_secret_new(TUPLE_MAX);
    struct split_opened_share sh[HOLDERS_MAX];
    unsigned i;

    assert_non_null(tuple);
    assert_non_null(out);
    load_ok(&key, name, NULL);
    holders_make(&h, n, "holder");
    split_run(&s, &key, k, &h);
    assert_memory_equal(s.rec->key_id, key.key_id, PROTO_KEY_ID_LEN);
    assert_int_equal(s.rec->threshold, k);
    assert_int_equal(s.rec->num_shares, n);
    assert_int_equal(s.rec->field_bits, key.bits <= 2048 ? 1279 : 2203);
    assert_int_equal(split_rsa_tuple_export(tuple, &s.f, &key), 0);

    ctx.s = &s;
    ctx.tuple = tuple;
    ctx.count = 0;
    every_subset(n, k, subset_combines, &ctx);
    assert_int_equal(ctx.count, binomial(n, k));

    /* All n at once: the first k are used, the rest still checked. */
    memset(out, 0x55, s.tlen);
    assert_int_equal(combine(out, &s, s.shares, n), 0);
    assert_memory_equal(out, tuple, s.tlen);
    /* Shares the caller checked as they came: the same key. */
    memset(out, 0x55, s.tlen);
    assert_int_equal(combine_as(out, &s, s.shares, k, true), 0);
    assert_memory_equal(out, tuple, s.tlen);

    /* k - 1 shares: refused, and nothing comes out. */
    memset(out, 0x55, s.tlen);
    assert_int_equal(combine(out, &s, s.shares, k - 1), SPK_ERR_THRESHOLD);
    assert_true(all_zero(out, s.tlen));
    /* Nor does interpolating k - 1 of them as if that were enough give the key. */
    if (k - 1 >= 2) {
        struct spk_arena *arena = spk_arena_new(split_interpolate_scratch_len(&s.f, k - 1));
        const uint8_t *ys[HOLDERS_MAX];
        uint8_t xs[HOLDERS_MAX];

        assert_non_null(arena);
        for (i = 0; i < k - 1; i++) {
            xs[i] = s.shares[i].index;
            ys[i] = s.shares[i].y;
        }
        assert_int_equal(split_interpolate(&s.f, k - 1, xs, ys, out, arena), 0);
        assert_memory_not_equal(out, tuple, s.tlen);
        assert_int_equal(split_rsa_tuple_check(&s.f, out, key.modulus, key.modulus_len),
                         SPK_ERR_KEY_MISMATCH);
        spk_arena_free(arena);
    }

    /* The same share twice is not two shares. */
    for (i = 0; i < k; i++) {
        sh[i] = s.shares[i];
    }
    sh[k - 1] = s.shares[0];
    assert_int_equal(combine(out, &s, sh, k), SPK_ERR_DUP_INDEX);
    assert_true(all_zero(out, s.tlen));
    assert_int_equal(combine_as(out, &s, sh, k, true), SPK_ERR_DUP_INDEX);
    assert_int_equal(combine_as(out, &s, s.shares, k - 1, true), SPK_ERR_THRESHOLD);

    split_run_free(&s);
    holders_free(&h);
    split_rsa_key_cleanup(&key);
    spk_secret_free(tuple);
    spk_secret_free(out);
}

static void test_split_2048(void **state)
{
    (void)state;
    check_split("rsa2048.pem", 2, 2);
    check_split("rsa2048.pem", 2, 3);
    check_split("rsa2048.pem", 3, 5);
}

static void test_split_3072(void **state)
{
    (void)state;
    check_split("rsa3072.pem", 2, 2);
    check_split("rsa3072.pem", 2, 3);
    check_split("rsa3072.pem", 3, 5);
}

static void test_split_4096(void **state)
{
    (void)state;
    check_split("rsa4096.pem", 2, 2);
    check_split("rsa4096.pem", 2, 3);
    check_split("rsa4096.pem", 3, 5);
}

static void test_split_8192(void **state)
{
    struct split_rsa_key key;
    struct holders h;
    struct split_run s;
    uint8_t *tuple = spk_secret_new(TUPLE_MAX);
    uint8_t *out = spk_secret_new(TUPLE_MAX);
    EVP_PKEY *back = NULL;

    (void)state;
    load_ok(&key, "rsa8192.pem", NULL);
    holders_make(&h, 2, "big");
    split_run(&s, &key, 2, &h);
    assert_int_equal(s.rec->field_bits, 4253);
    assert_int_equal(split_rsa_tuple_export(tuple, &s.f, &key), 0);
    assert_int_equal(combine(out, &s, s.shares, 2), 0);
    assert_memory_equal(out, tuple, s.tlen);
    assert_int_equal(split_rsa_pkey_from_tuple(&back, &s.f, out, s.rec->modulus, s.rec->modulus_len,
                                               s.rec->exponent, s.rec->exponent_len),
                     0);
    assert_int_equal(EVP_PKEY_eq(back, key.pkey), 1);
    EVP_PKEY_free(back);
    split_run_free(&s);
    holders_free(&h);
    split_rsa_key_cleanup(&key);
    spk_secret_free(tuple);
    spk_secret_free(out);
}

static void test_mixed_and_tampered(void **state)
{
    struct split_rsa_key key;
    struct split_rsa_key other;
    struct holders h;
    struct split_run a;
    struct split_run b;
    struct split_run c;
    struct split_opened_share sh[2];
    uint8_t *out = spk_secret_new(TUPLE_MAX);
    uint8_t *y = spk_secret_new(TUPLE_MAX);

    (void)state;
    assert_non_null(out);
    assert_non_null(y);
    load_ok(&key, "rsa2048.pem", NULL);
    load_ok(&other, "rsa2048-pkcs1.pem", NULL);
    holders_make(&h, 3, "m");
    split_run(&a, &key, 2, &h);
    split_run(&b, &key, 2, &h);
    split_run(&c, &other, 2, &h);
    assert_memory_not_equal(a.rec->split_id, b.rec->split_id, PROTO_SPLIT_ID_LEN);

    /* Shares of two splits of the same key do not mix, whichever record is used. */
    sh[0] = a.shares[0];
    sh[1] = b.shares[1];
    assert_int_equal(combine(out, &a, sh, 2), SPK_ERR_MIXED_SPLIT);
    assert_int_equal(combine(out, &b, sh, 2), SPK_ERR_MIXED_SPLIT);
    assert_int_equal(split_share_check(a.rec, &a.f, &b.shares[2]), SPK_ERR_MIXED_SPLIT);
    /* A split of the same key loaded another way is still another split. */
    assert_int_equal(split_share_check(a.rec, &a.f, &c.shares[0]), SPK_ERR_MIXED_SPLIT);
    /* Even with b's split id carried over, b's y does not match a's commitment. */
    sh[1] = b.shares[1];
    memcpy(sh[1].split_id, a.rec->split_id, PROTO_SPLIT_ID_LEN);
    assert_int_equal(combine(out, &a, sh, 2), SPK_ERR_COMMITMENT);

    /* One changed bit of a y fails its commitment. */
    memcpy(y, a.shares[1].y, a.tlen);
    y[a.tlen - 1] ^= 1;
    sh[0] = a.shares[0];
    sh[1] = a.shares[1];
    sh[1].y = y;
    assert_int_equal(split_share_check(a.rec, &a.f, &sh[1]), SPK_ERR_COMMITMENT);
    memset(out, 0x55, a.tlen);
    assert_int_equal(combine(out, &a, sh, 2), SPK_ERR_COMMITMENT);
    assert_true(all_zero(out, a.tlen));
    /* A share whose p part changed after its check (combine_checked trusts
     * the caller's checks): the key it gives fails p * q == N, and nothing
     * comes out. (The other parts are the combiner's e-check's: no result
     * of a wrong dp, dq or qinv leaves it.) */
    memcpy(y, a.shares[1].y, a.tlen);
    y[a.f.y_len - 1] ^= 1;
    memset(out, 0x55, a.tlen);
    assert_int_equal(combine_as(out, &a, sh, 2, true), SPK_ERR_KEY_MISMATCH);
    assert_true(all_zero(out, a.tlen));
    /* A share claiming another index fails too. */
    sh[1] = a.shares[1];
    sh[1].index = 3;
    sh[1].holder = NULL;
    assert_int_equal(combine(out, &a, sh, 2), SPK_ERR_COMMITMENT);
    /* An index the record does not list. */
    sh[1].index = 9;
    assert_int_equal(split_share_check(a.rec, &a.f, &sh[1]), SPK_ERR_COMMITMENT);
    sh[1].index = 0;
    assert_int_equal(split_share_check(a.rec, &a.f, &sh[1]), SPK_ERR_COMMITMENT);
    /* The record's holder of an index must be the one the share names. */
    sh[1] = a.shares[1];
    sh[1].holder = "m3";
    assert_int_equal(split_share_check(a.rec, &a.f, &sh[1]), SPK_ERR_WRONG_HOLDER);

    /* y_1 = M (2^1279 - 1: 0x7f then 159 bytes of 0xff) is not a field
     * element: refused even when the record commits to exactly these bytes,
     * by split_share_check and by split_share_open of a share file. */
    {
        struct proto_share_file sf = a.files[1];
        struct proto_record_share *entry = NULL;

        for (unsigned i = 0; i < a.rec->num_shares; i++) {
            if (a.rec->shares[i].index == a.shares[1].index) {
                entry = &a.rec->shares[i];
            }
        }
        assert_non_null(entry);
        assert_int_equal(a.f.bits, 1279);
        memcpy(y, a.shares[1].y, a.tlen);
        y[0] = 0x7f;
        memset(y + 1, 0xff, a.f.y_len - 1);
        assert_int_equal(split_share_y_check(&a.f, y), SPK_ERR_MALFORMED);
        split_commitment(entry->commitment, a.rec->key_id, a.rec->split_id, a.shares[1].index, y,
                         a.tlen);
        sh[1] = a.shares[1];
        sh[1].y = y;
        assert_int_equal(split_share_check(a.rec, &a.f, &sh[1]), SPK_ERR_MALFORMED);
        assert_int_equal(split_share_seal(&sf, &h.pub[1], y, a.tlen), 0);
        memset(out, 0x55, a.tlen);
        assert_int_equal(split_share_open(out, a.tlen, &sf, h.sec[1]), SPK_ERR_MALFORMED);
        assert_true(all_zero(out, a.tlen));
        /* M - 1 in every place is fine: the check is exactly y < M */
        y[a.f.y_len - 1] = 0xfe;
        for (size_t j = 1; j < SPLIT_NUM_SECRETS; j++) {
            memcpy(y + j * a.f.y_len, y, a.f.y_len);
        }
        assert_int_equal(split_share_y_check(&a.f, y), 0);
        /* and M in the last value only is caught too */
        y[a.tlen - 1] = 0xff;
        assert_int_equal(split_share_y_check(&a.f, y), SPK_ERR_MALFORMED);
    }

    split_run_free(&a);
    split_run_free(&b);
    split_run_free(&c);
    holders_free(&h);
    split_rsa_key_cleanup(&key);
    split_rsa_key_cleanup(&other);
    spk_secret_free(out);
    spk_secret_free(y);
}

static void test_split_refusals(void **state)
{
    struct split_rsa_key key;
    struct holders h;
    struct proto_record *rec = calloc(1, sizeof(*rec));
    struct proto_share_file *files = calloc(PROTO_SHARES_MAX + 1, sizeof(*files));
    struct proto_holder_pub *many = calloc(PROTO_SHARES_MAX + 1, sizeof(*many));
    struct proto_holder_pub pubs[3];
    char why[SPLIT_WHY_MAX];
    unsigned i;

    (void)state;
    assert_non_null(rec);
    assert_non_null(files);
    assert_non_null(many);
    load_ok(&key, "rsa2048.pem", NULL);
    holders_make(&h, 3, "r");

    assert_int_equal(split_key_split(rec, files, &key, 1, h.pub, 3, why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "threshold"));
    assert_int_equal(split_key_split(rec, files, &key, 0, h.pub, 3, why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);
    assert_int_equal(split_key_split(rec, files, &key, 4, h.pub, 3, why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "exceeds"));
    for (i = 0; i <= PROTO_SHARES_MAX; i++) {
        many[i] = h.pub[i % 3];
        snprintf(many[i].name, sizeof(many[i].name), "n%u", i);
    }
    assert_int_equal(
        split_key_split(rec, files, &key, 2, many, PROTO_SHARES_MAX + 1, why, sizeof(why)),
        SPK_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "255"));

    /* Duplicate names, duplicate keys, a bad name. */
    memcpy(pubs, h.pub, sizeof(pubs));
    memcpy(pubs[2].name, pubs[0].name, sizeof(pubs[2].name));
    assert_int_equal(split_key_split(rec, files, &key, 2, pubs, 3, why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "twice"));
    memcpy(pubs, h.pub, sizeof(pubs));
    memcpy(pubs[1].storage_pk, pubs[0].storage_pk, PROTO_X25519_LEN);
    assert_int_equal(split_key_split(rec, files, &key, 2, pubs, 3, why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "same key"));
    memcpy(pubs, h.pub, sizeof(pubs));
    memcpy(pubs[1].curve_pk, pubs[2].curve_pk, PROTO_X25519_LEN);
    assert_int_equal(split_key_split(rec, files, &key, 2, pubs, 3, why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);
    memcpy(pubs, h.pub, sizeof(pubs));
    snprintf(pubs[1].name, sizeof(pubs[1].name), "bad/name");
    assert_int_equal(split_key_split(rec, files, &key, 2, pubs, 3, why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);

    /* And the edge of what is allowed: k = n = 2 works (checked in check_split). */
    holders_free(&h);
    split_rsa_key_cleanup(&key);
    free(rec);
    free(files);
    free(many);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmp_dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(tmp_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_good_keys),     cmocka_unit_test(test_load_same_key_three_ways),
        cmocka_unit_test(test_load_refusals),      cmocka_unit_test(test_passphrase_newline),
        cmocka_unit_test(test_tuple_rebuild),      cmocka_unit_test(test_pem_write),
        cmocka_unit_test(test_record_sign_verify), cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_holder_keys),        cmocka_unit_test(test_split_2048),
        cmocka_unit_test(test_split_3072),         cmocka_unit_test(test_split_4096),
        cmocka_unit_test(test_split_8192),         cmocka_unit_test(test_mixed_and_tampered),
        cmocka_unit_test(test_split_refusals),
    };

    if (spk_mem_init() != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
