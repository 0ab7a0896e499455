/*
 * The combiner with threshold-mode keys (combiner/comb_tss.c): a test key
 * split 2-of-3 and 3-of-4 with split_key_split_threshold, the combiner's own
 * key share and in-test sources that sign as a holder would (split_pad_encode
 * then split_tss_sign_share, and split_tss_prove for a key of safe primes,
 * whose record has verification keys), or answer wrongly on purpose: a share
 * of another split of the same key, a value not below N, an index the record
 * gives another holder, no proof, a broken proof. Every signature is checked
 * by OpenSSL with the whole key; decryptions are refused before any source is
 * asked.
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
#include <openssl/rsa.h>
#include <sodium.h>

#include "combiner/combiner.h"
#include "split/split.h"
#include "testutil.h"

#define SET_MAX 4

/* One threshold split of the test key, its holders' keys and opened key shares. */
struct tss_set {
    struct split_rsa_key key;
    struct proto_record *rec;
    struct proto_share_file *shares;
    struct proto_holder_secret *hks[SET_MAX];
    struct split_tss_signer *signers[SET_MAX];
    unsigned k, n;
    const char *pem; /* under tests/data */
};

/* set_signers_open opens the key shares of |s| into its signers, which prove
 * their signature shares when the record has verification keys. */
static void set_signers_open(struct tss_set *s, struct proto_holder_secret *const *hks)
{
    for (unsigned i = 0; i < s->n; i++) {
        uint8_t *sh = spk_secret_new(s->rec->modulus_len);

        assert_non_null(sh);
        assert_int_equal(split_share_open(sh, s->rec->modulus_len, &s->shares[i], hks[i]), 0);
        assert_int_equal(split_tss_signer_new(&s->signers[i], s->rec->modulus, s->rec->modulus_len,
                                              s->n, sh, s->rec->modulus_len),
                         0);
        spk_secret_free(sh);
        if (s->rec->has_vkeys) {
            assert_int_equal(split_tss_signer_set_vkeys(s->signers[i], s->rec->vkey_base,
                                                        proto_record_vkey(s->rec, i + 1)),
                             0);
        }
    }
}

/* set_make_of: a k-of-n threshold split of tests/data/|pem|. */
static void set_make_of(struct tss_set *s, const char *pem, unsigned k, unsigned n)
{
    struct proto_holder_pub pubs[SET_MAX];
    char why[SPLIT_WHY_MAX] = "";
    char name[PROTO_NAME_MAX + 1];

    memset(s, 0, sizeof(*s));
    s->k = k;
    s->n = n;
    s->pem = pem;
    assert_int_equal(split_rsa_key_load(&s->key, testutil_data_path(pem), NULL, why, sizeof(why)),
                     0);
    for (unsigned i = 0; i < n; i++) {
        s->hks[i] = spk_secret_new(sizeof(*s->hks[i]));
        assert_non_null(s->hks[i]);
        snprintf(name, sizeof(name), "h%u", i + 1);
        assert_int_equal(split_holder_keygen(s->hks[i], name), 0);
        pubs[i] = s->hks[i]->pub;
    }
    s->rec = calloc(1, sizeof(*s->rec));
    s->shares = calloc(n, sizeof(*s->shares));
    assert_non_null(s->rec);
    assert_non_null(s->shares);
    assert_int_equal(
        split_key_split_threshold(s->rec, s->shares, &s->key, k, pubs, n, why, sizeof(why)), 0);
    set_signers_open(s, s->hks);
}

static void set_make(struct tss_set *s, unsigned k, unsigned n)
{
    set_make_of(s, "rsa2048.pem", k, n);
}

