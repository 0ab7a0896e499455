/*
 * Wycheproof RSA vectors through the whole combiner: every test key of the
 * PKCS#1 v1.5 decryption, OAEP decryption and PKCS#1 v1.5 signature-generation
 * files goes through keysplit's own loader (so its key policy applies), is
 * split 2-of-3 to in-memory holders, and every vector then runs through the
 * public combiner API: the local share plus shares gathered from in-process
 * file sources, interpolation, the operation, wipe. Outputs must match
 * Wycheproof's exactly; "acceptable" vectors are counted either way.
 *
 * The sources are varied per key so that reconstruction is not always from
 * the same pair of shares: for some keys the first remote holder fails or
 * serves a corrupted share, and the combiner must fall back to the other.
 *
 * Under SPK_UNDER_VALGRIND=1 only the first file of each kind runs.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "combiner/combiner.h"
#include "split/split.h"
#include "testutil.h"
#include "wycheproof.h"

#define HOLDERS 3
#define TLS_PREMASTER_LEN 48
#define THRESHOLD 2

/* ---- holders and the temporary directory ------------------------------------ */

static struct proto_holder_secret *holder_sk[HOLDERS];
static struct proto_holder_pub holder_pk[HOLDERS];
static char tmp_dir[] = "/tmp/spk-wpsplit-XXXXXX";
static bool under_valgrind;

static int setup(void **state)
{
    static const char *const names[HOLDERS] = {"edge", "holder-a", "holder-b"};

    (void)state;
    for (size_t i = 0; i < HOLDERS; i++) {
        holder_sk[i] = spk_secret_new(sizeof(*holder_sk[i]));
        assert_non_null(holder_sk[i]);
        assert_int_equal(split_holder_keygen(holder_sk[i], names[i]), 0);
        holder_pk[i] = holder_sk[i]->pub;
    }
    assert_non_null(mkdtemp(tmp_dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < HOLDERS; i++) {
        spk_secret_free(holder_sk[i]);
    }
    rmdir(tmp_dir);
    return 0;
}

/* ---- a vector key, through keysplit's loader and split ----------------------- */

struct split_key {
    struct proto_record *rec;
    struct proto_share_file *shares; /* HOLDERS of them */
    struct comb_ctx *comb;
    size_t n_len;
    int fault; /* what the first remote holder does: 0 none, 1 fails, 2 corrupt y */
};

static void push_bn(OSSL_PARAM_BLD *bld, const char *name, const uint8_t *v, size_t len,
                    BIGNUM **keep)
{
    *keep = BN_bin2bn(v, (int)len, NULL);
    assert_non_null(*keep);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, name, *keep), 1);
}

/* write_pem writes the group key |k| as a PKCS#8 PEM file |path|. */
static void write_pem(const char *path, const struct wp_rsa_key *k)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn[8] = {NULL};
    FILE *fp;

    assert_non_null(bld);
    assert_non_null(pctx);
    push_bn(bld, OSSL_PKEY_PARAM_RSA_N, k->n, k->n_len, &bn[0]);
    push_bn(bld, OSSL_PKEY_PARAM_RSA_E, k->e, k->e_len, &bn[1]);
    push_bn(bld, OSSL_PKEY_PARAM_RSA_D, k->d, k->d_len, &bn[2]);
    push_bn(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, k->p, k->p_len, &bn[3]);
    push_bn(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, k->q, k->q_len, &bn[4]);
    push_bn(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, k->dp, k->dp_len, &bn[5]);
    push_bn(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, k->dq, k->dq_len, &bn[6]);
    push_bn(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, k->qinv, k->qinv_len, &bn[7]);
    params = OSSL_PARAM_BLD_to_param(bld);
    assert_non_null(params);
    assert_int_equal(EVP_PKEY_fromdata_init(pctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params), 1);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(fp), 0);
    EVP_PKEY_free(pkey);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pctx);
    for (size_t i = 0; i < 8; i++) {
        BN_clear_free(bn[i]);
    }
}

/*
 * split_key_make: the group's key through split_rsa_key_load (keysplit's
 * policy) and split_key_split, then a combiner with the local share of
 * holder 0 and file sources for holders 1 and 2. Returns 0, or the error of
 * the step that refused the key (reason in |why|).
 */
