/*
 * The combiner library end to end: test keys split k-of-n with holder keys
 * made in memory, shares gathered from the local share and in-process file
 * sources, every operation checked against OpenSSL with the whole key
 * loaded; bad, missing, duplicate and mixed shares; many operations in
 * flight at once through comb_process.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "combiner/combiner.h"
#include "split/split.h"
#include "testutil.h"

#define SET_MAX 6

/* One split of a test key: record, sealed shares and the holders' keys. */
struct split_set {
    struct split_rsa_key key;
    struct proto_record *rec;
    struct proto_share_file *shares; /* n */
    struct proto_holder_secret *hks[SET_MAX];
    unsigned k, n;
};

static void set_make(struct split_set *s, const char *file, unsigned k, unsigned n,
                     const char *prefix)
{
    struct proto_holder_pub pubs[SET_MAX];
    char why[SPLIT_WHY_MAX] = "";
    char name[PROTO_NAME_MAX + 1];

    assert_true(n <= SET_MAX);
    memset(s, 0, sizeof(*s));
    s->k = k;
    s->n = n;
    assert_int_equal(split_rsa_key_load(&s->key, testutil_data_path(file), NULL, why, sizeof(why)),
                     0);
    for (unsigned i = 0; i < n; i++) {
        s->hks[i] = spk_secret_new(sizeof(*s->hks[i]));
        assert_non_null(s->hks[i]);
        snprintf(name, sizeof(name), "%s%u", prefix, i + 1);
        assert_int_equal(split_holder_keygen(s->hks[i], name), 0);
        pubs[i] = s->hks[i]->pub;
    }
    s->rec = calloc(1, sizeof(*s->rec));
    s->shares = calloc(n, sizeof(*s->shares));
    assert_non_null(s->rec);
    assert_non_null(s->shares);
    assert_int_equal(split_key_split(s->rec, s->shares, &s->key, k, pubs, n, why, sizeof(why)), 0);
}

static void set_free(struct split_set *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        spk_secret_free(s->hks[i]);
    }
    free(s->rec);
    free(s->shares);
    split_rsa_key_cleanup(&s->key);
}

/* comb_with: a combiner holding share |local| and file sources for |num_files| of |files|. */
static struct comb_ctx *comb_with(const struct split_set *s, const struct comb_config *cfg,
                                  unsigned local, const unsigned *files, size_t num_files,
                                  struct comb_file_source **out_fs)
{
    struct comb_ctx *c = comb_new(cfg);

    assert_non_null(c);
    assert_int_equal(comb_add_key(c, s->rec, &s->shares[local], s->hks[local]), 0);
    for (size_t i = 0; i < num_files; i++) {
        struct comb_file_source *fs = comb_file_source_new(s->hks[files[i]]);

        assert_non_null(fs);
        assert_int_equal(comb_file_source_add_share(fs, &s->shares[files[i]], i % 2 == 1), 0);
        assert_int_equal(comb_add_file_source(c, NULL, NULL, fs), 0);
        if (out_fs != NULL) {
            out_fs[i] = fs;
        }
    }
    return c;
}

static const EVP_MD *md_of(enum comb_alg alg)
{
    switch (alg) {
    case COMB_ALG_PKCS1_SHA1:
    case COMB_ALG_DECRYPT_OAEP_SHA1:
        return EVP_sha1();
    case COMB_ALG_PKCS1_SHA224:
        return EVP_sha224();
    case COMB_ALG_PKCS1_SHA256:
    case COMB_ALG_PSS_SHA256:
    case COMB_ALG_DECRYPT_OAEP_SHA256:
        return EVP_sha256();
    case COMB_ALG_PKCS1_SHA384:
    case COMB_ALG_PSS_SHA384:
        return EVP_sha384();
    case COMB_ALG_PKCS1_SHA512:
    case COMB_ALG_PSS_SHA512:
        return EVP_sha512();
    case COMB_ALG_PKCS1_MD5SHA1:
        return EVP_md5_sha1();
    case COMB_ALG_NONE:
    case COMB_ALG_DECRYPT_PKCS1:
    case COMB_ALG_DECRYPT_TLS:
    case COMB_ALG_DECRYPT_RAW:
    default:
        fail();
        return NULL;
    }
}

static bool is_pss(enum comb_alg alg)
{
    return alg == COMB_ALG_PSS_SHA256 || alg == COMB_ALG_PSS_SHA384 || alg == COMB_ALG_PSS_SHA512;
}

/* sig_verifies: OpenSSL's verdict on |sig| over |digest| with the loaded key. */
static bool sig_verifies(EVP_PKEY *pkey, enum comb_alg alg, const uint8_t *digest, size_t dlen,
                         const uint8_t *sig, size_t sig_len)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(pkey, NULL);
    int ok;

    assert_non_null(pctx);
    assert_int_equal(EVP_PKEY_verify_init(pctx), 1);
    if (is_pss(alg)) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md_of(alg)), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int)dlen), 1);
    } else {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
    }
    assert_int_equal(EVP_PKEY_CTX_set_signature_md(pctx, md_of(alg)), 1);
    ok = EVP_PKEY_verify(pctx, sig, sig_len, digest, dlen);
    EVP_PKEY_CTX_free(pctx);
    return ok == 1;
}

