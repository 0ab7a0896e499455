/*
 * Shoup's verification keys and proofs of correct signature shares: a
 * threshold split of a safe-prime key carries the keys (of another key it
 * does not); every honest share's proof verifies and the shares combine into
 * a signature OpenSSL accepts; a tampered x_i, c or z, the proof checked
 * against another party's v_i, a proof made for another message, a record
 * without keys and a signer given keys that are not its share's all fail.
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

#include "split/split.h"
#include "testutil.h"

#define PLAYERS 3

struct fixture {
    struct split_rsa_key key;
    struct proto_record *rec;
    struct proto_share_file shares[PLAYERS];
    struct proto_holder_secret holders[PLAYERS];
    struct split_tss_signer *signers[PLAYERS];
    size_t n_len;
};

static void load_key(struct split_rsa_key *key, const char *name)
{
    char why[SPLIT_WHY_MAX] = "";
    int r = split_rsa_key_load(key, testutil_data_path(name), NULL, why, sizeof(why));

    if (r != 0) {
        fail_msg("loading %s: %s (%s)", name, spk_strerror(r), why);
    }
}

/* split_fixture: a 2-of-3 threshold split of |name| with keysplit's own
 * function, each share opened by its holder into a signer. */
static void split_fixture(struct fixture *f, const char *name)
{
    struct proto_holder_pub pubs[PLAYERS];
    char why[SPLIT_WHY_MAX] = "";
    uint8_t *s;

    memset(f, 0, sizeof(*f));
    load_key(&f->key, name);
    f->n_len = f->key.modulus_len;
    assert_non_null(f->rec = calloc(1, sizeof(*f->rec)));
    for (unsigned i = 0; i < PLAYERS; i++) {
        snprintf(f->holders[i].pub.name, sizeof(f->holders[i].pub.name), "holder-%u", i + 1);
        crypto_box_keypair(f->holders[i].pub.storage_pk, f->holders[i].storage_sk);
        crypto_box_keypair(f->holders[i].pub.curve_pk, f->holders[i].curve_sk);
        pubs[i] = f->holders[i].pub;
    }
    if (split_key_split_threshold(f->rec, f->shares, &f->key, 2, pubs, PLAYERS, why, sizeof(why)) !=
        0) {
        fail_msg("split: %s", why);
    }
    assert_non_null(s = spk_secret_new(f->n_len));
    for (unsigned i = 0; i < PLAYERS; i++) {
        assert_int_equal(split_share_open(s, f->n_len, &f->shares[i], &f->holders[i]), 0);
        assert_int_equal(
            split_tss_signer_new(&f->signers[i], f->key.modulus, f->n_len, PLAYERS, s, f->n_len),
            0);
    }
    spk_secret_free(s);
}

static void fixture_free(struct fixture *f)
{
    for (unsigned i = 0; i < PLAYERS; i++) {
        split_tss_signer_free(f->signers[i]);
    }
    free(f->rec);
    split_rsa_key_cleanup(&f->key);
}

static void set_vkeys(struct fixture *f)
{
    for (unsigned i = 0; i < PLAYERS; i++) {
        assert_int_equal(split_tss_signer_set_vkeys(f->signers[i], f->rec->vkey_base,
                                                    proto_record_vkey(f->rec, i + 1)),
                         0);
        assert_true(split_tss_signer_has_vkeys(f->signers[i]));
    }
}

static void encode(const struct fixture *f, uint8_t op, uint8_t *em, uint8_t *digest)
{
    uint8_t salt[64];
    size_t digest_len = proto_op_digest_len(op);
    size_t salt_len = proto_op_info(op)->kind == PROTO_OP_KIND_SIGN_PSS ? digest_len : 0;

    randombytes_buf(digest, digest_len);
    randombytes_buf(salt, sizeof(salt));
    assert_int_equal(
        split_pad_encode(em, f->n_len, f->key.bits, op, digest, digest_len, salt, salt_len), 0);
}