static int split_key_make(struct split_key *sk, const struct wp_json *group, int fault, char *why,
                          size_t why_len)
{
    struct wp_rsa_key k;
    struct split_rsa_key key;
    char path[256];
    int r;

    memset(sk, 0, sizeof(*sk));
    sk->fault = fault;
    assert_true(wp_rsa_key_from_group(group, &k));
    assert_true((size_t)snprintf(path, sizeof(path), "%s/key.pem", tmp_dir) < sizeof(path));
    write_pem(path, &k);
    wp_rsa_key_free(&k);
    r = split_rsa_key_load(&key, path, NULL, why, why_len);
    assert_int_equal(unlink(path), 0);
    if (r != 0) {
        return r;
    }
    sk->rec = calloc(1, sizeof(*sk->rec));
    sk->shares = calloc(HOLDERS, sizeof(*sk->shares));
    assert_non_null(sk->rec);
    assert_non_null(sk->shares);
    r = split_key_split(sk->rec, sk->shares, &key, THRESHOLD, holder_pk, HOLDERS, why, why_len);
    split_rsa_key_cleanup(&key);
    if (r != 0) {
        return r;
    }
    sk->n_len = sk->rec->modulus_len;

    sk->comb = comb_new(NULL);
    assert_non_null(sk->comb);
    r = comb_add_key(sk->comb, sk->rec, &sk->shares[0], holder_sk[0]);
    if (r != 0) {
        snprintf(why, why_len, "comb_add_key: %s", comb_last_error(sk->comb));
        return r;
    }
    for (size_t i = 1; i < HOLDERS; i++) {
        struct comb_file_source *fs = comb_file_source_new(holder_sk[i]);

        assert_non_null(fs);
        assert_int_equal(comb_file_source_add_share(fs, &sk->shares[i], false), 0);
        if (i == 1 && fault == 1) {
            comb_file_source_set_fault(fs, COMB_FAULT_FAIL);
        } else if (i == 1 && fault == 2) {
            comb_file_source_set_fault(fs, COMB_FAULT_CORRUPT_Y);
        }
        assert_int_equal(comb_add_file_source(sk->comb, NULL, NULL, fs), 0);
    }
    return 0;
}

static void split_key_free(struct split_key *sk)
{
    comb_free(sk->comb);
    free(sk->rec);
    free(sk->shares);
    memset(sk, 0, sizeof(*sk));
}

/*
 * split_key_check_stats: every operation rebuilt the key from k good shares;
 * with a faulty first holder, its shares were dropped or failed and the other
 * holder served instead.
 */
static void split_key_check_stats(const struct split_key *sk, size_t ops)
{
    struct comb_stats st;

    comb_stats_get(sk->comb, &st);
    assert_int_equal(st.ops_ok + st.ops_failed, ops);
    assert_true(st.shares_good >= st.batches * THRESHOLD);
    if (sk->fault == 2) {
        assert_true(st.shares_bad > 0);
    } else {
        assert_int_equal(st.shares_bad, 0);
    }
    if (sk->fault == 1) {
        assert_true(st.shares_error > 0);
    }
}

/* ---- vectors -------------------------------------------------------------------- */

enum file_kind {
    KIND_PKCS1_DECRYPT,
    KIND_OAEP_DECRYPT,
    KIND_PKCS1_SIGN,
};

static double tc_id_of(const struct wp_json *test)
{
    const struct wp_json *id = wp_get(test, "tcId");

    return id != NULL ? id->num : -1;
}

static const struct wp_json *need(const struct wp_json *v, const char *what)
{
    if (v == NULL) {
        fprintf(stderr, "missing: %s\n", what);
        abort();
    }
    return v;
}

/* sign_alg: the combiner's PKCS#1 v1.5 algorithm for a Wycheproof hash name. */
static enum comb_alg sign_alg(const char *sha)
{
    static const struct {
        const char *name;
        enum comb_alg alg;
    } table[] = {
        {"SHA-1", COMB_ALG_PKCS1_SHA1},     {"SHA-224", COMB_ALG_PKCS1_SHA224},
        {"SHA-256", COMB_ALG_PKCS1_SHA256}, {"SHA-384", COMB_ALG_PKCS1_SHA384},
        {"SHA-512", COMB_ALG_PKCS1_SHA512},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (wp_hash_name_is(sha, table[i].name)) {
            return table[i].alg;
        }
    }
    return COMB_ALG_NONE;
}