/* sign_check: one signature through the combiner, checked against OpenSSL. */
static void sign_check(struct comb_ctx *c, const struct split_set *s, enum comb_alg alg)
{
    uint8_t digest[64];
    uint8_t ours[PROTO_BN_MAX];
    uint8_t theirs[PROTO_BN_MAX];
    size_t ours_len = 0;
    size_t theirs_len = sizeof(theirs);
    size_t dlen = comb_alg_digest_len(alg);
    EVP_PKEY_CTX *pctx;

    assert_true(dlen > 0);
    assert_int_equal(RAND_bytes(digest, (int)dlen), 1);
    assert_int_equal(
        comb_sign_sync(c, ours, sizeof(ours), &ours_len, s->rec->key_id, alg, digest, dlen), 0);
    assert_int_equal(ours_len, s->rec->modulus_len);
    assert_true(sig_verifies(s->key.pkey, alg, digest, dlen, ours, ours_len));
    if (is_pss(alg)) {
        return;
    }
    /* PKCS#1 v1.5 is deterministic: byte for byte what OpenSSL makes. */
    pctx = EVP_PKEY_CTX_new(s->key.pkey, NULL);
    assert_non_null(pctx);
    assert_int_equal(EVP_PKEY_sign_init(pctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_signature_md(pctx, md_of(alg)), 1);
    assert_int_equal(EVP_PKEY_sign(pctx, theirs, &theirs_len, digest, dlen), 1);
    EVP_PKEY_CTX_free(pctx);
    assert_int_equal(theirs_len, ours_len);
    assert_memory_equal(ours, theirs, ours_len);
}

/* encrypt: OpenSSL encrypts |msg| with |padding| (and OAEP hash |md|). */
static void encrypt(const struct split_set *s, int padding, const EVP_MD *md, const uint8_t *label,
                    size_t label_len, const uint8_t *msg, size_t msg_len, uint8_t *ct)
{
    size_t ct_len = s->rec->modulus_len;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(s->key.pkey, NULL);

    assert_non_null(pctx);
    assert_int_equal(EVP_PKEY_encrypt_init(pctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, padding), 1);
    if (md != NULL) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md), 1);
        if (label_len > 0) {
            void *copy = OPENSSL_memdup(label, label_len);

            assert_non_null(copy);
            assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(pctx, copy, (int)label_len), 1);
        }
    }
    assert_int_equal(EVP_PKEY_encrypt(pctx, ct, &ct_len, msg, msg_len), 1);
    assert_int_equal(ct_len, s->rec->modulus_len);
    EVP_PKEY_CTX_free(pctx);
}

static void decrypt_checks(struct comb_ctx *c, const struct split_set *s)
{
    const size_t k = s->rec->modulus_len;
    struct comb_decrypt_params params;
    uint8_t msg[PROTO_BN_MAX];
    uint8_t ct[PROTO_BN_MAX];
    uint8_t pt[PROTO_BN_MAX];
    size_t pt_len = 0;
    static const uint8_t label[] = "a label";

    /* PKCS#1 v1.5. */
    assert_int_equal(RAND_bytes(msg, 40), 1);
    encrypt(s, RSA_PKCS1_PADDING, NULL, NULL, 0, msg, 40, ct);
    assert_int_equal(comb_decrypt_sync(c, pt, sizeof(pt), &pt_len, s->rec->key_id,
                                       COMB_ALG_DECRYPT_PKCS1, ct, k, NULL),
                     0);
    assert_int_equal(pt_len, 40);
    assert_memory_equal(pt, msg, 40);

    /* OAEP with SHA-1 and SHA-256, with and without a label. */
    encrypt(s, RSA_PKCS1_OAEP_PADDING, EVP_sha1(), NULL, 0, msg, 33, ct);
    assert_int_equal(comb_decrypt_sync(c, pt, sizeof(pt), &pt_len, s->rec->key_id,
                                       COMB_ALG_DECRYPT_OAEP_SHA1, ct, k, NULL),
                     0);
    assert_int_equal(pt_len, 33);
    assert_memory_equal(pt, msg, 33);
    encrypt(s, RSA_PKCS1_OAEP_PADDING, EVP_sha256(), label, sizeof(label), msg, 21, ct);
    memset(&params, 0, sizeof(params));
    params.label = label;
    params.label_len = sizeof(label);
    assert_int_equal(comb_decrypt_sync(c, pt, sizeof(pt), &pt_len, s->rec->key_id,
                                       COMB_ALG_DECRYPT_OAEP_SHA256, ct, k, &params),
                     0);
    assert_int_equal(pt_len, 21);
    assert_memory_equal(pt, msg, 21);
    /* Without its label it does not decrypt. */
    assert_int_equal(comb_decrypt_sync(c, pt, sizeof(pt), &pt_len, s->rec->key_id,
                                       COMB_ALG_DECRYPT_OAEP_SHA256, ct, k, NULL),
                     SPK_ERR_DECRYPT);

    /* Raw: m^e^d = m. */
    assert_int_equal(RAND_bytes(msg, (int)k), 1);
    msg[0] = 0x01;
    encrypt(s, RSA_NO_PADDING, NULL, NULL, 0, msg, k, ct);
    assert_int_equal(comb_decrypt_sync(c, pt, sizeof(pt), &pt_len, s->rec->key_id,
                                       COMB_ALG_DECRYPT_RAW, ct, k, NULL),
                     0);
    assert_int_equal(pt_len, k);
    assert_memory_equal(pt, msg, k);

    /* TLS premaster: the right version gives it back; a wrong one 48 other bytes. */
    assert_int_equal(RAND_bytes(msg, 48), 1);
    msg[0] = 0x03;
    msg[1] = 0x03;
    encrypt(s, RSA_PKCS1_PADDING, NULL, NULL, 0, msg, 48, ct);
    memset(&params, 0, sizeof(params));
    params.tls_version = 0x0303;
    assert_int_equal(comb_decrypt_sync(c, pt, sizeof(pt), &pt_len, s->rec->key_id,
                                       COMB_ALG_DECRYPT_TLS, ct, k, &params),
                     0);
    assert_int_equal(pt_len, 48);
    assert_memory_equal(pt, msg, 48);
    params.tls_version = 0x0302;
    assert_int_equal(comb_decrypt_sync(c, pt, sizeof(pt), &pt_len, s->rec->key_id,
                                       COMB_ALG_DECRYPT_TLS, ct, k, &params),
                     0);
    assert_int_equal(pt_len, 48);
    assert_memory_not_equal(pt, msg, 48);

    /* A bad PKCS#1 ciphertext: an error for the generic decryption. */
    assert_int_equal(RAND_bytes(msg, (int)k), 1);
    msg[0] = 0x00;
    msg[1] = 0x07;
    encrypt(s, RSA_NO_PADDING, NULL, NULL, 0, msg, k, ct);
    assert_int_equal(comb_decrypt_sync(c, pt, sizeof(pt), &pt_len, s->rec->key_id,
                                       COMB_ALG_DECRYPT_PKCS1, ct, k, NULL),
                     SPK_ERR_DECRYPT);
}

