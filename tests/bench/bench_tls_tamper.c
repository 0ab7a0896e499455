/*
 * bench_tls_tamper: a TLS client for the edge's integration tests.
 *
 *   bench_tls_tamper tamper MODE HOST PORT SERVERNAME CAFILE
 *       One TLS 1.2 handshake with RSA key exchange (AES128-GCM-SHA256) whose
 *       ClientKeyExchange is changed on the way out as MODE says (see
 *       tt_modes). Prints one line, "result=ok", "result=alert:N:NAME"
 *       (the alert the server sent), "result=eof" or "result=error:WHY", so
 *       that a test can compare the edge with `openssl s_server` holding the
 *       whole key: the edge must answer every MODE exactly as OpenSSL does.
 *   bench_tls_tamper load N HOST PORT SERVERNAME CAFILE KIND
 *       N full handshakes one after another (no resumption), KIND one of
 *       1.3, 1.2-rsa, 1.2-ecdhe, or abort (a ClientHello, then a reset
 *       before the server can answer). Prints "ok=N failed=N".
 *
 * SERVERNAME "-" sends no SNI. The client runs OpenSSL over memory BIOs and
 * moves the bytes to the socket itself, record by record, which is where a
 * ClientKeyExchange can be changed: the client's own state still holds the
 * premaster it chose, so only the server's reaction is under test.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TT_TIMEOUT_MS 15000
#define TT_BUF_MAX (1u << 16)
#define TT_HOLD_MS 250
#define TT_TRIES 3

enum tt_mode {
    TT_NONE,    /* unchanged: the handshake must succeed */
    TT_FLIP,    /* one bit of the encrypted premaster flipped */
    TT_HIGH,    /* every byte 0xff: a number >= n */
    TT_ZERO,    /* every byte 0 */
    TT_MODULUS, /* exactly n */
    TT_OTHER,   /* a well-formed premaster the client did not choose */
    TT_VERSION, /* well-formed padding, premaster with version 3.1 */
    TT_SHORT,   /* well-formed padding, a 47-byte premaster */
    TT_LONG,    /* well-formed padding, a 49-byte premaster */
    TT_TYPE1,   /* block type 1 instead of 2 */
    TT_NOZERO,  /* no zero byte after the padding string */
    TT_TRUNC,   /* the ciphertext one byte short (lengths adjusted) */
    TT_EXTEND,  /* one byte appended (lengths adjusted) */
    TT_BADLEN,  /* the inner length says one byte less than is there */
};

static const char *const tt_modes[] = {
    "none",  "flip", "high",  "zero",   "modulus", "other",  "version",
    "short", "long", "type1", "nozero", "trunc",   "extend", "badlen",
};

struct tt_conn {
    int fd;
    SSL *ssl;
    BIO *rbio; /* network -> ssl */
    BIO *wbio; /* ssl -> network */
    enum tt_mode mode;
    bool tampered;
    bool ccs_sent;
    int alert; /* the description of the alert received, -1 if none */
    uint8_t pend[TT_BUF_MAX];
    size_t pend_len;
};

static void tt_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                      SSL *ssl, void *arg)
{
    struct tt_conn *c = arg;
    const uint8_t *b = buf;

    (void)version;
    (void)ssl;
    if (!write_p && content_type == SSL3_RT_ALERT && len == 2 && c->alert < 0) {
        c->alert = b[1];
    }
}

static int tt_connect(const char *host, int port)
{
    struct sockaddr_in sa;
    int one = 1;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int tt_send_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* tt_encrypt_block encrypts the k-byte block |em| to the server's key, raw. */
static int tt_encrypt_block(SSL *ssl, const uint8_t *em, size_t k, uint8_t *out, size_t *out_len)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *pub = cert != NULL ? X509_get0_pubkey(cert) : NULL;
    EVP_PKEY_CTX *ctx = pub != NULL ? EVP_PKEY_CTX_new(pub, NULL) : NULL;
    size_t len = *out_len;
    int r = -1;

    if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) != 1 ||
        EVP_PKEY_encrypt(ctx, out, &len, em, k) != 1 || len != k) {
        goto out;
    }
    *out_len = len;
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    return r;
}

/* tt_modulus writes the server's n, big-endian, |k| bytes. */
static int tt_modulus(SSL *ssl, uint8_t *out, size_t k)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *pub = cert != NULL ? X509_get0_pubkey(cert) : NULL;
    BIGNUM *n = NULL;
    int r = -1;

    if (pub != NULL && EVP_PKEY_get_bn_param(pub, "n", &n) == 1 &&
        BN_bn2binpad(n, out, (int)k) == (int)k) {
        r = 0;
    }
    BN_free(n);
    return r;
}