/*
 * oaep_alg: the combiner's OAEP algorithm for a group's (sha, mgfSha), or
 * NONE: the API offers OAEP with SHA-1 and SHA-256, MGF1 with the same hash.
 */
static enum comb_alg oaep_alg(const char *sha, const char *mgf_sha)
{
    if (sha == NULL || mgf_sha == NULL || strcmp(sha, mgf_sha) != 0) {
        return COMB_ALG_NONE;
    }
    if (wp_hash_name_is(sha, "SHA-1")) {
        return COMB_ALG_DECRYPT_OAEP_SHA1;
    }
    if (wp_hash_name_is(sha, "SHA-256")) {
        return COMB_ALG_DECRYPT_OAEP_SHA256;
    }
    return COMB_ALG_NONE;
}

/*
 * run_decrypt: one PKCS#1 v1.5 or OAEP vector. Valid: exactly the message.
 * Invalid: an error and no output (a ciphertext of the wrong length is
 * refused up front, which is also no plaintext). For PKCS#1 v1.5 the TLS
 * premaster mode runs on the same ciphertext: 48 bytes always, the message
 * only for a valid 48-byte premaster of the stated version.
 */
static bool run_decrypt(struct split_key *sk, const struct wp_json *test, enum comb_alg alg,
                        enum wp_result expected, size_t *ops)
{
    uint8_t *ct = NULL, *msg = NULL, *label = NULL;
    size_t ct_len = 0, msg_len = 0, label_len = 0;
    uint8_t out[PROTO_BN_MAX];
    size_t out_len = 99;
    struct comb_decrypt_params params = {0};
    bool ok;
    int r;

    assert_true(wp_hex(test, "ct", &ct, &ct_len));
    assert_true(wp_hex(test, "msg", &msg, &msg_len));
    if (alg != COMB_ALG_DECRYPT_PKCS1) {
        assert_true(wp_hex(test, "label", &label, &label_len));
        params.label = label;
        params.label_len = label_len;
    }
    r = comb_decrypt_sync(sk->comb, out, sizeof(out), &out_len, sk->rec->key_id, alg, ct, ct_len,
                          &params);
    *ops += ct_len == sk->n_len;
    if (expected == WP_VALID) {
        ok = r == 0 && out_len == msg_len && memcmp(out, msg, msg_len) == 0;
        if (!ok) {
            fprintf(stderr, "decrypt: %d (%s), out_len %zu, want %zu\n", r,
                    comb_last_error(sk->comb), out_len, msg_len);
        }
    } else {
        ok = r != 0 && out_len == 0;
        if (!ok) {
            fprintf(stderr, "decrypt of an invalid vector: %d, out_len %zu\n", r, out_len);
        }
    }

    if (alg == COMB_ALG_DECRYPT_PKCS1 && ct_len == sk->n_len) {
        uint8_t pms[TLS_PREMASTER_LEN];
        uint16_t version = msg_len >= 2 ? (uint16_t)(msg[0] << 8 | msg[1]) : 0x0303;

        params.tls_version = version;
        r = comb_decrypt_sync(sk->comb, pms, sizeof(pms), &out_len, sk->rec->key_id,
                              COMB_ALG_DECRYPT_TLS, ct, ct_len, &params);
        (*ops)++;
        if (r == 0) {
            ok = ok && out_len == TLS_PREMASTER_LEN;
            /* version 0 means "the default, 0x0303" to the API: it cannot match 00 00. */
            if (expected == WP_VALID && msg_len == TLS_PREMASTER_LEN && version != 0) {
                ok = ok && memcmp(pms, msg, msg_len) == 0;
            } else if (msg_len == TLS_PREMASTER_LEN) {
                ok = ok && memcmp(pms, msg, msg_len) != 0;
            }
        } else {
            /* c >= n is the one error TLS mode may give: a public fact. */
            ok = ok && r == SPK_ERR_DECRYPT && expected == WP_INVALID;
        }
        if (!ok) {
            fprintf(stderr, "tls-premaster: %d, out_len %zu\n", r, out_len);
        }
    }
    free(ct);
    free(msg);
    free(label);
    return ok;
}

static bool run_sign(struct split_key *sk, const struct wp_json *test, enum comb_alg alg,
                     enum wp_result expected, size_t *ops)
{
    uint8_t *msg = NULL, *sig = NULL;
    size_t msg_len = 0, sig_len = 0;
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    uint8_t out[PROTO_BN_MAX];
    size_t out_len = 0;
    bool ok;
    int r;