static const enum comb_alg sign_algs[] = {
    COMB_ALG_PKCS1_SHA1,   COMB_ALG_PKCS1_SHA224, COMB_ALG_PKCS1_SHA256,
    COMB_ALG_PKCS1_SHA384, COMB_ALG_PKCS1_SHA512, COMB_ALG_PKCS1_MD5SHA1,
    COMB_ALG_PSS_SHA256,   COMB_ALG_PSS_SHA384,   COMB_ALG_PSS_SHA512,
};
#define NUM_SIGN_ALGS (sizeof(sign_algs) / sizeof(sign_algs[0]))

static void test_k2_rsa2048(void **state)
{
    static const unsigned files[] = {1, 2};
    struct split_set s;
    struct comb_ctx *c;
    struct comb_stats st;
    struct comb_source_stats ss;

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 3, "h");
    c = comb_with(&s, NULL, 0, files, 2, NULL);
    for (size_t i = 0; i < NUM_SIGN_ALGS; i++) {
        sign_check(c, &s, sign_algs[i]);
    }
    decrypt_checks(c, &s);

    comb_stats_get(c, &st);
    assert_int_equal(st.ops_ok, NUM_SIGN_ALGS + 6);
    assert_int_equal(st.ops_failed, 2);
    assert_int_equal(st.batches, st.ops_ok + st.ops_failed);
    assert_int_equal(st.lifetime.count, st.batches);
    assert_true(st.lifetime.p50_us > 0 && st.lifetime.p50_us <= st.lifetime.p99_us);
    assert_true(st.op.p99_us <= st.op.max_us);
    assert_int_equal(st.shares_bad, 0);
    /* local + two sources; the local one is among them. */
    assert_int_equal(comb_num_sources(c), 3);
    assert_int_equal(comb_source_stats(c, 0, &ss), 0);
    assert_string_equal(ss.name, "local");
    assert_int_equal(ss.good, st.batches);
    assert_int_equal(comb_source_stats(c, 1, &ss), 0);
    assert_string_equal(ss.name, "h2");
    assert_int_equal(comb_source_stats(c, 3, &ss), SPK_ERR_INVALID_ARG);
    comb_free(c);
    set_free(&s);
}

static void test_k3(void **state)
{
    static const char *const files_[] = {"rsa3072.pem", "rsa4096.pem"};
    static const unsigned files[] = {1, 2, 3};

    (void)state;
    for (size_t f = 0; f < 2; f++) {
        struct split_set s;
        struct comb_ctx *c;

        set_make(&s, files_[f], 3, 4, "h");
        c = comb_with(&s, NULL, 0, files, 3, NULL);
        sign_check(c, &s, COMB_ALG_PKCS1_SHA256);
        sign_check(c, &s, COMB_ALG_PSS_SHA384);
        sign_check(c, &s, COMB_ALG_PKCS1_MD5SHA1);
        if (f == 0) {
            decrypt_checks(c, &s);
        }
        comb_free(c);

        /* Another share as the local one; exactly k available. */
        c = comb_with(&s, NULL, 3, files, 2, NULL);
        sign_check(c, &s, COMB_ALG_PSS_SHA256);
        comb_free(c);
        set_free(&s);
    }
}

/*
 * try_sign signs and returns the status; every signature it gets must
 * verify. The detail of a failure is copied to |detail|.
 */
static int try_sign(struct comb_ctx *c, const struct split_set *s, char *detail, size_t cap)
{
    uint8_t digest[32];
    uint8_t sig[PROTO_BN_MAX];
    size_t sig_len = 0;
    int r;

    assert_int_equal(RAND_bytes(digest, sizeof(digest)), 1);
    r = comb_sign_sync(c, sig, sizeof(sig), &sig_len, s->rec->key_id, COMB_ALG_PSS_SHA256, digest,
                       sizeof(digest));
    if (r == 0) {
        assert_true(sig_verifies(s->key.pkey, COMB_ALG_PSS_SHA256, digest, 32, sig, sig_len));
    } else {
        assert_int_equal(sig_len, 0);
        snprintf(detail, cap, "%s", comb_last_error(c));
    }
    return r;
}

static void test_bad_shares(void **state)
{
    static const unsigned files[] = {1, 2, 3};
    struct comb_file_source *fs[3];
    struct split_set s;
    struct comb_ctx *c;
    struct comb_source_stats ss;
    char detail[COMB_DETAIL_MAX];
    static const enum comb_fault faults[] = {COMB_FAULT_CORRUPT_Y, COMB_FAULT_WRONG_SHARE,
                                             COMB_FAULT_FAIL};

    (void)state;
    set_make(&s, "rsa2048.pem", 3, 4, "h");

    /* One bad source of three: k = 3 good remain (local + two). */
    for (size_t i = 0; i < 3; i++) {
        c = comb_with(&s, NULL, 0, files, 3, fs);
        comb_file_source_set_fault(fs[i], faults[i]);
        for (int round = 0; round < 3; round++) {
            assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), 0);
        }
        /* Source ids: 0 local, 1.. the file sources in order. */
        assert_int_equal(comb_source_stats(c, 1 + i, &ss), 0);
        if (faults[i] == COMB_FAULT_FAIL) {
            assert_int_equal(ss.errors, 3);
            assert_int_equal(ss.last_error, SPK_ERR_UNAVAILABLE);
        } else {
            assert_int_equal(ss.bad, 3);
            assert_int_equal(ss.last_error, SPK_ERR_COMMITMENT);
        }
        assert_int_equal(ss.good, 0);
        comb_free(c);
    }

    /* Two bad of three: too few; the message names both. */
    c = comb_with(&s, NULL, 0, files, 3, fs);
    comb_file_source_set_fault(fs[0], COMB_FAULT_CORRUPT_Y);
    comb_file_source_set_fault(fs[2], COMB_FAULT_FAIL);
    assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), SPK_ERR_THRESHOLD);
    assert_non_null(strstr(detail, "2 good shares of 3 needed"));
    assert_non_null(strstr(detail, "h2: share 2 dropped"));
    assert_non_null(strstr(detail, "h4: injected failure"));
    assert_null(strstr(detail, "h3"));
    /* Healed: works again. */
    comb_file_source_set_fault(fs[0], COMB_FAULT_NONE);
    assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), 0);
    comb_free(c);

    /* Missing: only the local share and one other for k = 3. */
    c = comb_with(&s, NULL, 0, files, 1, NULL);
    assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), SPK_ERR_THRESHOLD);
    assert_non_null(strstr(detail, "no other source"));
    comb_free(c);

    /* A silent source: the deadline decides, and says who did not answer. */
    {
        struct comb_config cfg;

        comb_config_init(&cfg);
        cfg.timeout_ms = 50;
        c = comb_with(&s, &cfg, 0, files, 2, fs);
        comb_file_source_set_fault(fs[1], COMB_FAULT_SILENT);
        assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), SPK_ERR_THRESHOLD);
        assert_non_null(strstr(detail, "h3: no answer in time"));
        /* With a third source the silent one is not needed. */
        comb_free(c);
        c = comb_with(&s, &cfg, 0, files, 3, fs);
        comb_file_source_set_fault(fs[1], COMB_FAULT_SILENT);
        assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), 0);
        assert_int_equal(comb_source_stats(c, 2, &ss), 0);
        assert_int_equal(ss.cancelled, 1);
        comb_free(c);
    }
    set_free(&s);
}

