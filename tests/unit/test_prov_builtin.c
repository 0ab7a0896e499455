/*
 * test_prov_builtin: splitkey's OpenSSL provider, loaded built-in as the edge
 * does it, drives real TLS handshakes
 * (in memory, through BIO pairs) with a key that holds only n, e and a key
 * id. The private operations go to a test double that performs them with the
 * real key through the default provider, optionally pausing the ASYNC job
 * first, so every case the edge serves is checked end to end: TLS 1.3 PSS,
 * TLS 1.2 ECDHE with PKCS#1 v1.5 and with PSS, TLS 1.2 RSA key exchange, a
 * failing operation, and an RSA-4096 key.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/async.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "provider/provider.h"
#include "testutil.h"

struct fake_combiner {
    EVP_PKEY *priv; /* the real key, default provider */
    uint8_t key_id[PROTO_KEY_ID_LEN];
    bool pause;    /* pause the ASYNC job once per operation */
    bool fail;     /* answer every operation with an error */
    int num_ops;   /* operations performed */
    int num_pause; /* pauses done */
    uint8_t last_op;
};

static struct fake_combiner g_fake;

static const EVP_MD *fake_md(uint8_t op, int *pad)
{
    *pad = RSA_PKCS1_PADDING;
    switch (op) {
    case PROTO_OP_SIGN_PKCS1_SHA1:
        return EVP_sha1();
    case PROTO_OP_SIGN_PKCS1_SHA256:
        return EVP_sha256();
    case PROTO_OP_SIGN_PKCS1_SHA384:
        return EVP_sha384();
    case PROTO_OP_SIGN_PKCS1_SHA512:
        return EVP_sha512();
    case PROTO_OP_SIGN_PSS_SHA256:
        *pad = RSA_PKCS1_PSS_PADDING;
        return EVP_sha256();
    case PROTO_OP_SIGN_PSS_SHA384:
        *pad = RSA_PKCS1_PSS_PADDING;
        return EVP_sha384();
    case PROTO_OP_SIGN_PSS_SHA512:
        *pad = RSA_PKCS1_PSS_PADDING;
        return EVP_sha512();
    default:
        return NULL;
    }
}

static int fake_keyop(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                      const uint8_t *in, size_t in_len, uint16_t client_version, uint8_t *out,
                      size_t out_cap, size_t *out_len)
{
    struct fake_combiner *f = arg;
    EVP_PKEY_CTX *ctx = NULL;
    size_t len = out_cap;
    int pad;
    int ok = 0;

    if (f->pause && ASYNC_get_current_job() != NULL) {
        f->num_pause++;
        assert_int_equal(ASYNC_pause_job(), 1);
    }
    f->num_ops++;
    f->last_op = op;
    if (f->fail) {
        return SPK_ERR_UNAVAILABLE;
    }
    assert_memory_equal(key_id, f->key_id, PROTO_KEY_ID_LEN);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, f->priv, "provider=default");
    assert_non_null(ctx);
    if (op == PROTO_OP_DECRYPT_TLS_PREMASTER) {
        OSSL_PARAM params[2];
        unsigned v = client_version;
        params[0] = OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, &v);
        params[1] = OSSL_PARAM_construct_end();
        ok = EVP_PKEY_decrypt_init(ctx) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_WITH_TLS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_params(ctx, params) > 0 &&
             EVP_PKEY_decrypt(ctx, out, &len, in, in_len) > 0;
    } else {
        const EVP_MD *md = fake_md(op, &pad);
        assert_non_null(md);
        assert_int_equal(in_len, (size_t)EVP_MD_get_size(md));
        ok = EVP_PKEY_sign_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, pad) > 0 &&
             EVP_PKEY_CTX_set_signature_md(ctx, md) > 0 &&
             (pad != RSA_PKCS1_PSS_PADDING ||
              EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) > 0) &&
             EVP_PKEY_sign(ctx, out, &len, in, in_len) > 0;
    }
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        return SPK_ERR_CRYPTO;
    }
    *out_len = len;
    return 0;
}

struct server {
    SSL_CTX *ctx;
    X509 *cert;
    EVP_PKEY *pub_key; /* provider key */
};

static X509 *make_cert(EVP_PKEY *priv)
{
    X509 *x = X509_new();
    X509_NAME *name;

    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    assert_int_equal(X509_set_pubkey(x, priv), 1);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"edge.test", -1, -1,
                               0);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_true(X509_sign(x, priv, EVP_sha256()) > 0);
    return x;
}

