/*
 * Wycheproof RSA vectors through the combiner's RSA engine: PKCS#1 v1.5
 * decryption, OAEP decryption (every hash pair in the files) and PKCS#1 v1.5
 * signature generation. Each group's private key goes in as the CRT tuple
 * (p, q, dp, dq, qinv), factored from (n, e, d) where the file gives only
 * those. Keys are used whatever their size or exponent: size policy is
 * keysplit's, the engine only computes.
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

#include "combiner/internal.h"
#include "testutil.h"
#include "wycheproof.h"

static bool hash_of(const char *name, enum comb_hash *out)
{
    static const struct {
        const char *name;
        enum comb_hash h;
    } table[] = {
        {"SHA-1", COMB_HASH_SHA1},
        {"SHA-224", COMB_HASH_SHA224},
        {"SHA-256", COMB_HASH_SHA256},
        {"SHA-384", COMB_HASH_SHA384},
        {"SHA-512", COMB_HASH_SHA512},
        {"SHA-512/224", COMB_HASH_SHA512_224},
        {"SHA-512/256", COMB_HASH_SHA512_256},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (wp_hash_name_is(name, table[i].name)) {
            *out = table[i].h;
            return true;
        }
    }
    return false;
}

static const EVP_MD *md_of(enum comb_hash h)
{
    switch (h) {
    case COMB_HASH_SHA1:
        return EVP_sha1();
    case COMB_HASH_SHA224:
        return EVP_sha224();
    case COMB_HASH_SHA256:
        return EVP_sha256();
    case COMB_HASH_SHA384:
        return EVP_sha384();
    case COMB_HASH_SHA512:
        return EVP_sha512();
    case COMB_HASH_SHA512_224:
        return EVP_sha512_224();
    case COMB_HASH_SHA512_256:
        return EVP_sha512_256();
    case COMB_HASH_MD5_SHA1:
    case COMB_HASH_NONE:
    default:
        return NULL;
    }
}

struct group_key {
    struct wp_rsa_key key;
    struct comb_rsa_pub *pub;
    struct comb_rsa_crt crt;
};

static void group_key_load(struct group_key *g, const struct wp_json *group)
{
    memset(g, 0, sizeof(*g));
    assert_true(wp_rsa_key_from_group(group, &g->key));
    assert_int_equal(comb_rsa_pub_new(&g->pub, g->key.n, g->key.n_len, g->key.e, g->key.e_len), 0);
    g->crt = (struct comb_rsa_crt){g->key.p,    g->key.p_len,   g->key.q,  g->key.q_len,
                                   g->key.dp,   g->key.dp_len,  g->key.dq, g->key.dq_len,
                                   g->key.qinv, g->key.qinv_len};
}

static void group_key_free(struct group_key *g)
{
    comb_rsa_pub_free(g->pub);
    wp_rsa_key_free(&g->key);
}

/* need: |v|, which must be there (abort() tells the compiler it is not NULL after). */
static const struct wp_json *need(const struct wp_json *v, const char *what)
{
    if (v == NULL) {
        fprintf(stderr, "missing: %s\n", what);
        abort();
    }
    return v;
}

static double tc_id_of(const struct wp_json *test)
{
    const struct wp_json *id = wp_get(test, "tcId");

    return id != NULL ? id->num : -1;
}

/* One decryption vector: PKCS#1 v1.5 (and, on the side, the TLS mode) or OAEP. */
static bool run_decrypt(struct group_key *g, const struct wp_json *test, enum comb_rsa_op_kind op,
                        enum comb_hash h, enum comb_hash mgf1_h, enum wp_result expected)
{
    uint8_t *ct = NULL, *msg = NULL, *label = NULL;
    size_t ct_len = 0, msg_len = 0, label_len = 0;
    uint8_t out[PROTO_BN_MAX];
    size_t out_len = 0;
    struct comb_rsa_req req = {.op = op, .hash = h, .mgf1_hash = mgf1_h};
    bool ok;
    int r;

    assert_true(wp_hex(test, "ct", &ct, &ct_len));
    assert_true(wp_hex(test, "msg", &msg, &msg_len));
    if (op == COMB_RSA_DECRYPT_OAEP) {
        assert_true(wp_hex(test, "label", &label, &label_len));
    }
    req.in = ct;
    req.in_len = ct_len;
    req.label = label;
    req.label_len = label_len;
    r = comb_rsa_op(g->pub, &g->crt, &req, out, sizeof(out), &out_len);
    if (expected == WP_VALID) {
        ok = r == 0 && out_len == msg_len && memcmp(out, msg, msg_len) == 0;
    } else {
        ok = r == SPK_ERR_DECRYPT && out_len == 0;
    }