/* source_stats: source |id|'s counters (0 local, 1.. the file sources). */
static struct comb_source_stats source_stats(const struct comb_ctx *c, size_t id)
{
    struct comb_source_stats ss;

    assert_int_equal(comb_source_stats(c, id, &ss), 0);
    return ss;
}

/*
 * holder-fanout needed, 2-of-3 (the local share, h2, h3 as file sources):
 * each rebuild asks one holder and they take turns; a holder turned slow is
 * hedged around and then passed over, probed and taken back once sound; a
 * failing holder costs no operation. Latencies here are of a process that
 * opens a sealed share, so the 300 ms holder is slow beyond any hiccup.
 */
static void test_fanout_needed(void **state)
{
    static const unsigned files[] = {1, 2};
    struct comb_file_source *fs[2];
    struct comb_source_stats h2, h3;
    char detail[COMB_DETAIL_MAX];
    struct comb_config cfg;
    struct split_set s;
    struct comb_ctx *c;
    int i;

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 3, "h");
    comb_config_init(&cfg);
    cfg.fanout_all = false;
    c = comb_with(&s, &cfg, 0, files, 2, fs);

    /* Steady: one holder per rebuild (hedges aside), in turns. */
    for (i = 0; i < 40; i++) {
        assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), 0);
    }
    h2 = source_stats(c, 1);
    h3 = source_stats(c, 2);
    assert_int_equal(source_stats(c, 0).requests, 40);
    assert_true(h2.requests - h2.hedged >= 15 && h3.requests - h3.hedged >= 15);
    assert_true(h2.requests + h3.requests < 60);
    assert_false(h2.passed_over || h3.passed_over);

    /* h3 turns slow: the operations that asked it are hedged to h2, and h3
     * is soon passed over (asked only as a probe, on top). */
    comb_file_source_set_delay_ms(fs[1], 300);
    for (i = 0; i < 40; i++) {
        assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), 0);
    }
    h2 = source_stats(c, 1);
    h3 = source_stats(c, 2);
    assert_true(h3.passed_over);
    assert_false(h2.passed_over);
    assert_true(h2.hedged >= 1 && h2.hedge_won >= 1);
    assert_true(h3.requests - h3.probes < 20 + 10); /* its turns of the first 40, few after */

    /* Sound again: a probe's answer brings it back. */
    comb_file_source_set_delay_ms(fs[1], 0);
    for (i = 0; i < 100000 && source_stats(c, 2).passed_over; i++) {
        assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), 0);
    }
    assert_false(source_stats(c, 2).passed_over);
    assert_true(source_stats(c, 2).probes >= 1);

    /* h2 fails every request: h3 is asked at once, no operation fails. */
    comb_file_source_set_fault(fs[0], COMB_FAULT_FAIL);
    for (i = 0; i < 20; i++) {
        assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), 0);
    }
    h2 = source_stats(c, 1);
    assert_true(h2.errors >= 1);
    assert_true(h2.passed_over);
    comb_free(c);
    set_free(&s);
}

static void test_duplicates(void **state)
{
    static const unsigned files[] = {1, 1, 0};
    struct split_set s;
    struct comb_ctx *c;
    char detail[COMB_DETAIL_MAX];
    struct comb_stats st;

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 3, "h");
    /* The same share from two sources: k = 2 needs only one of them. */
    c = comb_with(&s, NULL, 0, files, 2, NULL);
    assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), 0);
    comb_free(c);
    /* The local share again from a source: a duplicate index, dropped. */
    c = comb_with(&s, NULL, 0, files + 2, 1, NULL);
    assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), SPK_ERR_THRESHOLD);
    assert_non_null(strstr(detail, "h1: share 1 dropped"));
    comb_stats_get(c, &st);
    assert_int_equal(st.shares_bad, 1);
    assert_int_equal(st.batches, 0);
    comb_free(c);
    set_free(&s);

    /* k = 3: local + the same other share twice is still only two. */
    set_make(&s, "rsa2048.pem", 3, 3, "h");
    c = comb_with(&s, NULL, 0, files, 2, NULL);
    assert_int_equal(try_sign(c, &s, detail, sizeof(detail)), SPK_ERR_THRESHOLD);
    assert_non_null(strstr(detail, "h2: share 2 dropped"));
    comb_free(c);
    set_free(&s);
}