/* set_resplit: another threshold split of the same key, with the same holders. */
static void set_resplit(struct tss_set *other, const struct tss_set *s)
{
    struct proto_holder_pub pubs[SET_MAX];
    char why[SPLIT_WHY_MAX] = "";

    memset(other, 0, sizeof(*other));
    other->k = s->k;
    other->n = s->n;
    other->pem = s->pem;
    assert_int_equal(
        split_rsa_key_load(&other->key, testutil_data_path(s->pem), NULL, why, sizeof(why)), 0);
    for (unsigned i = 0; i < s->n; i++) {
        pubs[i] = s->hks[i]->pub;
    }
    other->rec = calloc(1, sizeof(*other->rec));
    other->shares = calloc(s->n, sizeof(*other->shares));
    assert_non_null(other->rec);
    assert_non_null(other->shares);
    assert_int_equal(split_key_split_threshold(other->rec, other->shares, &other->key, s->k, pubs,
                                               s->n, why, sizeof(why)),
                     0);
    set_signers_open(other, s->hks);
}

static void set_free(struct tss_set *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        split_tss_signer_free(s->signers[i]);
        spk_secret_free(s->hks[i]);
    }
    free(s->rec);
    free(s->shares);
    split_rsa_key_cleanup(&s->key);
}

/* ---- an in-test holder ---------------------------------------------------------- */

enum tsrc_fault {
    TSRC_OK = 0,
    TSRC_DOWN,                  /* answers SPK_ERR_UNAVAILABLE */
    TSRC_OTHER_SPLIT,           /* signs with its key share of another split */
    TSRC_ABOVE_N,               /* a value not below N */
    TSRC_WRONG_INDEX,           /* claims the next index */
    TSRC_NO_PROOF,              /* with verification keys: a share without its proof */
    TSRC_BAD_PROOF,             /* with verification keys: the right share, its proof's z altered */
    TSRC_OTHER_SPLIT_BAD_PROOF, /* TSRC_OTHER_SPLIT and TSRC_BAD_PROOF */
};

struct tsrc {
    const struct proto_record *rec;
    struct split_tss_signer *signer;
    uint8_t index;
    enum tsrc_fault fault;
    unsigned asked;
};

static int tsrc_start(void *ctx, struct comb_fetch *fetch)
{
    struct tsrc *t = ctx;
    struct comb_share_info info;
    uint8_t em[PROTO_BN_MAX];

    t->asked++;
    assert_true(fetch->sigshare);
    assert_int_equal(fetch->out_len, t->rec->modulus_len);
    if (t->fault == TSRC_DOWN) {
        comb_fetch_done(fetch, SPK_ERR_UNAVAILABLE, NULL, "down");
        return 0;
    }
    /* A holder encodes the message itself from what the request says. */
    assert_int_equal(split_pad_encode(em, t->rec->modulus_len, proto_record_modulus_bits(t->rec),
                                      fetch->op, fetch->digest, fetch->digest_len, fetch->salt,
                                      fetch->salt_len),
                     0);
    assert_int_equal(split_tss_sign_share(t->signer, fetch->out_y, em), 0);
    if (t->fault == TSRC_ABOVE_N) {
        memset(fetch->out_y, 0xff, fetch->out_len);
    }
    memset(&info, 0, sizeof(info));
    if (split_tss_signer_has_vkeys(t->signer) && t->fault != TSRC_NO_PROOF) {
        assert_int_equal(split_tss_prove(t->signer, info.proof_c, info.proof_z, em, fetch->out_y),
                         0);
        info.has_proof = true;
        if (t->fault == TSRC_BAD_PROOF || t->fault == TSRC_OTHER_SPLIT_BAD_PROOF) {
            info.proof_z[t->rec->modulus_len / 2] ^= 0x01;
        }
    }
    memcpy(info.key_id, t->rec->key_id, PROTO_KEY_ID_LEN);
    info.index =
        (uint8_t)(t->fault == TSRC_WRONG_INDEX ? t->index % t->rec->num_shares + 1 : t->index);
    comb_fetch_done(fetch, 0, &info, NULL);
    return 0;
}

static void tsrc_cancel(void *ctx, struct comb_fetch *fetch)
{
    (void)ctx;
    (void)fetch;
}

static const struct comb_source_ops tsrc_ops = {
    .start = tsrc_start,
    .cancel = tsrc_cancel,
};

/*
 * comb_for: a combiner for |s| with the key share of holder |local| (or
 * none: -1) and an in-test source for every other holder, with |faults|
 * (n entries; NULL: none) and split |other| for TSRC_OTHER_SPLIT. Sources are
 * asked in holder order, so the first ones answer first.
 */