static void test_vkeys_in_record(void **state)
{
    struct fixture f;
    struct proto_record *dec;
    uint8_t *text;
    size_t len = 0;

    (void)state;
    split_fixture(&f, "rsa2048-safe.pem");
    assert_true(f.rec->has_vkeys);
    assert_int_equal(f.rec->mode, PROTO_MODE_THRESHOLD);
    assert_int_equal(split_record_verify(f.rec), 0);
    /* The keys are public and survive the file: decode(encode(rec)) has them. */
    assert_non_null(text = malloc(PROTO_FILE_MAX));
    assert_non_null(dec = calloc(1, sizeof(*dec)));
    assert_int_equal(proto_record_encode(text, PROTO_FILE_MAX, &len, f.rec), 0);
    assert_int_equal(proto_record_decode(dec, text, len), 0);
    assert_true(dec->has_vkeys);
    assert_memory_equal(dec->vkey_base, f.rec->vkey_base, f.n_len);
    assert_memory_equal(dec->vkeys, f.rec->vkeys, PLAYERS * f.n_len);
    assert_int_equal(split_record_verify(dec), 0);
    /* Each v_i differs (distinct s_i) and is v^s_i: the signers accept them. */
    assert_memory_not_equal(proto_record_vkey(f.rec, 1), proto_record_vkey(f.rec, 2), f.n_len);
    set_vkeys(&f);
    free(dec);
    free(text);
    fixture_free(&f);
}

static void test_no_vkeys_without_safe_primes(void **state)
{
    struct fixture f;
    uint8_t em[PROTO_BN_MAX], digest[64], xi[PROTO_BN_MAX];
    uint8_t c[PROTO_TSS_C_LEN], z[PROTO_TSS_Z_MAX] = {0};

    (void)state;
    split_fixture(&f, "rsa2048.pem");
    assert_false(f.rec->has_vkeys);
    assert_null(proto_record_vkey(f.rec, 1));
    encode(&f, PROTO_OP_SIGN_PKCS1_SHA256, em, digest);
    assert_int_equal(split_tss_sign_share(f.signers[0], xi, em), 0);
    /* No keys: no proof to make or check. */
    assert_int_equal(split_tss_prove(f.signers[0], c, z, em, xi), SPK_ERR_INVALID_ARG);
    memset(c, 0, sizeof(c));
    assert_int_equal(split_tss_share_verify(f.rec, em, 1, xi, c, z), SPK_ERR_UNSUPPORTED);
    fixture_free(&f);
}

/* test_good_and_bad: every honest proof verifies and the shares sign; each
 * tampering is caught. */
static void test_good_and_bad(void **state)
{
    static const uint8_t ops[] = {PROTO_OP_SIGN_PKCS1_SHA256, PROTO_OP_SIGN_PSS_SHA384};
    struct fixture f;
    uint8_t em[PROTO_BN_MAX], em2[PROTO_BN_MAX], digest[64], sig[PROTO_BN_MAX];
    uint8_t xi[PLAYERS][PROTO_BN_MAX], bad[PROTO_BN_MAX];
    uint8_t c[PLAYERS][PROTO_TSS_C_LEN], z[PLAYERS][PROTO_TSS_Z_MAX];
    uint8_t c2[PROTO_TSS_C_LEN], z2[PROTO_TSS_Z_MAX];
    size_t n_len, z_len;

    (void)state;
    split_fixture(&f, "rsa2048-safe.pem");
    set_vkeys(&f);
    n_len = f.n_len;
    z_len = n_len + PROTO_TSS_Z_EXTRA;
    for (size_t o = 0; o < sizeof(ops); o++) {
        struct split_tss_part parts[PLAYERS];

        encode(&f, ops[o], em, digest);
        for (unsigned i = 0; i < PLAYERS; i++) {
            assert_int_equal(split_tss_sign_share(f.signers[i], xi[i], em), 0);
            assert_int_equal(split_tss_prove(f.signers[i], c[i], z[i], em, xi[i]), 0);
            assert_int_equal(split_tss_share_verify(f.rec, em, i + 1, xi[i], c[i], z[i]), 0);
            parts[i].index = i + 1;
            parts[i].xi = xi[i];
        }
        assert_int_equal(split_tss_combine(sig, NULL, f.key.modulus, n_len, f.key.exponent,
                                           f.key.exponent_len, PLAYERS, 2, em, parts + 1, 2),
                         0);

        /* A tampered share, challenge or response. */
        memcpy(bad, xi[0], n_len);
        bad[n_len / 2] ^= 0x01;
        assert_int_equal(split_tss_share_verify(f.rec, em, 1, bad, c[0], z[0]), SPK_ERR_FAULT);
        memcpy(c2, c[0], sizeof(c2));
        c2[PROTO_TSS_C_LEN - 1] ^= 0x80;
        assert_int_equal(split_tss_share_verify(f.rec, em, 1, xi[0], c2, z[0]), SPK_ERR_FAULT);
        memcpy(z2, z[0], z_len);
        z2[z_len - 1] ^= 0x01;
        assert_int_equal(split_tss_share_verify(f.rec, em, 1, xi[0], c[0], z2), SPK_ERR_FAULT);
        /* Party 1's share and proof presented as party 2's (wrong v_i). */
        assert_int_equal(split_tss_share_verify(f.rec, em, 2, xi[0], c[0], z[0]), SPK_ERR_FAULT);
        /* Another party's right share under party 1's proof. */
        assert_int_equal(split_tss_share_verify(f.rec, em, 1, xi[1], c[0], z[0]), SPK_ERR_FAULT);
        /* A share and proof made for another message. */
        encode(&f, ops[o], em2, digest);
        assert_int_equal(split_tss_share_verify(f.rec, em2, 1, xi[0], c[0], z[0]), SPK_ERR_FAULT);
        /* Garbage: zero, N itself. */
        memset(bad, 0, n_len);
        assert_int_equal(split_tss_share_verify(f.rec, em, 1, bad, c[0], z[0]), SPK_ERR_FAULT);
        assert_int_equal(split_tss_share_verify(f.rec, em, 1, f.key.modulus, c[0], z[0]),
                         SPK_ERR_FAULT);
    }
    /* Arguments outside the record. */
    assert_int_equal(split_tss_share_verify(f.rec, em, 0, xi[0], c[0], z[0]), SPK_ERR_INVALID_ARG);
    assert_int_equal(split_tss_share_verify(f.rec, em, PLAYERS + 1, xi[0], c[0], z[0]),
                     SPK_ERR_INVALID_ARG);
    assert_int_equal(split_tss_share_verify(f.rec, f.key.modulus, 1, xi[0], c[0], z[0]),
                     SPK_ERR_INVALID_ARG);
    fixture_free(&f);
}