static void test_mixed_splits(void **state)
{
    struct split_set a, b;
    struct comb_ctx *c;
    struct comb_file_source *fs;
    char detail[COMB_DETAIL_MAX];

    (void)state;
    set_make(&a, "rsa2048.pem", 2, 3, "h");
    set_make(&b, "rsa2048.pem", 2, 3, "h");
    assert_memory_equal(a.rec->key_id, b.rec->key_id, PROTO_KEY_ID_LEN);

    /* A local share of another split: refused when the key is added. */
    c = comb_new(NULL);
    assert_non_null(c);
    assert_int_equal(comb_add_key(c, a.rec, &b.shares[0], b.hks[0]), SPK_ERR_MIXED_SPLIT);
    assert_false(comb_has_key(c, a.rec->key_id));
    comb_free(c);

    /* A source serving the other split's share: dropped, named. */
    c = comb_new(NULL);
    assert_non_null(c);
    assert_int_equal(comb_add_key(c, a.rec, &a.shares[0], a.hks[0]), 0);
    fs = comb_file_source_new(b.hks[1]);
    assert_non_null(fs);
    assert_int_equal(comb_file_source_add_share(fs, &b.shares[1], false), 0);
    assert_int_equal(comb_add_file_source(c, NULL, "other-split", fs), 0);
    assert_int_equal(try_sign(c, &a, detail, sizeof(detail)), SPK_ERR_THRESHOLD);
    assert_non_null(strstr(detail, "other-split: share 2 dropped"));
    /* With the right split's share it works. */
    fs = comb_file_source_new(a.hks[2]);
    assert_non_null(fs);
    assert_int_equal(comb_file_source_add_share(fs, &a.shares[2], true), 0);
    assert_int_equal(comb_add_file_source(c, NULL, NULL, fs), 0);
    assert_int_equal(try_sign(c, &a, detail, sizeof(detail)), 0);
    comb_free(c);
    set_free(&a);
    set_free(&b);
}

static void test_refusals(void **state)
{
    static const unsigned files[] = {1};
    struct split_set s;
    struct comb_ctx *c;
    struct proto_record *bad;
    struct comb_file_source *fs;
    uint8_t digest[64] = {0};
    uint8_t unknown[PROTO_KEY_ID_LEN] = {1};
    uint8_t out[PROTO_BN_MAX];
    size_t out_len = 0;

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 2, "h");
    c = comb_with(&s, NULL, 0, files, 1, NULL);
    assert_int_equal(comb_add_key(c, s.rec, NULL, NULL), SPK_ERR_EXISTS);
    assert_int_equal(
        comb_sign_sync(c, out, sizeof(out), &out_len, unknown, COMB_ALG_PSS_SHA256, digest, 32),
        SPK_ERR_UNKNOWN_KEY);
    assert_non_null(strstr(comb_last_error(c), "not known"));
    assert_int_equal(comb_sign_sync(c, out, sizeof(out), &out_len, s.rec->key_id,
                                    COMB_ALG_PSS_SHA256, digest, 31),
                     SPK_ERR_INVALID_ARG);
    assert_int_equal(comb_sign_sync(c, out, sizeof(out), &out_len, s.rec->key_id,
                                    COMB_ALG_DECRYPT_RAW, digest, 32),
                     SPK_ERR_UNSUPPORTED);
    assert_int_equal(comb_decrypt_sync(c, out, sizeof(out), &out_len, s.rec->key_id,
                                       COMB_ALG_PKCS1_SHA256, out, 256, NULL),
                     SPK_ERR_UNSUPPORTED);
    assert_int_equal(comb_decrypt_sync(c, out, sizeof(out), &out_len, s.rec->key_id,
                                       COMB_ALG_DECRYPT_RAW, out, 255, NULL),
                     SPK_ERR_INVALID_ARG);
    /* An output buffer too small for the signature. */
    assert_int_equal(
        comb_sign_sync(c, out, 255, &out_len, s.rec->key_id, COMB_ALG_PSS_SHA256, digest, 32),
        SPK_ERR_INVALID_ARG);
    assert_int_equal(comb_pending(c), 0);
    assert_int_equal(comb_timeout_ms(c), -1);
    comb_free(c);

    /* A record that was changed after signing. */
    bad = calloc(1, sizeof(*bad));
    assert_non_null(bad);
    *bad = *s.rec;
    bad->shares[1].commitment[0] ^= 1;
    c = comb_new(NULL);
    assert_non_null(c);
    assert_int_equal(comb_add_key(c, bad, NULL, NULL), SPK_ERR_BAD_SIGNATURE);
    /* A local share opened with the wrong holder key. */
    assert_int_not_equal(comb_add_key(c, s.rec, &s.shares[0], s.hks[1]), 0);
    assert_false(comb_has_key(c, s.rec->key_id));
    /* A file source refuses another holder's share. */
    fs = comb_file_source_new(s.hks[0]);
    assert_non_null(fs);
    assert_int_equal(comb_file_source_add_share(fs, &s.shares[1], false), SPK_ERR_WRONG_HOLDER);
    assert_int_equal(comb_file_source_add_share(fs, &s.shares[0], false), 0);
    assert_int_equal(comb_file_source_add_share(fs, &s.shares[0], false), SPK_ERR_EXISTS);
    comb_file_source_free(fs);
    comb_free(c);
    free(bad);
    set_free(&s);
}

static void test_alg_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < NUM_SIGN_ALGS; i++) {
        assert_true(comb_alg_is_sign(sign_algs[i]));
        assert_int_equal(comb_alg_from_name(comb_alg_name(sign_algs[i])), sign_algs[i]);
        assert_int_equal(comb_alg_from_name(proto_op_name((uint8_t)sign_algs[i])), sign_algs[i]);
        assert_int_equal(comb_alg_digest_len(sign_algs[i]),
                         proto_op_digest_len((uint8_t)sign_algs[i]));
        assert_non_null(comb_alg_md(sign_algs[i]));
    }
    assert_int_equal(comb_alg_from_name("pkcs1"), COMB_ALG_DECRYPT_PKCS1);
    assert_int_equal(comb_alg_from_name("tls-premaster"), COMB_ALG_DECRYPT_TLS);
    assert_int_equal(comb_alg_from_name("oaep-sha1"), COMB_ALG_DECRYPT_OAEP_SHA1);
    assert_int_equal(comb_alg_from_name("oaep-sha256"), COMB_ALG_DECRYPT_OAEP_SHA256);
    assert_int_equal(comb_alg_from_name("raw"), COMB_ALG_DECRYPT_RAW);
    assert_int_equal(comb_alg_from_name("decrypt-tls-premaster"), COMB_ALG_DECRYPT_TLS);
    assert_int_equal(comb_alg_from_name("pss-sha1"), COMB_ALG_NONE);
    assert_int_equal(comb_alg_from_name(""), COMB_ALG_NONE);
    assert_false(comb_alg_is_sign(COMB_ALG_DECRYPT_RAW));
    assert_false(comb_alg_valid(0));
    assert_false(comb_alg_valid(0x26));
    assert_int_equal(comb_alg_digest_len(COMB_ALG_PKCS1_MD5SHA1), 36);
    assert_null(comb_alg_md(COMB_ALG_DECRYPT_OAEP_SHA1));
    assert_string_equal(comb_alg_name((enum comb_alg)0x7f), "unknown");
}

