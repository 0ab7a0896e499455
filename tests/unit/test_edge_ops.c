/*
 * test_edge_ops: the pieces of edge operations that need no processes: the
 * ticket key file, the ticket callback sealing and opening a TLS 1.3 session
 * across two SSL_CTXs (two edges sharing the file) and refusing one sealed
 * with a removed key, the metrics histogram and text, the HTTP answer, and
 * the configuration directives of issue 6.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "edge/internal.h"
#include "testutil.h"

static char g_dir[] = "/tmp/spk-test-edge-ops.XXXXXX";

static const char *tpath(const char *name)
{
    static char buf[256];

    snprintf(buf, sizeof(buf), "%s/%s", g_dir, name);
    return buf;
}

static void write_text(const char *name, const char *text)
{
    FILE *fp = fopen(tpath(name), "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    /* ticket key files are secret: readable by their owner only */
    assert_int_equal(chmod(tpath(name), 0600), 0);
}

/* A key line: 160 hex digits made from |seed|. */
static void key_line(char out[162], unsigned seed)
{
    size_t i;

    for (i = 0; i < 160; i++) {
        out[i] = "0123456789abcdef"[(i * 7 + seed * 13 + i / 16) % 16];
    }
    out[160] = '\n';
    out[161] = '\0';
}

static void test_ticket_file(void **state)
{
    struct edge_tickets *t = NULL;
    char why[512];
    char k1[162], k2[162], text[4096];
    int i;

    (void)state;
    key_line(k1, 1);
    key_line(k2, 2);
    snprintf(text, sizeof(text), "# newest first\n\n  %s%s", k1, k2);
    write_text("good.keys", text);
    assert_int_equal(edge_tickets_load(&t, tpath("good.keys"), why, sizeof(why)), 0);
    assert_int_equal(edge_tickets_count(t), 2);
    edge_tickets_free(t);

    /* Uppercase hex and CRLF are accepted too. */
    for (i = 0; i < 160; i++) {
        if (k1[i] >= 'a') {
            k1[i] = (char)(k1[i] - 'a' + 'A');
        }
    }
    k1[160] = '\r';
    snprintf(text, sizeof(text), "%s\n", k1);
    write_text("upper.keys", text);
    assert_int_equal(edge_tickets_load(&t, tpath("upper.keys"), why, sizeof(why)), 0);
    assert_int_equal(edge_tickets_count(t), 1);
    edge_tickets_free(t);

    /* No file: one random key. */
    assert_int_equal(edge_tickets_load(&t, "", why, sizeof(why)), 0);
    assert_int_equal(edge_tickets_count(t), 1);
    edge_tickets_free(t);

    /* Refused: short, non-hex, only comments, missing, too many keys. */
    key_line(k2, 3);
    snprintf(text, sizeof(text), "%s%.158s\n", k2, k2);
    write_text("short.keys", text);
    t = NULL;
    assert_int_equal(edge_tickets_load(&t, tpath("short.keys"), why, sizeof(why)),
                     SPK_ERR_MALFORMED);
    assert_null(t);
    assert_non_null(strstr(why, "short.keys:2: not a key"));
    k2[5] = 'g';
    write_text("nonhex.keys", k2);
    assert_int_equal(edge_tickets_load(&t, tpath("nonhex.keys"), why, sizeof(why)),
                     SPK_ERR_MALFORMED);
    write_text("empty.keys", "# nothing\n");
    assert_int_equal(edge_tickets_load(&t, tpath("empty.keys"), why, sizeof(why)),
                     SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "no key"));
    assert_int_not_equal(edge_tickets_load(&t, tpath("missing.keys"), why, sizeof(why)), 0);
    text[0] = '\0';
    key_line(k2, 4);
    for (i = 0; i < EDGE_TICKET_KEYS_MAX + 1; i++) {
        strncat(text, k2, sizeof(text) - strlen(text) - 1);
    }
    assert_int_equal(strlen(text), (EDGE_TICKET_KEYS_MAX + 1) * 161);
    write_text("many.keys", text);
    assert_int_equal(edge_tickets_load(&t, tpath("many.keys"), why, sizeof(why)),
                     SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "more than"));
}

/* ---- a TLS 1.3 handshake in memory, resumed at a second "edge" ---------------- */

static EVP_PKEY *g_key;
static X509 *g_cert;

static void make_cert(void)
{
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
    X509_NAME *name;

    assert_non_null(kctx);
    assert_int_equal(EVP_PKEY_keygen_init(kctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(kctx, 2048), 1);
    assert_int_equal(EVP_PKEY_keygen(kctx, &g_key), 1);
    EVP_PKEY_CTX_free(kctx);
    g_cert = X509_new();
    assert_non_null(g_cert);
    ASN1_INTEGER_set(X509_get_serialNumber(g_cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(g_cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(g_cert), 3600);
    X509_set_pubkey(g_cert, g_key);
    name = X509_get_subject_name(g_cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"t.test", -1, -1,
                               0);
    X509_set_issuer_name(g_cert, name);
    assert_int_not_equal(X509_sign(g_cert, g_key, EVP_sha256()), 0);
}

static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, g_key), 1);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"spk-edge", 8);
    assert_int_equal(edge_tickets_install(ctx), 0);
    return ctx;
}