/* test_proofs_differ: the nonce is fresh each time (the same share gets a new
 * proof), and a prover refuses keys that are not its share's. */
static void test_prover_keys(void **state)
{
    struct fixture f;
    uint8_t em[PROTO_BN_MAX], digest[64], xi[PROTO_BN_MAX], one[PROTO_BN_MAX] = {0};
    uint8_t c1[PROTO_TSS_C_LEN], z1[PROTO_TSS_Z_MAX], c2[PROTO_TSS_C_LEN], z2[PROTO_TSS_Z_MAX];

    (void)state;
    split_fixture(&f, "rsa2048-safe.pem");
    assert_int_equal(
        split_tss_signer_set_vkeys(f.signers[0], f.rec->vkey_base, proto_record_vkey(f.rec, 2)),
        SPK_ERR_KEY_MISMATCH);
    assert_false(split_tss_signer_has_vkeys(f.signers[0]));
    one[f.n_len - 1] = 1;
    assert_int_equal(split_tss_signer_set_vkeys(f.signers[0], one, proto_record_vkey(f.rec, 1)),
                     SPK_ERR_INVALID_ARG);
    assert_int_equal(split_tss_signer_set_vkeys(f.signers[0], f.rec->vkey_base, f.key.modulus),
                     SPK_ERR_INVALID_ARG);
    set_vkeys(&f);
    assert_int_equal(
        split_tss_signer_set_vkeys(f.signers[0], f.rec->vkey_base, proto_record_vkey(f.rec, 1)),
        SPK_ERR_INVALID_ARG);
    encode(&f, PROTO_OP_SIGN_PSS_SHA256, em, digest);
    assert_int_equal(split_tss_sign_share(f.signers[0], xi, em), 0);
    assert_int_equal(split_tss_prove(f.signers[0], c1, z1, em, xi), 0);
    assert_int_equal(split_tss_prove(f.signers[0], c2, z2, em, xi), 0);
    assert_memory_not_equal(c1, c2, sizeof(c1));
    assert_int_equal(split_tss_share_verify(f.rec, em, 1, xi, c1, z1), 0);
    assert_int_equal(split_tss_share_verify(f.rec, em, 1, xi, c2, z2), 0);
    /* Mixed halves of two proofs do not verify. */
    assert_int_equal(split_tss_share_verify(f.rec, em, 1, xi, c1, z2), SPK_ERR_FAULT);
    /* A value not below N is refused by the prover. */
    assert_int_equal(split_tss_prove(f.signers[0], c1, z1, f.key.modulus, xi), SPK_ERR_INVALID_ARG);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vkeys_in_record),
        cmocka_unit_test(test_no_vkeys_without_safe_primes),
        cmocka_unit_test(test_good_and_bad),
        cmocka_unit_test(test_prover_keys),
    };

    if (spk_mem_init() != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