static void server_setup(struct server *s, const char *key_file)
{
    FILE *fp = fopen(testutil_data_path(key_file), "r");
    EVP_PKEY *pub = NULL;

    assert_non_null(fp);
    EVP_PKEY_free(g_fake.priv);
    memset(&g_fake, 0, sizeof(g_fake));
    g_fake.priv = PEM_read_PrivateKey_ex(fp, NULL, NULL, NULL, NULL, "provider=default");
    fclose(fp);
    assert_non_null(g_fake.priv);
    s->cert = make_cert(g_fake.priv);
    pub = X509_get0_pubkey(s->cert);
    assert_int_equal(prov_key_new(&s->pub_key, g_fake.key_id, pub), 0);
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    assert_int_equal(SSL_CTX_use_certificate(s->ctx, s->cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, s->pub_key), 1);
    assert_int_equal(SSL_CTX_check_private_key(s->ctx), 1);
    SSL_CTX_set_mode(s->ctx, SSL_MODE_ASYNC);
    SSL_CTX_set_options(s->ctx, SSL_OP_NO_TICKET);
}

static void server_teardown(struct server *s)
{
    SSL_CTX_free(s->ctx);
    X509_free(s->cert);
    EVP_PKEY_free(s->pub_key);
    EVP_PKEY_free(g_fake.priv);
    g_fake.priv = NULL;
}

/*
 * handshake runs a client and a server over a BIO pair until both finish or
 * one fails, then sends one message each way. Returns true when the
 * handshake succeeded and both messages arrived.
 */
static bool handshake(struct server *s, int version, const char *ciphers, const char *sigalgs,
                      unsigned long *out_client_err)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *c, *sv;
    BIO *cb = NULL, *sb = NULL;
    bool c_done = false, s_done = false, failed = false;
    int i;
    char buf[64];
    bool ok = false;

    assert_non_null(cctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(cctx, version), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(cctx, version), 1);
    if (ciphers != NULL) {
        assert_int_equal(SSL_CTX_set_cipher_list(cctx, ciphers), 1);
    }
    if (sigalgs != NULL) {
        char list[64]; /* the macro casts away const */
        snprintf(list, sizeof(list), "%s", sigalgs);
        assert_int_equal(SSL_CTX_set1_sigalgs_list(cctx, list), 1);
    }
    c = SSL_new(cctx);
    sv = SSL_new(s->ctx);
    assert_non_null(c);
    assert_non_null(sv);
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(sv, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(sv);
    *out_client_err = 0;
    for (i = 0; i < 1000 && !(c_done && s_done) && !failed; i++) {
        int rc;
        if (!c_done) {
            rc = SSL_do_handshake(c);
            if (rc == 1) {
                c_done = true;
            } else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ) {
                *out_client_err = ERR_peek_last_error();
                failed = true;
            }
        }
        if (!s_done) {
            rc = SSL_do_handshake(sv);
            if (rc == 1) {
                s_done = true;
            } else {
                int e = SSL_get_error(sv, rc);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_ASYNC) {
                    /* Let the client read the alert. */
                    rc = SSL_do_handshake(c);
                    *out_client_err = ERR_peek_last_error();
                    failed = true;
                }
            }
        }
    }
    if (c_done && s_done) {
        assert_int_equal(SSL_write(c, "hello edge", 10), 10);
        assert_int_equal(SSL_read(sv, buf, sizeof(buf)), 10);
        assert_memory_equal(buf, "hello edge", 10);
        assert_int_equal(SSL_write(sv, "hi client", 9), 9);
        assert_int_equal(SSL_read(c, buf, sizeof(buf)), 9);
        assert_memory_equal(buf, "hi client", 9);
        assert_int_equal(SSL_version(c), version);
        ok = true;
    }
    SSL_free(c);
    SSL_free(sv);
    SSL_CTX_free(cctx);
    ERR_clear_error();
    return ok;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(prov_builtin_load(fake_keyop, &g_fake), 0);
    return 0;
}

static void test_tls13_pss(void **state)
{
    struct server s = {0};
    unsigned long err;

    (void)state;
    server_setup(&s, "rsa2048.pem");
    assert_true(handshake(&s, TLS1_3_VERSION, NULL, NULL, &err));
    assert_int_equal(g_fake.num_ops, 1);
    assert_true(g_fake.last_op == PROTO_OP_SIGN_PSS_SHA256 ||
                g_fake.last_op == PROTO_OP_SIGN_PSS_SHA384 ||
                g_fake.last_op == PROTO_OP_SIGN_PSS_SHA512);
    server_teardown(&s);
}

static void test_tls13_paused(void **state)
{
    struct server s = {0};
    unsigned long err;

    (void)state;
    server_setup(&s, "rsa2048.pem");
    g_fake.pause = true;
    assert_true(handshake(&s, TLS1_3_VERSION, NULL, NULL, &err));
    assert_int_equal(g_fake.num_ops, 1);
    assert_int_equal(g_fake.num_pause, 1);
    server_teardown(&s);
}