/* ---- many in flight -------------------------------------------------------------- */

#define NUM_ASYNC 50

struct async_op {
    const struct split_set *s;
    enum comb_alg alg;
    uint8_t digest[64];
    size_t dlen;
    uint64_t id;
    int calls;
    int status;
    bool verified;
};

static void async_done(void *arg, const struct comb_result *res)
{
    struct async_op *op = arg;

    op->calls++;
    op->status = res->status;
    assert_int_equal(res->op_id, op->id);
    if (res->status == 0) {
        op->verified =
            sig_verifies(op->s->key.pkey, op->alg, op->digest, op->dlen, res->out, res->out_len);
    }
}

/* submit_sign: |op|, a signature with |alg| of a random digest, submitted to |c|. */
static void submit_sign(struct comb_ctx *c, const struct split_set *s, enum comb_alg alg,
                        struct async_op *op)
{
    memset(op, 0, sizeof(*op));
    op->s = s;
    op->alg = alg;
    op->dlen = comb_alg_digest_len(alg);
    assert_int_equal(RAND_bytes(op->digest, (int)op->dlen), 1);
    assert_int_equal(
        comb_sign(c, &op->id, s->rec->key_id, op->alg, op->digest, op->dlen, async_done, op), 0);
}

static void run_async(const struct split_set *s, unsigned max_batch, unsigned delay_ms)
{
    static const unsigned files[] = {1, 2};
    struct comb_file_source *fs[2];
    struct async_op ops[NUM_ASYNC];
    struct comb_config cfg;
    struct comb_ctx *c;
    struct comb_stats st;

    comb_config_init(&cfg);
    cfg.max_batch = max_batch;
    c = comb_with(s, &cfg, 0, files, 2, fs);
    comb_file_source_set_delay_ms(fs[0], delay_ms);
    comb_file_source_set_delay_ms(fs[1], delay_ms);
    for (size_t i = 0; i < NUM_ASYNC; i++) {
        /* Runs of four of one kind: only operations of one kind share a batch. */
        submit_sign(c, s, sign_algs[(i / 4) % NUM_SIGN_ALGS], &ops[i]);
        /* Never called back from inside comb_sign. */
        assert_int_equal(ops[i].calls, 0);
    }
    assert_int_equal(comb_pending(c), NUM_ASYNC);
    assert_int_equal(comb_wait(c, 20000), 0);
    assert_int_equal(comb_pending(c), 0);
    for (size_t i = 0; i < NUM_ASYNC; i++) {
        assert_int_equal(ops[i].calls, 1);
        assert_int_equal(ops[i].status, 0);
        assert_true(ops[i].verified);
    }
    comb_stats_get(c, &st);
    assert_int_equal(st.ops_ok, NUM_ASYNC);
    assert_int_equal(st.total.count, NUM_ASYNC);
    assert_int_equal(st.lifetime.count, st.batches);
    if (max_batch == 1) {
        assert_int_equal(st.batches, NUM_ASYNC);
        assert_int_equal(st.batched_ops, 0);
    } else {
        /* Operations submitted together, of one kind, shared a key. */
        assert_true(st.batches >= NUM_ASYNC / max_batch);
        assert_true(st.batches < NUM_ASYNC);
        assert_int_equal(st.batched_ops, NUM_ASYNC - st.batches);
    }
    comb_free(c);
}

/*
 * crt_helper: operations that come one at a time find the combiner idle and
 * run their CRT halves on two threads wherever the combiner measured that
 * faster for the key's size (comb_crt_report says which), every result
 * still right; a burst shares batches, which keep both halves on one thread.
 */
static void test_crt_helper(void **state)
{
    static const unsigned files[] = {1, 2};
    struct split_set s;
    struct comb_config cfg;
    struct comb_ctx *c;
    struct comb_stats st, st2;
    struct async_op ops[8];
    char report[256];
    bool apart;

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 3, "h");
    comb_config_init(&cfg);
    cfg.crt_helper = true;
    c = comb_with(&s, &cfg, 0, files, 2, NULL);
    comb_crt_report(c, report, sizeof(report));
    apart = strcmp(report, "on two threads when idle for RSA-2048") == 0;
    assert_true(apart || strcmp(report, "on one thread for RSA-2048 (two threads are not faster "
                                        "here)") == 0);
    for (size_t i = 0; i < NUM_SIGN_ALGS; i++) {
        sign_check(c, &s, sign_algs[i]);
    }
    decrypt_checks(c, &s);
    comb_stats_get(c, &st);
    assert_int_equal(st.ops_ok, NUM_SIGN_ALGS + 6);
    assert_int_equal(st.batches, st.ops_ok + st.ops_failed);
    assert_int_equal(st.halves_apart, apart ? st.batches : 0);

    for (size_t i = 0; i < 8; i++) {
        submit_sign(c, &s, COMB_ALG_PKCS1_SHA256, &ops[i]);
    }
    assert_int_equal(comb_wait(c, 20000), 0);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(ops[i].status, 0);
        assert_true(ops[i].verified);
    }
    comb_stats_get(c, &st2);
    assert_true(st2.batches - st.batches < 8);
    assert_true(st2.halves_apart - st.halves_apart <= st2.batches - st.batches);
    assert_true(st2.halves_apart - st.halves_apart < 8);
    comb_free(c);

    comb_config_init(&cfg);
    c = comb_with(&s, &cfg, 0, files, 2, NULL);
    comb_crt_report(c, report, sizeof(report));
    assert_string_equal(report, "on one thread (crt-threads 1)");
    comb_free(c);
    set_free(&s);
}