static struct comb_ctx *comb_for(const struct tss_set *s, const struct tss_set *other, int local,
                                 const enum tsrc_fault *faults, struct tsrc *srcs)
{
    struct comb_config cfg;
    struct comb_ctx *c;

    comb_config_init(&cfg);
    c = comb_new(&cfg);
    assert_non_null(c);
    assert_int_equal(comb_add_key(c, s->rec, local >= 0 ? &s->shares[local] : NULL,
                                  local >= 0 ? s->hks[local] : NULL),
                     0);
    for (unsigned i = 0; i < s->n; i++) {
        if ((int)i == local) {
            continue;
        }
        srcs[i].rec = s->rec;
        srcs[i].index = (uint8_t)(i + 1);
        srcs[i].fault = faults != NULL ? faults[i] : TSRC_OK;
        srcs[i].signer =
            srcs[i].fault == TSRC_OTHER_SPLIT || srcs[i].fault == TSRC_OTHER_SPLIT_BAD_PROOF
                ? other->signers[i]
                : s->signers[i];
        assert_int_equal(comb_add_source(c, NULL, s->hks[i]->pub.name, &tsrc_ops, &srcs[i]), 0);
    }
    return c;
}

/* source_stats: the counters of the source called |name|. */
static struct comb_source_stats source_stats(const struct comb_ctx *c, const char *name)
{
    struct comb_source_stats st;

    for (size_t i = 0; i < comb_num_sources(c); i++) {
        assert_int_equal(comb_source_stats(c, i, &st), 0);
        if (strcmp(st.name, name) == 0) {
            return st;
        }
    }
    fail_msg("no source %s", name);
    return st;
}

/* md_of: the digest of signature |alg|, by the operation table's OpenSSL name. */
static const EVP_MD *md_of(enum comb_alg alg)
{
    const EVP_MD *md = EVP_get_digestbyname(proto_op_info((uint8_t)alg)->md);

    assert_non_null(md);
    return md;
}

/* sign_ok: one signature with |alg|, its status; on success OpenSSL must accept it. */
static int sign_ok(struct comb_ctx *c, const struct tss_set *s, enum comb_alg alg)
{
    uint8_t digest[64], sig[PROTO_BN_MAX];
    size_t dlen = comb_alg_digest_len(alg), sig_len = 0;
    bool pss =
        alg == COMB_ALG_PSS_SHA256 || alg == COMB_ALG_PSS_SHA384 || alg == COMB_ALG_PSS_SHA512;
    EVP_PKEY_CTX *pctx;
    int r;

    randombytes_buf(digest, dlen);
    r = comb_sign_sync(c, sig, sizeof(sig), &sig_len, s->rec->key_id, alg, digest, dlen);
    if (r != 0) {
        return r;
    }
    assert_int_equal(sig_len, s->rec->modulus_len);
    pctx = EVP_PKEY_CTX_new(s->key.pkey, NULL);
    assert_non_null(pctx);
    assert_int_equal(EVP_PKEY_verify_init(pctx), 1);
    assert_int_equal(
        EVP_PKEY_CTX_set_rsa_padding(pctx, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING), 1);
    if (pss) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int)dlen), 1);
    }
    assert_int_equal(EVP_PKEY_CTX_set_signature_md(pctx, md_of(alg)), 1);
    assert_int_equal(EVP_PKEY_verify(pctx, sig, sig_len, digest, dlen), 1);
    EVP_PKEY_CTX_free(pctx);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void count_ok(void *arg, const struct comb_result *res)
{
    unsigned *n = arg;

    *n += res->status == 0 ? 1 : 0;
}