    assert_true(wp_hex(test, "msg", &msg, &msg_len));
    assert_true(wp_hex(test, "sig", &sig, &sig_len));
    assert_int_equal(
        EVP_Digest(msg, msg_len, digest, &digest_len, EVP_get_digestbyname(comb_alg_md(alg)), NULL),
        1);
    r = comb_sign_sync(sk->comb, out, sizeof(out), &out_len, sk->rec->key_id, alg, digest,
                       digest_len);
    (*ops)++;
    if (expected == WP_INVALID) {
        ok = r != 0 || out_len != sig_len || memcmp(out, sig, sig_len) != 0;
    } else {
        ok = r == 0 && out_len == sig_len && memcmp(out, sig, sig_len) == 0;
    }
    if (!ok && expected != WP_ACCEPTABLE) {
        fprintf(stderr, "sign: %d (%s), out_len %zu\n", r, comb_last_error(sk->comb), out_len);
    }
    free(msg);
    free(sig);
    return ok;
}

struct file_summary {
    size_t keys;
    size_t refused_keys;
    size_t refused_vectors;
    size_t unsupported_vectors; /* a hash pair the combiner API does not offer */
};

/* run_file runs every vector of |name| through split keys; returns how many failed. */
static size_t run_file(const char *name, enum file_kind kind, struct file_summary *sum)
{
    struct wp_json *root = wp_load(name);
    const struct wp_json *groups = need(wp_get(need(root, name), "testGroups"), "testGroups");
    struct wp_tally tally = {0};
    char unsup[64] = "";
    size_t total = 0;

    memset(sum, 0, sizeof(*sum));
    assert_int_equal(groups->type, WP_ARR);
    for (size_t gi = 0; gi < groups->num_items; gi++) {
        const struct wp_json *group = &groups->items[gi];
        const struct wp_json *tests = need(wp_get(group, "tests"), "tests");
        enum comb_alg alg = COMB_ALG_DECRYPT_PKCS1;
        struct split_key sk;
        char why[SPLIT_WHY_MAX] = "";
        size_t ops = 0;
        int r;

        if (kind == KIND_OAEP_DECRYPT) {
            alg = oaep_alg(wp_str(group, "sha"), wp_str(group, "mgfSha"));
        } else if (kind == KIND_PKCS1_SIGN) {
            alg = sign_alg(wp_str(group, "sha"));
        }
        if (alg == COMB_ALG_NONE) {
            snprintf(unsup, sizeof(unsup), "%s, MGF1 %s", wp_str(group, "sha"),
                     wp_str(group, "mgfSha"));
            sum->unsupported_vectors += tests->num_items;
            continue;
        }
        sum->keys++;
        r = split_key_make(&sk, group, (int)(gi % 3), why, sizeof(why));
        if (r != 0) {
            printf("%s: group %zu: key REFUSED (%s: %s): %zu vectors not run\n", name, gi,
                   spk_strerror(r), why, tests->num_items);
            sum->refused_keys++;
            sum->refused_vectors += tests->num_items;
            split_key_free(&sk);
            continue;
        }
        for (size_t ti = 0; ti < tests->num_items; ti++) {
            const struct wp_json *test = &tests->items[ti];
            enum wp_result expected = wp_result_of(test);
            bool ok = false;

            switch (kind) {
            case KIND_PKCS1_DECRYPT:
            case KIND_OAEP_DECRYPT:
                ok = run_decrypt(&sk, test, alg, expected, &ops);
                break;
            case KIND_PKCS1_SIGN:
                ok = run_sign(&sk, test, alg, expected, &ops);
                break;
            default:
                fail();
            }
            wp_tally_add(&tally, expected, ok, name, tc_id_of(test));
            total++;
        }
        split_key_check_stats(&sk, ops);
        split_key_free(&sk);
    }
    if (sum->keys == 0) {
        printf("%s: not run: the combiner API does not offer %s (%zu vectors)\n", name, unsup,
               sum->unsupported_vectors);
    } else {
        wp_tally_print(name, &tally);
        printf("  (%zu keys split %d-of-%d through keysplit's loader, %zu refused by it (%zu "
               "vectors), %zu vectors with a hash the API does not offer)\n",
               sum->keys - sum->refused_keys, THRESHOLD, HOLDERS, sum->refused_keys,
               sum->refused_vectors, sum->unsupported_vectors);
    }
    fflush(stdout);
    wp_json_free(root);
    /* A file that ran nothing would pass vacuously. */
    if (sum->unsupported_vectors == 0) {
        assert_true(total > 0);
    }
    return tally.failed;
}