static void test_async(void **state)
{
    struct split_set s;

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 3, "h");
    run_async(&s, 1, 0);
    run_async(&s, 8, 2);
    run_async(&s, 64, 0);
    set_free(&s);
}

/*
 * A key's next batch waits while one of its batches waits for shares, and
 * takes the operations that come meanwhile: two operations submitted one
 * comb_process apart, while the first batch's holder takes 200 ms, share
 * one reconstruction and one share per holder. Nothing is asked for them
 * until the first batch has its shares. Unloaded (no batch out) an
 * operation's shares are asked for at once.
 */
static void test_batch_gate(void **state)
{
    static const unsigned files[] = {1, 2};
    struct comb_file_source *fs[2];
    struct async_op ops[4];
    struct comb_config cfg;
    struct comb_stats st;
    struct split_set s;
    struct comb_ctx *c;

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 3, "h");
    comb_config_init(&cfg);
    c = comb_with(&s, &cfg, 0, files, 2, fs);
    comb_file_source_set_delay_ms(fs[0], 200);
    comb_file_source_set_delay_ms(fs[1], 200);
    /* Two operations one after the other: the holders' latencies are now
     * known (the gate lasts at most the hedge delay, about their p95). */
    for (int i = 0; i < 2; i++) {
        submit_sign(c, &s, COMB_ALG_PKCS1_SHA256, &ops[0]);
        assert_int_equal(comb_wait(c, 20000), 0);
        assert_int_equal(ops[0].status, 0);
    }
    comb_stats_reset(c);

    submit_sign(c, &s, COMB_ALG_PKCS1_SHA256, &ops[0]);
    assert_int_equal(comb_process(c), 0);
    assert_int_equal(source_stats(c, 0).requests, 1); /* out at once */
    submit_sign(c, &s, COMB_ALG_PKCS1_SHA256, &ops[1]);
    assert_int_equal(comb_process(c), 0);
    submit_sign(c, &s, COMB_ALG_PKCS1_SHA256, &ops[2]);
    assert_int_equal(comb_process(c), 0);
    assert_int_equal(source_stats(c, 0).requests, 1); /* the second batch waits */
    assert_int_equal(comb_wait(c, 20000), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ops[i].calls, 1);
        assert_int_equal(ops[i].status, 0);
        assert_true(ops[i].verified);
    }
    comb_stats_get(c, &st);
    assert_int_equal(st.batches, 2);
    assert_int_equal(st.batched_ops, 1);
    assert_int_equal(source_stats(c, 0).requests, 2);

    /* Unloaded again: asked at once. */
    submit_sign(c, &s, COMB_ALG_PKCS1_SHA256, &ops[3]);
    assert_int_equal(comb_process(c), 0);
    assert_int_equal(source_stats(c, 0).requests, 3);
    assert_int_equal(comb_wait(c, 20000), 0);
    assert_true(ops[3].verified);
    comb_free(c);
    set_free(&s);
}

/* A callback that starts the next operation: chains run from comb_process. */
struct chain {
    struct comb_ctx *c;
    const struct split_set *s;
    int left;
    int ok;
};

static void chain_done(void *arg, const struct comb_result *res)
{
    struct chain *ch = arg;
    uint8_t digest[32] = {0};

    if (res->status == 0) {
        ch->ok++;
    }
    if (--ch->left > 0) {
        assert_int_equal(comb_sign(ch->c, NULL, ch->s->rec->key_id, COMB_ALG_PKCS1_SHA256, digest,
                                   32, chain_done, ch),
                         0);
        /* Nested blocking calls are refused, not deadlocked. */
        assert_int_equal(comb_process(ch->c), SPK_ERR_INTERNAL);
    }
}

static void test_chained(void **state)
{
    static const unsigned files[] = {1};
    struct split_set s;
    struct chain ch;
    uint8_t digest[32] = {0};

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 2, "h");
    memset(&ch, 0, sizeof(ch));
    ch.c = comb_with(&s, NULL, 0, files, 1, NULL);
    ch.s = &s;
    ch.left = 5;
    assert_int_equal(
        comb_sign(ch.c, NULL, s.rec->key_id, COMB_ALG_PKCS1_SHA256, digest, 32, chain_done, &ch),
        0);
    assert_int_equal(comb_wait(ch.c, 10000), 0);
    assert_int_equal(ch.ok, 5);
    assert_int_equal(ch.left, 0);
    comb_free(ch.c);
    set_free(&s);
}

/*
 * More batches in flight than there are share slots (max_slots at its least,
 * 256; three a batch here): the rest wait for slots and still complete. A
 * source added while a batch waits is not asked by it.
 */