/* handshake: a full or resumed handshake of a client with |sess| (or NULL)
 * against |sctx|; returns the client's session (with a ticket) and whether
 * it was reused. */
static SSL_SESSION *handshake(SSL_CTX *sctx, SSL_SESSION *sess, int *reused)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *c, *s;
    BIO *cb, *sb;
    SSL_SESSION *out;
    char buf[16];
    int i, rc_c = 0, rc_s = 0;

    assert_non_null(cctx);
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    c = SSL_new(cctx);
    s = SSL_new(sctx);
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (sess != NULL) {
        assert_int_equal(SSL_set_session(c, sess), 1);
    }
    for (i = 0; i < 50 && (rc_c != 1 || rc_s != 1); i++) {
        if (rc_c != 1) {
            rc_c = SSL_do_handshake(c);
        }
        if (rc_s != 1) {
            rc_s = SSL_do_handshake(s);
        }
    }
    assert_int_equal(rc_c, 1);
    assert_int_equal(rc_s, 1);
    /* TLS 1.3 tickets come after the handshake: let the client read them. */
    assert_int_equal(SSL_write(s, "x", 1), 1);
    assert_int_equal(SSL_read(c, buf, sizeof(buf)), 1);
    *reused = SSL_session_reused(s);
    out = SSL_get1_session(c);
    /* Without close_notify SSL_free marks the session not resumable. */
    (void)SSL_shutdown(c);
    (void)SSL_shutdown(s);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    ERR_clear_error();
    return out;
}

static void test_ticket_resume(void **state)
{
    struct edge_tickets *t1 = NULL, *t2 = NULL, *t3 = NULL;
    SSL_CTX *edge_a, *edge_b;
    SSL_SESSION *sess, *sess2, *sess3;
    uint64_t issued, opened, unknown, issued0, opened0, unknown0;
    char why[512];
    char k1[162], k2[162], text[400];
    int reused = -1;

    (void)state;
    make_cert();
    key_line(k1, 11);
    key_line(k2, 12);
    write_text("one.keys", k1);
    snprintf(text, sizeof(text), "%s%s", k2, k1);
    write_text("rotated.keys", text);
    write_text("other.keys", k2);
    assert_int_equal(edge_tickets_load(&t1, tpath("one.keys"), why, sizeof(why)), 0);
    assert_int_equal(edge_tickets_load(&t2, tpath("rotated.keys"), why, sizeof(why)), 0);
    assert_int_equal(edge_tickets_load(&t3, tpath("other.keys"), why, sizeof(why)), 0);
    edge_a = server_ctx();
    edge_b = server_ctx();
    edge_tickets_stats(&issued0, &opened0, &unknown0);

    edge_tickets_use(t1);
    sess = handshake(edge_a, NULL, &reused);
    assert_int_equal(reused, 0);
    assert_non_null(sess);
    /* Another edge with the same file resumes it. */
    sess2 = handshake(edge_b, sess, &reused);
    assert_int_equal(reused, 1);
    SSL_SESSION_free(sess2);
    /* After a rotation (new key first, the old one second) it still resumes. */
    edge_tickets_use(t2);
    sess2 = handshake(edge_a, sess, &reused);
    assert_int_equal(reused, 1);
    SSL_SESSION_free(sess2);
    /* Once the key is gone: a full handshake. */
    edge_tickets_use(t3);
    sess3 = handshake(edge_b, sess, &reused);
    assert_int_equal(reused, 0);
    SSL_SESSION_free(sess3);
    edge_tickets_stats(&issued, &opened, &unknown);
    assert_true(issued > issued0);
    assert_true(opened >= opened0 + 2);
    assert_true(unknown >= unknown0 + 1);

    edge_tickets_use(NULL);
    SSL_SESSION_free(sess);
    SSL_CTX_free(edge_a);
    SSL_CTX_free(edge_b);
    edge_tickets_free(t1);
    edge_tickets_free(t2);
    edge_tickets_free(t3);
    X509_free(g_cert);
    EVP_PKEY_free(g_key);
}

/* ---- metrics ---------------------------------------------------------------------- */