static void test_sign(void **state)
{
    static const enum comb_alg algs[] = {
        COMB_ALG_PKCS1_SHA1,    COMB_ALG_PKCS1_SHA256, COMB_ALG_PKCS1_SHA384, COMB_ALG_PKCS1_SHA512,
        COMB_ALG_PKCS1_MD5SHA1, COMB_ALG_PSS_SHA256,   COMB_ALG_PSS_SHA384,   COMB_ALG_PSS_SHA512,
    };
    struct tss_set s;
    struct tsrc srcs[SET_MAX];
    struct comb_ctx *c;

    (void)state;
    set_make(&s, 2, 3);
    /* With the combiner's own key share, and with holders only. */
    for (int local = 0; local >= -1; local--) {
        memset(srcs, 0, sizeof(srcs));
        c = comb_for(&s, NULL, local, NULL, srcs);
        assert_int_equal(comb_key_size(c, s.rec->key_id), s.rec->modulus_len);
        for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
            assert_int_equal(sign_ok(c, &s, algs[i]), 0);
        }
        comb_free(c);
    }
    set_free(&s);
}

static void test_batch_of_two(void **state)
{
    struct tss_set s;
    struct tsrc srcs[SET_MAX];
    struct comb_ctx *c;
    uint8_t digest[32] = {1};
    unsigned done = 0;

    (void)state;
    set_make(&s, 2, 3);
    memset(srcs, 0, sizeof(srcs));
    c = comb_for(&s, NULL, -1, NULL, srcs);
    /* Two operations queued together: one request each (a request names one digest). */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(comb_sign(c, NULL, s.rec->key_id, COMB_ALG_PSS_SHA256, digest,
                                   sizeof(digest), count_ok, &done),
                         0);
    }
    assert_int_equal(comb_wait(c, 5000), 0);
    assert_int_equal(done, 2);
    assert_int_equal(srcs[0].asked, 2);
    assert_int_equal(srcs[1].asked, 2);
    comb_free(c);
    set_free(&s);
}

static void test_decrypt_refused(void **state)
{
    struct tss_set s;
    struct tsrc srcs[SET_MAX];
    struct comb_ctx *c;
    uint8_t ct[PROTO_BN_MAX], out[PROTO_BN_MAX];
    size_t out_len = 0;

    (void)state;
    set_make(&s, 2, 3);
    memset(srcs, 0, sizeof(srcs));
    c = comb_for(&s, NULL, 0, NULL, srcs);
    memset(ct, 0x11, s.rec->modulus_len);
    assert_int_equal(comb_decrypt_sync(c, out, sizeof(out), &out_len, s.rec->key_id,
                                       COMB_ALG_DECRYPT_TLS, ct, s.rec->modulus_len, NULL),
                     SPK_ERR_UNSUPPORTED);
    assert_non_null(strstr(comb_last_error(c), "threshold mode"));
    assert_int_equal(comb_decrypt_sync(c, out, sizeof(out), &out_len, s.rec->key_id,
                                       COMB_ALG_DECRYPT_RAW, ct, s.rec->modulus_len, NULL),
                     SPK_ERR_UNSUPPORTED);
    assert_int_equal(srcs[1].asked + srcs[2].asked, 0);
    assert_int_equal(source_stats(c, "local").requests, 0);
    comb_free(c);
    set_free(&s);
}

static void test_other_split(void **state)
{
    /* h2 signs with its share of another split of the same key, and answers
     * before h3: the first two do not combine, h3's decides, h2 is blamed. */
    const enum tsrc_fault faults[3] = {TSRC_OK, TSRC_OTHER_SPLIT, TSRC_OK};
    struct tss_set s, other;
    struct tsrc srcs[SET_MAX];
    struct comb_ctx *c;

    (void)state;
    set_make(&s, 2, 3);
    set_resplit(&other, &s);
    for (int local = 0; local >= -1; local--) {
        memset(srcs, 0, sizeof(srcs));
        c = comb_for(&s, &other, local, faults, srcs);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(sign_ok(c, &s, i == 1 ? COMB_ALG_PSS_SHA256 : COMB_ALG_PKCS1_SHA256),
                             0);
        }
        assert_int_equal(source_stats(c, "h2").bad_sigshares, 3);
        assert_int_equal(source_stats(c, "h3").bad_sigshares, 0);
        if (local < 0) {
            assert_int_equal(source_stats(c, "h1").bad_sigshares, 0);
        }
        comb_free(c);
    }
    set_free(&other);
    set_free(&s);
}