static void test_slots_exhausted(void **state)
{
    static const unsigned files[] = {1, 2};
    enum { NUM = 120, SLOTS = 256 };
    struct comb_file_source *fs[2];
    struct async_op *ops = calloc(NUM, sizeof(*ops));
    struct comb_config cfg;
    struct split_set s;
    struct comb_ctx *c;
    struct comb_stats st;
    struct comb_source_stats ss;
    uint64_t asked = 0;

    (void)state;
    assert_non_null(ops);
    set_make(&s, "rsa2048.pem", 2, 3, "h");
    comb_config_init(&cfg);
    cfg.max_batch = 1;
    cfg.max_slots = 1; /* raised to the least there may be */
    /* Deadlines far beyond the work: 120 signatures take half a minute under
     * valgrind on a busy machine, and no deadline is what this test is about. */
    cfg.timeout_ms = 300000;
    c = comb_with(&s, &cfg, 0, files, 2, fs);
    /* Answers late enough that none comes within the first turn, even under
     * valgrind on a busy machine. */
    comb_file_source_set_delay_ms(fs[0], 250);
    comb_file_source_set_delay_ms(fs[1], 250);
    for (size_t i = 0; i < NUM; i++) {
        ops[i].s = &s;
        ops[i].alg = COMB_ALG_PKCS1_SHA256;
        ops[i].dlen = 32;
        assert_int_equal(RAND_bytes(ops[i].digest, 32), 1);
        assert_int_equal(comb_sign(c, &ops[i].id, s.rec->key_id, ops[i].alg, ops[i].digest, 32,
                                   async_done, &ops[i]),
                         0);
    }
    /* One turn starts the fetches (a slot stays taken until its batch is
     * rebuilt): only as many as there are slots, the other batches wait. */
    assert_int_equal(comb_process(c), 0);
    for (size_t id = 0; id < comb_num_sources(c); id++) {
        assert_int_equal(comb_source_stats(c, id, &ss), 0);
        asked += ss.requests;
    }
    assert_true(asked >= SLOTS - 2 && asked <= SLOTS);
    {
        /* Added now: the waiting batches were made with three sources. */
        static const unsigned extra[] = {1};
        struct comb_file_source *more = comb_file_source_new(s.hks[extra[0]]);

        assert_non_null(more);
        assert_int_equal(comb_file_source_add_share(more, &s.shares[extra[0]], false), 0);
        assert_int_equal(comb_add_file_source(c, NULL, "late", more), 0);
    }
    assert_int_equal(comb_wait(c, 600000), 0);
    for (size_t i = 0; i < NUM; i++) {
        assert_int_equal(ops[i].calls, 1);
        assert_int_equal(ops[i].status, 0);
        assert_true(ops[i].verified);
    }
    comb_stats_get(c, &st);
    assert_int_equal(st.batches, NUM);
    {
        /* Every reconstruction is in exactly one lifetime bucket. */
        uint64_t in_buckets = 0;

        for (size_t i = 0; i <= COMB_LIFETIME_NUM_BOUNDS; i++) {
            in_buckets += st.lifetime_buckets[i];
        }
        assert_int_equal(in_buckets, NUM);
        assert_true(st.lifetime_ns_sum > 0);
    }
    comb_free(c);
    free(ops);
    set_free(&s);
}

/* comb_free with operations in flight: no callbacks, no leaks (ASan / valgrind). */
static void test_free_in_flight(void **state)
{
    static const unsigned files[] = {1};
    struct comb_file_source *fs[1];
    struct split_set s;
    struct async_op op;
    struct comb_ctx *c;

    (void)state;
    set_make(&s, "rsa2048.pem", 2, 2, "h");
    c = comb_with(&s, NULL, 0, files, 1, fs);
    comb_file_source_set_delay_ms(fs[0], 1000);
    memset(&op, 0, sizeof(op));
    op.s = &s;
    op.alg = COMB_ALG_PSS_SHA256;
    op.dlen = 32;
    assert_int_equal(comb_sign(c, &op.id, s.rec->key_id, op.alg, op.digest, 32, async_done, &op),
                     0);
    assert_int_equal(comb_process(c), 0);
    assert_true(comb_timeout_ms(c) > 0);
    comb_free(c);
    assert_int_equal(op.calls, 0);
    set_free(&s);
}

/* A source that waits on |num| fds from |first_fd| on and keeps the slice of
 * items comb_poll_result hands it. */
struct poll_src {
    size_t num;
    int first_fd;
    const zmq_pollitem_t *got;
    size_t num_got;
    unsigned calls;
};

static int poll_src_start(void *ctx, struct comb_fetch *fetch)
{
    (void)ctx;
    (void)fetch;
    return SPK_ERR_UNAVAILABLE;
}

static size_t poll_src_items(void *ctx, zmq_pollitem_t *items, size_t cap)
{
    const struct poll_src *p = ctx;
    size_t n = p->num < cap ? p->num : cap;

    for (size_t i = 0; i < n; i++) {
        items[i] = (zmq_pollitem_t){NULL, p->first_fd + (int)i, ZMQ_POLLIN, 0};
    }
    return n;
}

static void poll_src_result(void *ctx, const zmq_pollitem_t *items, size_t num)
{
    struct poll_src *p = ctx;

    p->calls++;
    p->got = items;
    p->num_got = num;
}

static const struct comb_source_ops poll_src_ops = {
    .start = poll_src_start,
    .poll_items = poll_src_items,
    .poll_result = poll_src_result,
};

/* comb_poll_result gives each source the items it filled, and none to one
 * whose items did not fit (it then reads everything, as without a poll). */
static void test_poll_result(void **state)
{
    struct poll_src a = {2, 100, NULL, 0, 0};
    struct poll_src none = {0, 0, NULL, 0, 0};
    struct poll_src b = {3, 200, NULL, 0, 0};
    zmq_pollitem_t items[4];
    struct comb_ctx *c = comb_new(NULL);

    (void)state;
    assert_non_null(c);
    assert_int_equal(comb_add_source(c, NULL, "a", &poll_src_ops, &a), 0);
    assert_int_equal(comb_add_source(c, NULL, "none", &poll_src_ops, &none), 0);
    assert_int_equal(comb_add_source(c, NULL, "b", &poll_src_ops, &b), 0);

    assert_int_equal(comb_poll_items(c, items, 4), 4); /* b's third does not fit */
    comb_poll_result(c, items, 4);
    assert_int_equal(a.calls, 1);
    assert_ptr_equal(a.got, &items[0]);
    assert_int_equal(a.num_got, 2);
    assert_int_equal(none.calls, 0);
    assert_int_equal(b.calls, 1);
    assert_ptr_equal(b.got, &items[2]);
    assert_int_equal(b.num_got, 2);
    assert_int_equal(b.got[0].fd, 200);

    a.calls = b.calls = 0;
    assert_int_equal(comb_poll_items(c, items, 2), 2);
    comb_poll_result(c, items, 2);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.num_got, 2);
    assert_int_equal(b.calls, 0);
    comb_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_k2_rsa2048),
        cmocka_unit_test(test_k3),
        cmocka_unit_test(test_crt_helper),
        cmocka_unit_test(test_bad_shares),
        cmocka_unit_test(test_fanout_needed),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_mixed_splits),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_batch_gate),
        cmocka_unit_test(test_chained),
        cmocka_unit_test(test_slots_exhausted),
        cmocka_unit_test(test_free_in_flight),
        cmocka_unit_test(test_poll_result),
    };

    if (spk_mem_init() != 0) {
        fprintf(stderr, "spk_mem_init failed\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