static size_t run_files(const char *const *files, size_t num_files, enum file_kind kind,
                        size_t *ran)
{
    struct file_summary sum;
    size_t failed = 0;

    *ran = 0;
    for (size_t i = 0; i < num_files; i++) {
        if (under_valgrind && *ran > 0) {
            printf("%s: not run under valgrind (SPK_UNDER_VALGRIND=1)\n", files[i]);
            continue;
        }
        failed += run_file(files[i], kind, &sum);
        *ran += sum.keys > sum.refused_keys;
    }
    return failed;
}

static void test_pkcs1_decrypt(void **state)
{
    static const char *const files[] = {
        "rsa_pkcs1_2048_test.json",
        "rsa_pkcs1_3072_test.json",
        "rsa_pkcs1_4096_test.json",
    };
    size_t ran;

    (void)state;
    assert_int_equal(run_files(files, sizeof(files) / sizeof(files[0]), KIND_PKCS1_DECRYPT, &ran),
                     0);
    assert_true(ran > 0);
}

static void test_oaep_decrypt(void **state)
{
    /*
     * Every OAEP file; the combiner API offers OAEP-SHA1 and OAEP-SHA256 with
     * MGF1 of the same hash, so only those files run. The others are listed
     * as not offered (the engine itself runs them in test_comb_wycheproof).
     */
    static const char *const files[] = {
        "rsa_oaep_2048_sha1_mgf1sha1_test.json",
        "rsa_oaep_2048_sha256_mgf1sha256_test.json",
        "rsa_oaep_3072_sha256_mgf1sha256_test.json",
        "rsa_oaep_4096_sha256_mgf1sha256_test.json",
        "rsa_oaep_2048_sha224_mgf1sha1_test.json",
        "rsa_oaep_2048_sha224_mgf1sha224_test.json",
        "rsa_oaep_2048_sha256_mgf1sha1_test.json",
        "rsa_oaep_2048_sha384_mgf1sha1_test.json",
        "rsa_oaep_2048_sha384_mgf1sha384_test.json",
        "rsa_oaep_2048_sha512_224_mgf1sha1_test.json",
        "rsa_oaep_2048_sha512_224_mgf1sha512_224_test.json",
        "rsa_oaep_2048_sha512_mgf1sha1_test.json",
        "rsa_oaep_2048_sha512_mgf1sha512_test.json",
        "rsa_oaep_3072_sha256_mgf1sha1_test.json",
        "rsa_oaep_3072_sha512_256_mgf1sha1_test.json",
        "rsa_oaep_3072_sha512_256_mgf1sha512_256_test.json",
        "rsa_oaep_3072_sha512_mgf1sha1_test.json",
        "rsa_oaep_3072_sha512_mgf1sha512_test.json",
        "rsa_oaep_4096_sha256_mgf1sha1_test.json",
        "rsa_oaep_4096_sha512_mgf1sha1_test.json",
        "rsa_oaep_4096_sha512_mgf1sha512_test.json",
    };
    size_t ran;

    (void)state;
    assert_int_equal(run_files(files, sizeof(files) / sizeof(files[0]), KIND_OAEP_DECRYPT, &ran),
                     0);
    assert_true(ran > 0);
}

static void test_pkcs1_sign(void **state)
{
    static const char *const files[] = {
        "rsa_pkcs1_2048_sig_gen_test.json",
        "rsa_pkcs1_3072_sig_gen_test.json",
        "rsa_pkcs1_4096_sig_gen_test.json",
    };
    size_t ran;

    (void)state;
    assert_int_equal(run_files(files, sizeof(files) / sizeof(files[0]), KIND_PKCS1_SIGN, &ran), 0);
    assert_true(ran > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pkcs1_decrypt),
        cmocka_unit_test(test_oaep_decrypt),
        cmocka_unit_test(test_pkcs1_sign),
    };

    if (spk_mem_init() != 0) {
        fprintf(stderr, "spk_mem_init failed\n");
        return 1;
    }
    under_valgrind = testutil_under_valgrind();
    return cmocka_run_group_tests(tests, setup, teardown);
}