static void test_metrics_text(void **state)
{
    struct spk_hist h;
    struct spk_text t, out;
    const char *p;

    (void)state;
    memset(&h, 0, sizeof(h));
    memset(&t, 0, sizeof(t));
    memset(&out, 0, sizeof(out));
    spk_hist_observe(&h, 0.0004);
    spk_hist_observe(&h, 0.003);
    spk_hist_observe(&h, 0.003);
    spk_hist_observe(&h, 99.0);
    spk_text_hist(&t, "x_seconds", "kind=\"sign\"", &h);
    assert_false(t.failed);
    assert_non_null(strstr(t.buf, "x_seconds_bucket{kind=\"sign\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{kind=\"sign\",le=\"0.002\"} 1\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{kind=\"sign\",le=\"0.005\"} 3\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{kind=\"sign\",le=\"10\"} 3\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{kind=\"sign\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t.buf, "x_seconds_count{kind=\"sign\"} 4\n"));
    spk_text_reset(&t);
    spk_text_hist(&t, "y", "", &h);
    assert_non_null(strstr(t.buf, "y_bucket{le=\"+Inf\"} 4\ny_sum 99.006400\ny_count 4\n"));

    /* Growth past the first allocation. */
    spk_text_reset(&t);
    for (int i = 0; i < 2000; i++) {
        spk_text_printf(&t, "line %d of some length to grow the buffer\n", i);
    }
    assert_false(t.failed);
    assert_non_null(strstr(t.buf, "line 1999 of"));

    /* HTTP */
    assert_int_equal(spk_http_answer("GET /metrics HTTP/1.1\r\nHost: x\r\n", 33, &t, &out), 0);
    assert_int_equal(spk_http_answer("GET /metrics HTTP/1.1\r\n\r\n", 25, &t, &out), 1);
    assert_non_null(strstr(out.buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(out.buf, "Content-Type: text/plain; version=0.0.4"));
    p = strstr(out.buf, "\r\n\r\n");
    assert_non_null(p);
    assert_int_equal(strlen(p + 4), t.len);
    assert_int_equal(spk_http_answer("POST /metrics HTTP/1.1\r\n\r\n", 26, &t, &out), 1);
    assert_non_null(strstr(out.buf, "405"));
    assert_int_equal(spk_http_answer("GET /secret HTTP/1.1\r\n\r\n", 24, &t, &out), 1);
    assert_non_null(strstr(out.buf, "404"));
    spk_text_free(&t);
    spk_text_free(&out);
}

/* ---- configuration -------------------------------------------------------------------- */

static int load_conf(const char *extra, char *why, size_t why_len)
{
    static struct edge_config cfg;
    char text[2048];

    snprintf(text, sizeof(text),
             "listen 127.0.0.1:8443\ncertificate a.pem a.record\nupstream 127.0.0.1:80\n"
             "combiner-endpoint ipc:///tmp/x\ncombiner-config comb.conf\n%s",
             extra);
    write_text("e.conf", text);
    edge_config_init(&cfg);
    return edge_config_load(&cfg, tpath("e.conf"), why, why_len);
}

static void test_config(void **state)
{
    static struct edge_config cfg;
    char why[512];

    (void)state;
    assert_int_equal(load_conf("ticket-key-file t.keys\nmetrics 127.0.0.1:9100\n"
                               "drain-timeout-ms 0\n",
                               why, sizeof(why)),
                     0);
    edge_config_init(&cfg);
    assert_int_equal(edge_config_load(&cfg, tpath("e.conf"), why, sizeof(why)), 0);
    assert_string_equal(cfg.ticket_key_file, tpath("t.keys"));
    assert_string_equal(cfg.metrics, "127.0.0.1:9100");
    assert_string_equal(cfg.combiner_config, tpath("comb.conf"));
    assert_int_equal(cfg.drain_timeout_ms, 0);
    assert_string_equal(cfg.path, tpath("e.conf"));
    edge_config_init(&cfg);
    assert_int_equal(cfg.drain_timeout_ms, 30000);

    /* Metrics only on loopback. */
    assert_int_equal(load_conf("metrics 0.0.0.0:9100\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "loopback"));
    /* What the combiner reads is refused here, with where it belongs. */
    assert_int_equal(load_conf("combiner-metrics localhost:9101\n", why, sizeof(why)),
                     SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "combiner-config"));
    assert_int_equal(load_conf("share x.share\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_int_equal(load_conf("combiner-key k.key\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    /* A tcp:// combiner is reached with CURVE only. */
    assert_int_equal(load_conf("combiner-endpoint tcp://127.0.0.1:7000\n", why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "combiner-curve-public"));
    assert_int_equal(load_conf("metrics [::1]:9100\n", why, sizeof(why)), 0);
    /* numeric loopback only: a name that starts with 127. is not an address */
    assert_int_equal(load_conf("metrics 127.attacker.example:9100\n", why, sizeof(why)),
                     SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "numeric loopback"));
    assert_int_equal(load_conf("metrics localhost:9100\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_int_equal(load_conf("metrics 127.1.2.3:9100\n", why, sizeof(why)), 0);
    assert_int_equal(load_conf("metrics 127.0.0.1:0\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_int_equal(load_conf("metrics 127.0.0.1:65536\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_int_equal(load_conf("metrics [::2]:9100\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_int_equal(load_conf("metrics 127.0.0.1\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_int_equal(load_conf("ticket-key-file\n", why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_int_equal(load_conf("drain-timeout-ms -1\n", why, sizeof(why)), SPK_ERR_MALFORMED);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ticket_file),
        cmocka_unit_test(test_ticket_resume),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_config),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