    /*
     * TLS mode on the same ciphertexts: never a padding error, 48 bytes
     * always, the message itself only when it is a valid 48-byte premaster
     * of the stated version.
     */
    if (op == COMB_RSA_DECRYPT_PKCS1 && ct_len == g->key.n_len) {
        uint8_t pms[COMB_TLS_PREMASTER_LEN];
        struct comb_rsa_req tls = {.op = COMB_RSA_DECRYPT_TLS, .in = ct, .in_len = ct_len};

        if (msg_len >= 2) {
            tls.tls_version = (uint16_t)(msg[0] << 8 | msg[1]);
        }
        r = comb_rsa_op(g->pub, &g->crt, &tls, pms, sizeof(pms), &out_len);
        /* c >= n is the one error it may give: a public fact. */
        if (r == 0) {
            ok = ok && out_len == COMB_TLS_PREMASTER_LEN;
            if (expected == WP_VALID && msg_len == COMB_TLS_PREMASTER_LEN) {
                ok = ok && memcmp(pms, msg, msg_len) == 0;
            } else if (msg_len == COMB_TLS_PREMASTER_LEN) {
                ok = ok && memcmp(pms, msg, msg_len) != 0;
            }
        } else {
            ok = ok && r == SPK_ERR_DECRYPT && expected == WP_INVALID;
        }
    }
    free(ct);
    free(msg);
    free(label);
    return ok;
}

static bool run_sign(struct group_key *g, const struct wp_json *test, enum comb_hash h,
                     enum wp_result expected)
{
    uint8_t *msg = NULL, *sig = NULL;
    size_t msg_len = 0, sig_len = 0;
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    uint8_t out[PROTO_BN_MAX];
    size_t out_len = 0;
    struct comb_rsa_req req = {.op = COMB_RSA_SIGN_PKCS1, .hash = h};
    bool ok;
    int r;

    assert_true(wp_hex(test, "msg", &msg, &msg_len));
    assert_true(wp_hex(test, "sig", &sig, &sig_len));
    assert_int_equal(EVP_Digest(msg, msg_len, digest, &digest_len, md_of(h), NULL), 1);
    req.in = digest;
    req.in_len = digest_len;
    r = comb_rsa_op(g->pub, &g->crt, &req, out, sizeof(out), &out_len);
    if (expected == WP_INVALID) {
        ok = r != 0 || out_len != sig_len || memcmp(out, sig, sig_len) != 0;
    } else {
        ok = r == 0 && out_len == sig_len && memcmp(out, sig, sig_len) == 0;
    }
    free(msg);
    free(sig);
    return ok;
}

enum file_kind {
    KIND_PKCS1_DECRYPT,
    KIND_OAEP_DECRYPT,
    KIND_PKCS1_SIGN,
    KIND_COUNT,
};

/*
 * Under memcheck (SPK_UNDER_VALGRIND=1, as tools/check runs every unit test
 * a second time) one file of each kind runs: every vector of every file
 * would take most of the CI budget there, and the normal and sanitizer
 * builds run them all.
 */
static bool under_valgrind;
static bool kind_ran[KIND_COUNT];

/* run_file runs every vector of |name|; returns the number that failed. */
static size_t run_file(const char *name, enum file_kind kind)
{
    struct wp_json *root;

    if (under_valgrind && kind_ran[kind]) {
        printf("%s: not run under valgrind (SPK_UNDER_VALGRIND=1)\n", name);
        return 0;
    }
    kind_ran[kind] = true;
    root = wp_load(name);
    const struct wp_json *groups = need(wp_get(need(root, name), "testGroups"), "testGroups");
    struct wp_tally tally = {0};
    size_t total = 0;

    assert_int_equal(groups->type, WP_ARR);
    for (size_t gi = 0; gi < groups->num_items; gi++) {
        const struct wp_json *group = &groups->items[gi];
        const struct wp_json *tests = need(wp_get(group, "tests"), "tests");
        enum comb_hash h = COMB_HASH_NONE;
        enum comb_hash mgf1_h = COMB_HASH_NONE;
        struct group_key g;

        if (kind != KIND_PKCS1_DECRYPT) {
            if (!hash_of(wp_str(group, "sha"), &h) ||
                (kind == KIND_OAEP_DECRYPT && !hash_of(wp_str(group, "mgfSha"), &mgf1_h))) {
                printf("%s: group %zu: hash %s not supported, %zu skipped\n", name, gi,
                       wp_str(group, "sha"), tests->num_items);
                tally.skipped += tests->num_items;
                continue;
            }
        }
        group_key_load(&g, group);
        for (size_t ti = 0; ti < tests->num_items; ti++) {
            const struct wp_json *test = &tests->items[ti];
            enum wp_result expected = wp_result_of(test);
            bool ok = false;

            switch (kind) {
            case KIND_PKCS1_DECRYPT:
                ok = run_decrypt(&g, test, COMB_RSA_DECRYPT_PKCS1, h, mgf1_h, expected);
                break;
            case KIND_OAEP_DECRYPT:
                ok = run_decrypt(&g, test, COMB_RSA_DECRYPT_OAEP, h, mgf1_h, expected);
                break;
            case KIND_PKCS1_SIGN:
                ok = run_sign(&g, test, h, expected);
                break;
            case KIND_COUNT:
            default:
                fail();
            }
            wp_tally_add(&tally, expected, ok, name, tc_id_of(test));
            total++;
        }
        group_key_free(&g);
    }
    wp_tally_print(name, &tally);
    /* A file that ran nothing would pass vacuously. */
    assert_true(total > 0);
    wp_json_free(root);
    return tally.failed;
}