static void test_refused_on_arrival(void **state)
{
    const enum tsrc_fault faults[2][3] = {{TSRC_OK, TSRC_ABOVE_N, TSRC_OK},
                                          {TSRC_OK, TSRC_WRONG_INDEX, TSRC_OK}};
    struct tss_set s;
    struct tsrc srcs[SET_MAX];
    struct comb_ctx *c;

    (void)state;
    set_make(&s, 2, 3);
    for (int f = 0; f < 2; f++) {
        memset(srcs, 0, sizeof(srcs));
        c = comb_for(&s, NULL, -1, faults[f], srcs);
        assert_int_equal(sign_ok(c, &s, COMB_ALG_PKCS1_SHA256), 0);
        assert_int_equal(source_stats(c, "h2").bad_sigshares, 1);
        assert_int_equal(source_stats(c, "h2").good, 0);
        assert_int_equal(source_stats(c, "h2").last_error,
                         f == 0 ? SPK_ERR_MALFORMED : SPK_ERR_WRONG_HOLDER);
        assert_int_equal(source_stats(c, "h1").bad_sigshares + source_stats(c, "h3").bad_sigshares,
                         0);
        comb_free(c);
    }
    set_free(&s);
}

static void test_too_few_good(void **state)
{
    /* 2-of-3 on holders: h2 wrong and h3 down leaves nothing to tell h1 from h2. */
    const enum tsrc_fault faults[3] = {TSRC_OK, TSRC_OTHER_SPLIT, TSRC_DOWN};
    /* 3-of-4: one wrong share among four: every 3-subset with it fails, one without signs. */
    const enum tsrc_fault faults4[4] = {TSRC_OK, TSRC_OK, TSRC_OTHER_SPLIT, TSRC_OK};
    struct tss_set s, other, s4, other4;
    struct tsrc srcs[SET_MAX];
    struct comb_ctx *c;

    (void)state;
    set_make(&s, 2, 3);
    set_resplit(&other, &s);
    memset(srcs, 0, sizeof(srcs));
    c = comb_for(&s, &other, -1, faults, srcs);
    assert_int_equal(sign_ok(c, &s, COMB_ALG_PKCS1_SHA256), SPK_ERR_FAULT);
    assert_non_null(strstr(comb_last_error(c), "do not combine"));
    assert_non_null(strstr(comb_last_error(c), "h3"));
    comb_free(c);
    set_free(&other);
    set_free(&s);

    set_make(&s4, 3, 4);
    set_resplit(&other4, &s4);
    memset(srcs, 0, sizeof(srcs));
    c = comb_for(&s4, &other4, 0, faults4, srcs);
    assert_int_equal(sign_ok(c, &s4, COMB_ALG_PSS_SHA384), 0);
    assert_int_equal(source_stats(c, "h3").bad_sigshares, 1);
    assert_int_equal(source_stats(c, "h2").bad_sigshares + source_stats(c, "h4").bad_sigshares, 0);
    comb_free(c);
    set_free(&other4);
    set_free(&s4);
}

/*
 * A key of safe primes, whose record has verification keys: the combiner
 * combines first and checks proofs only when the combination fails its check
 * with e. h2 answers before h3 in each case.
 */