static void test_tls12_ecdhe_pkcs1(void **state)
{
    struct server s = {0};
    unsigned long err;

    (void)state;
    server_setup(&s, "rsa2048.pem");
    g_fake.pause = true;
    assert_true(handshake(&s, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256", "RSA+SHA256", &err));
    assert_int_equal(g_fake.last_op, PROTO_OP_SIGN_PKCS1_SHA256);
    server_teardown(&s);
}

static void test_tls12_ecdhe_pss(void **state)
{
    struct server s = {0};
    unsigned long err;

    (void)state;
    server_setup(&s, "rsa2048.pem");
    assert_true(
        handshake(&s, TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", "rsa_pss_rsae_sha384", &err));
    assert_int_equal(g_fake.last_op, PROTO_OP_SIGN_PSS_SHA384);
    server_teardown(&s);
}

static void test_tls12_rsa_kx(void **state)
{
    struct server s = {0};
    unsigned long err;

    (void)state;
    server_setup(&s, "rsa2048.pem");
    g_fake.pause = true;
    assert_true(handshake(&s, TLS1_2_VERSION, "AES128-GCM-SHA256", NULL, &err));
    assert_int_equal(g_fake.num_ops, 1);
    assert_int_equal(g_fake.last_op, PROTO_OP_DECRYPT_TLS_PREMASTER);
    server_teardown(&s);
}

static void test_rsa4096(void **state)
{
    struct server s = {0};
    unsigned long err;

    (void)state;
    server_setup(&s, "rsa4096.pem");
    assert_true(handshake(&s, TLS1_3_VERSION, NULL, NULL, &err));
    assert_true(handshake(&s, TLS1_2_VERSION, "AES128-GCM-SHA256", NULL, &err));
    assert_int_equal(g_fake.num_ops, 2);
    server_teardown(&s);
}

static void test_failure_alerts(void **state)
{
    struct server s = {0};
    unsigned long err = 0;
    uint64_t ops0, failed0, ops1, failed1;

    (void)state;
    server_setup(&s, "rsa2048.pem");
    g_fake.fail = true;
    g_fake.pause = true;
    prov_stats(&ops0, &failed0);
    assert_false(handshake(&s, TLS1_3_VERSION, NULL, NULL, &err));
    /* The client saw an alert from the server, not a broken stream. */
    assert_int_equal(ERR_GET_LIB(err), ERR_LIB_SSL);
    assert_true(ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET);
    assert_false(handshake(&s, TLS1_2_VERSION, "AES128-GCM-SHA256", NULL, &err));
    assert_int_equal(ERR_GET_LIB(err), ERR_LIB_SSL);
    prov_stats(&ops1, &failed1);
    assert_int_equal(ops1 - ops0, 2);
    assert_int_equal(failed1 - failed0, 2);
    server_teardown(&s);
}

static void test_key_refuses_non_rsa(void **state)
{
    FILE *fp = fopen(testutil_data_path("ec-p256.pem"), "r");
    EVP_PKEY *ec;
    EVP_PKEY *out = NULL;
    uint8_t id[PROTO_KEY_ID_LEN];

    (void)state;
    assert_non_null(fp);
    ec = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(ec);
    assert_int_equal(prov_key_new(&out, id, ec), SPK_ERR_KEY_UNSUPPORTED);
    assert_null(out);
    EVP_PKEY_free(ec);
}

static void test_key_id_and_no_private_half(void **state)
{
    struct server s = {0};
    uint8_t id[PROTO_KEY_ID_LEN];
    uint8_t *der = NULL;
    int der_len;
    unsigned len = 0;
    BIGNUM *d = NULL;

    (void)state;
    server_setup(&s, "rsa2048.pem");
    der_len = i2d_PUBKEY(g_fake.priv, &der);
    assert_true(der_len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)der_len, id, &len, EVP_sha256(), NULL), 1);
    assert_memory_equal(id, g_fake.key_id, sizeof(id));
    OPENSSL_free(der);
    /* The provider key has n and e but no d; it does not export. */
    assert_int_equal(EVP_PKEY_get_bits(s.pub_key), 2048);
    assert_int_equal(EVP_PKEY_get_bn_param(s.pub_key, OSSL_PKEY_PARAM_RSA_D, &d), 0);
    assert_null(d);
    assert_int_equal(EVP_PKEY_eq(s.pub_key, X509_get0_pubkey(s.cert)), 1);
    {
        OSSL_PARAM *params = NULL;
        assert_true(EVP_PKEY_todata(s.pub_key, EVP_PKEY_KEYPAIR, &params) <= 0);
        assert_null(params);
    }
    ERR_clear_error();
    server_teardown(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_pss),
        cmocka_unit_test(test_tls13_paused),
        cmocka_unit_test(test_tls12_ecdhe_pkcs1),
        cmocka_unit_test(test_tls12_ecdhe_pss),
        cmocka_unit_test(test_tls12_rsa_kx),
        cmocka_unit_test(test_rsa4096),
        cmocka_unit_test(test_failure_alerts),
        cmocka_unit_test(test_key_refuses_non_rsa),
        cmocka_unit_test(test_key_id_and_no_private_half),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