static void test_pkcs1_decrypt(void **state)
{
    size_t failed = 0;

    (void)state;
    failed += run_file("rsa_pkcs1_2048_test.json", KIND_PKCS1_DECRYPT);
    failed += run_file("rsa_pkcs1_3072_test.json", KIND_PKCS1_DECRYPT);
    failed += run_file("rsa_pkcs1_4096_test.json", KIND_PKCS1_DECRYPT);
    assert_int_equal(failed, 0);
}

static void test_oaep_decrypt(void **state)
{
    static const char *const files[] = {
        "rsa_oaep_2048_sha1_mgf1sha1_test.json",
        "rsa_oaep_2048_sha224_mgf1sha1_test.json",
        "rsa_oaep_2048_sha224_mgf1sha224_test.json",
        "rsa_oaep_2048_sha256_mgf1sha1_test.json",
        "rsa_oaep_2048_sha256_mgf1sha256_test.json",
        "rsa_oaep_2048_sha384_mgf1sha1_test.json",
        "rsa_oaep_2048_sha384_mgf1sha384_test.json",
        "rsa_oaep_2048_sha512_224_mgf1sha1_test.json",
        "rsa_oaep_2048_sha512_224_mgf1sha512_224_test.json",
        "rsa_oaep_2048_sha512_mgf1sha1_test.json",
        "rsa_oaep_2048_sha512_mgf1sha512_test.json",
        "rsa_oaep_3072_sha256_mgf1sha1_test.json",
        "rsa_oaep_3072_sha256_mgf1sha256_test.json",
        "rsa_oaep_3072_sha512_256_mgf1sha1_test.json",
        "rsa_oaep_3072_sha512_256_mgf1sha512_256_test.json",
        "rsa_oaep_3072_sha512_mgf1sha1_test.json",
        "rsa_oaep_3072_sha512_mgf1sha512_test.json",
        "rsa_oaep_4096_sha256_mgf1sha1_test.json",
        "rsa_oaep_4096_sha256_mgf1sha256_test.json",
        "rsa_oaep_4096_sha512_mgf1sha1_test.json",
        "rsa_oaep_4096_sha512_mgf1sha512_test.json",
    };
    size_t failed = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        failed += run_file(files[i], KIND_OAEP_DECRYPT);
    }
    assert_int_equal(failed, 0);
}

static void test_pkcs1_sign(void **state)
{
    size_t failed = 0;

    (void)state;
    failed += run_file("rsa_pkcs1_2048_sig_gen_test.json", KIND_PKCS1_SIGN);
    failed += run_file("rsa_pkcs1_3072_sig_gen_test.json", KIND_PKCS1_SIGN);
    failed += run_file("rsa_pkcs1_4096_sig_gen_test.json", KIND_PKCS1_SIGN);
    assert_int_equal(failed, 0);
}

/* The JSON reader itself: a few shapes it must take or refuse. */
static void test_json_reader(void **state)
{
    static const char good[] = " {\"a\": [1, -2.5e1, true, false, null], \"b\": \"x\\u00e9\\n\","
                               " \"c\": {}} ";
    static const char *const bad[] = {"", "{", "{\"a\" 1}", "[1,]", "[1] x", "\"abc", "tru"};
    struct wp_json *v = wp_json_parse(good, sizeof(good) - 1);
    const struct wp_json *a = need(wp_get(need(v, "parse"), "a"), "a");

    (void)state;
    assert_int_equal(a->num_items, 5);
    assert_true(a->items[1].num == -25.0);
    assert_true(a->items[2].b);
    assert_string_equal(wp_str(v, "b"), "x\xc3\xa9\n");
    assert_int_equal(need(wp_get(v, "c"), "c")->type, WP_OBJ);
    assert_null(wp_get(v, "d"));
    wp_json_free(v);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(wp_json_parse(bad[i], strlen(bad[i])));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_pkcs1_decrypt),
        cmocka_unit_test(test_oaep_decrypt),
        cmocka_unit_test(test_pkcs1_sign),
    };

    under_valgrind = testutil_under_valgrind();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