static void test_proofs(void **state)
{
    const enum tsrc_fault bad_proof[3] = {TSRC_OK, TSRC_BAD_PROOF, TSRC_OK};
    const enum tsrc_fault other_split[3] = {TSRC_OK, TSRC_OTHER_SPLIT, TSRC_OK};
    const enum tsrc_fault both[3] = {TSRC_OK, TSRC_OTHER_SPLIT_BAD_PROOF, TSRC_OK};
    const enum tsrc_fault no_proof[3] = {TSRC_OK, TSRC_NO_PROOF, TSRC_OK};
    const enum tsrc_fault alone[3] = {TSRC_OK, TSRC_OTHER_SPLIT, TSRC_DOWN};
    struct tss_set s, other;
    struct tsrc srcs[SET_MAX];
    struct comb_ctx *c;

    (void)state;
    set_make_of(&s, "rsa2048-safe.pem", 2, 3);
    assert_true(s.rec->has_vkeys);
    set_resplit(&other, &s);
    assert_true(other.rec->has_vkeys);
    for (int local = 0; local >= -1; local--) {
        /* A right share with a broken proof: the signature passes its check
         * with e, so the proof is never looked at and h2 is not blamed (a
         * check of it would fail: see both[] below). */
        memset(srcs, 0, sizeof(srcs));
        c = comb_for(&s, NULL, local, bad_proof, srcs);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(sign_ok(c, &s, i == 1 ? COMB_ALG_PSS_SHA256 : COMB_ALG_PKCS1_SHA256),
                             0);
        }
        assert_int_equal(source_stats(c, "h2").bad_sigshares, 0);
        assert_int_equal(source_stats(c, "h2").good, 3);
        comb_free(c);

        /* A wrong share whose proof holds for another record, and one whose
         * proof is broken too: the combination fails, the proofs name h2 alone. */
        for (int f = 0; f < 2; f++) {
            memset(srcs, 0, sizeof(srcs));
            c = comb_for(&s, &other, local, f == 0 ? other_split : both, srcs);
            for (int i = 0; i < 3; i++) {
                assert_int_equal(
                    sign_ok(c, &s, i == 1 ? COMB_ALG_PSS_SHA384 : COMB_ALG_PKCS1_SHA256), 0);
            }
            assert_int_equal(source_stats(c, "h2").bad_sigshares, 3);
            assert_int_equal(source_stats(c, "h2").last_error, SPK_ERR_FAULT);
            /* Accepted on arrival, then disproven: counted both ways, as
             * the shares metric's help says (a counter does not go down). */
            assert_int_equal(source_stats(c, "h2").good, 3);
            {
                struct comb_stats st;

                comb_stats_get(c, &st);
                assert_int_equal(st.shares_bad, 3);
            }
            assert_int_equal(source_stats(c, "h3").bad_sigshares, 0);
            if (local < 0) {
                assert_int_equal(source_stats(c, "h1").bad_sigshares, 0);
            }
            comb_free(c);
        }
    }

    /* No proof: refused on arrival, never counted good. */
    memset(srcs, 0, sizeof(srcs));
    c = comb_for(&s, NULL, -1, no_proof, srcs);
    assert_int_equal(sign_ok(c, &s, COMB_ALG_PKCS1_SHA256), 0);
    assert_int_equal(source_stats(c, "h2").bad_sigshares, 1);
    assert_int_equal(source_stats(c, "h2").good, 0);
    assert_int_equal(source_stats(c, "h1").bad_sigshares + source_stats(c, "h3").bad_sigshares, 0);
    comb_free(c);

    /* h2 wrong and h3 down: the proof drops h2's share, one good share is
     * left, and the failure says which proof failed. */
    memset(srcs, 0, sizeof(srcs));
    c = comb_for(&s, &other, -1, alone, srcs);
    assert_int_equal(sign_ok(c, &s, COMB_ALG_PKCS1_SHA256), SPK_ERR_THRESHOLD);
    assert_non_null(strstr(comb_last_error(c), "1 good share of 2 needed"));
    assert_non_null(strstr(comb_last_error(c), "h2: signature share 2 dropped: a signature share "
                                               "whose proof of correctness fails"));
    assert_non_null(strstr(comb_last_error(c), "h3"));
    assert_int_equal(source_stats(c, "h2").bad_sigshares, 1);
    assert_int_equal(source_stats(c, "h1").bad_sigshares, 0);
    comb_free(c);
    set_free(&other);
    set_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_batch_of_two),
        cmocka_unit_test(test_decrypt_refused),
        cmocka_unit_test(test_other_split),
        cmocka_unit_test(test_refused_on_arrival),
        cmocka_unit_test(test_too_few_good),
        cmocka_unit_test(test_proofs),
    };

    if (spk_mem_init() != 0) {
        fprintf(stderr, "spk_mem_init failed\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