/*
 * tt_make_ct builds a k-byte ciphertext of a chosen PKCS#1 block for the
 * modes that need the server's public key.
 */
static int tt_make_ct(struct tt_conn *c, uint8_t *ct, size_t k)
{
    uint8_t em[1024];
    size_t msg_len = 48;
    size_t ps_len, i;
    size_t out_len = k;

    if (k > sizeof(em) || k < 64) {
        return -1;
    }
    if (c->mode == TT_SHORT) {
        msg_len = 47;
    } else if (c->mode == TT_LONG) {
        msg_len = 49;
    }
    ps_len = k - 3 - msg_len;
    em[0] = 0x00;
    em[1] = c->mode == TT_TYPE1 ? 0x01 : 0x02;
    if (RAND_bytes(em + 2, (int)(k - 2)) != 1) {
        return -1;
    }
    for (i = 0; i < ps_len; i++) {
        if (c->mode == TT_TYPE1) {
            em[2 + i] = 0xff;
        } else if (em[2 + i] == 0) {
            em[2 + i] = 0x5a;
        }
    }
    em[2 + ps_len] = 0x00;
    if (c->mode == TT_NOZERO) {
        em[2 + ps_len] = 0x01;
        for (i = 2 + ps_len; i < k; i++) {
            if (em[i] == 0) {
                em[i] = 0x33;
            }
        }
    }
    if (c->mode == TT_VERSION) {
        em[k - msg_len] = 0x03;
        em[k - msg_len + 1] = 0x01;
    } else if (c->mode != TT_NOZERO) {
        em[k - msg_len] = 0x03; /* the version the client offered: TLS 1.2 */
        em[k - msg_len + 1] = 0x03;
    }
    return tt_encrypt_block(c->ssl, em, k, ct, &out_len);
}

/*
 * tt_tamper changes the ClientKeyExchange record |rec| (5-byte header then
 * the handshake message) in place; its length may change by one byte, so
 * |rec| has room for one more. Returns the new record length or 0.
 */
static size_t tt_tamper(struct tt_conn *c, uint8_t *rec, size_t rec_len)
{
    uint8_t *hs = rec + 5;
    size_t hs_len, ct_len;
    uint8_t *ct;

    if (rec_len < 5 + 4 + 2) {
        return 0;
    }
    hs_len = ((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) | hs[3];
    ct_len = ((size_t)hs[4] << 8) | hs[5];
    if (hs_len != rec_len - 9 || ct_len != hs_len - 2) {
        return 0; /* not one whole message in one record: not expected */
    }
    ct = hs + 6;
    switch (c->mode) {
    case TT_NONE:
        break;
    case TT_FLIP:
        ct[ct_len / 2] ^= 0x01;
        break;
    case TT_HIGH:
        memset(ct, 0xff, ct_len);
        break;
    case TT_ZERO:
        memset(ct, 0, ct_len);
        break;
    case TT_MODULUS:
        if (tt_modulus(c->ssl, ct, ct_len) != 0) {
            return 0;
        }
        break;
    case TT_OTHER:
    case TT_VERSION:
    case TT_SHORT:
    case TT_LONG:
    case TT_TYPE1:
    case TT_NOZERO:
        if (tt_make_ct(c, ct, ct_len) != 0) {
            return 0;
        }
        break;
    case TT_TRUNC:
    case TT_EXTEND:
    case TT_BADLEN: {
        long delta = c->mode == TT_EXTEND ? 1 : c->mode == TT_TRUNC ? -1 : 0;
        size_t new_ct = (size_t)((long)ct_len + delta);
        size_t new_hs = (size_t)((long)hs_len + delta);
        size_t new_rec = (size_t)((long)rec_len - 5 + delta);
        if (c->mode == TT_EXTEND) {
            ct[ct_len] = 0;
        }
        if (c->mode == TT_BADLEN) {
            new_ct = ct_len - 1; /* the record and message keep their length */
        }
        rec[3] = (uint8_t)(new_rec >> 8);
        rec[4] = (uint8_t)new_rec;
        hs[1] = (uint8_t)(new_hs >> 16);
        hs[2] = (uint8_t)(new_hs >> 8);
        hs[3] = (uint8_t)new_hs;
        hs[4] = (uint8_t)(new_ct >> 8);
        hs[5] = (uint8_t)new_ct;
        rec_len = 5 + new_rec;
        break;
    }
    }
    c->tampered = true;
    return rec_len;
}

/* tt_flush moves what OpenSSL wrote to the socket, whole records at a time. */
static int tt_flush(struct tt_conn *c)
{
    static uint8_t rec[TT_BUF_MAX + 1];
    int n;

    while ((n = BIO_read(c->wbio, c->pend + c->pend_len, (int)(sizeof(c->pend) - c->pend_len))) >
           0) {
        c->pend_len += (size_t)n;
    }
    while (c->pend_len >= 5) {
        size_t len = 5 + (((size_t)c->pend[3] << 8) | c->pend[4]);
        size_t out_len = len;
        if (c->pend_len < len) {
            break;
        }
        memcpy(rec, c->pend, len);
        if (rec[0] == SSL3_RT_CHANGE_CIPHER_SPEC) {
            c->ccs_sent = true;
        } else if (rec[0] == SSL3_RT_HANDSHAKE && !c->ccs_sent && len > 5 &&
                   rec[5] == SSL3_MT_CLIENT_KEY_EXCHANGE && c->mode == TT_NONE) {
            c->tampered = true; /* seen, left alone */
        } else if (rec[0] == SSL3_RT_HANDSHAKE && !c->ccs_sent && len > 5 &&
                   rec[5] == SSL3_MT_CLIENT_KEY_EXCHANGE) {
            out_len = tt_tamper(c, rec, len);
            if (out_len == 0) {
                fprintf(stderr, "bench_tls_tamper: cannot change this ClientKeyExchange\n");
                return -1;
            }
        }
        if (tt_send_all(c->fd, rec, out_len) != 0) {
            return -2;
        }
        memmove(c->pend, c->pend + len, c->pend_len - len);
        c->pend_len -= len;
        if (c->mode != TT_NONE && c->tampered && rec[0] == SSL3_RT_HANDSHAKE && !c->ccs_sent) {
            /*
             * A server that rejects the ClientKeyExchange itself sends its
             * alert and closes; if the rest of the flight arrives after that
             * close, its kernel answers with a reset that can overtake the
             * alert. So give it a moment to answer before sending more.
             */
            struct pollfd pfd = {c->fd, POLLIN, 0};
            if (poll(&pfd, 1, TT_HOLD_MS) > 0) {
                return 1; /* it answered: read that first */
            }
        }
    }
    return 0;
}

/* tt_read moves what the socket has to OpenSSL. 1: data, 0: EOF, -1: error. */
static int tt_read(struct tt_conn *c)
{
    uint8_t buf[16384];
    struct pollfd pfd = {c->fd, POLLIN, 0};
    ssize_t n;
    int pr = poll(&pfd, 1, TT_TIMEOUT_MS);

    if (pr <= 0) {
        return -1;
    }
    n = recv(c->fd, buf, sizeof(buf), 0);
    if (n == 0) {
        return 0;
    }
    if (n < 0) {
        return errno == ECONNRESET ? 0 : -1;
    }
    return BIO_write(c->rbio, buf, (int)n) == (int)n ? 1 : -1;
}

static SSL_CTX *tt_ctx_new(const char *cafile, const char *kind)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (strcmp(kind, "1.3") == 0 || strcmp(kind, "abort") == 0) {
        (void)SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    } else {
        (void)SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
        (void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        if (SSL_CTX_set_cipher_list(ctx, strcmp(kind, "1.2-ecdhe") == 0
                                             ? "ECDHE-RSA-AES128-GCM-SHA256"
                                             : "AES128-GCM-SHA256") != 1) {
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

/*
 * tt_handshake runs one handshake on a new connection. Returns 1 when it
 * completed, 0 when the server ended it (c->alert says how, -1: no alert),
 * -1 on a local error. |abort_early|: send the ClientHello, then reset.
 */
static int tt_handshake(struct tt_conn *c, SSL_CTX *ctx, const char *host, int port, char *sni,
                        bool abort_early)
{
    int ret = -1;

    c->fd = tt_connect(host, port);
    c->ssl = SSL_new(ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    c->alert = -1;
    c->pend_len = 0;
    c->tampered = false;
    c->ccs_sent = false;
    if (c->fd < 0 || c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        goto out;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    SSL_set_msg_callback(c->ssl, tt_msg_cb);
    SSL_set_msg_callback_arg(c->ssl, c);
    if (strcmp(sni, "-") != 0 &&
        (SSL_set_tlsext_host_name(c->ssl, sni) != 1 || SSL_set1_host(c->ssl, sni) != 1)) {
        goto out;
    }
    for (;;) {
        int r = SSL_do_handshake(c->ssl);
        int err = SSL_get_error(c->ssl, r);
        int fr = tt_flush(c);
        if (fr == -1) {
            goto out;
        }
        if (r == 1 && fr != 1) {
            ret = fr == 0 ? 1 : 0;
            break;
        }
        if (abort_early) {
            struct linger lg = {1, 0};
            (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            ret = 1;
            break;
        }
        if ((err != SSL_ERROR_WANT_READ && r != 1) || fr == -2) {
            ret = 0; /* the server's alert has been read, or it is gone */
            break;
        }
        r = tt_read(c);
        if (r < 0) {
            goto out;
        }
        if (r == 0) {
            ret = 0;
            break;
        }
    }
    if (ret == 1 && !abort_early) {
        (void)SSL_shutdown(c->ssl);
        (void)tt_flush(c);
    }
out:
    ERR_clear_error();
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    return ret;
}

static int tt_cmd_tamper(char **argv)
{
    static struct tt_conn c;
    SSL_CTX *ctx = NULL;
    size_t m;
    int i;
    int r = -1;

    memset(&c, 0, sizeof(c));
    for (m = 0; m < sizeof(tt_modes) / sizeof(tt_modes[0]); m++) {
        if (strcmp(argv[0], tt_modes[m]) == 0) {
            break;
        }
    }
    if (m == sizeof(tt_modes) / sizeof(tt_modes[0])) {
        fprintf(stderr, "bench_tls_tamper: unknown mode %s\n", argv[0]);
        return 2;
    }
    c.mode = (enum tt_mode)m;
    ctx = tt_ctx_new(argv[4], "1.2-rsa");
    if (ctx == NULL) {
        printf("result=error:context\n");
        return 1;
    }
    /* A reset instead of the alert is a race of the test, not an answer: retry. */
    for (i = 0; i < TT_TRIES; i++) {
        r = tt_handshake(&c, ctx, argv[1], atoi(argv[2]), argv[3], false);
        if (r != 0 || c.alert >= 0) {
            break;
        }
    }
    SSL_CTX_free(ctx);
    if (r < 0) {
        printf("result=error:client\n");
        return 1;
    }
    if (!c.tampered) {
        printf("result=error:no-client-key-exchange\n");
        return 1;
    }
    if (r == 1) {
        printf("result=ok\n");
    } else if (c.alert >= 0) {
        printf("result=alert:%d:%s\n", c.alert, SSL_alert_desc_string_long(c.alert));
    } else {
        printf("result=eof\n");
    }
    return 0;
}

static int tt_cmd_load(char **argv)
{
    static struct tt_conn c;
    const char *kind = argv[5];
    long n = atol(argv[0]);
    long ok = 0, failed = 0, i;
    SSL_CTX *ctx = NULL;

    if (n <= 0 || (strcmp(kind, "1.3") != 0 && strcmp(kind, "1.2-rsa") != 0 &&
                   strcmp(kind, "1.2-ecdhe") != 0 && strcmp(kind, "abort") != 0)) {
        fprintf(stderr, "bench_tls_tamper: bad count or kind\n");
        return 2;
    }
    ctx = tt_ctx_new(argv[4], kind);
    if (ctx == NULL) {
        fprintf(stderr, "bench_tls_tamper: cannot make a TLS context\n");
        return 1;
    }
    memset(&c, 0, sizeof(c));
    c.mode = TT_NONE;
    for (i = 0; i < n; i++) {
        if (tt_handshake(&c, ctx, argv[1], atoi(argv[2]), argv[3], strcmp(kind, "abort") == 0) ==
            1) {
            ok++;
        } else {
            failed++;
        }
    }
    SSL_CTX_free(ctx);
    printf("ok=%ld failed=%ld\n", ok, failed);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "tamper") == 0) {
        return tt_cmd_tamper(argv + 2);
    }
    if (argc == 8 && strcmp(argv[1], "load") == 0) {
        return tt_cmd_load(argv + 2);
    }
    fprintf(stderr, "usage: bench_tls_tamper tamper MODE HOST PORT SERVERNAME CAFILE\n"
                    "       bench_tls_tamper load N HOST PORT SERVERNAME CAFILE "
                    "1.3|1.2-rsa|1.2-ecdhe|abort\n");
    return 2;
}
